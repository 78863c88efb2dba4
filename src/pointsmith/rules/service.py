"""Applying the rules to an event: limits, budgets, the growth cap, refunds, and what each rule did.

Called by event ingestion with the member already locked. Points go through
the ledger (so every posting records the event, the rule and the program
version); growth goes to the growth ledger; `rule_awards` keeps the usage
that limits count, net of refunds.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.db import Read, plain_amount, rows_of
from pointsmith.errors import DuplicateOrder, RefundExceedsOrder, UnknownOrder, ValidationFailed
from pointsmith.events.validation import MAX_DIGITS, Event, significant_digits
from pointsmith.growth import service as growth
from pointsmith.ledger.service import CreditRequest, deduct, post_credits, reverse
from pointsmith.members.service import Member, Status
from pointsmith.program import service as programs
from pointsmith.program.schema import Program, Rule, RuleLimits
from pointsmith.program.service import Version
from pointsmith.rules.engine import Proposal, Tier, propose, withheld_while_frozen
from pointsmith.rules.limits import Usage, apply_limits, period_bounds, refunded_shares, share
from pointsmith.rules.tables import orders, rule_awards, rule_budgets
from pointsmith.tiers import service as tiers

a, o = rule_awards.c, orders.c


def apply(conn: Connection, event: Event, member: Member, version: Version | None) -> dict[str, Any]:
    """Award what the rules give for `event`; returns the outcome's explanation."""
    if version is None:
        return {"rules": [], "points": 0, "growth": 0, "note": "no program was in force at occurred_at"}
    program = version.program
    tz = ZoneInfo(program.program.timezone)
    level = tiers.level_at(program, growth.history(conn, member.id, until=event.occurred_at), event.occurred_at,
                           tiers.override_spans(conn, [member.id]).get(member.id))
    outcome: dict[str, Any] = {"tier": level.key}
    if event.type == "order.refunded":
        outcome["refund"] = _refund(conn, event, member)
    proposals = propose(program, event, member.expression_names(), Tier(level.key, level.multiplier))
    if member.status is Status.frozen:
        proposals = withheld_while_frozen(proposals)
    order_id = str(event.attributes["order_id"]) if event.type == "order.paid" else None
    if order_id is not None and conn.execute(sa.select(o.event_id).where(o.member_id == member.id,
                                                                        o.order_id == order_id)).first():
        raise DuplicateOrder(f"order {order_id!r} of member {member.id!r} was already paid in another event")
    growth_room = _growth_room(conn, program, member.id, event, tz)
    results: list[dict[str, Any]] = []
    credits: list[CreditRequest] = []
    growth_rows: list[dict[str, Any]] = []
    award_rows: list[dict[str, Any]] = []
    for proposal in proposals:
        result, points, grown, growth_room = settle(
            proposal, lambda p: _limit(conn, program, p, member.id, event, tz), growth_room)
        if points < 0:  # a negative incentive takes what the member has, no more
            if credits:  # the rules before it, in file order, have given theirs first
                post_credits(conn, credits, keys_are_new=True)
                credits.clear()
            taken = deduct(conn, member.id, -points, at=event.occurred_at, event_id=event.id,
                           rule_key=proposal.rule.key)
            if taken < -points:
                result.update(points=-taken, cut_by="balance", **({"status": "cut"} if not (taken or grown) else {}))
                points = -taken
        if points or grown:
            _write(conn, proposal.rule, points, grown, event, member, version.version, order_id,
                   credits, growth_rows, award_rows)
        results.append(result)
    if credits:
        post_credits(conn, credits, keys_are_new=True)  # keyed by this event's id, recorded with it
    growth.record(conn, growth_rows)
    if award_rows:
        conn.execute(rule_awards.insert(), award_rows)
    if order_id is not None:
        conn.execute(orders.insert().values(
            member_id=member.id, order_id=order_id, event_id=event.id, occurred_at=event.occurred_at,
            amount=Decimal(event.attributes["amount"]), refunded=Decimal(0),
            points=sum(r["points"] for r in award_rows if r["points"] > 0),
            growth=sum(r["growth"] for r in award_rows), points_back=0, growth_back=0))
    outcome.update(rules=results, points=sum(r.get("points", 0) for r in results),
                   growth=sum(r.get("growth", 0) for r in results))
    if growth_rows or outcome.get("refund", {}).get("growth_back"):
        tiers.refresh(conn, programs.timeline(conn), [member.id], event.occurred_at)
    return outcome


def settle(proposal: Proposal, limit: Callable[[Proposal], tuple[int, str | None]], growth_room: int | None
           ) -> tuple[dict[str, Any], int, int, int | None]:
    """One rule's award after its limits and the growth cap: (explanation, points, growth, growth room left)."""
    result = explain(proposal)
    if proposal.status != "proposed":
        return result, 0, 0, growth_room
    points, cut_by = limit(proposal)
    grown = proposal.growth
    if grown > 0 and growth_room is not None:
        grown = min(grown, growth_room)
        growth_room -= grown
        if grown < proposal.growth:
            result["growth_cut_by"] = "growth.daily_cap"
    cut = bool(cut_by or "growth_cut_by" in result)  # a rule whose amounts were 0 was not cut: it gave 0
    result.update(points=points, growth=grown, status="cut" if cut and not (points or grown) else "awarded")
    if cut_by:
        result["cut_by"] = cut_by
    if points > 0 and proposal.rule.pending:
        result["pending"] = True  # the points wait out the program's pending_days before they can be spent
    return result, points, grown, growth_room


def explain(p: Proposal) -> dict[str, Any]:
    result: dict[str, Any] = {"rule": p.rule.key, "status": p.status}
    if p.status == "proposed":
        result["proposed_points"], result["proposed_growth"] = p.points, p.growth
    else:
        result["reason"] = p.reason
    return result


def _limit(conn: Connection, program: Program, p: Proposal, member_id: str, event: Event, tz: ZoneInfo
           ) -> tuple[int, str | None]:
    limits = p.rule.limits
    if not (limits.per_member or limits.budget):
        return p.points, None
    usage, hot = _usage(conn, member_id, p.rule.key, limits, event, tz)
    if p.points < 0:  # a deduction: only how often it may happen is limited
        cut = apply_limits(0, points_limits={}, times_limits=limits.times, usage=usage, budget_left=None,
                           cooling=hot)
        return (0, cut.limit) if cut.limit else (p.points, None)
    budget_left = None
    if limits.budget is not None and not hot:
        budget_left = limits.budget - _budget_used(conn, p.rule.key)
    cut = apply_limits(p.points, points_limits=limits.points, times_limits=limits.times, usage=usage,
                       budget_left=budget_left, cooling=hot)
    if limits.budget is not None and cut.points > 0:
        conn.execute(rule_budgets.update().where(rule_budgets.c.rule_key == p.rule.key)
                     .values(used=rule_budgets.c.used + cut.points))
    return cut.points, cut.limit


def _usage(conn: Connection, member_id: str, rule_key: str, limits: RuleLimits, event: Event, tz: ZoneInfo
           ) -> tuple[Mapping[str, Usage], bool]:
    """Points (net of refunds) and times of this rule for this member in each period of its limits, and
    whether another counted award lies within its cooldown of this event (what `rules.limits.cooling`
    judges of awards in hand), in one query."""
    order: list[str] = sorted({*limits.points, *limits.times})
    columns = []
    bounds = []
    for period in order:
        start, end = period_bounds(period, event.occurred_at, tz)
        bounds.append(start)
        inside = sa.and_(a.occurred_at >= start, a.occurred_at < end) if end else a.occurred_at >= start
        columns += [sa.func.coalesce(sa.func.sum(sa.case((sa.and_(inside, a.points > 0),
                                                          a.points - a.points_refunded), else_=0)), 0),
                    sa.func.coalesce(sa.func.sum(sa.case((inside, a.counted), else_=0)), 0)]
    if limits.cooldown is not None:
        since, until = event.occurred_at - limits.cooldown, event.occurred_at + limits.cooldown
        bounds.append(since)
        columns.append(sa.func.coalesce(sa.func.sum(sa.case(
            (sa.and_(a.counted > 0, a.occurred_at > since, a.occurred_at < until), 1), else_=0)), 0))
    if not columns:
        return {}, False
    row = conn.execute(sa.select(*columns).where(a.member_id == member_id, a.rule_key == rule_key,
                                                 a.occurred_at >= min(bounds))).one()
    usage = {p: Usage(int(row[2 * i]), int(row[2 * i + 1])) for i, p in enumerate(order)}
    return usage, limits.cooldown is not None and int(row[-1]) > 0


def _budget_used(conn: Connection, rule_key: str) -> int:
    """Lock the rule's budget row (created on first use) and read what it has given."""
    query = sa.select(rule_budgets.c.used).where(rule_budgets.c.rule_key == rule_key)
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("INSERT INTO rule_budgets (rule_key, used) VALUES (:k, 0) ON CONFLICT DO NOTHING"),
                     {"k": rule_key})
        return int(conn.execute(query.with_for_update()).scalar_one())
    used = conn.execute(query).scalar()
    if used is None:
        conn.execute(rule_budgets.insert().values(rule_key=rule_key, used=0))
        return 0
    return int(used)


def _growth_room(conn: Connection, program: Program, member_id: str, event: Event, tz: ZoneInfo) -> int | None:
    cap = program.growth.daily_cap
    if cap is None:
        return None
    return max(cap - growth.gained_in_day(conn, member_id, event.occurred_at, tz), 0)


def _write(conn: Connection, rule: Rule, points: int, grown: int, event: Event, member: Member, version: int,
           order_id: str | None, credits: list[CreditRequest], growth_rows: list[dict[str, Any]],
           award_rows: list[dict[str, Any]]) -> None:
    key = f"event:{event.id}:{rule.key}"
    if points > 0:  # (a deduction was taken by `apply`, which needs to know how much)
        credits.append(CreditRequest(member.id, points, key, at=event.occurred_at, pending=rule.pending,
                                     reference=order_id, event_id=event.id, rule_key=rule.key))
    if grown:
        growth_rows.append({"member_id": member.id, "amount": grown, "effective_at": event.occurred_at,
                            "kind": "earn", "event_id": event.id, "rule_key": rule.key, "reference": order_id})
    award_rows.append({"member_id": member.id, "event_id": event.id, "rule_key": rule.key,
                       "program_version": version, "occurred_at": event.occurred_at, "order_id": order_id,
                       "points": points, "growth": grown, "points_refunded": 0, "counted": counts(points)})


def counts(points: int) -> int:
    """What an award counts toward its rule's `times` limits: an award of points (or a deduction) is one;
    growth alone, or points cut to nothing by a limit, is none."""
    return 1 if points else 0


def _refund(conn: Connection, event: Event, member: Member) -> dict[str, Any]:
    """Take back, cumulatively and exactly, floor(P * R / A) points and growth of the order."""
    order_id = str(event.attributes["order_id"])
    row = conn.execute(sa.select(orders).where(o.member_id == member.id, o.order_id == order_id)).mappings().first()
    if row is None:
        raise UnknownOrder(f"member {member.id!r} has no order {order_id!r}")
    if clock.ensure_utc(row["occurred_at"]) > event.occurred_at:  # the order was not there to refund yet
        paid = clock.iso(row["occurred_at"])
        raise UnknownOrder(f"order {order_id!r} of member {member.id!r} was paid at {paid}, after this refund "
                           f"({clock.iso(event.occurred_at)})")
    amount = plain_amount(Decimal(row["amount"]))
    refunded = plain_amount(Decimal(row["refunded"]) + Decimal(event.attributes["amount"]))
    if refunded > amount:
        raise RefundExceedsOrder(f"order {order_id!r}: refunds of {refunded} exceed its amount {amount}")
    if significant_digits(refunded) > MAX_DIGITS:  # what the order can keep exactly (db.Amount)
        raise ValidationFailed(f"order {order_id!r}: refunds would total {refunded}, more than {MAX_DIGITS} "
                               "significant digits; refund in amounts of the order's own precision")
    points_back = share(row["points"], refunded, amount) - row["points_back"]
    growth_back = share(row["growth"], refunded, amount) - row["growth_back"]
    if points_back > 0:
        reverse(conn, member.id, points_back, key=f"event:{event.id}:refund", reference=order_id,
                own_event=row["event_id"], reason=f"refund of order {order_id}", at=event.occurred_at,
                event_id=event.id)
    if growth_back > 0:
        growth.record(conn, [{"member_id": member.id, "amount": -growth_back, "effective_at": event.occurred_at,
                              "kind": "refund", "event_id": event.id, "rule_key": None, "reference": order_id}])
    _release_usage(conn, member.id, row["event_id"], refunded, amount)
    conn.execute(orders.update().where(o.member_id == member.id, o.order_id == order_id).values(
        refunded=refunded, points_back=row["points_back"] + points_back, growth_back=row["growth_back"] + growth_back))
    return {"order_id": order_id, "points_back": points_back, "growth_back": growth_back,
            "refunded": refunded, "order_amount": amount}


def _release_usage(conn: Connection, member_id: str, order_event_id: str, refunded: Decimal, amount: Decimal) -> None:
    """A refunded order stops counting against the member's caps (and the rule's budget, where the
    award was charged to one) in proportion."""
    timeline = {v.version: v.program for v in programs.timeline(conn)}
    awards = conn.execute(sa.select(a.id, a.rule_key, a.program_version, a.points, a.points_refunded)
                          .where(a.member_id == member_id, a.event_id == order_event_id).order_by(a.id)).all()
    shares = refunded_shares([(points, before) for *_, points, before in awards], refunded, amount)
    for (award_id, rule_key, version, _, before), now_refunded in zip(awards, shares, strict=True):
        conn.execute(rule_awards.update().where(a.id == award_id).values(
            points_refunded=now_refunded, **({"counted": 0} if refunded >= amount else {})))
        if _budgeted(timeline.get(version), rule_key):
            conn.execute(rule_budgets.update().where(rule_budgets.c.rule_key == rule_key)
                         .values(used=rule_budgets.c.used - (now_refunded - before)))



def _budgeted(program: Program | None, rule_key: str) -> bool:
    """Whether the rule had a budget in `program` (what its awards under that version were charged to)."""
    return program is not None and any(r.key == rule_key and r.limits.budget is not None for r in program.rules)


def budget_locks(keys: list[str]) -> list[Read]:
    """PostgreSQL: the budget rows of these rules, created where missing, then locked, in key order (a
    transaction that locked them as its events came could take them in another's opposite order)."""
    ordered = sorted(keys)
    return [Read("INSERT INTO rule_budgets (rule_key, used) SELECT k, 0 FROM unnest(%s::text[]) AS k ORDER BY k"
                 " ON CONFLICT DO NOTHING", (ordered,), rows_of),
            Read("SELECT rule_key FROM rule_budgets WHERE rule_key = ANY(%s) ORDER BY rule_key FOR UPDATE",
                 (ordered,), rows_of)]
