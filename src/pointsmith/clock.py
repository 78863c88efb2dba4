"""The one source of "now".

Everything that needs the current time asks `clock.now()`. Tests, replays and
jobs move time by `frozen(t)` instead of patching `datetime`.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

# the dates the engine keeps: the first program version takes effect at EARLIEST, and periods,
# expiry and reviews of anything before LATEST (exclusive) stay within what a date can hold
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)

_fixed: ContextVar[datetime | None] = ContextVar("pointsmith_now", default=None)


def now() -> datetime:
    fixed = _fixed.get()
    return fixed if fixed is not None else datetime.now(UTC)


@contextmanager
def frozen(at: datetime) -> Iterator[datetime]:
    """Make `now()` answer `at` inside the block (this thread/task only)."""
    token = _fixed.set(ensure_utc(at))
    try:
        yield at
    finally:
        _fixed.reset(token)


def ensure_utc(t: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


class OutOfRange(ValueError):
    """A time outside the dates the engine keeps."""


def within_dates(t: datetime) -> datetime:
    """`t` in UTC, if it lies within the dates the engine keeps (OutOfRange otherwise)."""
    try:
        utc = ensure_utc(t)
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise OutOfRange(f"must be between {EARLIEST.year} and {LATEST.year - 1} (UTC)")
    return utc


def parse_time(text: str) -> datetime:
    """ISO 8601 (a trailing Z allowed) to aware UTC within the dates the engine keeps; ValueError on
    anything else."""
    t = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return within_dates(t)


def iso(t: datetime) -> str:
    return ensure_utc(t).isoformat().replace("+00:00", "Z")
