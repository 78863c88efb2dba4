"""Read models of the ledger: balances (now or as of a time), lots, history."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pointsmith import clock
from pointsmith.db import driver_execute, read_one
from pointsmith.ledger.tables import ledger_lots, ledger_postings, ledger_transactions

EMPTY = {"available": 0, "pending": 0, "held": 0, "debt": 0}
BALANCE_SQL = "SELECT available, pending, held, debt FROM point_balances WHERE member_id = {mark}"


def _balance_row(row: Any) -> dict[str, int]:
    return dict(zip(EMPTY, row, strict=True)) if row else dict(EMPTY)


def of_member(member_id: str) -> sa.Join:
    """A member's postings, found through the transactions' member index.

    Postings have no member index of their own: it would be paid for on every
    posting written (a quarter of a batch credit's time on SQLite), and member
    reads are rare next to writes.
    """
    t, p = ledger_transactions, ledger_postings
    return p.join(t, sa.and_(t.c.id == p.c.transaction_id, t.c.member_id == member_id))


def balance(conn: Connection, member_id: str, *, at: datetime | None = None) -> dict[str, int]:
    """Cached balances as recorded; with `at`, summed from the postings effective by then."""
    if at is None:
        # the hottest read there is: straight to the driver, past SQLAlchemy's statement building
        mark = "%s" if conn.dialect.name == "postgresql" else "?"
        found = driver_execute(conn, BALANCE_SQL.format(mark=mark), (member_id,))
        return _balance_row(found[0] if found else None)
    p = ledger_postings
    rows = conn.execute(sa.select(p.c.account, p.c.lot_id.is_(None).label("no_lot"), sa.func.sum(p.c.amount))
                        .select_from(of_member(member_id))
                        .where(p.c.account.in_(("available", "pending", "held")), p.c.effective_at <= at)
                        .group_by(p.c.account, p.c.lot_id.is_(None)))
    out = dict(EMPTY)
    for account, no_lot, total in rows:
        out[account] += int(total)
        if account == "available" and no_lot:
            out["debt"] -= int(total)
    return out


def current_balance(engine: Engine, member_id: str) -> dict[str, int]:
    """A member's cached balances, for callers that need only that: one pooled driver round trip.

    The cached row is written in the same transaction as the postings it sums,
    so a single SELECT of it is always consistent.
    """
    return _balance_row(read_one(engine, BALANCE_SQL, (member_id,)))


def lots(conn: Connection, member_id: str, *, at: datetime | None = None, include_empty: bool = False
         ) -> list[dict[str, Any]]:
    """The member's lots, soonest-expiring first; `points` is what a lot still holds (pending included)."""
    lt = ledger_lots
    query = sa.select(lt).where(lt.c.member_id == member_id)
    if at is not None:
        query = query.where(lt.c.earned_at <= at)
    rows = conn.execute(query.order_by(lt.c.expires_at.is_(None), lt.c.expires_at, lt.c.earned_at,
                                       lt.c.id)).mappings().all()
    held_at = _lot_balances_at(conn, member_id, at) if at is not None else None
    out = []
    for r in rows:
        pending, remaining = held_at.get(r["id"], (0, 0)) if held_at is not None else (r["pending"], r["remaining"])
        if not include_empty and pending == 0 and remaining == 0:
            continue
        out.append({"id": r["id"], "points": pending + remaining, "available": remaining, "pending": pending,
                    "earned_at": clock.iso(r["earned_at"]), "available_at": clock.iso(r["available_at"]),
                    "expires_at": clock.iso(r["expires_at"]) if r["expires_at"] else None,
                    "original": r["points"], "reference": r["reference"], "rule_key": r["rule_key"]})
    return out


def _lot_balances_at(conn: Connection, member_id: str, at: datetime) -> dict[int, tuple[int, int]]:
    p = ledger_postings
    rows = conn.execute(sa.select(p.c.lot_id, p.c.account, sa.func.sum(p.c.amount))
                        .select_from(of_member(member_id))
                        .where(p.c.lot_id.is_not(None), p.c.effective_at <= at,
                               p.c.account.in_(("available", "pending")))
                        .group_by(p.c.lot_id, p.c.account))
    out: dict[int, tuple[int, int]] = {}
    for lot_id, account, total in rows:
        pending, remaining = out.get(lot_id, (0, 0))
        out[lot_id] = (pending + int(total), remaining) if account == "pending" else (pending, remaining + int(total))
    return out


def history(conn: Connection, member_id: str, *, before: int | None = None, limit: int = 50
            ) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first; pass the returned cursor as `before` for the next page."""
    t = ledger_transactions
    query = sa.select(t).where(t.c.member_id == member_id).order_by(t.c.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(t.c.id < before)
    rows = conn.execute(query).mappings().all()
    page = rows[:limit]
    postings = _postings_of(conn, member_id, [r["id"] for r in page])
    items = [{"id": r["id"], "kind": r["kind"], "effective_at": clock.iso(r["effective_at"]),
              "recorded_at": clock.iso(r["recorded_at"]), "reference": r["reference"], "event_id": r["event_id"],
              "rule_key": r["rule_key"], "program_version": r["program_version"], "actor": r["actor"],
              "reason": r["reason"],
              "points": sum(p["amount"] for p in postings.get(r["id"], []) if p["account"] in ("available", "pending")),
              "postings": postings.get(r["id"], [])} for r in page]
    return items, (page[-1]["id"] if len(rows) > limit else None)


def _postings_of(conn: Connection, member_id: str, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    if not ids:
        return {}
    p = ledger_postings
    out: dict[int, list[dict[str, Any]]] = {}
    rows = conn.execute(sa.select(p.c.transaction_id, p.c.account, p.c.amount, p.c.lot_id, p.c.hold_id)
                        .where(p.c.member_id == member_id, p.c.transaction_id.in_(ids))
                        .order_by(p.c.transaction_id, p.c.line))
    for r in rows:
        out.setdefault(r.transaction_id, []).append({"account": r.account, "amount": r.amount, "lot_id": r.lot_id,
                                                     "hold_id": r.hold_id})
    return out


def points_view(conn: Connection, member_id: str, *, at: datetime | None = None) -> dict[str, Any]:
    """The `points` part of the member view."""
    return {**balance(conn, member_id, at=at), "lots": lots(conn, member_id, at=at)}
