"""Event ingestion: idempotent by id, member effects, one bad event never spoils a batch."""
from __future__ import annotations

import io
import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pointsmith.errors import IdempotencyConflict, ImportStopped, InvalidMemberState, UnknownMember
from pointsmith.events import importing, service
from pointsmith.events.tables import events
from pointsmith.events.validation import parse_event
from pointsmith.members import service as members
from tests.factories import SIMPLE_PROGRAM, event, publish


def test_an_event_for_a_new_member_creates_it_joined_at_the_event_time(conn: Connection) -> None:
    done = service.ingest(conn, parse_event(event("e1", at="2025-05-05T05:00:00Z", order_id="o", amount=3)))
    assert done.status == "accepted" and done.outcome["member_created"] is True
    assert members.get(conn, "m-1").joined_at.isoformat() == "2025-05-05T05:00:00+00:00"


def test_a_resent_event_is_a_duplicate_with_the_first_outcome(conn: Connection) -> None:
    first = service.ingest(conn, parse_event(event("e1", order_id="o", amount=3)))
    again = service.ingest(conn, parse_event(event("e1", order_id="o", amount=3)))
    assert again.status == "duplicate" and again.outcome == first.outcome


def test_the_same_id_with_other_content_is_a_conflict(conn: Connection) -> None:
    service.ingest(conn, parse_event(event("e1", order_id="o", amount=3)))
    with pytest.raises(IdempotencyConflict):
        service.ingest(conn, parse_event(event("e1", order_id="o", amount=4)))


def test_without_auto_create_an_unknown_member_is_rejected(conn: Connection) -> None:
    publish(conn, SIMPLE_PROGRAM.replace("auto_create: true", "auto_create: false"))
    with pytest.raises(UnknownMember):
        service.ingest(conn, parse_event(event("e1", order_id="o", amount=3)))


def test_a_closed_member_takes_no_events(conn: Connection) -> None:
    members.create(conn, "m-1")
    members.change_status(conn, "m-1", "close", reason="left", actor="t")
    with pytest.raises(InvalidMemberState):
        service.ingest(conn, parse_event(event("e1", order_id="o", amount=3)))


def test_registration_with_an_invite_code_records_the_inviter(conn: Connection) -> None:
    inviter = members.create(conn, "host")
    service.ingest(conn, parse_event(event("r1", kind="member.registered", member="guest",
                                           invite_code=inviter.invite_code)))
    assert members.get(conn, "guest").invited_by == "host"


def test_a_verification_event_sets_the_flag(conn: Connection) -> None:
    done = service.ingest(conn, parse_event(event("v1", kind="member.verified", kind_ignored=1) | {
        "attributes": {"kind": "email"}}))
    assert done.outcome["effects"] == [{"effect": "verified", "kind": "email"}]
    assert members.get(conn, "m-1").verified["email"] is True


def test_a_batch_reports_rejects_by_index_and_keeps_the_rest(conn: Connection) -> None:
    result = service.ingest_many(conn, [
        event("b1", order_id="o", amount=1),
        {"id": "b2", "type": "order.paid"},
        event("b1", order_id="o", amount=2),
        event("b3", order_id="o", amount=1),
        event("b1", order_id="o", amount=1),
    ])
    assert (result.accepted, result.duplicate, result.rejected) == (2, 1, 2)
    assert [(e.index, e.code) for e in result.errors] == [(1, "validation_error"), (2, "idempotency_conflict")]
    assert service.get(conn, "b3")["type"] == "order.paid"


def test_an_import_that_fails_midway_says_which_lines_and_what_is_saved(engine: Engine,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importing, "BATCH", 2)
    calls = []
    real = service.ingest_many

    def failing_on_the_second_batch(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire\nsecond line")
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "ingest_many", failing_on_the_second_batch)
    lines = "".join(json.dumps(event(f"f{i}", kind="login", member=f"fm{i}")) + "\n" for i in range(5))
    with pytest.raises(ImportStopped) as stopped:
        importing.import_stream(engine, io.StringIO(lines), lambda _: None)
    assert stopped.value.detail == ("import stopped in lines 3-4 (RuntimeError: disk on fire); the 2 events this "
                                    "process accepted before them are saved, and importing the file again counts "
                                    "them as duplicates")
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 2
