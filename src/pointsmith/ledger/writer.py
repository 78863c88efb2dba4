"""The one way postings are written.

Operations describe a transaction as a `Draft` (its postings, and the lot it
creates if any); `write` stores a list of drafts set-based: ids allocated in
one round trip, rows inserted with executemany, and every cache (member
balances, lot remainders, the hash chain) derived from the postings
themselves, so the caches can never disagree with what `ledger verify`
recomputes.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.db import bulk_insert, bulk_update, driver_execute, is_postgres
from pointsmith.errors import UnknownMember
from pointsmith.ledger.tables import (
    ledger_lots,
    ledger_postings,
    ledger_transactions,
    point_balances,
)


@dataclass(frozen=True)
class Posting:
    account: str
    amount: int
    lot_id: int | None = None
    hold_id: str | None = None


@dataclass(frozen=True)
class NewLot:
    """A lot created by a credit; its id is the placeholder 0 in the draft's postings until written."""

    points: int
    earned_at: datetime
    available_at: datetime
    expires_at: datetime | None
    reference: str | None = None
    event_id: str | None = None
    rule_key: str | None = None


@dataclass(frozen=True)
class Draft:
    member_id: str
    kind: str
    effective_at: datetime
    postings: tuple[Posting, ...]
    new_lot: NewLot | None = None
    reference: str | None = None
    event_id: str | None = None
    rule_key: str | None = None
    program_version: int | None = None
    actor: str | None = None
    reason: str | None = None
    activity: bool = False  # an earn or a spend: keeps points alive under the inactivity policy

    def __post_init__(self) -> None:
        if sum(p.amount for p in self.postings) != 0:
            raise ValueError(f"unbalanced {self.kind} transaction: {self.postings}")


@dataclass
class PointState:
    """A member's cached balances, read under the member's lock."""

    member_id: str
    available: int = 0
    pending: int = 0
    held: int = 0
    debt: int = 0
    last_activity_at: datetime | None = None
    last_hash: str = ""
    exists: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"available": self.available, "pending": self.pending, "held": self.held, "debt": self.debt}


@dataclass
class Written:
    transaction_id: int
    lot_id: int | None
    draft: Draft
    hash: str


@dataclass
class _LotDelta:
    remaining: int = 0
    pending: int = 0


@dataclass
class _Plan:
    transactions: list[dict[str, Any]] = field(default_factory=list)
    postings: list[dict[str, Any]] = field(default_factory=list)
    lots: list[dict[str, Any]] = field(default_factory=list)
    lot_deltas: dict[int, _LotDelta] = field(default_factory=lambda: defaultdict(_LotDelta))
    written: list[Written] = field(default_factory=list)


def lock_states(conn: Connection, member_ids: Iterable[str]) -> dict[str, PointState]:
    """Lock the members (in id order, so batches never deadlock), then read their balances.

    Two statements on purpose: on PostgreSQL a row lock taken by a join's SELECT would pair the
    locked member with the balance row of the statement's older snapshot; read after the lock,
    the balance is the one the previous writer committed.
    """
    ids = sorted(set(member_ids))
    if not ids:
        return {}
    postgres = is_postgres(conn)
    states: dict[str, PointState] = {}
    found: set[str] = set()
    for chunk in _chunks(ids, 5000):
        # straight to the driver: this runs for every ledger write (the SQL holds placeholders, never input)
        params: tuple[Any, ...]
        if postgres:
            match, params, lock = "= ANY(%s)", (chunk,), " FOR UPDATE"
        else:
            match, params, lock = f"IN ({', '.join('?' * len(chunk))})", tuple(chunk), ""
        found.update(r[0] for r in driver_execute(
            conn, f"SELECT id FROM members WHERE id {match} ORDER BY id{lock}", params))  # noqa: S608
        for member_id, available, pending, held, debt, last_activity, last_hash in driver_execute(
                conn, "SELECT member_id, available, pending, held, debt, last_activity_at, last_hash "  # noqa: S608
                f"FROM point_balances WHERE member_id {match}", params):
            states[member_id] = PointState(member_id, available, pending, held, debt, _time(last_activity),
                                           last_hash, exists=True)
    missing = [m for m in ids if m not in found]
    if missing:
        raise UnknownMember(f"no member with id {missing[0]!r}")
    return {m: states.get(m) or PointState(m) for m in ids}


def _time(value: datetime | str | None) -> datetime | None:
    """A timestamp as the driver returns it (text on SQLite) to aware UTC."""
    if value is None or isinstance(value, datetime):
        return clock.ensure_utc(value) if value else None
    return clock.ensure_utc(datetime.fromisoformat(value))


def write(conn: Connection, drafts: Sequence[Draft], states: dict[str, PointState]) -> list[Written]:
    """Store `drafts` in order and bring `states` (and the stored caches) up to date."""
    if not drafts:
        return []
    now = clock.now()
    transaction_ids = allocate_ids(conn, "ledger_transactions", len(drafts))
    lot_ids = iter(allocate_ids(conn, "ledger_lots", sum(1 for d in drafts if d.new_lot)))
    plan = _Plan()
    touched: dict[str, PointState] = {}
    for draft, transaction_id in zip(drafts, transaction_ids, strict=True):
        lot_id = next(lot_ids) if draft.new_lot else None
        postings = [replace(p, lot_id=lot_id) if p.lot_id == 0 else p for p in draft.postings]
        state = states[draft.member_id]
        digest = content_hash(state.last_hash, transaction_id, draft.member_id, draft.kind, draft.effective_at,
                              postings)
        _apply(state, draft, postings, plan.lot_deltas, digest)
        touched[draft.member_id] = state
        plan.transactions.append({
            "id": transaction_id, "member_id": draft.member_id, "kind": draft.kind,
            "effective_at": draft.effective_at, "recorded_at": now, "reference": draft.reference,
            "event_id": draft.event_id, "rule_key": draft.rule_key, "program_version": draft.program_version,
            "actor": draft.actor, "reason": draft.reason, "hash": digest})
        plan.postings += [{"transaction_id": transaction_id, "line": line, "member_id": draft.member_id,
                           "account": p.account, "amount": p.amount, "lot_id": p.lot_id, "hold_id": p.hold_id,
                           "effective_at": draft.effective_at} for line, p in enumerate(postings)]
        if draft.new_lot and lot_id is not None:
            lot = draft.new_lot
            delta = plan.lot_deltas.pop(lot_id, _LotDelta())
            plan.lots.append({
                "id": lot_id, "member_id": draft.member_id, "transaction_id": transaction_id,
                "points": lot.points, "pending": delta.pending, "remaining": delta.remaining,
                "earned_at": lot.earned_at, "available_at": lot.available_at, "expires_at": lot.expires_at,
                "reference": lot.reference, "event_id": lot.event_id, "rule_key": lot.rule_key})
        plan.written.append(Written(transaction_id, lot_id, draft, digest))
    _store(conn, plan, touched, now)
    return plan.written


def _apply(state: PointState, draft: Draft, postings: list[Posting], lot_deltas: dict[int, _LotDelta],
           digest: str) -> None:
    for p in postings:
        if p.account == "available":
            state.available += p.amount
            if p.lot_id is None:
                state.debt -= p.amount
            else:
                lot_deltas[p.lot_id].remaining += p.amount
        elif p.account == "pending":
            state.pending += p.amount
            if p.lot_id is not None:
                lot_deltas[p.lot_id].pending += p.amount
        elif p.account == "held":
            state.held += p.amount
    if draft.activity:
        state.last_activity_at = max(filter(None, (state.last_activity_at, draft.effective_at)))
    state.last_hash = digest


def _store(conn: Connection, plan: _Plan, touched: dict[str, PointState], now: datetime) -> None:
    bulk_insert(conn, ledger_transactions, plan.transactions)
    bulk_insert(conn, ledger_postings, plan.postings)
    bulk_insert(conn, ledger_lots, plan.lots)
    bulk_update(conn, ledger_lots, "id", [{"remaining": d.remaining, "pending": d.pending, "id": lot_id}
                                          for lot_id, d in plan.lot_deltas.items() if d.remaining or d.pending],
                increment=True)

    def row(s: PointState) -> dict[str, Any]:
        return {"member_id": s.member_id, "available": s.available, "pending": s.pending, "held": s.held,
                "debt": s.debt, "last_activity_at": s.last_activity_at, "last_hash": s.last_hash, "updated_at": now}

    bulk_insert(conn, point_balances, [row(s) for s in touched.values() if not s.exists])
    bulk_update(conn, point_balances, "member_id", [row(s) for s in touched.values() if s.exists])
    for s in touched.values():
        s.exists = True


def content_hash(previous: str, transaction_id: int, member_id: str, kind: str, effective_at: datetime,
                 postings: Sequence[Posting]) -> str:
    lines = sorted(f"{p.account}:{p.amount}:{p.lot_id or 0}:{p.hold_id or ''}" for p in postings)
    body = f"{previous}|{transaction_id}|{member_id}|{kind}|{clock.iso(effective_at)}|{';'.join(lines)}"
    return hashlib.sha256(body.encode()).hexdigest()


def allocate_ids(conn: Connection, table: str, count: int) -> list[int]:
    """`count` new ids for `table` in one round trip.

    PostgreSQL draws them from the table's sequence; SQLite continues from the
    largest id, which is safe because every SQLite write holds the database lock.
    """
    if count == 0:
        return []
    if is_postgres(conn):
        # `table` is one of our own table names, never input
        sql = f"SELECT nextval('{table}_id_seq') FROM generate_series(1, %s)"  # noqa: S608
        return [int(r[0]) for r in driver_execute(conn, sql, (count,))]
    start = int(driver_execute(conn, f"SELECT coalesce(max(id), 0) FROM {table}")[0][0]) + 1  # noqa: S608
    return list(range(start, start + count))


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
