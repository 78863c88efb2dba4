"""Scheduled ledger work: activate pending points, return lapsed holds, expire lots.

Each job finds what is due up to `now`, then works in chunks: it locks the
members concerned, re-reads their due lots (another process may have done
them meanwhile), and writes each change effective at the time it was due.
Running a job twice, or from two processes at once, does the work once.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pointsmith.db import unit_of_work
from pointsmith.ledger.holds import release_lapsed
from pointsmith.ledger.policy import policy_at
from pointsmith.ledger.service import settle_debt
from pointsmith.ledger.tables import ledger_holds, ledger_lots, point_balances
from pointsmith.ledger.writer import Draft, Posting, lock_states, write
from pointsmith.program.schema import ExpiryPolicy

CHUNK = 1000


def _in_chunks(engine: Engine, due_members: Callable[[Connection], list[str]],
               work: Callable[[Connection, list[str]], int]) -> int:
    done = 0
    while True:
        with unit_of_work(engine) as conn:
            member_ids = due_members(conn)
            if not member_ids:
                return done
            processed = work(conn, member_ids)
        done += processed
        if processed == 0:
            return done  # what was due was done by another process meanwhile


def activate_pending(engine: Engine, now: datetime) -> int:
    lt = ledger_lots

    def due(conn: Connection) -> list[str]:
        return _distinct_members(conn, sa.select(lt.c.member_id).where(lt.c.pending > 0, lt.c.available_at <= now)
                                 .order_by(lt.c.available_at).limit(CHUNK))

    def work(conn: Connection, member_ids: list[str]) -> int:
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
                                (Posting("pending", -pending, lot_id), Posting("available", pending, lot_id),
                                 *settle)))
        write(conn, drafts, states)
        return len(drafts)

    return _in_chunks(engine, due, work)


def release_lapsed_holds(engine: Engine, now: datetime) -> int:
    h = ledger_holds

    def due(conn: Connection) -> list[str]:
        return _distinct_members(conn, sa.select(h.c.member_id).where(h.c.status == "active", h.c.expires_at <= now)
                                 .order_by(h.c.expires_at).limit(CHUNK))

    def work(conn: Connection, member_ids: list[str]) -> int:
        states = lock_states(conn, member_ids)
        policy = policy_at(conn, now)
        return sum(release_lapsed(conn, states[m], policy, now) for m in member_ids)

    return _in_chunks(engine, due, work)


def expire_lots(engine: Engine, now: datetime) -> int:
    lt = ledger_lots

    def due(conn: Connection) -> list[str]:
        return _distinct_members(conn, sa.select(lt.c.member_id).where(lt.c.remaining > 0, lt.c.expires_at <= now)
                                 .order_by(lt.c.expires_at).limit(CHUNK))

    def work(conn: Connection, member_ids: list[str]) -> int:
        states = lock_states(conn, member_ids)
        rows = conn.execute(sa.select(lt.c.id, lt.c.member_id, lt.c.remaining, lt.c.expires_at)
                            .where(lt.c.member_id.in_(member_ids), lt.c.remaining > 0, lt.c.expires_at <= now)
                            .order_by(lt.c.expires_at, lt.c.id)).all()
        drafts = [Draft(member_id, "expire", expires_at,
                        (Posting("available", -remaining, lot_id), Posting("expired", remaining)))
                  for lot_id, member_id, remaining, expires_at in rows]
        write(conn, drafts, states)
        return len(drafts)

    return _in_chunks(engine, due, work)


def expire_inactive(engine: Engine, now: datetime) -> int:
    """Under the inactivity policy, expire everything of members idle for `months`."""
    with unit_of_work(engine) as conn:
        policy = policy_at(conn, now)
    if policy.expiry.policy is not ExpiryPolicy.inactivity:
        return 0
    b, lt = point_balances, ledger_lots

    def due(conn: Connection) -> list[str]:
        # available + debt is what the member's lots hold; oldest activity first, so the late ones lead
        rows = conn.execute(sa.select(b.c.member_id, b.c.last_activity_at)
                            .where(b.c.available + b.c.debt > 0, b.c.last_activity_at.is_not(None))
                            .order_by(b.c.last_activity_at).limit(CHUNK)).all()
        return [m for m, last in rows if (d := policy.inactivity_deadline(last)) is not None and d <= now]

    def work(conn: Connection, member_ids: list[str]) -> int:
        states = lock_states(conn, member_ids)
        drafts = []
        for member_id in member_ids:
            deadline = policy.inactivity_deadline(states[member_id].last_activity_at)
            if deadline is None or deadline > now:
                continue
            rows = conn.execute(sa.select(lt.c.id, lt.c.remaining)
                                .where(lt.c.member_id == member_id, lt.c.remaining > 0)).all()
            drafts += [Draft(member_id, "expire", deadline, (Posting("available", -remaining, lot_id),
                                                              Posting("expired", remaining)))
                       for lot_id, remaining in rows]
        write(conn, drafts, states)
        return len(drafts)

    return _in_chunks(engine, due, work)


def _distinct_members(conn: Connection, query: sa.Select[tuple[str]]) -> list[str]:
    return sorted({str(m) for m in conn.execute(query).scalars()})
