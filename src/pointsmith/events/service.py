"""Event ingestion: validate, de-duplicate by id, record, and apply each event's effects.

An event is applied inside a savepoint, so a rejected event leaves nothing
behind while the rest of its batch goes through.
"""
from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pointsmith import clock, collector, idempotency
from pointsmith.db import Read, in_transaction, is_postgres, plain_json, read_together, rows_of, unit_of_work
from pointsmith.errors import (
    DomainError,
    IdempotencyConflict,
    InvalidMemberState,
    MemberExists,
    NotFound,
    UnknownMember,
    shown,
)
from pointsmith.events.fast import ingest_run, needs_per_event_path
from pointsmith.events.replay import ReplayClock
from pointsmith.events.tables import events
from pointsmith.events.validation import Event, parse_event
from pointsmith.members import service as members
from pointsmith.members.service import Member, Status
from pointsmith.program import service as programs
from pointsmith.rules import service as rules

Status_ = Literal["accepted", "duplicate"]


@dataclass(frozen=True)
class Ingested:
    id: str
    status: Status_
    outcome: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "outcome": plain_json(self.outcome)}


@dataclass
class Rejected:
    index: int
    id: str | None
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "code": self.code, "message": self.message}


@dataclass
class BatchResult:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[Rejected] = field(default_factory=list)
    keep_outcomes: bool = True


def ingest(conn: Connection, event: Event) -> Ingested:
    """Record and apply one event, or return the first outcome of an earlier send of it."""
    idempotency.lock(conn, "event", event.id)
    seen = _find(conn, event.id)
    if seen is not None:
        if not event.same_body(seen.body_hash):
            raise IdempotencyConflict(f"event {event.id!r} was already received with different content")
        return Ingested(event.id, "duplicate", seen.outcome)
    version = programs.active_or_none(conn, event.occurred_at)
    member, created = _member_for(conn, event, auto_create=version is None
                                  or version.program.members.auto_create)
    outcome: dict[str, Any] = {"member_created": created,
                               "program_version": version.version if version else None,
                               "effects": _member_effects(conn, event, member)}
    outcome.update(rules.apply(conn, event, member, version))
    conn.execute(events.insert().values(
        id=event.id, member_id=event.member_id, type=event.type, occurred_at=event.occurred_at,
        received_at=clock.now(), attributes=event.attributes, body_hash=event.body_hash, outcome=outcome))
    return Ingested(event.id, "accepted", outcome)


def ingest_many(conn: Connection, raws: Iterable[Any], *, start: int = 0,
                replay: ReplayClock | None = None, outcomes: bool = True) -> BatchResult:
    """Ingest a batch; rejects are reported by index and skipped, the rest go through.
    A caller that only counts (`outcomes=False`) gets the totals and the rejects, not every outcome."""
    result = BatchResult(keep_outcomes=outcomes)
    ids: list[str | None] = []
    items: list[Event | DomainError] = []
    for raw in raws:
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        ids.append(shown(raw_id) if isinstance(raw_id, str) else None)  # the id as its reject reports it
        try:
            if isinstance(raw, DomainError):  # a line that did not even parse
                raise raw
            items.append(parse_event(raw))
        except DomainError as e:
            items.append(e)
    for index, event_id, done in zip(range(start, start + len(items)), ids, apply_all(conn, items, replay=replay),
                                     strict=True):
        if isinstance(done, DomainError):
            _reject(result, index, event_id, done)
        else:
            _accept(result, index, done)
    return result


MAX_BATCH = 1000  # events in one request or call: a transaction of bounded size


def ingest_batch(engine: Engine, raws: list[Any]) -> BatchResult:
    """A batch in a transaction of its own, tried again if another one created a member it was
    creating too (the batch route and the Python API)."""

    def ingest(conn: Connection) -> BatchResult:
        with collector.paused():  # paused once the writer lock is ours
            return ingest_many(conn, raws)

    return in_transaction(engine, ingest, again_if=raced)


def preview(engine: Engine, raw: Any) -> dict[str, Any]:
    """What sending `raw` would do now, recording nothing: its outcome as ingesting it would give it
    ("accepted"; or "duplicate" and the stored outcome, for an id sent before), all of it rolled back.
    An invalid event, or one the engine would refuse, raises as ingesting it would."""
    event = parse_event(raw)
    with unit_of_work(engine, keep=False) as conn:
        done = ingest(conn, event)
    return {**done.as_dict(), "preview": True}


def raced(error: BaseException) -> bool:
    """Whether ingestion failed on another transaction's doing that the next try will not meet: it
    created a member (or drew an invite code) that this one was creating (`members.created_elsewhere`).
    Batches write their new members last, so they learn of it only there."""
    return members.created_elsewhere(error)


def apply_all(conn: Connection, items: list[Event | DomainError], *,
              replay: ReplayClock | None = None) -> list[Ingested | DomainError]:
    """Each item's outcome, in order: an event's, or its error (an error item passes through).

    Runs of plain events go the set-based way (events/fast.py); the others, and
    every event of a replay (whose clock follows event time and runs due jobs
    before each event), one at a time, each in its own savepoint.
    """
    timeline = programs.timeline(conn)  # read once for the whole group (a round trip on PostgreSQL)
    _lock_ahead(conn, items, timeline, replay=replay is not None)
    out: list[Ingested | DomainError] = []
    position = 0
    while position < len(items):
        item = items[position]
        if isinstance(item, DomainError):
            out.append(item)
            position += 1
            continue
        if replay is None:
            run = []
            for candidate in items[position:]:
                if isinstance(candidate, DomainError):
                    break
                run.append(candidate)
            fast = ingest_run(conn, run, timeline)
            for ev, outcome in zip(run[:fast.done], fast.results, strict=True):
                out.append(outcome if isinstance(outcome, DomainError)
                           else Ingested(ev.id, outcome[0], outcome[1]))  # type: ignore[arg-type]
            position += fast.done
            if fast.done == len(run):
                continue
            item = run[fast.done]
        try:
            if replay is not None:
                replay.advance(conn, item.occurred_at)
            with conn.begin_nested(), clock.frozen(replay.now) if replay and replay.now else nullcontext():
                done = ingest(conn, item)
            if replay is not None and done.status == "accepted":
                replay.changed()
        except DomainError as e:
            out.append(e)
        else:
            out.append(done)
        position += 1
    return out


def _lock_ahead(conn: Connection, items: list[Event | DomainError], timeline: list[programs.Version], *,
                replay: bool) -> None:
    """PostgreSQL, where some of the items go one at a time: take every lock they will need first,
    each kind in a fixed order (event ids, members, then every rule budget), as the set-based path
    does for its own run. Taken as each event came, two transactions could take them in opposite
    orders and deadlock (two batches whose events hit two budgeted rules in another order did so
    nearly every time)."""
    if not is_postgres(conn):
        return
    batch = [item for item in items if isinstance(item, Event)]
    if not replay and not any(needs_per_event_path(e, programs.in_force(timeline, e.occurred_at)) for e in batch):
        return
    budgeted = sorted({r.key for v in timeline for r in v.program.rules if r.limits.budget is not None})
    member_ids = sorted({e.member_id for e in batch})
    reads = [idempotency.lock_many_read(conn, "event", [e.id for e in batch]),
             Read("SELECT id FROM members WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (member_ids,), rows_of),
             *(rules.budget_locks(budgeted) if budgeted else [])]
    read_together(conn, [r for r in reads if r is not None])


def _reject(result: BatchResult, index: int, event_id: str | None, error: DomainError) -> None:
    result.rejected += 1
    result.errors.append(Rejected(index, event_id, error.code, error.detail))
    result.results.append({"index": index, "id": event_id, "status": "rejected", "code": error.code,
                           "message": error.detail})


def _accept(result: BatchResult, index: int, done: Ingested) -> None:
    if done.status == "accepted":
        result.accepted += 1
    else:
        result.duplicate += 1
    if result.keep_outcomes:
        result.results.append({"index": index, **done.as_dict()})


def get(conn: Connection, event_id: str) -> dict[str, Any]:
    row = conn.execute(sa.select(events).where(events.c.id == event_id)).mappings().first()
    if row is None:
        raise NotFound(f"no event with id {event_id!r}")
    return {"id": row["id"], "type": row["type"], "member_id": row["member_id"],
            "occurred_at": clock.iso(row["occurred_at"]), "received_at": clock.iso(row["received_at"]),
            "attributes": plain_json(row["attributes"]), "outcome": plain_json(row["outcome"])}


def _find(conn: Connection, event_id: str) -> Any:
    return conn.execute(sa.select(events.c.body_hash, events.c.outcome).where(events.c.id == event_id)).first()


def _member_for(conn: Connection, event: Event, *, auto_create: bool) -> tuple[Member, bool]:
    try:
        member = members.lock(conn, event.member_id)
    except UnknownMember:
        if not auto_create:
            raise UnknownMember(f"no member with id {event.member_id!r} (members.auto_create is off)") from None
        inviter = _inviter(conn, event)
        try:
            members.create(conn, event.member_id, joined_at=event.occurred_at, invited_by=inviter)
        except MemberExists:  # another transaction created it meanwhile (and has committed): take it
            return _member_for(conn, event, auto_create=False)
        return members.lock(conn, event.member_id), True
    if member.status is Status.closed:
        raise InvalidMemberState(f"member {event.member_id!r} is closed")
    return member, False


def _inviter(conn: Connection, event: Event) -> str | None:
    code = event.attributes.get("invite_code") if event.type == "member.registered" else None
    if not isinstance(code, str):
        return None
    inviter = members.find_by_invite_code(conn, code)
    return inviter.id if inviter and inviter.id != event.member_id else None


def _member_effects(conn: Connection, event: Event, member: Member) -> list[dict[str, Any]]:
    if event.type == "member.verified":
        kind = str(event.attributes["kind"])
        if not member.verified.get(kind):
            members.verify(conn, member.id, kind)
            return [{"effect": "verified", "kind": kind}]
    return []
