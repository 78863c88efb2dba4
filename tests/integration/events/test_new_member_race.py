"""Two transactions that both create the same new member (PostgreSQL; SQLite has one writer): the
one that comes second takes the member the first created, and its event still counts."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.engine import Connection, Engine

from pointsmith.auth import service as auth
from pointsmith.db import get_engine, in_transaction, read_only, unit_of_work
from pointsmith.events import service
from pointsmith.events.group_commit import GroupCommitter
from pointsmith.events.validation import parse_event
from pointsmith.ledger import queries as ledger
from pointsmith.ledger.verify import verify
from tests.factories import SIMPLE_PROGRAM, event, publish


@pytest.fixture
def engine(backend: str, fresh_database: str) -> Engine:
    if backend != "postgresql":
        pytest.skip("SQLite has a single writer: two transactions never create a member at once")
    engine = get_engine(fresh_database)
    with unit_of_work(engine) as conn:
        publish(conn, SIMPLE_PROGRAM)
    return engine


def _order(eid: str, amount: int) -> dict[str, Any]:
    return event(eid, member="new", order_id=f"o-{eid}", amount=amount)


def _second_while_first_is_open(engine: Engine, second: Callable[[], Any]) -> Any:
    """Create member `new` by an order of 10 in a transaction left open until `second` (run on a
    thread) is waiting on it; then commit, and return what `second` gave (or raised)."""
    answer: list[Any] = []

    def run() -> None:
        try:
            answer.append(second())
        except Exception as e:  # the test reports it
            answer.append(e)

    thread = threading.Thread(target=run)
    with unit_of_work(engine) as first:
        assert service.ingest_many(first, [_order("e1", 10)]).accepted == 1
        thread.start()
        time.sleep(0.5)  # the second transaction reaches the member's row and waits for this one
        assert not answer, answer
    thread.join(10)
    return answer[0]


def _points_of_new(engine: Engine) -> int:
    with read_only(engine) as conn:
        assert verify(conn).ok
        return int(ledger.balance(conn, "new")["available"])


def test_a_batch_that_creates_a_member_another_created_meanwhile_counts_its_event(engine: Engine) -> None:
    def batch() -> Any:
        return in_transaction(engine, lambda conn: service.ingest_many(conn, [_order("e2", 20)]),
                              again_if=service.raced)

    result = _second_while_first_is_open(engine, batch)
    assert isinstance(result, service.BatchResult), result
    assert (result.accepted, result.rejected) == (1, 0)
    assert result.results[0]["outcome"]["member_created"] is False
    assert _points_of_new(engine) == 30


def test_an_event_of_the_per_event_path_takes_the_member_another_created_meanwhile(engine: Engine) -> None:
    registered = event("r1", "member.registered", member="new")

    def one(conn: Connection) -> Any:
        return service.ingest(conn, parse_event(registered))

    result = _second_while_first_is_open(engine, lambda: in_transaction(engine, one, again_if=lambda _: False))
    assert isinstance(result, service.Ingested), result
    assert result.outcome["member_created"] is False


def test_a_single_event_that_creates_a_member_another_created_meanwhile_counts(engine: Engine) -> None:
    with unit_of_work(engine) as conn:
        token = auth.create_key(conn, "client")[1]
    committer = GroupCommitter(engine)
    try:
        result = _second_while_first_is_open(
            engine, lambda: committer.submit(parse_event(_order("e2", 20)), token).result(10))
    finally:
        committer.close()
    assert isinstance(result, service.Ingested), result
    assert _points_of_new(engine) == 30
