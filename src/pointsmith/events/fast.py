"""Set-based ingestion of a run of plain events (the import fast path).

Per-event ingestion (events/service.py) costs a few dozen statements an
event. Here a whole run is read in a handful of queries (seen ids, members,
growth histories, limit usage, orders), the rules are applied in memory in
event order (so later events of a member see the tier, caps and usage left
by earlier ones), and everything is written with bulk inserts and one
set-based ledger credit. The outcome of each event is the same as the
per-event path's; a test replays random histories both ways and compares.

Events that need more than this (refunds, registrations, verifications,
rules with a global budget, deductions) end the run and go the per-event way.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.db import (
    Read,
    bulk_insert,
    driver_in,
    in_list,
    is_postgres,
    loads,
    member_bounds,
    pipelined,
    read_together,
    select_read,
    time_from_driver,
    values_table,
)
from pointsmith.errors import DomainError, DuplicateOrder, IdempotencyConflict, InvalidMemberState, UnknownMember
from pointsmith.events.tables import events
from pointsmith.events.validation import Event
from pointsmith.growth import service as growth
from pointsmith.growth.tables import growth_entries
from pointsmith.idempotency import lock_many_read
from pointsmith.ledger.common import check_points
from pointsmith.ledger.service import CreditRequest, post_credits
from pointsmith.ledger.writer import PointState, balances_read
from pointsmith.members.service import Member, Status, random_invite_code
from pointsmith.members.tables import members
from pointsmith.program import service as programs
from pointsmith.program.schema import Qualification
from pointsmith.program.service import Version
from pointsmith.rules.engine import Proposal, Tier, propose, withheld_while_frozen
from pointsmith.rules.limits import Usage, apply_limits, cooling, local_day, period_bounds
from pointsmith.rules.service import counts, settle
from pointsmith.rules.tables import orders, rule_awards
from pointsmith.tiers import service as tiers

PER_EVENT_TYPES = {"order.refunded", "member.registered", "member.verified"}


def needs_per_event_path(event: Event, version: Version | None) -> bool:
    if event.type in PER_EVENT_TYPES:
        return True
    return version is not None and any(r.limits.budget is not None for r in version.program.rules
                                       if r.event == event.type)


@dataclass
class _Award:
    occurred_at: datetime
    points: int
    counted: int


@dataclass
class _State:
    member: Member
    created: bool = False     # created by this run (its first accepted event says so)
    announced: bool = False
    history: growth.Window = field(default_factory=list)  # (time, growth, kind, reference), as growth.windows
    override: tuple[str, datetime, datetime] | None = None  # an admin's tier: (tier, from, until)
    tier_state: dict[str, Any] | None = None  # the stored tier state (tiers.states), if any
    usage: dict[str, list[_Award]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class FastResult:
    done: int                                   # how many events of the run were handled
    results: list[tuple[str, dict[str, Any]] | DomainError]  # ("accepted" | "duplicate", outcome) or the error


def ingest_run(conn: Connection, run: list[Event], timeline: list[programs.Version] | None = None) -> FastResult:
    """Ingest a prefix of `run` set-based; stops before the first event that has to go the per-event way.
    `timeline`: the program's versions, if the caller has read them."""
    timeline = programs.timeline(conn) if timeline is None else timeline
    ids = [e.id for e in run]
    # the same event sent twice at once is applied once: its id's lock, then what is stored under the
    # id, then the run's members (locked), in one round trip (each statement after the one before it)
    lock = lock_many_read(conn, "event", ids)
    *_, seen, locked = read_together(conn, [*([lock] if lock else []), _seen_read(conn, ids),
                                            _members_read(conn, sorted({e.member_id for e in run}))])
    window = _window(timeline, run)
    states, orders_seen, balances = _load(conn, run, timeline, window, locked)
    results: list[tuple[str, dict[str, Any]] | DomainError] = []
    credits: list[CreditRequest] = []
    new_members: list[Member] = []
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    now = clock.now()
    done = 0
    for event in run:
        version = programs.in_force(timeline, event.occurred_at)
        if needs_per_event_path(event, version):
            break
        if event.id in seen:
            body_hash, outcome = seen[event.id]
            results.append(("duplicate", outcome) if event.same_body(body_hash) else IdempotencyConflict(
                f"event {event.id!r} was already received with different content"))
            done += 1
            continue
        try:
            outcome = _apply(event, version, states, orders_seen, credits, rows, new_members)
        except _Deduction:
            break
        except DomainError as e:
            results.append(e)
            done += 1
            continue
        seen[event.id] = (event.body_hash, outcome)
        rows["events"].append({"id": event.id, "member_id": event.member_id, "type": event.type,
                               "occurred_at": event.occurred_at, "received_at": now,
                               "attributes": event.attributes, "body_hash": event.body_hash, "outcome": outcome})
        results.append(("accepted", outcome))
        done += 1
    _write(conn, new_members, credits, rows, timeline, balances)
    _refresh_tiers(conn, timeline, rows["growth"], states, window)
    return FastResult(done, results)


def _window(timeline: list[programs.Version], run: list[Event]) -> dict[str, datetime] | None:
    """Where each member's growth history needs reading from: two days before the member's earliest
    event in the run (the local day a daily cap counts, in any time zone), with the total before it
    carried (growth.windows). Only a lifetime tier is a plain total; other policies read everything."""
    if any(v.program.tiers.qualification is not Qualification.lifetime for v in timeline):
        return None
    return {m: t - timedelta(days=2) for m, t in _earliest(run).items()}


def _earliest(run: list[Event]) -> dict[str, datetime]:
    """Each member's earliest event time in the run (where what the run reads of their past is counted from)."""
    out: dict[str, datetime] = {}
    for event in run:
        if event.member_id not in out or event.occurred_at < out[event.member_id]:
            out[event.member_id] = event.occurred_at
    return out


def _refresh_tiers(conn: Connection, timeline: list[programs.Version], growth_rows: list[dict[str, Any]],
                   states: dict[str, _State], window: dict[str, datetime] | None) -> None:
    """Bring the tier state of every member whose growth changed up to that member's latest growth in
    the run: where one event at a time leaves it when a member's events come in time order (taking
    every member to the run's latest time would pass reviews that no event of theirs reached)."""
    until: dict[str, datetime] = {}
    for r in growth_rows:
        until[r["member_id"]] = max(r["effective_at"], until.get(r["member_id"], r["effective_at"]))
    grown = [m for m, at in until.items() if programs.in_force(timeline, at) is not None]
    # the states hold each member's history (or its window), this run's growth included
    tiers.refresh(conn, timeline, grown, until,
                  histories={m: [(t, g) for t, g, _, _ in states[m].history] for m in grown},
                  since={m: window[m] for m in grown} if window is not None else None,
                  stored={m: row for m in grown if (row := states[m].tier_state) is not None})


class _Deduction(Exception):
    """A rule gave negative points: this event goes the per-event way."""


def _apply(event: Event, version: Version | None, states: dict[str, _State], orders_seen: set[tuple[str, str]],
           credits: list[CreditRequest], rows: dict[str, list[dict[str, Any]]], new_members: list[Member]
           ) -> dict[str, Any]:
    state = states.get(event.member_id)
    if state is None:
        if version is not None and not version.program.members.auto_create:
            raise UnknownMember(f"no member with id {event.member_id!r} (members.auto_create is off)")
        state = _State(_new_member(event), created=True)  # kept only if the event is accepted
    elif state.member.status is Status.closed:
        raise InvalidMemberState(f"member {event.member_id!r} is closed")
    outcome: dict[str, Any] = {"member_created": state.created and not state.announced,
                               "program_version": version.version if version else None, "effects": []}
    if version is None:
        _keep(state, states, new_members)
        return {**outcome, "rules": [], "points": 0, "growth": 0, "note": "no program was in force at occurred_at"}
    program = version.program
    tz = ZoneInfo(program.program.timezone)
    history = [(t, g) for t, g, _, _ in state.history if t <= event.occurred_at]
    level = tiers.level_at(program, history, event.occurred_at, state.override)
    proposals = propose(program, event, state.member.expression_names(), Tier(level.key, level.multiplier))
    if state.member.status is Status.frozen:
        proposals = withheld_while_frozen(proposals)
    if any(p.status == "proposed" and p.points < 0 for p in proposals):
        raise _Deduction
    order_id = str(event.attributes["order_id"]) if event.type == "order.paid" else None
    if order_id is not None and (event.member_id, order_id) in orders_seen:
        raise DuplicateOrder(f"order {order_id!r} of member {event.member_id!r} was already paid in another event")
    room = _growth_room(program.growth.daily_cap, state, event.occurred_at, tz)
    results = []
    awards = []
    def limit(proposal: Proposal) -> tuple[int, str | None]:
        rule = proposal.rule
        if not rule.limits.per_member:
            return proposal.points, None
        given = state.usage[rule.key]  # what the rule gave the member before
        usage = _usage(given, {*rule.limits.points, *rule.limits.times}, event, tz)
        cut = apply_limits(proposal.points, points_limits=rule.limits.points, times_limits=rule.limits.times,
                           usage=usage, budget_left=None,
                           cooling=cooling(((a.occurred_at, a.counted) for a in given), event.occurred_at,
                                           rule.limits.cooldown))
        return cut.points, cut.limit

    for proposal in proposals:
        result, points, grown, room = settle(proposal, limit, room)
        if points or grown:
            awards.append((proposal.rule, points, grown))
        results.append(result)
    for _, points, _ in awards:
        if points > 0:
            check_points(points)  # as the ledger would at the write, where it would fail the whole run
    _keep(state, states, new_members)
    for rule, points, grown in awards:
        if points > 0:
            credits.append(CreditRequest(event.member_id, points, f"event:{event.id}:{rule.key}", at=event.occurred_at,
                                         pending=rule.pending, reference=order_id, event_id=event.id,
                                         rule_key=rule.key))
        if grown:
            rows["growth"].append({"member_id": event.member_id, "amount": grown, "effective_at": event.occurred_at,
                                   "kind": "earn", "event_id": event.id, "rule_key": rule.key,
                                   "reference": order_id})
            state.history.append((event.occurred_at, grown, "earn", order_id))
        rows["awards"].append({"member_id": event.member_id, "event_id": event.id, "rule_key": rule.key,
                               "program_version": version.version, "occurred_at": event.occurred_at,
                               "order_id": order_id, "points": points, "growth": grown, "points_refunded": 0,
                               "counted": counts(points)})
        state.usage[rule.key].append(_Award(event.occurred_at, points, counts(points)))
    if order_id is not None:
        orders_seen.add((event.member_id, order_id))
        rows["orders"].append({"member_id": event.member_id, "order_id": order_id, "event_id": event.id,
                               "occurred_at": event.occurred_at, "amount": Decimal(event.attributes["amount"]),
                               "refunded": Decimal(0), "points": sum(p for _, p, _ in awards if p > 0),
                               "growth": sum(g for _, _, g in awards), "points_back": 0, "growth_back": 0})
    return {**outcome, "tier": level.key, "rules": results, "points": sum(r.get("points", 0) for r in results),
            "growth": sum(r.get("growth", 0) for r in results)}


def _keep(state: _State, states: dict[str, _State], new_members: list[Member]) -> None:
    """The event is accepted: a member it creates is created, and later events see it as existing."""
    if state.created and not state.announced:
        new_members.append(state.member)
        states[state.member.id] = state
    state.announced = True


def _usage(awards: list[_Award], periods: set[str], event: Event, tz: ZoneInfo) -> dict[str, Usage]:
    out = {}
    for period in periods:
        start, end = period_bounds(period, event.occurred_at, tz)
        inside = [a for a in awards if a.occurred_at >= start and (end is None or a.occurred_at < end)]
        out[period] = Usage(sum(a.points for a in inside if a.points > 0), sum(a.counted for a in inside))
    return out


def _growth_room(cap: int | None, state: _State, at: datetime, tz: ZoneInfo) -> int | None:
    if cap is None:
        return None
    start, end = local_day(at, tz)
    gained = growth.net_gained_in_day(state.history, at, start, end)
    return max(cap - gained, 0)


def _new_member(event: Event) -> Member:
    return Member(event.member_id, Status.active, {}, {"email": False, "phone": False, "real_name": False},
                  random_invite_code(), None, event.occurred_at, None)


def _seen_read(conn: Connection, ids: list[str]) -> Read:
    """The stored body hash and outcome of each of these event ids that was received before."""
    match, params = driver_in(conn, ids)
    return select_read(conn, events, ["id", "body_hash", "outcome"], f"id {match}", params).then(
        lambda rows: {event_id: (body_hash, outcome) for event_id, body_hash, outcome in rows})


def _load(conn: Connection, run: list[Event], timeline: list[programs.Version], window: dict[str, datetime] | None,
          locked: list[Member]) -> tuple[dict[str, _State], set[tuple[str, str]], dict[str, PointState]]:
    """What the run needs of its (`locked`) members' past: growth, tier states, limit usage, orders
    already paid, point balances, all read at once (`read_together`: on PostgreSQL one round trip)."""
    states = {m.id: _State(m) for m in locked}
    known = list(states)
    pairs = sorted({(e.member_id, str(e.attributes["order_id"])) for e in run if e.type == "order.paid"})
    reads = [_orders_read(conn, pairs)] if pairs else []
    growth_since = {m: window[m] for m in known} if window is not None else None
    if known:
        history = [_histories_read(conn, known)] if growth_since is None else growth.window_reads(conn, growth_since)
        reads += [tiers.states_read(conn, known), balances_read(conn, known), *history,
                  *_usage_reads(conn, run, timeline, states)]
    answers = iter(read_together(conn, reads))  # in the order of `reads`
    orders_seen: set[tuple[str, str]] = next(answers) if pairs else set()
    if not known:
        return states, orders_seen, {}
    tier_states, balances = next(answers), next(answers)
    histories = next(answers) if growth_since is None else growth.windows_of(growth_since, next(answers),
                                                                             next(answers))
    for member_id, entries in histories.items():
        states[member_id].history = entries
    for member_id, row in tier_states.items():
        states[member_id].tier_state = row
        states[member_id].override = tiers.override_span(row)
    for found in answers:  # the usage reads' (member, rule, award) triples
        for member_id, rule_key, award in found:
            states[member_id].usage[rule_key].append(award)
    return states, orders_seen, balances


def _histories_read(conn: Connection, known: list[str]) -> Read:
    """Whole growth histories (tier policies other than lifetime read everything), as `windows` gives them."""
    match, params = driver_in(conn, known)

    def answer(cursor: Any) -> dict[str, growth.Window]:
        out: dict[str, growth.Window] = defaultdict(list)
        for member_id, t, amount, kind, reference in cursor.fetchall():
            out[member_id].append((time_from_driver(t), int(amount), kind, reference))
        return out

    return Read("SELECT member_id, effective_at, amount, kind, reference FROM growth_entries"  # noqa: S608
                f" WHERE member_id {match}"
                " ORDER BY member_id, effective_at, id", params, answer)


def _members_read(conn: Connection, ids: list[str]) -> Read:
    """The run's members, locked in id order on PostgreSQL (read for every run: straight to the driver)."""
    match, params = driver_in(conn, ids)
    lock = " FOR UPDATE" if is_postgres(conn) else ""

    def answer(cursor: Any) -> list[Member]:
        return [Member(member_id, Status(status),
                       loads(attributes) if isinstance(attributes, str) else dict(attributes),
                       {"email": bool(email), "phone": bool(phone), "real_name": bool(real_name)}, invite_code,
                       invited_by, time_from_driver(joined_at), status_reason)
                for member_id, status, attributes, email, phone, real_name, invite_code, invited_by, joined_at,
                status_reason in cursor.fetchall()]

    return Read("SELECT id, status, attributes, verified_email, verified_phone, verified_real_name, "  # noqa: S608
                f"invite_code, invited_by, joined_at, status_reason FROM members WHERE id {match} ORDER BY id{lock}",
                params, answer)


# how far before an event the longest period of each limit can start
_REACH = {"day": timedelta(days=2), "week": timedelta(days=8), "month": timedelta(days=32),
          "year": timedelta(days=367)}


def _usage_reads(conn: Connection, run: list[Event], timeline: list[programs.Version],
                 states: dict[str, _State]) -> list[Read]:
    """What the limited rules have awarded each member: the awards in reach of each rule's limit periods
    and cooldown, and one carried total per rule before them (what lifetime limits count: read only for
    those); each read answers (member, rule, award) triples. Rules are read in groups of equal reach, so
    a long cooldown or a yearly limit of one rule does not make every other rule's read reach as far."""
    reach_of: dict[str, timedelta] = {}  # each limited rule's reach, the longest of any version
    lifetime: set[str] = set()
    for v in timeline:
        for r in v.program.rules:
            if r.limits.per_member:
                periods = {*r.limits.points, *r.limits.times}
                own = [_REACH[p] for p in periods if p != "lifetime"] + [r.limits.cooldown or timedelta(0)]
                reach_of[r.key] = max(reach_of.get(r.key, timedelta(0)), *own)
                if "lifetime" in periods:
                    lifetime.add(r.key)
    groups: dict[timedelta, list[str]] = defaultdict(list)
    for key, reach in sorted(reach_of.items()):
        groups[reach].append(key)
    earliest = {m: t for m, t in _earliest(run).items() if m in states}
    return [read for reach, keys in groups.items()
            for read in _awards_reads(conn, {m: t - reach for m, t in earliest.items()}, keys,
                                      carry=not lifetime.isdisjoint(keys))]


def _awards_reads(conn: Connection, since: dict[str, datetime], keys: list[str], *, carry: bool) -> list[Read]:
    """The awards of these rules to each member from `since[member]` on, after (`carry`) one total per
    member and rule of every award before."""
    bounds, params = member_bounds(conn, since)
    match, key_params = driver_in(conn, keys)
    params += key_params  # in the order the placeholders appear: the bounds' first
    net = "CASE WHEN a.points > 0 THEN a.points - a.points_refunded ELSE 0 END"
    window = Read(f"SELECT a.member_id, a.rule_key, a.occurred_at, {net}, a.counted FROM {bounds} b JOIN rule_awards a"  # noqa: S608 (fixed SQL; values are bound)
                  f" ON a.member_id = b.member_id AND a.occurred_at >= b.since AND a.rule_key {match}", params,
                  lambda cursor: [(m, rule, _Award(time_from_driver(t), int(points), int(counted)))
                                  for m, rule, t, points, counted in cursor.fetchall()])
    if not carry:  # every period lies in the window: what came before counts for none
        return [window]
    return [
        Read(f"SELECT a.member_id, a.rule_key, SUM({net}), SUM(a.counted) FROM {bounds} b JOIN rule_awards a"  # noqa: S608 (fixed SQL; values are bound)
             f" ON a.member_id = b.member_id AND a.occurred_at < b.since AND a.rule_key {match}"
             " GROUP BY a.member_id, a.rule_key", params,
             lambda cursor: [(m, rule, _Award(since[m] - growth.CARRY, int(points), int(counted)))
                             for m, rule, points, counted in cursor.fetchall()]),
        window]


def _orders_read(conn: Connection, pairs: list[tuple[str, str]]) -> Read:
    """Which of these (member, order) pairs are already paid (looked up by the orders' key, both columns)."""
    table, params = values_table(conn, {"member_id": "text", "order_id": "text"}, pairs)
    sql = (f"SELECT o.member_id, o.order_id FROM {table} p JOIN orders o"  # noqa: S608
           " ON o.member_id = p.member_id AND o.order_id = p.order_id")
    return Read(sql, params, lambda cursor: {(m, o) for m, o in cursor.fetchall()})


def _unique_codes(conn: Connection, new_members: list[Member]) -> list[Member]:
    """Give a fresh invite code to any new member whose random code is already taken."""
    taken = set(conn.execute(sa.select(members.c.invite_code).where(
        in_list(conn, members.c.invite_code, [m.invite_code for m in new_members]))).scalars())
    out = []
    for m in new_members:
        while m.invite_code in taken:
            m = replace(m, invite_code=random_invite_code())
        taken.add(m.invite_code)
        out.append(m)
    return out


def _write(conn: Connection, new_members: list[Member], credits: list[CreditRequest],
           rows: dict[str, list[dict[str, Any]]], timeline: list[programs.Version],
           balances: dict[str, PointState]) -> None:
    now = clock.now()
    new_members = _unique_codes(conn, new_members) if new_members else []
    bulk_insert(conn, members, [{"id": m.id, "status": m.status.value, "attributes": m.attributes,
                                 "verified_email": False, "verified_phone": False, "verified_real_name": False,
                                 "invite_code": m.invite_code, "invited_by": None, "joined_at": m.joined_at,
                                 "status_reason": None, "created_at": now, "updated_at": now} for m in new_members])
    if credits:
        # the members are locked by _load (or new in this transaction), their balances read there
        post_credits(conn, credits, versions=timeline, balances=balances, keys_are_new=True)
    with pipelined(conn, rows["growth"], rows["awards"], rows["orders"], rows["events"]):
        bulk_insert(conn, growth_entries, rows["growth"])
        growth.add_to_totals(conn, rows["growth"])
        bulk_insert(conn, rule_awards, rows["awards"])
        bulk_insert(conn, orders, rows["orders"])
        bulk_insert(conn, events, rows["events"])
