"""Group commit: events sent one per request share a transaction, and each still gets its own outcome."""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsmith import idempotency
from pointsmith.auth import service as auth
from pointsmith.db import get_engine, read_only, unit_of_work
from pointsmith.errors import IdempotencyConflict, InvalidMemberState, NotFound, Unauthorized
from pointsmith.events import service
from pointsmith.events.group_commit import GroupCommitter
from pointsmith.events.service import Ingested
from pointsmith.events.validation import parse_event
from pointsmith.ledger import queries as ledger
from pointsmith.members import service as members
from tests.factories import SIMPLE_PROGRAM, event, publish


@pytest.fixture
def engine(fresh_database: str) -> Engine:
    engine = get_engine(fresh_database)
    with unit_of_work(engine) as conn:
        publish(conn, SIMPLE_PROGRAM)
        members.create(conn, "gone")
        members.change_status(conn, "gone", "close", reason="left", actor="t")
    return engine


@pytest.fixture
def token(engine: Engine) -> str:
    """A client key's token, which every event sent to the committer comes with."""
    with unit_of_work(engine) as conn:
        return auth.create_key(conn, "client")[1]


@pytest.fixture
def committer(engine: Engine) -> Iterator[GroupCommitter]:
    committer = GroupCommitter(engine)
    yield committer
    committer.close()


def _order(eid: str, member: str = "m-1", amount: int = 10) -> Any:
    return parse_event(event(eid, member=member, order_id=f"o-{eid}", amount=amount))


def _held_back(engine: Engine, committer: GroupCommitter, token: str, first: str, later: list[Any]
               ) -> list[Future[Ingested]]:
    """Submit `first`, keep its transaction waiting on a lock until `later` are queued too: they then
    go together in the writer's next transaction."""
    with unit_of_work(engine) as blocker:
        idempotency.lock(blocker, "event", first)  # on SQLite the blocker's write lock alone holds it
        futures = [committer.submit(_order(first), token)]
        time.sleep(0.3)  # the writer takes `first` and waits
        futures += [committer.submit(e, token) for e in later]
    return futures


def _received_at(engine: Engine, event_id: str) -> str:
    with read_only(engine) as conn:
        return str(service.get(conn, event_id)["received_at"])


def test_queued_events_share_one_transaction_and_keep_their_own_outcomes(
        engine: Engine, committer: GroupCommitter, token: str) -> None:
    later = [_order("a", amount=10), _order("b", member="m-2", amount=20), _order("a", amount=10),
             _order("b", member="m-2", amount=21), _order("c", member="gone")]
    first, a, b, a_again, b_changed, closed = _held_back(engine, committer, token, "first", later)
    assert first.result(10).status == "accepted"
    assert a.result(10).status == "accepted" and a.result().outcome["points"] == 10
    assert b.result(10).outcome["points"] == 20
    assert a_again.result(10).status == "duplicate" and a_again.result().outcome == a.result().outcome
    with pytest.raises(IdempotencyConflict):
        b_changed.result(10)
    with pytest.raises(InvalidMemberState):
        closed.result(10)
    assert _received_at(engine, "a") == _received_at(engine, "b")  # one transaction, one clock reading
    with read_only(engine) as conn:
        assert ledger.balance(conn, "m-1")["available"] == 10 + 10
        assert ledger.balance(conn, "m-2")["available"] == 20


def test_when_a_shared_transaction_fails_each_event_is_tried_alone(
        engine: Engine, committer: GroupCommitter, monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    real = service.apply_all

    def failing_for_poison(conn: Any, items: list[Any], **kwargs: Any) -> Any:
        if any(getattr(e, "id", None) == "poison" for e in items):
            raise RuntimeError("the database refused the transaction")
        return real(conn, items, **kwargs)

    monkeypatch.setattr(service, "apply_all", failing_for_poison)
    _, good, poison, other = _held_back(engine, committer, token, "first",
                                        [_order("good"), _order("poison"), _order("other", member="m-2")])
    assert good.result(10).status == "accepted" and other.result(10).status == "accepted"
    with pytest.raises(RuntimeError):
        poison.result(10)
    with read_only(engine) as conn:
        assert ledger.balance(conn, "m-1")["available"] == 10 + 10  # first and good, once each
        with pytest.raises(Exception, match="poison"):
            service.get(conn, "poison")


class _ServerError(Exception):
    def __init__(self, sqlstate: str) -> None:
        self.sqlstate = sqlstate


def _failing_groups(monkeypatch: pytest.MonkeyPatch, sqlstate: str, times: int,
                    error: Exception | None = None) -> list[int]:
    """The first `times` groups of more than one event fail as the database would fail them (with
    `error`, as the driver raises it below SQLAlchemy); returns the size of every group the writer tried."""
    real, tried = service.apply_all, []

    def flaky(conn: Any, items: list[Any], **kwargs: Any) -> Any:
        tried.append(len(items))
        if len(items) > 1 and len([n for n in tried if n > 1]) <= times:
            raise error or sa.exc.OperationalError("INSERT ...", {}, _ServerError(sqlstate))
        return real(conn, items, **kwargs)

    monkeypatch.setattr(service, "apply_all", flaky)
    return tried


def test_a_deadlocked_group_is_tried_again_whole(
        engine: Engine, committer: GroupCommitter, monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    tried = _failing_groups(monkeypatch, "40P01", times=1)  # deadlock_detected
    _, a, b = _held_back(engine, committer, token, "first", [_order("a"), _order("b", member="m-2")])
    assert a.result(10).status == "accepted" and b.result(10).status == "accepted"
    assert tried == [1, 2, 2]


def test_a_deadlock_raised_by_the_driver_itself_is_tried_again_whole(
        engine: Engine, committer: GroupCommitter, monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    tried = _failing_groups(monkeypatch, "", times=1, error=psycopg.errors.DeadlockDetected("deadlock"))
    _, a, b = _held_back(engine, committer, token, "first", [_order("a"), _order("b", member="m-2")])
    assert a.result(10).status == "accepted" and b.result(10).status == "accepted"
    assert tried == [1, 2, 2]


def test_a_database_locked_below_sqlalchemy_fails_the_group_at_once(
        engine: Engine, committer: GroupCommitter, monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    tried = _failing_groups(monkeypatch, "", times=1, error=sqlite3.OperationalError("database is locked"))
    _, a, b = _held_back(engine, committer, token, "first", [_order("a"), _order("b", member="m-2")])
    for future in (a, b):
        with pytest.raises(sqlite3.OperationalError):
            future.result(10)
    assert tried == [1, 2]


def test_a_locked_database_fails_the_group_at_once_not_event_by_event(
        engine: Engine, committer: GroupCommitter, monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    tried = _failing_groups(monkeypatch, "", times=1)  # "database is locked" carries no SQLSTATE
    _, a, b = _held_back(engine, committer, token, "first", [_order("a"), _order("b", member="m-2")])
    for future in (a, b):
        with pytest.raises(sa.exc.OperationalError):
            future.result(10)
    assert tried == [1, 2]
    assert committer.submit(_order("a"), token).result(10).status == "accepted"  # the sender's retry


def test_a_request_given_up_on_before_its_turn_is_dropped_and_the_writer_goes_on(
        engine: Engine, committer: GroupCommitter, token: str) -> None:
    with unit_of_work(engine) as blocker:
        idempotency.lock(blocker, "event", "first")
        first = committer.submit(_order("first"), token)
        time.sleep(0.3)
        gone, kept = committer.submit(_order("gone"), token), committer.submit(_order("kept", member="m-2"), token)
        assert gone.cancel()  # as the server does when a client goes away
    assert first.result(10).status == "accepted" and kept.result(10).status == "accepted"
    assert committer.submit(_order("after"), token).result(10).status == "accepted"
    with read_only(engine) as conn, pytest.raises(Exception, match="gone"):
        service.get(conn, "gone")


class _Interrupted(BaseException):
    pass


def test_an_interrupt_in_the_writer_answers_its_group_and_the_writer_goes_on(
        committer: GroupCommitter, monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    def interrupted(*_args: Any, **_kwargs: Any) -> Any:
        raise _Interrupted

    with monkeypatch.context() as patch:
        patch.setattr(service, "apply_all", interrupted)
        with pytest.raises(_Interrupted):
            committer.submit(_order("a"), token).result(10)
    assert committer.submit(_order("b"), token).result(10).status == "accepted"


def test_close_commits_what_is_queued(engine: Engine, token: str) -> None:
    committer = GroupCommitter(engine)
    futures = [committer.submit(_order(f"e{i}", member=f"m{i}"), token) for i in range(20)]
    committer.close()
    assert all(f.done() and f.result().status == "accepted" for f in futures)


def test_each_event_is_checked_against_its_own_key_when_its_group_commits(
        engine: Engine, committer: GroupCommitter, token: str) -> None:
    with unit_of_work(engine) as conn:
        doomed, doomed_token = auth.create_key(conn, "client")
    with unit_of_work(engine) as blocker:
        idempotency.lock(blocker, "event", "first")
        first = committer.submit(_order("first"), token)
        time.sleep(0.3)  # the writer takes `first` and waits; the rest queue up as one group
        good = committer.submit(_order("good"), token)
        unknown = committer.submit(_order("unknown", member="m-2"), "psk_nope_0000")
        revoked = committer.submit(_order("revoked", member="m-3"), doomed_token)
        auth.revoke(blocker, doomed.id, actor="t")  # while its event waits in the queue
    assert first.result(10).status == "accepted" and good.result(10).status == "accepted"
    for refused in (unknown, revoked):
        with pytest.raises(Unauthorized, match="unknown or revoked"):
            refused.result(10)
    with read_only(engine) as conn:
        assert ledger.balance(conn, "m-1")["available"] == 10 + 10
        for event_id in ("unknown", "revoked"):
            with pytest.raises(NotFound):
                service.get(conn, event_id)


def test_after_a_shared_transaction_an_event_sent_alone_waits_only_briefly_for_company(
        engine: Engine, committer: GroupCommitter, token: str) -> None:
    futures = _held_back(engine, committer, token, "first", [_order(f"e{i}", member=f"m{i}") for i in range(4)])
    assert all(f.result(10).status == "accepted" for f in futures)  # the last group had four events
    started = time.monotonic()
    assert committer.submit(_order("alone", member="m-9"), token).result(10).status == "accepted"
    assert time.monotonic() - started < 1  # the wait for company is bounded (GATHER_MAX), not a timeout
