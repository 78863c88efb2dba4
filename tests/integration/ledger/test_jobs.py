"""Scheduled jobs catch up with the times things were due, and doing them twice does them once."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from pointsmith.db import get_engine, read_only, unit_of_work
from pointsmith.jobs.service import run_due, status
from pointsmith.ledger import queries
from pointsmith.ledger.service import CreditRequest, credit_many
from pointsmith.ledger.verify import verify
from pointsmith.members import service as members
from tests.factories import points_program, publish

T0 = datetime(2026, 1, 10, tzinfo=UTC)


def seed(url: str, n: int = 60) -> None:
    with unit_of_work(get_engine(url)) as conn:
        publish(conn, points_program(pending_days=7, expiry="{policy: rolling, months: 1}"))
        for i in range(n):
            members.create(conn, f"j-{i}")
        credit_many(conn, [CreditRequest(f"j-{i}", 10 + i, "p", at=T0, pending=True) for i in range(n)]
                    + [CreditRequest(f"j-{i}", 5, "now", at=T0) for i in range(n)])


def test_each_item_is_done_at_the_time_it_was_due(fresh_database: str) -> None:
    seed(fresh_database, 3)
    engine = get_engine(fresh_database)
    results = run_due(engine, T0 + timedelta(days=90))
    assert {r["job"]: r["processed"] for r in results}["points.expire-lots"] == 6
    with read_only(engine) as conn:
        items, _ = queries.history(conn, "j-1")
        assert [(i["kind"], i["effective_at"]) for i in items[:3]] == [
            ("expire", "2026-02-10T00:00:00Z"), ("expire", "2026-02-10T00:00:00Z"),
            ("activate", "2026-01-17T00:00:00Z")]
        assert queries.balance(conn, "j-1", at=T0 + timedelta(days=8))["available"] == 16
    assert all(r["processed"] == 0 for r in run_due(engine, T0 + timedelta(days=90)))
    assert {s["job"]: s["runs"] for s in status(engine)}["points.expire-lots"] == 2


def test_two_processes_running_the_jobs_at_once_do_the_work_once(fresh_database: str) -> None:
    seed(fresh_database)
    engine = get_engine(fresh_database)
    done: list[int] = []

    def worker() -> None:
        done.append(sum(r["processed"] for r in run_due(engine, T0 + timedelta(days=90))))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(done) == 60 + 120  # 60 activations, 120 lots expired, whoever did them
    with read_only(engine) as conn:
        assert verify(conn).ok
        assert sum(queries.balance(conn, f"j-{i}")["available"] for i in range(60)) == 0
