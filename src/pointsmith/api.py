"""The Python API: the engine inside your own process, as the CLI and the HTTP routes run it.

    from decimal import Decimal
    from pointsmith import api

    result = api.ingest([{"id": "evt-1", "type": "order.paid", "member_id": "m-1",
                          "occurred_at": "2026-11-20T10:00:00Z",
                          "attributes": {"order_id": "o-1", "amount": Decimal("120.50")}}])
    result.accepted, result.results            # each event: accepted, duplicate or rejected, with why
    api.event("evt-1")["outcome"]              # what every rule did
    api.preview({...})["outcome"]["points"]    # what an event would earn, recording nothing
    api.member("m-1")["points"]["available"]   # as `pointsmith members show m-1 --json`

Every function takes `db` (a database URL, as `--db`); without it, `POINTSMITH_DATABASE_URL`, else
`sqlite:///pointsmith.db`. The database must be set up (`pointsmith init`) and a program published.
Amounts are numbers: a Decimal stays exact, a float is read by its shortest repr (120.5, not
120.4999...; 0.1 + 0.2 is 0.30000000000000004, past the 15 significant digits an amount may have).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pointsmith import clock
from pointsmith.db import get_engine, read_only
from pointsmith.errors import ValidationFailed
from pointsmith.events import service as events
from pointsmith.events.service import MAX_BATCH, BatchResult
from pointsmith.members.view import member_view

__all__ = ["MAX_BATCH", "BatchResult", "event", "ingest", "member", "preview"]


def ingest(batch: Iterable[Mapping[str, Any]], *, db: str | None = None) -> BatchResult:
    """Events in the CONTRACT §2 shape, up to MAX_BATCH, in one transaction: an invalid one is rejected
    with its reason and the others go through; an event id seen before is a duplicate (same content)
    or an `idempotency_conflict` (other content), so a retry never credits twice."""
    raws = [_wire(raw) for raw in batch]
    if len(raws) > MAX_BATCH:
        raise ValidationFailed(f"at most {MAX_BATCH} events per call; send more in several")
    return events.ingest_batch(get_engine(db), raws)


def preview(raw: Mapping[str, Any], *, db: str | None = None) -> dict[str, Any]:
    """What ingesting one event would do now, recording nothing (`POST /v1/events/preview`): its
    `status` and `outcome`. An invalid event raises `ValidationFailed`, as `ingest` would reject it."""
    return events.preview(get_engine(db), _wire(raw))


def event(event_id: str, *, db: str | None = None) -> dict[str, Any]:
    """A stored event and its outcome (`NotFound` if there is none), as `GET /v1/events/{id}`."""
    with read_only(get_engine(db)) as conn:
        return events.get(conn, event_id)


def member(member_id: str, *, db: str | None = None, at: datetime | str | None = None) -> dict[str, Any]:
    """One member's state as recorded, or as it had taken effect at `at` (`members show --at`)."""
    when = clock.parse_time(at) if isinstance(at, str) else at
    with read_only(get_engine(db)) as conn:
        return member_view(conn, member_id, at=when)


def _wire(raw: Any) -> Any:
    """A datetime `occurred_at` as the wire's text (one without an offset is refused there)."""
    if isinstance(raw, Mapping) and isinstance(raw.get("occurred_at"), datetime):
        return {**raw, "occurred_at": raw["occurred_at"].isoformat()}
    return raw
