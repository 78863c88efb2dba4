"""The growth ledger: append-only entries per member; the tier is computed from them."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith.db import (
    Read,
    driver_execute,
    driver_in,
    in_list,
    member_bounds,
    read_together,
    rows_of,
    time_from_driver,
    values_table,
)
from pointsmith.growth.tables import growth_entries
from pointsmith.rules.limits import local_day
from pointsmith.tiers.policy import Entry

g = growth_entries.c


def history(conn: Connection, member_id: str, *, until: datetime | None = None) -> list[Entry]:
    query = sa.select(g.effective_at, g.amount).where(g.member_id == member_id).order_by(g.effective_at, g.id)
    if until is not None:
        query = query.where(g.effective_at <= until)
    return [(t, int(a)) for t, a in conn.execute(query)]


def record(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(growth_entries.insert(), rows)
        add_to_totals(conn, rows)


def add_to_totals(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add new entries to their members' totals (`growth_totals`), in the transaction that writes them:
    every writer of growth entries calls this (`record`, and the import's bulk insert). One statement,
    which runs in a pipeline."""
    deltas: dict[str, int] = defaultdict(int)
    for row in rows:
        deltas[row["member_id"]] += int(row["amount"])
    if not deltas:
        return
    # in member order, as the members were locked (two writers never wait on each other in a cycle)
    source, params = values_table(conn, {"member_id": "text", "total": "int8"}, sorted(deltas.items()))
    driver_execute(conn, f"INSERT INTO growth_totals (member_id, total) SELECT * FROM {source} AS v WHERE true"  # noqa: S608 (fixed SQL; values are bound)
                   " ON CONFLICT (member_id) DO UPDATE SET total = growth_totals.total + excluded.total", params)


def gained_in_day(conn: Connection, member_id: str, at: datetime, tz: ZoneInfo) -> int:
    """What the daily cap counts on the local day of `at`: growth gained that day (positive earn
    entries), less what refunds dated by `at` have taken back of the orders that gained it (a refunded
    order does not count against the cap, as it does not against the rules' limits)."""
    start, end = local_day(at, tz)
    day = sa.and_(g.member_id == member_id, g.kind == "earn", g.effective_at >= start, g.effective_at < end)
    gained = sa.select(sa.func.coalesce(sa.func.sum(g.amount), 0)).where(day, g.amount > 0).scalar_subquery()
    back = sa.select(sa.func.coalesce(sa.func.sum(-g.amount), 0)).where(  # (no refund precedes its order's day)
        g.member_id == member_id, g.kind == "refund", g.effective_at >= start, g.effective_at <= at,
        g.reference.in_(sa.select(g.reference).where(day, g.reference.is_not(None)))).scalar_subquery()
    return int(conn.execute(sa.select(gained - back)).scalar_one())


def net_gained_in_day(entries: Iterable[tuple[datetime, int, str, str | None]], at: datetime,
                      start: datetime, end: datetime) -> int:
    """`gained_in_day` of entries in hand, (time, amount, kind, reference): the earns of [start, end)
    less the refunds by `at` of the orders they were for."""
    gained, orders = 0, set()
    for t, amount, kind, reference in entries:
        if kind == "earn" and amount > 0 and start <= t < end:
            gained += amount
            if reference is not None:
                orders.add(reference)
    back = sum(-amount for t, amount, kind, reference in entries
               if kind == "refund" and t <= at and reference in orders) if orders else 0
    return gained - back


def lifetime(conn: Connection, member_id: str, *, at: datetime | None = None) -> int:
    query = sa.select(sa.func.coalesce(sa.func.sum(g.amount), 0)).where(g.member_id == member_id)
    if at is not None:
        query = query.where(g.effective_at <= at)
    return int(conn.execute(query).scalar_one())


def histories(conn: Connection, member_ids: list[str]) -> dict[str, list[Entry]]:
    """`history` of many members in one query."""
    out: dict[str, list[Entry]] = {}
    for chunk in (member_ids[i:i + 5000] for i in range(0, len(member_ids), 5000)):
        for member_id, t, amount in conn.execute(
                sa.select(g.member_id, g.effective_at, g.amount).where(in_list(conn, g.member_id, chunk))
                .order_by(g.member_id, g.effective_at, g.id)):
            out.setdefault(member_id, []).append((t, int(amount)))
    return out


CARRY = timedelta(microseconds=1)  # how far before a window's start its carried total is dated


Window = list[tuple[datetime, int, str, str | None]]  # (time, amount, kind, reference) of growth entries


def windows(conn: Connection, since: Mapping[str, datetime]) -> dict[str, Window]:
    """Each member's growth entries (time, amount, kind, reference) from `since[member]` on, after one entry of kind
    "carry", dated just before, that holds the sum of everything earlier (if not nothing). That is all a
    lifetime tier and a daily cap need, and the carry is the member's total less the window's entries,
    so the work stays the same however long the member's history grows."""
    if not since:
        return {}
    return windows_of(since, *read_together(conn, window_reads(conn, since)))


def window_reads(conn: Connection, since: Mapping[str, datetime]) -> list[Read]:
    """The reads `windows` makes of (`windows_of`), to run with others (for every import batch: straight
    to the driver): the members' totals, and the entries of their windows."""
    match, match_params = driver_in(conn, list(since))
    bounds, params = member_bounds(conn, since)
    return [Read(f"SELECT member_id, total FROM growth_totals WHERE member_id {match}", match_params,  # noqa: S608
                 rows_of),
            Read("SELECT g.member_id, g.effective_at, g.amount, g.kind, g.reference"  # noqa: S608 (fixed SQL; values are bound)
                 f" FROM {bounds} b JOIN growth_entries g ON g.member_id = b.member_id AND g.effective_at >= b.since"
                 " ORDER BY g.member_id, g.effective_at, g.id", params, rows_of)]


def windows_of(since: Mapping[str, datetime], totals: list[Any], entries: list[Any]) -> dict[str, Window]:
    """`windows` from the answers of its reads."""
    inside: dict[str, Window] = defaultdict(list)
    for member_id, t, amount, kind, reference in entries:
        inside[member_id].append((time_from_driver(t), int(amount), kind, reference))
    out: dict[str, Window] = {}
    for member_id, total in totals:
        carried = int(total) - sum(amount for _, amount, _, _ in inside.get(member_id, ()))
        if carried:
            out[member_id] = [(since[member_id] - CARRY, carried, "carry", None)]
    for member_id, window in inside.items():
        out.setdefault(member_id, []).extend(window)
    return out
