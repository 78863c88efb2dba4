"""Parallel writers in separate processes: no overspend, no deadlock, one posting per key."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from pointsmith.db import get_engine, read_only, unit_of_work
from pointsmith.errors import DomainError
from pointsmith.ledger import queries
from pointsmith.ledger.service import CreditRequest, credit, spend
from pointsmith.ledger.tables import ledger_transactions
from pointsmith.ledger.verify import verify
from pointsmith.members import service as members

PROCESSES = 8


def _spend(url: str, i: int, points: int, key: str) -> str:
    try:
        with unit_of_work(get_engine(url)) as conn:
            outcome = spend(conn, "shared", points, key=key, reference=f"r{i}")
        return "replayed" if outcome.replayed else "spent"
    except DomainError as e:
        return e.code


def _seed(url: str, points: int) -> None:
    with unit_of_work(get_engine(url)) as conn:
        members.create(conn, "shared")
        credit(conn, CreditRequest("shared", points, "seed"))


def _pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(PROCESSES, mp_context=multiprocessing.get_context("spawn"))


def test_parallel_spends_of_one_balance_never_overspend(fresh_database: str) -> None:
    _seed(fresh_database, 100)
    with _pool() as pool:
        results = list(pool.map(_spend, [fresh_database] * 24, range(24), [7] * 24, [f"k{i}" for i in range(24)]))
    assert results.count("spent") == 14 and results.count("insufficient_points") == 10, results
    with read_only(get_engine(fresh_database)) as conn:
        assert queries.balance(conn, "shared")["available"] == 100 - 14 * 7
        assert verify(conn).ok


def test_one_idempotency_key_sent_in_parallel_posts_exactly_once(fresh_database: str) -> None:
    _seed(fresh_database, 100)
    with _pool() as pool:
        results = list(pool.map(_spend, [fresh_database] * PROCESSES, [0] * PROCESSES, [10] * PROCESSES,
                                ["same"] * PROCESSES))
    assert sorted(results) == ["replayed"] * (PROCESSES - 1) + ["spent"], results
    engine = get_engine(fresh_database)
    with read_only(engine) as conn:
        spends = conn.execute(ledger_transactions.select().where(ledger_transactions.c.kind == "spend")).all()
        assert len(spends) == 1
        assert queries.balance(conn, "shared")["available"] == 90


def test_the_quick_balance_read_sees_what_the_ledger_committed(fresh_database: str) -> None:
    _seed(fresh_database, 100)
    engine = get_engine(fresh_database)
    assert queries.current_balance(engine, "shared") == {"available": 100, "pending": 0, "held": 0, "debt": 0}
    assert _spend(fresh_database, 0, 30, "k") == "spent"
    with read_only(engine) as conn:
        assert queries.current_balance(engine, "shared") == queries.balance(conn, "shared")
    assert queries.current_balance(engine, "nobody")["available"] == 0
