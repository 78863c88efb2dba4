"""A replayed history ends in the same state as living through it with the jobs running all along."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, Engine

from pointsmith import clock
from pointsmith.analytics.summary import summary
from pointsmith.db import get_engine, read_only, unit_of_work
from pointsmith.events import service as events
from pointsmith.events.replay import ReplayClock
from pointsmith.events.validation import parse_event
from pointsmith.jobs.service import run_due_within
from pointsmith.ledger import queries
from pointsmith.ledger.verify import verify
from pointsmith.members.view import member_view
from tests.databases import create_database, drop_database
from tests.factories import points_program, publish

PROGRAM = points_program(pending_days=3, expiry="{policy: rolling, months: 1}").replace(
    'growth: "floor(event.amount)"}', 'growth: "floor(event.amount)", pending: true}') + (
    "  - {key: checkin, event: checkin, points: 5, limits: {times: {day: 1}}}\n"
    "  - {key: penalty, event: complaint.judged_malicious, points: -60}\n")
START = datetime(2026, 1, 1, tzinfo=UTC)


def history(seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    paid: list[tuple[str, str, int]] = []
    t = START
    for i in range(160):
        t += timedelta(hours=rng.randint(1, 30))
        member = rng.choice(["a", "b", "c"])
        kind = rng.choices(["order.paid", "checkin", "order.refunded", "complaint.judged_malicious"],
                           [5, 4, 2, 1])[0]
        attrs: dict[str, Any] = {}
        if kind == "order.paid":
            attrs = {"order_id": f"o{i}", "amount": rng.randint(5, 300)}
            paid.append((member, f"o{i}", attrs["amount"]))
        elif kind == "order.refunded":
            if not paid:
                continue
            member, order_id, amount = paid.pop(rng.randrange(len(paid)))
            attrs = {"order_id": order_id, "amount": amount}
        out.append({"id": f"h{i}", "type": kind, "member_id": member, "occurred_at": clock.iso(t),
                    "attributes": attrs})
    return out


def state(engine: Engine) -> dict[str, Any]:
    with read_only(engine) as conn:
        assert verify(conn).ok
        return {"members": {m: {k: v for k, v in member_view(conn, m).items() if k not in {"invite_code"}}
                            for m in ("a", "b", "c")},
                "summary": summary(conn), "history": {m: [(t["kind"], t["points"], t["effective_at"])
                                                          for t in queries.history(conn, m, limit=1000)[0]]
                                                      for m in ("a", "b", "c")}}


def setup(engine: Engine) -> None:
    with unit_of_work(engine) as conn:
        publish(conn, PROGRAM)


def test_replay_equals_living_through_it(backend: str, tmp_path: Any) -> None:
    events_ = history()
    replayed_url, lived_url = create_database(backend, tmp_path), create_database(backend, tmp_path)
    try:
        replayed, lived = get_engine(replayed_url), get_engine(lived_url)
        setup(replayed)
        setup(lived)
        with unit_of_work(replayed) as conn:
            replay = ReplayClock()
            result = events.ingest_many(conn, events_, replay=replay)
            replay.finish(conn)
        assert result.rejected == 0, result.errors
        for raw in events_:  # one event at a time, the jobs caught up just before each, as a cron would
            at = clock.parse_time(raw["occurred_at"])
            with unit_of_work(lived) as conn, clock.frozen(at):
                run_due_within(conn, at)
                events.ingest(conn, parse_event(raw))
        with unit_of_work(lived) as conn, clock.frozen(at):
            run_due_within(conn, at)
        got, want = state(replayed), state(lived)
        assert got["history"] == want["history"]
        assert got["members"] == want["members"]
        assert got["summary"]["points"] == want["summary"]["points"]
        assert want["summary"]["points"]["expired"] > 0 and want["summary"]["points"]["reversed"] > 0
    finally:
        drop_database(replayed_url)
        drop_database(lived_url)


def test_without_replay_a_backdated_history_leaves_due_work_for_the_jobs(conn: Connection) -> None:
    publish(conn, PROGRAM)
    events.ingest_many(conn, history()[:40])
    assert queries.balance(conn, "a")["pending"] + queries.balance(conn, "b")["pending"] > 0
    run_due_within(conn, START + timedelta(days=400))
    assert all(queries.balance(conn, m)["pending"] == 0 for m in ("a", "b", "c"))
