"""The one source of "now".

Everything that needs the current time asks `clock.now()`. Tests, replays and
jobs move time by `frozen(t)` instead of patching `datetime`.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

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


def parse_time(text: str) -> datetime:
    """ISO 8601 (a trailing Z allowed) to aware UTC; ValueError on anything else."""
    t = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return ensure_utc(t)


def iso(t: datetime) -> str:
    return ensure_utc(t).isoformat().replace("+00:00", "Z")
