"""A rule's budget across all members stays exact with parallel writers."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from pointsmith.analytics.summary import summary
from pointsmith.db import get_engine, read_only, unit_of_work
from pointsmith.events import service as events
from pointsmith.events.validation import parse_event
from tests.factories import SIMPLE_PROGRAM, event, publish

BUDGETED = SIMPLE_PROGRAM.replace('growth: "floor(event.amount)"}',
                                  'growth: "floor(event.amount)", limits: {budget: 1000}}')


def _ingest(url: str, i: int) -> int:
    with unit_of_work(get_engine(url)) as conn:
        outcome = events.ingest(conn, parse_event(event(f"e{i}", member=f"m{i}", order_id=f"o{i}", amount=150)))
    return int(outcome.outcome["points"])


def test_parallel_awards_never_exceed_the_budget(fresh_database: str) -> None:
    with unit_of_work(get_engine(fresh_database)) as conn:
        publish(conn, BUDGETED)
    with ProcessPoolExecutor(8, mp_context=multiprocessing.get_context("spawn")) as pool:
        awarded = list(pool.map(_ingest, [fresh_database] * 16, range(16)))
    assert sum(awarded) == 1000
    assert sorted(awarded, reverse=True)[:7] == [150] * 6 + [100]
    with read_only(get_engine(fresh_database)) as conn:
        assert summary(conn)["points"]["issued"] == 1000


TWO_BUDGETS = BUDGETED.replace("budget: 1000", "budget: 100000000") + (
    "  - {key: review, event: review.posted, points: 5, limits: {budget: 100000000}}\n")


def _batch(url: str, i: int) -> int:
    """A batch of one member's reviews and orders, in one order or the other: each event hits the other budget."""
    pair = [event(f"r{i}-{n}", "review.posted", member=f"m{i}") for n in range(3)]
    orders = [event(f"o{i}-{n}", member=f"m{i}", order_id=f"o{i}-{n}", amount=10) for n in range(3)]
    raws = [raw for both in zip(pair, orders, strict=True) for raw in (both if i % 2 else both[::-1])]
    with unit_of_work(get_engine(url)) as conn:  # no retry: a deadlock would fail the batch
        return events.ingest_many(conn, raws).accepted


def test_batches_that_hit_two_budgets_in_opposite_orders_do_not_deadlock(fresh_database: str) -> None:
    with unit_of_work(get_engine(fresh_database)) as conn:
        publish(conn, TWO_BUDGETS)
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        accepted = list(pool.map(_batch, [fresh_database] * 40, range(40)))
    assert accepted == [6] * 40
    with read_only(get_engine(fresh_database)) as conn:
        assert summary(conn)["points"]["issued"] == 40 * 3 * (10 + 5)
