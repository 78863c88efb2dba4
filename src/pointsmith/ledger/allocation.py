"""Which lots a spend or a clawback takes from: pure, over plain values."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

FAR_FUTURE = datetime.max.replace(tzinfo=None)


@dataclass(frozen=True)
class LotBalance:
    id: int
    remaining: int
    earned_at: datetime
    expires_at: datetime | None


def spend_order(lots: Sequence[LotBalance]) -> list[LotBalance]:
    """Soonest-expiring first (lots that never expire last), then oldest, then by id."""
    return sorted(lots, key=lambda lot: (lot.expires_at is None,
                                         lot.expires_at.replace(tzinfo=None) if lot.expires_at else FAR_FUTURE,
                                         lot.earned_at.replace(tzinfo=None), lot.id))


def spendable(lots: Sequence[LotBalance], at: datetime) -> list[LotBalance]:
    """Lots with points left that have not expired by `at` (the job need not have run)."""
    return [lot for lot in lots if lot.remaining > 0 and (lot.expires_at is None or lot.expires_at > at)]


def take(lots: Sequence[LotBalance], points: int) -> tuple[list[tuple[int, int]], int]:
    """Take up to `points` from `lots` in spend order: ([(lot id, taken)], what could not be taken)."""
    taken: list[tuple[int, int]] = []
    left = points
    for lot in spend_order(lots):
        if left <= 0:
            break
        part = min(lot.remaining, left)
        if part > 0:
            taken.append((lot.id, part))
            left -= part
    return taken, left
