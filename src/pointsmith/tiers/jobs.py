"""Tier work as time passes: downgrade warnings, period reviews, decay, the end of overrides.

A period review is set-based: at a period boundary every member due is moved
by two statements (record the downgrades, then update the states), however
many members there are; the level arithmetic (`level_for`, `max_drop`) is
written in SQL from the policy, mirroring `tiers.policy`. Decay falls are
recomputed per member (only those whose fall is due). Each step takes an
advisory lock, so two runners never record one change twice.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import clock, outbox
from pointsmith.db import advisory_lock, is_postgres
from pointsmith.program import service as programs
from pointsmith.program.schema import Program, Qualification
from pointsmith.tiers import service
from pointsmith.tiers.policy import next_period, period_start, segment_at
from pointsmith.tiers.tables import member_tiers, tier_changes

mt, tc = member_tiers.c, tier_changes.c
WARNING = service.WARNING
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)


def step(conn: Connection, now: datetime, limit: int) -> int:
    """Do the earliest due tier work up to `now` (one kind, one boundary); return how much was done."""
    advisory_lock(conn, "tiers.jobs")
    timeline = programs.timeline(conn)  # read once for the whole step
    version = programs.in_force(timeline, now)
    if version is None:
        return 0
    program = version.program
    done = _restate(conn, timeline, now, limit) or _end_overrides(conn, program, now)
    if done:
        return done
    due = _next_review(conn)
    warn_at = _next_warning(conn, program)
    if warn_at is not None and warn_at[0] <= now and (due is None or warn_at[0] <= due):
        policy_start = segment_at(service.segments(timeline), now).start
        return _warn(conn, program, warn_at[1], policy_start)
    if due is None or due > now:
        return 0
    review_program = (programs.in_force(timeline, due) or version).program
    if review_program.tiers.qualification is Qualification.period:
        return _review(conn, review_program, due)
    ids = list(conn.execute(sa.select(mt.member_id).where(mt.next_review_at <= now)
                            .order_by(mt.next_review_at, mt.member_id).limit(limit)).scalars())
    service.refresh(conn, timeline, ids, now)  # decay: each member's falls, dated when due
    return len(ids)


def next_due(conn: Connection) -> datetime | None:
    times = [_next_review(conn), conn.execute(sa.select(sa.func.min(mt.override_until))
                                              .where(mt.override_tier.is_not(None))).scalar()]
    # a warning is due under the version in force when it is: each version's time for it, within its span
    review = _unwarned_review(conn)
    for version, end in programs.spans(programs.timeline(conn)):
        if review is not None and version.program.tiers.qualification is Qualification.period:
            at = max(_warning_time(version.program, review), version.effective_at)
            if end is None or at < end:
                times.append(at)
    found = [clock.ensure_utc(t) for t in times if t is not None]
    return min(found) if found else None


def _next_review(conn: Connection) -> datetime | None:
    t = conn.execute(sa.select(sa.func.min(mt.next_review_at))).scalar()
    return clock.ensure_utc(t) if t else None


def _next_warning(conn: Connection, program: Program) -> tuple[datetime, datetime] | None:
    """(when, for which review) the earliest downgrade warning not yet looked at is due."""
    if program.tiers.qualification is not Qualification.period:
        return None
    review = _unwarned_review(conn)
    return (_warning_time(program, review), review) if review is not None else None


def _warning_time(program: Program, review: datetime) -> datetime:
    return service.warning_time(program.tiers, ZoneInfo(program.program.timezone), review)


def _unwarned_review(conn: Connection) -> datetime | None:
    """The earliest review whose warnings have not been looked at yet."""
    review = conn.execute(sa.select(sa.func.min(mt.next_review_at)).where(
        sa.or_(mt.warned_review_at.is_(None), mt.warned_review_at != mt.next_review_at))).scalar()
    return clock.ensure_utc(review) if review is not None else None


def _levels_sql(program: Program) -> tuple[Any, Any]:
    """SQL for the level the period's growth earns, and for the level a review gives."""
    config = program.tiers
    earned = sa.case(*[(mt.qualifying >= level.threshold, i) for i, level in reversed(list(enumerate(config.levels)))
                       if i > 0], else_=0)
    floor = mt.level - config.max_drop if config.max_drop is not None else sa.literal(0)
    return earned, floor


def _greatest(conn: Connection, *values: Any) -> Any:
    return sa.func.greatest(*values) if is_postgres(conn) else sa.func.max(*values)


def _key_of(program: Program, level: Any) -> Any:
    levels = program.tiers.levels
    return sa.case(*[(level == i, lv.key) for i, lv in enumerate(levels)], else_=levels[0].key)


def _review(conn: Connection, program: Program, boundary: datetime) -> int:
    """Every member due at `boundary`: the tier the ended period's growth earns, at most `max_drop` down."""
    earned, floor = _levels_sql(program)
    new = _greatest(conn, earned, floor, sa.literal(0))
    due = mt.next_review_at == boundary
    conn.execute(tier_changes.insert().from_select(
        ["member_id", "effective_at", "from_tier", "to_tier", "reason"],
        sa.select(mt.member_id, sa.literal(boundary, type_=member_tiers.c.as_of.type), mt.tier,
                  _key_of(program, new), sa.literal("review")).where(due, new < mt.level)))
    result = conn.execute(member_tiers.update().where(due).values(
        level=new, tier=_key_of(program, new), review_level=new, qualifying=0,
        since=sa.case((new < mt.level, sa.literal(boundary, type_=member_tiers.c.as_of.type)), else_=mt.since),
        next_review_at=_after(program, boundary), as_of=boundary))
    return int(result.rowcount)


def _after(program: Program, boundary: datetime) -> datetime:
    """The review after `boundary`, counted in the program's time zone (months differ in length)."""
    period, tz = program.tiers.period, ZoneInfo(program.program.timezone)
    return next_period(period_start(boundary, period, tz), period)


def _warn(conn: Connection, program: Program, review: datetime, policy_start: datetime | None) -> int:
    """`warn_days` before a review (but not before the policy in force began): tell each member whom
    it would move down (a domain event)."""
    earned, floor = _levels_sql(program)
    projected = _greatest(conn, earned, floor, sa.literal(0))
    at = _warning_time(program, review)
    at = max(at, policy_start) if policy_start is not None else at
    levels = program.tiers.levels
    due = sa.and_(mt.next_review_at == review,
                  sa.or_(mt.warned_review_at.is_(None), mt.warned_review_at != mt.next_review_at))
    rows = conn.execute(sa.select(mt.member_id, mt.level, projected.label("projected"), mt.qualifying)
                        .where(due, projected < mt.level)).all()
    now = clock.now()
    outbox.record(conn, [service.warning_row(levels, m, review, at, level, p, q, now) for m, level, p, q in rows])
    result = conn.execute(member_tiers.update().where(due).values(warned_review_at=review))
    return int(result.rowcount)


def _end_overrides(conn: Connection, program: Program, now: datetime) -> int:
    """Overrides whose end has come: back to the computed tier, recorded as a manual change."""
    ended = sa.and_(mt.override_tier.is_not(None), mt.override_until <= now)
    conn.execute(tier_changes.insert().from_select(
        ["member_id", "effective_at", "from_tier", "to_tier", "reason", "note"],
        sa.select(mt.member_id, mt.override_until, mt.override_tier, mt.tier, sa.literal("manual"),
                  sa.literal("override ended")).where(ended)))
    result = conn.execute(member_tiers.update().where(ended).values(
        override_tier=None, override_from=None, override_until=None))
    return int(result.rowcount)


def _restate(conn: Connection, timeline: list[programs.Version], now: datetime, limit: int) -> int:
    """Members a new tier policy (a program version) has not reached: those whose state stands before
    the latest policy to take over by `now` are brought up to its start; those whose state follows
    another policy than the one in force at their state's time (a version published with an earlier
    effective time) are recomputed where they stand. What came before a policy's start stands."""
    spans = service.segments(timeline)
    passed = [s.start for s in spans if s.start is not None and s.start <= now]
    stale = [sa.and_(mt.as_of >= s.start if s.start is not None else sa.true(),
                     mt.as_of < s.end if s.end is not None else sa.true(),
                     mt.policy != s.lineage) for s in spans]
    if passed:
        stale.append(mt.as_of < passed[-1])
    ids = list(conn.execute(sa.select(mt.member_id).where(sa.or_(*stale)).limit(limit)).scalars())
    service.refresh(conn, timeline, ids, passed[-1] if passed else EARLIEST)
    return len(ids)
