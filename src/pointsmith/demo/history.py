"""A few months of realistic member activity for the demo: orders, check-ins, reviews, refunds, complaints.

Deterministic for a given seed, so rerunning the demo sends the same events
(and their ids make the rerun a no-op).
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from pointsmith import clock

# Spend follows a long tail: most members buy little, a few buy a lot (the seeds' 80/20).
SEGMENT_ORDERS_PER_MONTH = {"student": 1.0, "professional": 2.5, "family": 3.0, "senior": 0.8}


def member_events(member_id: str, segment: str, start: datetime, end: datetime, rng: random.Random
                  ) -> Iterator[dict[str, Any]]:
    t = start
    n = 0
    spender = rng.paretovariate(1.6)  # how much this member buys, heavy-tailed
    rate = SEGMENT_ORDERS_PER_MONTH.get(segment, 1.5) * min(spender, 6) / 30
    orders: list[tuple[str, float]] = []
    while True:
        t += timedelta(hours=rng.expovariate(rate + 0.08) * 24)
        if t >= end:
            return
        n += 1
        eid = f"demo-{member_id}-{n}"
        roll = rng.random()
        if roll < rate / (rate + 0.08):
            amount = round(rng.lognormvariate(3.6, 0.8) * min(spender, 4), 2)
            order_id = f"{member_id}-o{n}"
            orders.append((order_id, amount))
            yield _event(eid, "order.paid", member_id, t, order_id=order_id, amount=amount)
            if rng.random() < 0.3:
                yield _event(eid + "-review", "review.posted", member_id, t + timedelta(days=rng.randint(2, 9)),
                             order_id=order_id, content=rng.choice(REVIEWS))
        elif roll < 0.97 or not orders:
            yield _event(eid, "checkin", member_id, t)
        elif rng.random() < 0.8:
            order_id, amount = orders.pop(rng.randrange(len(orders)))
            refund = amount if rng.random() < 0.6 else round(amount / 2, 2)
            yield _event(eid, "order.refunded", member_id, t, order_id=order_id, amount=refund)
        else:
            yield _event(eid, "complaint.judged_malicious", member_id, t)


REVIEWS = ["Fast delivery, well packed.", "Exactly as described.", "Good value for the price.",
           "Second time buying, still great.", "Size runs a little small."]


def _event(eid: str, kind: str, member_id: str, t: datetime, **attributes: Any) -> dict[str, Any]:
    return {"id": eid, "type": kind, "member_id": member_id, "occurred_at": clock.iso(t), "attributes": attributes}


def demo_history(members: list[tuple[str, str, datetime]], end: datetime, *, seed: int = 11,
                 months: int = 4) -> list[dict[str, Any]]:
    """Events for (member id, segment, joined) over the `months` before `end`, in time order."""
    out: list[dict[str, Any]] = []
    for member_id, segment, joined in members:
        rng = random.Random(f"{seed}:{member_id}")
        start = max(joined, end - timedelta(days=30 * months))
        out += member_events(member_id, segment, start, end, rng)
    out = [e for e in out if e["occurred_at"] < clock.iso(end)]
    out.sort(key=lambda e: (e["occurred_at"], e["id"]))
    return out
