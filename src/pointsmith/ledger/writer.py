"""The one way postings are written.

Operations describe a transaction as a `Draft` (its postings, and the lot it
creates if any); `write` stores a list of drafts set-based: ids allocated in
one round trip, rows inserted with executemany, and every cache (member
balances, lot remainders, the hash chain) derived from the postings
themselves, so the caches can never disagree with what `ledger verify`
recomputes.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.db import (
    Read,
    driver_execute,
    driver_in,
    driver_time,
    insert_rows,
    is_postgres,
    pipelined,
    time_from_driver,
    update_rows,
)
from pointsmith.errors import UnknownMember


class Posting(NamedTuple):
    """One line of a transaction (a tuple: drafts hold many, and the writer stores them as they are)."""

    account: str
    amount: int
    lot_id: int | None = None
    hold_id: str | None = None


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs several times more, per credit
class NewLot:
    """A lot created by a credit; its id is the placeholder 0 in the draft's postings until written."""

    points: int
    earned_at: datetime
    available_at: datetime
    expires_at: datetime | None
    reference: str | None = None
    event_id: str | None = None
    rule_key: str | None = None


@dataclass(slots=True)
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
    balance: dict[str, int]  # the member's balances right after this transaction

    def postings(self) -> list[Posting]:
        """The draft's postings with the new lot's id in place of the placeholder 0."""
        return [p._replace(lot_id=self.lot_id) if p.lot_id == 0 else p for p in self.draft.postings]


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
        match, params = driver_in(conn, chunk)
        lock = " FOR UPDATE" if postgres else ""
        found.update(r[0] for r in driver_execute(
            conn, f"SELECT id FROM members WHERE id {match} ORDER BY id{lock}", params))  # noqa: S608
        states.update(balances_read(conn, chunk).now(conn))
    missing = [m for m in ids if m not in found]
    if missing:
        raise UnknownMember(f"no member with id {missing[0]!r}")
    return {m: states.get(m) or PointState(m) for m in ids}


def balances_read(conn: Connection, member_ids: list[str]) -> Read:
    """The stored balances of these members (those that have any), as a read to run with others; read
    only under the members' locks (`lock_states`)."""
    match, params = driver_in(conn, member_ids)

    def answer(cursor: Any) -> dict[str, PointState]:
        return {member_id: PointState(member_id, available, pending, held, debt, time_from_driver(last_activity),
                                      last_hash, exists=True)
                for member_id, available, pending, held, debt, last_activity, last_hash in cursor.fetchall()}

    return Read("SELECT member_id, available, pending, held, debt, last_activity_at, last_hash "  # noqa: S608
                f"FROM point_balances WHERE member_id {match}", params, answer)


TRANSACTION_COLUMNS = ("id", "member_id", "kind", "effective_at", "recorded_at", "reference", "event_id",
                       "rule_key", "program_version", "actor", "reason", "hash")
POSTING_COLUMNS = ("transaction_id", "line", "member_id", "account", "amount", "lot_id", "hold_id", "effective_at")
LOT_COLUMNS = ("id", "member_id", "transaction_id", "points", "pending", "remaining", "earned_at", "available_at",
               "expires_at", "reference", "event_id", "rule_key")
BALANCE_COLUMNS = ("available", "pending", "held", "debt", "last_activity_at", "last_hash", "updated_at")


def write(conn: Connection, drafts: Sequence[Draft], states: dict[str, PointState]) -> list[Written]:
    """Store `drafts` in order and bring `states` (and the stored caches) up to date.

    Rows are built as driver-ready tuples in one pass: this loop runs for every
    posting the ledger ever writes, so it avoids per-row dicts and conversions.
    """
    if not drafts:
        return []
    now = clock.now()
    stamp = driver_time(conn)
    recorded = stamp(now)
    transaction_ids, lots = allocate_ids(conn, ("ledger_transactions", len(drafts)),
                                         ("ledger_lots", sum(1 for d in drafts if d.new_lot)))
    lot_ids = iter(lots)
    transactions: list[tuple[Any, ...]] = []
    postings: list[tuple[Any, ...]] = []
    new_lots: dict[int, list[Any]] = {}  # lot id -> its row; credits to a lot written in this batch fold into it
    lot_deltas: dict[int, list[int]] = {}  # existing lot id -> [remaining, pending] to add
    written: list[Written] = []
    touched: dict[str, PointState] = {}
    for draft, transaction_id in zip(drafts, transaction_ids, strict=True):
        lot_id = next(lot_ids) if draft.new_lot else None
        lines: list[tuple[str, int, int | None, str | None]] = list(draft.postings) if lot_id is None else [
            (a, n, lot_id if lot == 0 else lot, h) for a, n, lot, h in draft.postings]
        state = states[draft.member_id]
        digest = content_hash(state.last_hash, transaction_id, draft.member_id, draft.kind, draft.effective_at,
                              lines)
        effective = stamp(draft.effective_at)
        if draft.new_lot and lot_id is not None:
            lot = draft.new_lot
            new_lots[lot_id] = [lot_id, draft.member_id, transaction_id, lot.points, 0, 0, stamp(lot.earned_at),
                                stamp(lot.available_at), stamp(lot.expires_at), lot.reference, lot.event_id,
                                lot.rule_key]
        _apply(state, draft, lines, new_lots, lot_deltas, digest)
        touched[draft.member_id] = state
        transactions.append((transaction_id, draft.member_id, draft.kind, effective, recorded, draft.reference,
                             draft.event_id, draft.rule_key, draft.program_version, draft.actor, draft.reason,
                             digest))
        postings += [(transaction_id, line, draft.member_id, a, n, lot, h, effective)
                     for line, (a, n, lot, h) in enumerate(lines)]
        written.append(Written(transaction_id, lot_id, draft, digest, state.as_dict()))
    lot_rows = [tuple(row) for row in new_lots.values()]
    with pipelined(conn, transactions, postings, lot_rows):
        insert_rows(conn, "ledger_transactions", TRANSACTION_COLUMNS, transactions)
        insert_rows(conn, "ledger_postings", POSTING_COLUMNS, postings)
        insert_rows(conn, "ledger_lots", LOT_COLUMNS, lot_rows)
        update_rows(conn, "ledger_lots", "id", ("remaining", "pending"),
                    [(r, p, lot_id) for lot_id, (r, p) in lot_deltas.items() if r or p], increment=True)
        _store_balances(conn, touched.values(), stamp, recorded)
    return written


def _apply(state: PointState, draft: Draft, postings: list[tuple[str, int, int | None, str | None]],
           new_lots: dict[int, list[Any]], lot_deltas: dict[int, list[int]], digest: str) -> None:
    """Move the cached balances (and lot remainders) by the postings; refuse an unbalanced draft."""
    total = 0
    for account, amount, lot_id, _ in postings:
        total += amount
        if account == "available":
            state.available += amount
            if lot_id is None:
                state.debt -= amount
            elif lot_id in new_lots:
                new_lots[lot_id][5] += amount
            else:
                lot_deltas.setdefault(lot_id, [0, 0])[0] += amount
        elif account == "pending":
            state.pending += amount
            if lot_id in new_lots:
                new_lots[lot_id][4] += amount
            elif lot_id is not None:
                lot_deltas.setdefault(lot_id, [0, 0])[1] += amount
        elif account == "held":
            state.held += amount
    if total != 0:
        raise ValueError(f"unbalanced {draft.kind} transaction: {postings}")
    if draft.activity:
        state.last_activity_at = max(filter(None, (state.last_activity_at, draft.effective_at)))
    state.last_hash = digest


def _store_balances(conn: Connection, touched: Iterable[PointState], stamp: Any, recorded: Any) -> None:
    inserts, updates = [], []
    for s in touched:
        values = (s.available, s.pending, s.held, s.debt, stamp(s.last_activity_at), s.last_hash, recorded)
        if s.exists:
            updates.append((*values, s.member_id))
        else:
            inserts.append((s.member_id, *values))
            s.exists = True
    insert_rows(conn, "point_balances", ("member_id", *BALANCE_COLUMNS), inserts)
    update_rows(conn, "point_balances", "member_id", BALANCE_COLUMNS, updates)


def content_hash(previous: str, transaction_id: int, member_id: str, kind: str, effective_at: datetime,
                 postings: Sequence[tuple[str, int, int | None, str | None]]) -> str:
    lines = sorted(f"{account}:{amount}:{lot_id or 0}:{hold_id or ''}" for account, amount, lot_id, hold_id in postings)
    body = f"{previous}|{transaction_id}|{member_id}|{kind}|{_iso(effective_at)}|{';'.join(lines)}"
    return hashlib.sha256(body.encode()).hexdigest()


_iso = functools.lru_cache(maxsize=4096)(clock.iso)  # a batch repeats few distinct times


def allocate_ids(conn: Connection, *wanted: tuple[str, int]) -> list[list[int]]:
    """New ids for each (table, count), in one round trip.

    PostgreSQL draws them from the tables' sequences; SQLite continues from the
    largest id, which is safe because every SQLite write holds the database lock.
    """
    out: list[list[int]] = [[] for _ in wanted]
    if is_postgres(conn):
        # the table names are our own, never input
        parts = [(i, table, count) for i, (table, count) in enumerate(wanted) if count]
        if parts:
            sql = " UNION ALL ".join(f"SELECT {i}, nextval('{table}_id_seq') FROM generate_series(1, %s)"  # noqa: S608
                                     for i, table, _ in parts)
            for i, value in driver_execute(conn, sql, tuple(count for _, _, count in parts)):
                out[i].append(int(value))
        return [sorted(ids) for ids in out]  # ascending: a member's chain follows transaction ids
    for i, (table, count) in enumerate(wanted):
        if count:
            start = int(driver_execute(conn, f"SELECT coalesce(max(id), 0) FROM {table}")[0][0]) + 1  # noqa: S608
            out[i] = list(range(start, start + count))
    return out


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
