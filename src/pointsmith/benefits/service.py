"""Benefits (rights and interests): what a member is entitled to, and using up a quota.

A member holds every benefit granted to everyone (`global: true`) and every
benefit of their tier and the tiers below it (a higher tier keeps what lower
tiers give); where several grant one benefit, the highest tier's quota
counts. Quotas run per day / week / month / year in the program's time zone;
a use is idempotent by key, and a refused use is refused the same way on retry.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import clock, idempotency
from pointsmith.benefits.tables import benefit_uses
from pointsmith.db import advisory_lock
from pointsmith.errors import BenefitNotEntitled, InvalidMemberState, QuotaExhausted, ValidationFailed
from pointsmith.idempotency import Outcome
from pointsmith.members import service as members
from pointsmith.members.service import Status
from pointsmith.program.schema import Program, Quota
from pointsmith.rules.limits import period_bounds
from pointsmith.tiers import service as tiers

u = benefit_uses.c


@dataclass(frozen=True)
class Entitlement:
    key: str
    source: str              # "global" or "tier:<key>"
    quota: Quota | None      # None: unlimited


def entitlements(program: Program, tier: str) -> dict[str, Entitlement]:
    """What a member of `tier` is entitled to, in the program's order."""
    out: dict[str, Entitlement] = {b.key: Entitlement(b.key, "global", b.quota) for b in program.benefits
                                   if b.global_}
    if tier not in {level.key for level in program.tiers.levels}:
        return out  # e.g. an override to a tier a later program version dropped: only what everyone has
    for level in program.tiers.levels:
        for grant in level.grants():
            out[grant.key] = Entitlement(grant.key, f"tier:{level.key}",
                                         grant.quota if grant.quota is not None else program.benefit(grant.key).quota)
        if level.key == tier:
            break
    return out


def listing(conn: Connection, program: Program, member_id: str, at: datetime | None = None) -> dict[str, Any]:
    """The member's benefits with what remains of each quota, and what the next tier would add."""
    when = clock.ensure_utc(at) if at else clock.now()
    members.get(conn, member_id)
    tier = tiers.current(conn, program, member_id, when)
    tz = ZoneInfo(program.program.timezone)
    held = entitlements(program, tier)
    keys = [level.key for level in program.tiers.levels]
    index = keys.index(tier) if tier in keys else 0
    upcoming = None
    if index + 1 < len(keys):
        more = entitlements(program, keys[index + 1])
        upcoming = {"tier": keys[index + 1], "benefits": [
            _describe(program, e, None) for k, e in more.items() if k not in held or held[k].quota != e.quota]}
    return {"member_id": member_id, "tier": tier,
            "benefits": [_describe(program, e, _usage(conn, member_id, e, when, tz)) for e in held.values()],
            "next_tier": upcoming}


def use(conn: Connection, program: Program, member_id: str, benefit_key: str, *, key: str, times: int = 1,
        reference: str | None = None, at: datetime | None = None) -> Outcome:
    """Use a benefit `times` times: refused with `benefit_not_entitled` or `quota_exhausted`."""
    if isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= 1000:
        raise ValidationFailed("times must be a whole number from 1 to 1000")
    when = clock.ensure_utc(at) if at else clock.now()
    member = members.get(conn, member_id)
    request = {"benefit": benefit_key, "times": times, "reference": reference, "at": clock.iso(at) if at else None}

    def run() -> dict[str, Any]:
        if member.status is not Status.active:
            raise InvalidMemberState(f"member {member_id!r} is {member.status.value}")
        advisory_lock(conn, f"benefit:{member_id}:{benefit_key}")  # two uses at once never both take the last one
        tz = ZoneInfo(program.program.timezone)
        tier = tiers.current(conn, program, member_id, when)
        held = entitlements(program, tier).get(benefit_key)
        if held is None:
            raise BenefitNotEntitled(f"member {member_id!r} ({tier}) is not entitled to {benefit_key!r}")
        usage = _usage(conn, member_id, held, when, tz)
        if usage is not None and usage["remaining"] < times:
            raise QuotaExhausted(f"{benefit_key!r}: {usage['remaining']} of {usage['limit']} left this "
                                 f"{usage['period']}, {times} asked")
        conn.execute(benefit_uses.insert().values(member_id=member_id, benefit_key=benefit_key, used_at=when,
                                                  times=times, reference=reference))
        after = _usage(conn, member_id, held, when, tz)
        return {"member_id": member_id, "benefit": benefit_key, "times": times, "used_at": clock.iso(when),
                "reference": reference, "quota": after}

    return idempotency.run_once(conn, scope=member_id, key=key, operation="benefits.use", request=request,
                                write=run)


def _usage(conn: Connection, member_id: str, held: Entitlement, at: datetime, tz: ZoneInfo) -> dict[str, Any] | None:
    if held.quota is None:
        return None
    (period, limit), = held.quota.items()
    start, end = period_bounds(period, at, tz)
    used = int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(u.times), 0)).where(
        u.member_id == member_id, u.benefit_key == held.key, u.used_at >= start, u.used_at < end)).scalar_one())
    return {"period": period, "limit": limit, "used": used, "remaining": max(limit - used, 0),
            "resets_at": clock.iso(end) if end else None}


def _describe(program: Program, held: Entitlement, usage: dict[str, Any] | None) -> dict[str, Any]:
    benefit = program.benefit(held.key)
    out: dict[str, Any] = {"key": held.key, "name": benefit.name, "kind": benefit.kind.value, "source": held.source,
                           "description": benefit.description, "unlimited": held.quota is None}
    if held.quota is not None:
        (period, limit), = held.quota.items()
        out["quota"] = usage or {"period": period, "limit": limit}
    return out
