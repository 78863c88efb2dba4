"""Ledger benchmark: batch credits, single credits and balance reads, against raw inserts.

    python -m bench.ledger [--members 100000] [--backends sqlite,postgresql]

The baseline is a raw executemany of exactly the rows the batch credits
write (transactions, postings, lots, balances) into empty copies of those
tables, in the same run, so the ratio shows what the ledger adds on top of
the database itself.
"""
from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from bench.common import machine, median_ms, scratch_database, timed
from pointsmith import clock
from pointsmith.db import get_engine, read_only, unit_of_work
from pointsmith.idempotency import idempotency_keys
from pointsmith.ledger import grants, queries
from pointsmith.ledger.service import CreditRequest, credit, post_credits
from pointsmith.ledger.tables import ledger_lots, ledger_postings, ledger_transactions, point_balances
from pointsmith.members.tables import members

BATCH = 1000
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def create_members(url: str, n: int) -> None:
    now = clock.now()
    rows = [{"id": f"m{i:07d}", "status": "active", "attributes": {}, "invite_code": f"B{i:07d}",
             "joined_at": now, "created_at": now, "updated_at": now} for i in range(n)]
    with unit_of_work(get_engine(url)) as conn:
        for i in range(0, n, 10_000):
            conn.execute(members.insert(), rows[i:i + 10_000])


def batch_credits(url: str, n: int) -> float:
    engine = get_engine(url)

    def run() -> None:
        for start in range(0, n, BATCH):
            with unit_of_work(engine) as conn:
                post_credits(conn, [CreditRequest(f"m{i:07d}", 100, f"bench-{i}", at=T0)
                                   for i in range(start, min(n, start + BATCH))])

    return timed(run)


TABLES = [ledger_transactions, ledger_postings, ledger_lots, point_balances, idempotency_keys]


def raw_baseline(url: str) -> tuple[float, int]:
    """Insert exactly the rows the credits wrote, with the driver's own executemany, into twin tables
    that have the same primary keys but no other index: the database's floor for this data."""
    engine = get_engine(url)
    with read_only(engine) as conn:  # as the driver gives them, re-sent as the driver takes them
        data = {t.name: [tuple(json.dumps(v) if isinstance(v, dict | list) else v for v in r)
                         for r in conn.exec_driver_sql(f"SELECT * FROM {t.name}")] for t in TABLES}
    twins = sa.MetaData()
    for t in TABLES:
        sa.Table(f"raw_{t.name}", twins, *(sa.Column(c.name, c.type, primary_key=c.primary_key) for c in t.columns))
    twins.create_all(engine)
    mark = "?" if engine.dialect.name == "sqlite" else "%s"

    def run() -> None:
        for t in TABLES:
            rows = data[t.name]
            sql = f"INSERT INTO raw_{t.name} VALUES ({', '.join([mark] * len(t.columns))})"
            for start in range(0, len(rows), BATCH * 2):
                with unit_of_work(engine) as conn:
                    conn.exec_driver_sql(sql, rows[start:start + BATCH * 2])

    return timed(run), sum(len(rows) for rows in data.values())


def single_credit_ms(url: str, runs: int) -> float:
    engine = get_engine(url)

    def one(i: int) -> None:
        with unit_of_work(engine) as conn:
            credit(conn, CreditRequest(f"m{i % 1000:07d}", 5, f"single-{i}"))

    return median_ms(one, runs)


def balance_read_ms(url: str, runs: int) -> float:
    engine = get_engine(url)

    def one(i: int) -> None:
        queries.current_balance(engine, f"m{i % 1000:07d}")

    return median_ms(one, runs)


def granted(url: str, n: int) -> float:
    """The same credits through `grants.grant`: batches on two connections at once (one on SQLite)."""
    engine = get_engine(url)
    return timed(lambda: grants.grant(engine, (CreditRequest(f"m{i:07d}", 100, f"bench-{i}", at=T0)
                                               for i in range(n)), batch=BATCH))


def run_backend(backend: str, n: int) -> dict[str, Any]:
    with scratch_database(backend) as url:
        create_members(url, n)
        grant_seconds = granted(url, n)
    with scratch_database(backend) as url:
        create_members(url, n)
        seconds = batch_credits(url, n)
        baseline, rows = raw_baseline(url)
        return {
            "backend": backend, "members": n, "credits": n, "postings": 2 * n, "rows_written": rows,
            "batch_seconds": round(seconds, 2), "postings_per_second": round(2 * n / seconds),
            "grant_workers": grants.default_workers(get_engine(url)), "grant_seconds": round(grant_seconds, 2),
            "grant_postings_per_second": round(2 * n / grant_seconds),
            "raw_executemany_seconds": round(baseline, 2), "raw_rows_per_second": round(rows / baseline),
            "ledger_time_vs_raw": round(seconds / baseline, 2),
            "single_credit_median_ms": round(single_credit_ms(url, 1000), 3),
            "balance_read_median_ms": round(balance_read_ms(url, 2000), 3),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    results = [run_backend(b, args.members) for b in args.backends.split(",")]
    print(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
