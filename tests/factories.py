"""Small builders for test data."""
from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from pointsmith.program import service as programs
from pointsmith.program.validation import load_program

SIMPLE_PROGRAM = """\
program: {name: Simple, currency: USD, point_value: 0.01, timezone: UTC}
members: {auto_create: true}
points: {pending_days: 0, expiry: {policy: none}}
growth: {daily_cap: null}
tiers:
  qualification: lifetime
  levels:
    - {key: member, name: Member, threshold: 0}
    - {key: silver, name: Silver, threshold: 100, multiplier: 1.5}
rules:
  - {key: order, event: order.paid, points: "floor(event.amount)", growth: "floor(event.amount)"}
"""

# tiers by each calendar year's growth, reviewed on 1 January
YEARLY = """\
program: {name: Yearly, currency: USD, point_value: 0.01, timezone: UTC}
members: {auto_create: true}
points: {pending_days: 0, expiry: {policy: none}}
growth: {daily_cap: null}
tiers:
  qualification: period
  period: year
  warn_days: 30
  levels:
    - {key: member, name: Member, threshold: 0}
    - {key: silver, name: Silver, threshold: 1000, multiplier: 1.5}
    - {key: gold, name: Gold, threshold: 5000, multiplier: 2}
    - {key: platinum, name: Platinum, threshold: 20000, multiplier: 3}
rules:
  - {key: order, event: order.paid, points: "floor(event.amount)", growth: "floor(event.amount)"}
"""


def publish(conn: Connection, source: str = SIMPLE_PROGRAM, **kwargs: Any) -> programs.Version:
    return programs.publish(conn, load_program(source), source=source, actor="test", **kwargs).version


def event(eid: str, kind: str = "order.paid", member: str = "m-1", at: str = "2026-01-01T10:00:00Z",
          **attributes: Any) -> dict[str, Any]:
    return {"id": eid, "type": kind, "member_id": member, "occurred_at": at, "attributes": attributes}


def points_program(*, pending_days: int = 0, expiry: str = "{policy: none}", timezone: str = "UTC") -> str:
    """A program whose points section is what a ledger test needs."""
    return (SIMPLE_PROGRAM.replace("pending_days: 0", f"pending_days: {pending_days}")
            .replace("expiry: {policy: none}", f"expiry: {expiry}").replace("timezone: UTC", f"timezone: {timezone}"))
