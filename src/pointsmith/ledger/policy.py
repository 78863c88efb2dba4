"""The points policy in force at a time: expiry, pending window, time zone, point value."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from pointsmith.ledger.expiry import inactivity_deadline, lot_expires_at
from pointsmith.program import service as programs
from pointsmith.program.schema import ExpiryConfig, Program

UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class PointsPolicy:
    expiry: ExpiryConfig = field(default_factory=ExpiryConfig)
    timezone: ZoneInfo = UTC_ZONE
    pending_days: int = 0
    point_value: Decimal = Decimal("0.01")
    program_version: int | None = None

    @classmethod
    def of(cls, program: Program, version: int | None = None) -> PointsPolicy:
        return cls(program.points.expiry, ZoneInfo(program.program.timezone), program.points.pending_days,
                   program.program.point_value, version)

    # earn times repeat within a batch, and calendar arithmetic in a time zone is not cheap
    _expiry_memo: dict[datetime, datetime | None] = field(default_factory=dict, compare=False, repr=False)

    def expires_at(self, earned_at: datetime) -> datetime | None:
        memo = self._expiry_memo
        if earned_at not in memo:
            if len(memo) > 4096:
                memo.clear()
            memo[earned_at] = lot_expires_at(self.expiry, self.timezone, earned_at)
        return memo[earned_at]

    def available_at(self, earned_at: datetime, *, pending: bool) -> datetime:
        return earned_at + timedelta(days=self.pending_days) if pending and self.pending_days else earned_at

    def inactivity_deadline(self, last_activity_at: datetime | None) -> datetime | None:
        return inactivity_deadline(self.expiry, self.timezone, last_activity_at)


def policy_at(conn: Connection, at: datetime) -> PointsPolicy:
    """The policy of the program version in force at `at` (defaults before any program is published)."""
    return policy_of(programs.active_or_none(conn, at))


def policy_of(version: programs.Version | None) -> PointsPolicy:
    return PointsPolicy.of(version.program, version.version) if version else PointsPolicy()
