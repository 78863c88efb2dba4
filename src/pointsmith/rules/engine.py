"""The rule engine, pure: an event, the member and the program version in, proposed awards out.

Expressions are compiled once per program version (`compile_rules`). Limits
that need history (per-member caps, budgets, the growth cap) are applied by
rules/service.py, which knows the usage so far.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pointsmith.clock import ensure_utc
from pointsmith.errors import ValidationFailed
from pointsmith.events.validation import Event
from pointsmith.expressions import (
    Expression,
    ExpressionError,
    compile_condition,
    compile_expression,
    to_points,
    to_truth,
)
from pointsmith.program.schema import Program, Rule

MAX_AWARD = 10**12  # the ledger's bound on an award of points (ledger.common.MAX_POINTS), for growth too


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    position: int
    when: Expression | None
    points: Expression
    growth: Expression

    def active_at(self, t: datetime) -> bool:
        window = self.rule.active
        if window is None:
            return True
        if window.from_ is not None and t < ensure_utc(window.from_):
            return False
        return not (window.until is not None and t >= ensure_utc(window.until))


@dataclass(frozen=True)
class Proposal:
    """What one rule makes of one event, before per-member limits."""

    rule: Rule
    status: str            # proposed | skipped
    points: int = 0
    growth: int = 0
    reason: str | None = None


@dataclass(frozen=True)
class Tier:
    key: str
    multiplier: Decimal


_compiled: dict[int, dict[str, list[CompiledRule]]] = {}
_lock = threading.Lock()


def compile_rules(program: Program) -> dict[str, list[CompiledRule]]:
    """Rules by event type, in file order, expressions compiled (cached per program object)."""
    key = id(program)
    with _lock:
        cached = _compiled.get(key)
    if cached is not None:
        return cached
    by_type: dict[str, list[CompiledRule]] = {}
    for position, rule in enumerate(program.rules):
        by_type.setdefault(rule.event, []).append(CompiledRule(
            rule, position, compile_condition(rule.when) if rule.when is not None else None,
            compile_expression(rule.points), compile_expression(rule.growth)))
    with _lock:
        _compiled[key] = by_type
    return by_type


FROZEN = "the member is frozen: it earns nothing until it is unfrozen"


def withheld_while_frozen(proposals: list[Proposal]) -> list[Proposal]:
    """What a frozen member's event gives: no points and no growth (a freeze stops earning while the
    account is under review), but a deduction still takes its points."""
    out = []
    for p in proposals:
        if p.status != "proposed" or (p.points <= 0 and not p.growth):
            out.append(p)
        elif p.points < 0:
            out.append(Proposal(p.rule, "proposed", p.points, 0))
        else:
            out.append(Proposal(p.rule, "skipped", reason=FROZEN))
    return out


def environment(event: Event, member: Mapping[str, Any], tier: Tier) -> dict[str, Mapping[str, Any]]:
    return {"event": {**event.attributes, "type": event.type, "id": event.id, "member_id": event.member_id},
            "member": {**member, "tier": tier.key},
            "tier": {"key": tier.key, "multiplier": tier.multiplier}}


def propose(program: Program, event: Event, member: Mapping[str, Any], tier: Tier) -> list[Proposal]:
    """Every rule for the event's type, in file order: what it would award, or why it does not."""
    rules = compile_rules(program).get(event.type, [])
    if not rules:
        return []
    env = environment(event, member, tier)
    out: list[Proposal] = []
    for compiled in rules:
        rule = compiled.rule
        if not compiled.active_at(event.occurred_at):
            out.append(Proposal(rule, "skipped", reason="outside the rule's active window"))
            continue
        try:
            if compiled.when is not None and not to_truth(compiled.when.evaluate(env)):
                out.append(Proposal(rule, "skipped", reason="`when` is false"))
                continue
            points = to_points(compiled.points.evaluate(env))
            # growth value is never spent or taken by a rule (only a refund takes it back): a rule's
            # growth below 0 gives none
            growth = max(to_points(compiled.growth.evaluate(env)), 0)
        except ExpressionError as e:
            out.append(Proposal(rule, "skipped", reason=f"expression failed: {e}"))
            continue
        bounds = ((points, "points", _points_bound(rule)), (growth, "growth", program.growth.daily_cap))
        for amount, what, bound in bounds:
            # past the ledger's bound, and no limit to cut it within: the event is refused, the rule named
            if abs(amount) > MAX_AWARD and not (amount > 0 and bound is not None and bound <= MAX_AWARD):
                raise ValidationFailed(f"rule {rule.key!r} gives {amount:,} {what}; an award is at most {MAX_AWARD:,}")
        out.append(Proposal(rule, "proposed", points, growth))
    return out


def _points_bound(rule: Rule) -> int | None:
    """The most points a limit of `rule` lets one award give, if any does."""
    limits = rule.limits
    return min([*limits.points.values(), *([limits.budget] if limits.budget is not None else [])], default=None)
