"""Event ingestion benchmark: NDJSON import, one event per HTTP request, and the batch route.

    python -m bench.events [--events 20000] [--backends sqlite,postgresql] [--http-seconds 10]
                           [--client python|wrk] [--least-rows]

Import: `pointsmith events import` of a history of `order.paid` events in time
order (5,000 members) under a program with two rules, in a child process whose
own peak RSS is read from the OS; baseline: the driver's executemany of every
row the import left (events, ledger, growth, usage, orders, tiers) into twins
with no index, in as many transactions. HTTP: a real `pointsmith serve` (two
workers on PostgreSQL, one on SQLite, whose single writer gains nothing from
more processes) on loopback, driven by 16 connections (Python threads, or
`wrk` with `--client wrk`) with events that continue the history;
requests/s and p50/p99 latency, next to the same load on `GET /health`
(one SELECT: the floor of framework, server and client on these cores) in
the same run.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from psycopg.types.json import Jsonb

from bench.common import machine, scratch_database
from pointsmith import checkpointer
from pointsmith.db import get_engine, unit_of_work, writer_lock

PROGRAM = """\
program: {name: Bench, currency: USD, point_value: 0.01, timezone: UTC}
members: {auto_create: true}
points: {pending_days: 0, expiry: {policy: rolling, months: 12}}
growth: {daily_cap: null}
tiers:
  qualification: lifetime
  levels:
    - {key: member, name: Member, threshold: 0}
    - {key: silver, name: Silver, threshold: 5000, multiplier: 1.5}
rules:
  - {key: order, event: order.paid, points: "floor(event.amount) * tier.multiplier", growth: "floor(event.amount)"}
  - {key: big-order, event: order.paid, when: "event.amount >= 100", points: 50}
"""


START = datetime(2026, 1, 1, tzinfo=UTC)


def event(i: int, prefix: str = "b") -> dict[str, Any]:
    """The i-th order of a history in time order (one every 30 s: a million orders span 347 days),
    some of them a few hours late, as a shop's export of its orders would be."""
    late = timedelta(hours=(i * 7919) % 7) if i % 10 == 0 else timedelta(0)
    at = START + timedelta(seconds=30 * i) - late
    return {"id": f"{prefix}{i}", "type": "order.paid", "member_id": f"m{i % 5000:05d}",
            "occurred_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "attributes": {"order_id": f"{prefix}o{i}", "amount": round(5 + (i * 7919) % 20000 / 100, 2)}}


def cli(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pointsmith", *args], input=stdin, capture_output=True,
                          text=True, check=True, env={**os.environ, "POINTSMITH_DATABASE_URL": url})


def bench_import(url: str, n: int, tmp: Path, workers: int = 1) -> dict[str, Any]:
    program = tmp / "program.yaml"
    program.write_text(PROGRAM)
    cli(url, "program", "apply", str(program))
    path = tmp / "events.ndjson"
    if not path.exists():
        with path.open("w") as f:
            for i in range(n):
                f.write(json.dumps(event(i)) + "\n")
    seconds, peak_mb = _import(url, path, workers)
    return {"events": n, "import_seconds": round(seconds, 2), "events_per_second": round(n / seconds),
            "peak_rss_mb": round(peak_mb)}


# A small launcher process starts the import and reports its peak RSS: a child forked straight
# from this (large) process would count this process's pages in its own peak.
LAUNCHER = ("import os, subprocess, sys; child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL); "
            "_, status, usage = os.wait4(child.pid, 0); print(usage.ru_maxrss); "
            "sys.exit(os.waitstatus_to_exitcode(status))")


def _import(url: str, path: Path, workers: int = 1) -> tuple[float, float]:
    """`pointsmith events import` in a child process: its wall time and its own peak RSS in MB (with
    workers, the largest of the worker processes')."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", LAUNCHER, sys.executable, "-m", "pointsmith", "events", "import",
                           str(path), "--json", "--workers", str(workers)],
                          env={**os.environ, "POINTSMITH_DATABASE_URL": url},
                          capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    return seconds, int(done.stdout.split()[-1]) / 1024


# every table the import writes
WRITTEN = ("events", "members", "ledger_transactions", "ledger_postings", "ledger_lots", "point_balances",
           "idempotency_keys", "growth_entries", "growth_totals", "rule_awards", "orders", "member_tiers",
           "tier_changes")


def least_rows_floor(url: str, n: int, counts: dict[str, int], seconds: float) -> dict[str, Any]:
    """The indexed floor of LEAST_ROWS (`counts`: `row_counts(url, LEAST_ROWS)` as the import left them):
    what any engine keeping the contract's records would pay here."""
    spent = raw_floor(url, n, counts, "least_", indexed=True, only=LEAST_ROWS)
    return {"least_rows_written": sum(counts.values()), "least_rows_indexed_seconds": round(spent, 2),
            "least_rows_events_per_second": round(n / spent), "import_time_vs_least_rows": round(seconds / spent, 2)}


def raw_floors(url: str, n: int, counts: dict[str, int], seconds: float) -> dict[str, Any]:
    """Two floors for the data the import left (the first `counts[table]` rows of each table, in the
    order written): the driver's executemany of every row into twin tables with no index at all (the
    bare cost of the bytes), and into twins with the same keys and indexes (what the database must do
    for these rows: at scale each event touches a leaf of every member-keyed index). Both commit as
    many transactions as the import did (one per 1,000 events). Run after the HTTP figures, which the
    floors' writes would otherwise disturb."""
    rows = sum(counts.values())
    bare = raw_floor(url, n, counts, "raw_", indexed=False)
    indexed = raw_floor(url, n, counts, "rawix_", indexed=True)
    return {"rows_written": rows, "raw_insert_seconds": round(bare, 2), "raw_rows_per_second": round(rows / bare),
            "raw_indexed_seconds": round(indexed, 2), "raw_indexed_rows_per_second": round(rows / indexed),
            "import_time_vs_raw": round(seconds / bare, 2), "import_time_vs_raw_indexed": round(seconds / indexed, 2)}


# The fewest rows the contract lets an event of the bench's history leave: the event, one ledger
# transaction with its two postings (the member's credit and the program's debit) and one lot, whatever
# the number of rules that paid; one growth entry; the order (refunds need it); no usage rows (the
# bench's rules have no limits). The import keeps a transaction and a lot per rule, and a usage row
# per award (a limit added by a later version counts them): this floor is what dropping all of that
# would leave the database to do.
LEAST_ROWS = {"ledger_transactions": "rule_key = 'order'",
              "ledger_postings": "transaction_id IN (SELECT id FROM ledger_transactions WHERE rule_key = 'order')",
              "ledger_lots": "rule_key = 'order'", "rule_awards": "1 = 0"}


def row_counts(url: str, only: dict[str, str] | None = None) -> dict[str, int]:
    """Rows of each table the import writes (with `only`, those its filter of the table keeps)."""
    with get_engine(url).connect() as conn:
        return {t: int(conn.exec_driver_sql(f"SELECT count(*) FROM {t} WHERE {(only or {}).get(t, '1 = 1')}"
                                            ).scalar_one()) for t in WRITTEN}


def _twin(conn: Any, table: str, name: str, *, postgres: bool, indexed: bool) -> None:
    if not indexed:
        conn.exec_driver_sql(f"CREATE TABLE {name} AS SELECT * FROM {table} WHERE 1 = 0")
    elif postgres:
        conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING INDEXES)")
    else:
        ddl = conn.exec_driver_sql("SELECT type, sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL"
                                   " AND type IN ('table', 'index')"
                                   " ORDER BY type DESC", (table,)).all()
        for kind, sql in ddl:  # the table first, then its indexes under new names
            if kind == "table":
                conn.exec_driver_sql(re.sub(rf"^CREATE TABLE {table} ", f"CREATE TABLE {name} ", sql))
            else:
                conn.exec_driver_sql(re.sub(rf"^CREATE (UNIQUE )?INDEX (\w+) ON {table} ",
                                            rf"CREATE \1INDEX {name}_\2 ON {name} ", sql))


def raw_floor(url: str, n: int, counts: dict[str, int], prefix: str, *, indexed: bool, write: bool = True,
              only: dict[str, str] | None = None) -> float:
    """Seconds of executemany of every row the import left (with `only`, the rows its filter of each
    table keeps) into twins named `prefix` + table. Rows are read back in step (streamed, untimed, in
    the order they were written) so memory stays flat. `write=False` does all of it but the inserts
    (bench/instructions.py counts the difference)."""
    engine = get_engine(url)
    postgres = engine.dialect.name == "postgresql"
    batches = max(n // 1000, 1)
    left = dict(counts)
    with unit_of_work(engine) as conn:
        for t in WRITTEN:
            _twin(conn, t, prefix + t, postgres=postgres, indexed=indexed)
    writer = engine.raw_connection()
    source = None
    if postgres:
        reader: Any = engine.raw_connection()
    else:
        # A reader's open snapshot keeps every frame written after it in SQLite's log (no checkpoint may
        # pass it), and a log of millions of frames slows each page lookup: read from a copy instead.
        # The writes are checkpointed as the engine's own are, beside the writer (checkpointer.py).
        database = writer_lock(engine).file
        assert database is not None
        writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        source = database + ".floor-source"
        shutil.copyfile(database, source)
        reader = sqlite3.connect(source)
        checkpointer.writing(database)
    spent = 0.0
    try:
        cursors = {}
        for t in WRITTEN:
            cursors[t] = reader.cursor(name=f"read_{t}") if postgres else reader.cursor()
            cursors[t].execute(f"SELECT * FROM {t} WHERE {(only or {}).get(t, '1 = 1')}")
        width = {t: len(cursors[t].description or ()) for t in WRITTEN}
        mark = "%s" if postgres else "?"
        for _ in range(batches):
            chunk = {}
            for t in WRITTEN:
                chunk[t] = cursors[t].fetchmany(min(-(-counts[t] // batches), left[t])) if left[t] else []
                left[t] -= len(chunk[t])
            if postgres:  # JSON columns come back as dicts; psycopg wants them wrapped to send them
                chunk = {t: [tuple(Jsonb(v) if isinstance(v, dict | list) else v for v in row) for row in rows]
                         for t, rows in chunk.items()}
            started = time.perf_counter()
            out = writer.cursor()
            if not postgres:  # the engine's SQLite connections leave BEGIN to the caller
                out.execute("BEGIN IMMEDIATE")
            for t, rows in chunk.items():
                if rows and write:
                    out.executemany(f"INSERT INTO {prefix}{t} VALUES ({', '.join([mark] * width[t])})", rows)
            writer.commit()
            spent += time.perf_counter() - started
    finally:
        reader.close()
        writer.close()
        if source is not None:
            os.remove(source)
    return spent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_http(url: str, seconds: float, after: int, workers: int = 16, client: str = "python") -> dict[str, Any]:
    """The HTTP figures; the events sent continue the imported history (`after` events in), as live
    traffic would (a backdated event also redoes the tier history after it)."""
    # SQLite has one writer: more server processes only queue in its busy handler (a long tail)
    server_workers = 1 if url.startswith("sqlite") else 2
    key = json.loads(cli(url, "keys", "create", "--scope", "client", "--json").stdout)["key"]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "pointsmith", "serve", "--port", str(port),
                               "--workers", str(server_workers)],
                              env={**os.environ, "POINTSMITH_DATABASE_URL": url},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        floor = load(port, seconds, workers, "GET", "/health", 200, client=client)
        single = load(port, seconds, workers, "POST", "/v1/events", 201,
                      lambda i: json.dumps(event(after + i, "h")), key, client)
        after += 10_000 * int(seconds)  # past the single events' (never 10,000 a second here)
        one, sent = _batch(base, headers, seconds, after)
        # a second client keeps the server busy while the first builds its next batch, and gives
        # PostgreSQL's second server process work
        two, _ = _batch(base, headers, seconds, after + sent, clients=2)
        batches = {"http_batch_events_per_second": one, "http_batch_2_clients_events_per_second": two}
        return {"http_server_workers": server_workers, "http_client": client,
                **{f"http_health_{k}": v for k, v in floor.items()},
                **{f"http_single_{k}": v for k, v in single.items()},
                "http_single_vs_health_rps": round(single["requests_per_second"] / floor["requests_per_second"], 2),
                **batches}
    finally:
        server.terminate()
        server.wait(10)


WRK_THREADS = 2  # one a core


def load(port: int, seconds: float, connections: int, method: str, path: str, expect: int,
         body: Callable[[int], str] | None = None, key: str | None = None, client: str = "python") -> dict[str, Any]:
    """`connections` keep-alive connections sending `method path` (with `body(i)` for the i-th
    request) for `seconds`: requests/s and p50/p99 latency. `client`: "python", threads of
    http.client (the figures of record: its latencies agree with the server's own timing of each
    request), or "wrk" (Debian: `apt-get install wrk`), whose C client leaves more of the two
    cores to the server (bench/README.md, tenth session, on what its tail shows)."""
    if client == "python":
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"} if key else {}
        return _load_threads(port, seconds, connections,
                             lambda i: (method, path, body(i) if body else None, headers), expect)
    if shutil.which("wrk") is None:
        raise SystemExit("--client wrk needs wrk (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        args = [method, path, str(expect), str(WRK_THREADS)]
        if body is not None:
            # more bodies than the route could take in the time: each is sent once (the script checks)
            bodies = Path(tmp) / "bodies.ndjson"
            bodies.write_text("".join(body(i) + "\n" for i in range(int(seconds * 5_000))))
            args += [str(bodies), key or ""]
        done = subprocess.run(["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{round(seconds)}s",
                               "--timeout", "30s", "-s", str(Path(__file__).with_name("wrk_load.lua")),
                               f"http://127.0.0.1:{port}", "--", *args],
                              capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["unexpected"] == figures["exhausted"] == figures["socket_errors"] == 0, figures
    return {"requests_per_second": round(figures["requests"] / figures["seconds"]),
            "p50_ms": figures["p50_ms"], "p99_ms": figures["p99_ms"]}


def _load_threads(port: int, seconds: float, workers: int,
                  request: Callable[[int], tuple[str, str, str | None, dict[str, str]]],
                  expect: int) -> dict[str, Any]:
    """`workers` threads on keep-alive connections (http.client: the lightest client in the standard
    library, since the client shares the machine's two cores with the server)."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(10**9))
    deadline = time.monotonic() + seconds

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while time.monotonic() < deadline:
            method, path, body, headers = request(next(counter))
            start = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read()
            mine.append(time.perf_counter() - start)
            assert response.status == expect, text[:300]
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(worker) for _ in range(workers)]:
            f.result()
    wall = time.perf_counter() - started
    latencies.sort()
    return {"requests_per_second": round(len(latencies) / wall),
            "p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1)}


def _batch(base: str, headers: dict[str, str], seconds: float, after: int, clients: int = 1) -> tuple[int, int]:
    """Batches of 1,000 events from `clients` threads, each waiting for its answer before sending
    again: events/s, and how many were sent. The events continue the history, each batch the next
    1,000 (so batches in flight at once are of different members)."""
    sent = []
    numbers = iter(range(10**9))  # shared: each `next` is one step under the GIL, as in `_load`
    deadline = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(headers=headers, timeout=120) as http:
            while time.monotonic() < deadline:
                first = after + 1000 * next(numbers)
                r = http.post(base + "/v1/events/batch", json={"events": [event(first + i, "bb") for i in range(1000)]})
                assert r.status_code == 200 and r.json()["accepted"] == 1000, r.text[:300]
                sent.append(1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    return round(sum(sent) / (time.perf_counter() - started)), sum(sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--http-seconds", type=float, default=10)
    parser.add_argument("--client", choices=["python", "wrk"], default="python",
                        help="the load generator of the single-request figures (see `load`)")
    parser.add_argument("--least-rows", action="store_true",
                        help="also the indexed floor of the fewest rows the contract allows (LEAST_ROWS)")
    args = parser.parse_args()
    results = []
    for backend in args.backends.split(","):
        with scratch_database(backend) as url, tempfile.TemporaryDirectory() as tmp:
            imported = bench_import(url, args.events, Path(tmp))
            counts = row_counts(url)  # before the HTTP figures add events of their own
            least = row_counts(url, LEAST_ROWS) if args.least_rows else {}
            http = bench_http(url, args.http_seconds, args.events, client=args.client)
            results.append({"backend": backend, **imported,
                            **raw_floors(url, args.events, counts, imported["import_seconds"]), **http})
            if args.least_rows:
                results[-1].update(least_rows_floor(url, args.events, least, imported["import_seconds"]))
            if backend == "postgresql":  # the same file by two worker processes, into a database of its own
                with scratch_database(backend) as url2:
                    two = bench_import(url2, args.events, Path(tmp), workers=2)
                results[-1].update({f"import_2_workers_{k}": v for k, v in two.items() if k != "events"})
    print(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
