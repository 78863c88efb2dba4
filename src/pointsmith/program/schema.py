"""The program file's schema (CONTRACT §1), section by section.

Structure and types are checked by pydantic; rules that span fields (ascending
thresholds, safe expressions) are checked in validation.py so every problem
of a file can be listed at once.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_serializer, field_validator
from pydantic_core import PydanticCustomError

Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
Amount = int | float | str  # a number or an expression, compiled in validation.py
# what an event's `type` may be (checked on ingestion, and on a rule's `event` so no rule listens for
# a type that can never arrive); \Z, not $: `$` also matches before a final newline
EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\Z")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgramInfo(Section):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    point_value: Annotated[Decimal, Field(gt=0)] = Decimal("0.01")
    timezone: str = "UTC"

    @field_validator("point_value", mode="before")
    @classmethod
    def _exact(cls, v: Any) -> Any:
        return Decimal(repr(v)) if isinstance(v, float) else v


class MembersConfig(Section):
    auto_create: bool = True


class ExpiryPolicy(StrEnum):
    rolling = "rolling"
    calendar = "calendar"
    inactivity = "inactivity"
    none = "none"


class ExpiryConfig(Section):
    policy: ExpiryPolicy = ExpiryPolicy.none
    months: Annotated[int, Field(ge=1, le=1200)] | None = None
    years: Annotated[int, Field(ge=0, le=100)] | None = None


class PointsConfig(Section):
    pending_days: Annotated[int, Field(ge=0, le=3650)] = 0
    expiry: ExpiryConfig = ExpiryConfig()


class GrowthConfig(Section):
    daily_cap: Annotated[int, Field(ge=1)] | None = None


class Qualification(StrEnum):
    lifetime = "lifetime"
    period = "period"
    decay = "decay"


class Period(StrEnum):
    month = "month"
    quarter = "quarter"
    year = "year"


class DecayConfig(Section):
    grace_days: Annotated[int, Field(ge=0, le=3650)] = 30
    rate_per_day: Annotated[Decimal, Field(gt=0, lt=1)] = Decimal("0.01")

    @field_validator("rate_per_day", mode="before")
    @classmethod
    def _exact(cls, v: Any) -> Any:
        return Decimal(repr(v)) if isinstance(v, float) else v


QuotaPeriod = Literal["day", "week", "month", "year"]
Quota = dict[QuotaPeriod, Annotated[int, Field(ge=1)]]  # one period and its limit; absent: unlimited


class BenefitKind(StrEnum):
    identity = "identity"        # who the member is: a badge, a title, a dedicated line
    function = "function"        # something the member may do: priority service, early access
    content = "content"          # something the member may see: member-only content
    consumption = "consumption"  # something the member may use up: free shipping, a lounge visit


class Benefit(Section):
    """A right or interest, granted to everyone (`global`), per tier (`levels[].benefits`) or per plan."""

    key: Key
    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: BenefitKind = BenefitKind.consumption
    quota: Quota | None = None
    global_: Annotated[bool, Field(alias="global")] = False
    description: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Grant(Section):
    """A level's grant of a benefit, with its own quota (a higher tier may give more)."""

    key: Key
    quota: Quota | None = None


class Level(Section):
    key: Key
    name: Annotated[str, Field(min_length=1, max_length=100)]
    threshold: Annotated[int, Field(ge=0)]
    multiplier: Annotated[Decimal, Field(gt=0, le=100)] = Decimal(1)
    benefits: list[Key | Grant] = []

    def grants(self) -> list[Grant]:
        return [Grant(key=b) if isinstance(b, str) else b for b in self.benefits]

    @field_validator("multiplier", mode="before")
    @classmethod
    def _exact(cls, v: Any) -> Any:
        return Decimal(repr(v)) if isinstance(v, float) else v


class TiersConfig(Section):
    qualification: Qualification = Qualification.lifetime
    period: Period = Period.year
    max_drop: Annotated[int, Field(ge=1)] | None = None
    warn_days: Annotated[int, Field(ge=0, le=365)] = 30
    decay: DecayConfig = DecayConfig()
    levels: Annotated[list[Level], Field(min_length=1, max_length=50)] = [
        Level(key="member", name="Member", threshold=0)
    ]


PeriodName = Literal["day", "week", "month", "year", "lifetime"]


COOLDOWN = re.compile(r"([1-9][0-9]{0,8})([smhd])\Z")
COOLDOWN_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
LONGEST_COOLDOWN = timedelta(days=366)


class RuleLimits(Section):
    points: dict[PeriodName, Annotated[int, Field(ge=1)]] = {}
    times: dict[PeriodName, Annotated[int, Field(ge=1)]] = {}
    budget: Annotated[int, Field(ge=1)] | None = None
    # the least time between two awards of the rule to one member ("30s", "10m", "2h", "1d", or seconds)
    # (left out of the stored document when not set: a program's checksum stays what it was before the key)
    cooldown: Annotated[timedelta | None, Field(exclude_if=lambda v: v is None)] = None

    @field_validator("cooldown", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, timedelta):  # from Python: held to what a file may say
            seconds = v.total_seconds()
        elif isinstance(v, int) and not isinstance(v, bool):
            seconds = v
        elif isinstance(v, str) and (found := COOLDOWN.match(v.strip())):
            seconds = int(found[1]) * COOLDOWN_UNITS[found[2]]
        else:
            seconds = 0
        if seconds <= 0 or seconds != int(seconds):
            raise PydanticCustomError("cooldown", 'a duration such as "30s", "10m", "2h" or "1d", or a whole '
                                                  "number of seconds above 0")
        if seconds > LONGEST_COOLDOWN.total_seconds():
            raise PydanticCustomError("cooldown", "at most 366 days")
        return timedelta(seconds=int(seconds))

    @field_serializer("cooldown")
    def _written(self, v: timedelta | None) -> str | None:
        """As a program file writes it (the stored document is read back by `_duration`)."""
        if v is None:
            return None
        seconds = int(v.total_seconds())
        unit = next(u for u in "dhms" if seconds % COOLDOWN_UNITS[u] == 0)
        return f"{seconds // COOLDOWN_UNITS[unit]}{unit}"

    @property
    def per_member(self) -> bool:
        """Whether a per-member limit applies: what the rule gave each member must be counted."""
        return bool(self.points or self.times or self.cooldown)


class ActiveWindow(Section):
    from_: Annotated[datetime | None, Field(alias="from")] = None
    until: datetime | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Rule(Section):
    key: Key
    event: Annotated[str, Field(min_length=1, max_length=100)]
    when: str | StrictBool | None = None  # (lax, 1 would be read as true)
    points: Amount = 0
    growth: Amount = 0
    pending: bool = False
    limits: RuleLimits = RuleLimits()
    active: ActiveWindow | None = None
    description: str | None = None


SECTIONS: dict[str, type[Section]] = {
    "program": ProgramInfo,
    "members": MembersConfig,
    "points": PointsConfig,
    "growth": GrowthConfig,
    "tiers": TiersConfig,
}
LIST_SECTIONS: dict[str, type[Section]] = {"rules": Rule, "benefits": Benefit}
REQUIRED = ("program",)


class Program(BaseModel):
    """A validated program document."""

    model_config = ConfigDict(frozen=True)

    program: ProgramInfo
    members: MembersConfig = MembersConfig()
    points: PointsConfig = PointsConfig()
    growth: GrowthConfig = GrowthConfig()
    tiers: TiersConfig = TiersConfig()
    rules: list[Rule] = []
    benefits: list[Benefit] = []

    def level(self, key: str) -> Level:
        return next(level for level in self.tiers.levels if level.key == key)

    def benefit(self, key: str) -> Benefit:
        """A declared benefit, or (named on a level only) an unlimited one called by its key."""
        return next((b for b in self.benefits if b.key == key), None) or Benefit(key=key, name=key)
