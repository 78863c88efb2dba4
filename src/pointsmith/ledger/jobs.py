"""Scheduled ledger work: activate pending points, return lapsed holds, expire lots.

Each job is a step over at most `limit` due items: it finds what is due up
to `now`, locks the members concerned, re-reads their due items (another
process may have done them meanwhile) and writes each change effective at the
time it was due. A step returns how much it did; the runner (jobs/service.py)
repeats it until it does nothing. Running a job twice, or from two processes
at once, does the work once.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.ledger.holds import release_lapsed
from pointsmith.ledger.policy import PointsPolicy, policy_at, policy_of
from pointsmith.ledger.service import settle_debt
from pointsmith.ledger.tables import ledger_holds, ledger_lots, point_balances
from pointsmith.ledger.writer import Draft, Posting, lock_states, write
from pointsmith.program import service as programs
from pointsmith.program.schema import ExpiryPolicy


def activate_pending(conn: Connection, now: datetime, limit: int) -> int:
    lt = ledger_lots
    member_ids = _due(conn, lt.c.member_id, lt.c.available_at, lt.c.pending > 0, now, limit)
    if not member_ids:
        return 0
    states = lock_states(conn, member_ids)
    rows = conn.execute(sa.select(lt.c.id, lt.c.member_id, lt.c.pending, lt.c.available_at)
                        .where(lt.c.member_id.in_(member_ids), lt.c.pending > 0, lt.c.available_at <= now)
                        .order_by(lt.c.available_at, lt.c.id)).all()
    debt = {m: s.debt for m, s in states.items()}
    drafts = []
    for lot_id, member_id, pending, available_at in rows:
        settle = settle_debt(debt[member_id], pending, lot_id=lot_id)
        debt[member_id] -= sum(p.amount for p in settle if p.lot_id is None)
        drafts.append(Draft(member_id, "activate", available_at,
                            (Posting("pending", -pending, lot_id), Posting("available", pending, lot_id), *settle)))
    write(conn, drafts, states)
    return len(drafts)


def release_lapsed_holds(conn: Connection, now: datetime, limit: int) -> int:
    h = ledger_holds
    member_ids = _due(conn, h.c.member_id, h.c.expires_at, h.c.status == "active", now, limit)
    if not member_ids:
        return 0
    states = lock_states(conn, member_ids)
    policy = policy_at(conn, now)
    return sum(release_lapsed(conn, states[m], policy, now) for m in member_ids)


def expire_lots(conn: Connection, now: datetime, limit: int) -> int:
    lt = ledger_lots
    member_ids = _due(conn, lt.c.member_id, lt.c.expires_at, lt.c.remaining > 0, now, limit)
    if not member_ids:
        return 0
    states = lock_states(conn, member_ids)
    rows = conn.execute(sa.select(lt.c.id, lt.c.member_id, lt.c.remaining, lt.c.expires_at, lt.c.available_at)
                        .where(lt.c.member_id.in_(member_ids), lt.c.remaining > 0, lt.c.expires_at <= now)
                        .order_by(lt.c.expires_at, lt.c.id)).all()
    drafts = [Draft(member_id, "expire", _not_before(expires_at, available_at),
                    (Posting("available", -remaining, lot_id), Posting("expired", remaining)))
              for lot_id, member_id, remaining, expires_at, available_at in rows]
    write(conn, drafts, states)
    return len(drafts)


def expire_inactive(conn: Connection, now: datetime, limit: int) -> int:
    """Under the inactivity policy, expire everything of members idle for `months`: at the first time
    a version with that policy was in force and the member had been idle for its `months` (so a
    catch-up gives what running the job all along would have, whichever versions came between)."""
    spans = _inactivity_spans(conn)
    if not spans:
        return 0
    b, lt = point_balances, ledger_lots
    # available + debt is what the member's lots hold; oldest activity first, so the late ones lead
    rows = conn.execute(sa.select(b.c.member_id, b.c.last_activity_at)
                        .where(b.c.available + b.c.debt > 0, b.c.last_activity_at.is_not(None))
                        .order_by(b.c.last_activity_at).limit(limit)).all()
    late = [m for m, last in rows if (d := _idle_due(spans, last)) is not None and d <= now]
    if not late:
        return 0
    states = lock_states(conn, late)
    drafts = []
    for member_id in late:
        deadline = _idle_due(spans, states[member_id].last_activity_at)
        if deadline is None or deadline > now:
            continue  # active again since it was selected
        lots = conn.execute(sa.select(lt.c.id, lt.c.remaining, lt.c.available_at)
                            .where(lt.c.member_id == member_id, lt.c.remaining > 0)).all()
        drafts += [Draft(member_id, "expire", _not_before(deadline, available_at),
                         (Posting("available", -remaining, lot_id), Posting("expired", remaining)))
                   for lot_id, remaining, available_at in lots]
    write(conn, drafts, states)
    return len(drafts)


def _not_before(due: datetime, available_at: datetime) -> datetime:
    """When a lot expires that fell due at `due`: not before its points were available (points still
    pending past their expiry, under a returns window longer than it, expire as they become available;
    dated earlier, the balance at a time between would show them expired and still pending)."""
    return max(clock.ensure_utc(due), clock.ensure_utc(available_at))


_Span = tuple[PointsPolicy, datetime, datetime | None]


def _inactivity_spans(conn: Connection) -> list[_Span]:
    """The inactivity policies of the program's history, each with when it starts and stops being in force."""
    return [(policy, version.effective_at, end) for version, end in programs.spans(programs.timeline(conn))
            if (policy := policy_of(version)).expiry.policy is ExpiryPolicy.inactivity]


def _idle_due(spans: list[_Span], last_activity: datetime | None) -> datetime | None:
    """When a member last active at `last_activity` is first due to lose its points to inactivity."""
    if last_activity is None:
        return None
    times = []
    for policy, start, end in spans:
        deadline = policy.inactivity_deadline(last_activity)
        if deadline is not None and (end is None or max(deadline, start) < end):
            times.append(max(deadline, start))
    return min(times, default=None)


def _due(conn: Connection, member: sa.Column[str], due_at: sa.Column[datetime], pending: sa.ColumnElement[bool],
         now: datetime, limit: int) -> list[str]:
    """The members owning the `limit` earliest items due by `now`, in id order (the lock order)."""
    query = sa.select(member).where(pending, due_at <= now).order_by(due_at).limit(limit)
    return sorted({str(m) for m in conn.execute(query).scalars()})


# --- when each job next has work (for replays) --------------------------------------


def _earliest(conn: Connection, column: sa.Column[datetime], condition: sa.ColumnElement[bool]) -> datetime | None:
    value = conn.execute(sa.select(sa.func.min(column)).where(condition)).scalar()
    return clock.ensure_utc(value) if value is not None else None


def next_activation(conn: Connection) -> datetime | None:
    return _earliest(conn, ledger_lots.c.available_at, ledger_lots.c.pending > 0)


def next_lapse(conn: Connection) -> datetime | None:
    return _earliest(conn, ledger_holds.c.expires_at, ledger_holds.c.status == "active")


def next_expiry(conn: Connection) -> datetime | None:
    return _earliest(conn, ledger_lots.c.expires_at, ledger_lots.c.remaining > 0)


def next_inactivity(conn: Connection) -> datetime | None:
    spans = _inactivity_spans(conn)
    if not spans:
        return None
    b = point_balances.c  # the longest idle member is the first due, under any of the policies
    return _idle_due(spans, _earliest(conn, b.last_activity_at, b.available + b.debt > 0))
