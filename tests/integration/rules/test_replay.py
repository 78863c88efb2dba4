"""A replayed history ends in the same state as living through it with the jobs running all along."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
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
from pointsmith.outbox import domain_events
from pointsmith.tiers.jobs import WARNING
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


def state(engine: Engine, members: tuple[str, ...] = ("a", "b", "c")) -> dict[str, Any]:
    with read_only(engine) as conn:
        assert verify(conn).ok
        return {"members": {m: {k: v for k, v in member_view(conn, m).items() if k not in {"invite_code"}}
                            for m in members},
                "summary": summary(conn), "history": {m: [(t["kind"], t["points"], t["effective_at"])
                                                          for t in queries.history(conn, m, limit=1000)[0]]
                                                      for m in members},
                "warnings": [(e["member_id"], e["occurred_at"]) for e in
                             conn.execute(sa.select(domain_events.c.member_id, domain_events.c.occurred_at)
                                          .where(domain_events.c.type == WARNING)
                                          .order_by(domain_events.c.member_id, domain_events.c.occurred_at))
                             .mappings()]}


Versions = list[tuple[str, datetime | None]]  # a program's source and when it takes effect (None: at once)


def setup(engine: Engine, versions: Versions) -> None:
    with unit_of_work(engine) as conn:
        for source, effective_at in versions:
            publish(conn, source, effective_at=effective_at)


def replayed_and_lived(backend: str, tmp_path: Any, versions: Versions, events_: list[dict[str, Any]],
                       members: tuple[str, ...] = ("a", "b", "c")) -> tuple[dict[str, Any], dict[str, Any]]:
    """The state a replay of `events_` leaves, and the state of living through them (the jobs caught up
    just before each event, as a cron would)."""
    replayed_url, lived_url = create_database(backend, tmp_path), create_database(backend, tmp_path)
    try:
        replayed, lived = get_engine(replayed_url), get_engine(lived_url)
        setup(replayed, versions)
        setup(lived, versions)
        with unit_of_work(replayed) as conn:
            replay = ReplayClock()
            result = events.ingest_many(conn, events_, replay=replay)
            replay.finish(conn)
        assert result.rejected == 0, result.errors
        for raw in events_:
            at = clock.parse_time(raw["occurred_at"])
            with unit_of_work(lived) as conn, clock.frozen(at):
                run_due_within(conn, at)
                events.ingest(conn, parse_event(raw))
        with unit_of_work(lived) as conn, clock.frozen(at):
            run_due_within(conn, at)
        return state(replayed, members), state(lived, members)
    finally:
        drop_database(replayed_url)
        drop_database(lived_url)


def test_replay_equals_living_through_it(backend: str, tmp_path: Any) -> None:
    got, want = replayed_and_lived(backend, tmp_path, [(PROGRAM, None)], history())
    assert got["history"] == want["history"]
    assert got["members"] == want["members"]
    assert got["summary"]["points"] == want["summary"]["points"]
    assert want["summary"]["points"]["expired"] > 0 and want["summary"]["points"]["reversed"] > 0


def _order(eid: str, member: str, at: str, amount: int) -> dict[str, Any]:
    return {"id": eid, "type": "order.paid", "member_id": member, "occurred_at": at,
            "attributes": {"order_id": eid, "amount": amount}}


def test_a_replay_expires_for_inactivity_under_the_version_then_in_force(backend: str, tmp_path: Any) -> None:
    idle = points_program(pending_days=0, expiry="{policy: inactivity, months: 1}")
    versions = [(idle, None), (idle.replace("{policy: inactivity, months: 1}", "{policy: none}"),
                               datetime(2026, 6, 1, tzinfo=UTC))]  # in force before the real clock's today
    got, want = replayed_and_lived(backend, tmp_path, versions, [
        _order("a1", "a", "2026-01-01T00:00:00Z", 100), _order("a2", "a", "2026-03-15T00:00:00Z", 10)], ("a",))
    assert got == want
    assert want["summary"]["points"]["expired"] == 100


def test_a_replay_warns_of_a_downgrade_when_the_version_then_in_force_says(backend: str, tmp_path: Any) -> None:
    monthly = points_program(pending_days=0, expiry="{policy: none}").replace(
        "qualification: lifetime", "qualification: period\n  period: month\n  warn_days: 20")
    versions = [(monthly, None), (monthly.replace("warn_days: 20", "warn_days: 5"),
                                  datetime(2027, 1, 1, tzinfo=UTC))]
    got, want = replayed_and_lived(backend, tmp_path, versions, [
        _order("a1", "a", "2026-01-05T00:00:00Z", 150), _order("b1", "b", "2026-02-03T00:00:00Z", 1),
        _order("a2", "a", "2026-02-15T00:00:00Z", 150), _order("a3", "a", "2026-03-05T00:00:00Z", 1)], ("a", "b"))
    assert got == want
    assert [m for m, _ in want["warnings"]] == ["a"]  # 20 days before its March review: a had no growth yet


def test_without_replay_a_backdated_history_leaves_due_work_for_the_jobs(conn: Connection) -> None:
    publish(conn, PROGRAM)
    events.ingest_many(conn, history()[:40])
    assert queries.balance(conn, "a")["pending"] + queries.balance(conn, "b")["pending"] > 0
    run_due_within(conn, START + timedelta(days=400))
    assert all(queries.balance(conn, m)["pending"] == 0 for m in ("a", "b", "c"))


def test_a_late_catch_up_expires_for_inactivity_as_running_all_along_would(conn: Connection) -> None:
    idle = points_program(pending_days=0, expiry="{policy: inactivity, months: 1}")
    publish(conn, idle)
    publish(conn, idle.replace("months: 1", "months: 6"), effective_at=datetime(2026, 3, 1, tzinfo=UTC))
    events.ingest(conn, parse_event(_order("a1", "a", "2026-01-01T00:00:00Z", 100)))
    run_due_within(conn, datetime(2026, 3, 31, tzinfo=UTC))  # one run, a month after v1's deadline passed
    assert queries.balance(conn, "a")["available"] == 0
    expiry = [t for t in queries.history(conn, "a")[0] if t["kind"] == "expire"]
    assert [(t["points"], t["effective_at"]) for t in expiry] == [(-100, "2026-02-01T00:00:00Z")]


def test_points_pending_past_their_expiry_expire_as_they_become_available(conn: Connection) -> None:
    publish(conn, points_program(pending_days=40, expiry="{policy: rolling, months: 1}").replace(
        'growth: "floor(event.amount)"}', 'growth: "floor(event.amount)", pending: true}'))
    events.ingest(conn, parse_event(_order("a1", "a", "2026-01-01T00:00:00Z", 100)))
    run_due_within(conn, datetime(2026, 3, 1, tzinfo=UTC))
    between = queries.balance(conn, "a", at=datetime(2026, 2, 5, tzinfo=UTC))  # expiry due, not yet available
    assert (between["available"], between["pending"]) == (0, 100)
    assert queries.balance(conn, "a") == {"available": 0, "pending": 0, "held": 0, "debt": 0}
    expiry = [t["effective_at"] for t in queries.history(conn, "a")[0] if t["kind"] == "expire"]
    assert expiry == ["2026-02-10T00:00:00Z"]  # when the 40 days ended


def test_an_import_that_runs_past_a_review_before_the_jobs_still_warns_as_a_replay_does(backend: str,
                                                                                        tmp_path: Any) -> None:
    monthly = points_program(pending_days=0, expiry="{policy: none}").replace(
        "qualification: lifetime", "qualification: period\n  period: month\n  warn_days: 7")
    history_ = [_order("a1", "a", "2025-01-10T00:00:00Z", 150), _order("a2", "a", "2025-03-20T00:00:00Z", 5)]
    got, want = replayed_and_lived(backend, tmp_path, [(monthly, None)], history_, ("a",))
    assert want["warnings"] == [("a", datetime(2025, 2, 22, tzinfo=UTC))]  # before the March review
    url = create_database(backend, tmp_path)
    try:
        engine = get_engine(url)
        setup(engine, [(monthly, None)])
        with unit_of_work(engine) as conn:
            assert events.ingest_many(conn, history_).rejected == 0  # the second event passes the review
        end = datetime(2025, 3, 20, tzinfo=UTC)
        with unit_of_work(engine) as conn, clock.frozen(end):
            run_due_within(conn, end)
        assert state(engine, ("a",)) == want == got
    finally:
        drop_database(url)


def test_one_jobs_run_across_a_version_change_warns_as_two_runs_do(backend: str, tmp_path: Any) -> None:
    lifetime = points_program(pending_days=0, expiry="{policy: none}")
    monthly = lifetime.replace("qualification: lifetime", "qualification: period\n  period: month\n  warn_days: 5")
    versions: Versions = [(lifetime, None), (monthly, datetime(2025, 3, 15, tzinfo=UTC))]
    warnings = []
    for stops in ([datetime(2025, 4, 20, tzinfo=UTC)], [datetime(2025, 3, 16, tzinfo=UTC),
                                                         datetime(2025, 4, 20, tzinfo=UTC)]):
        url = create_database(backend, tmp_path)
        try:
            engine = get_engine(url)
            setup(engine, versions)
            with unit_of_work(engine) as conn:
                events.ingest(conn, parse_event(_order("b1", "b", "2025-02-10T00:00:00Z", 150)))  # silver
            for stop in stops:
                with unit_of_work(engine) as conn, clock.frozen(stop):
                    run_due_within(conn, stop)
            warnings.append(state(engine, ("b",))["warnings"])
        finally:
            drop_database(url)
    assert warnings[0] == warnings[1] == [("b", datetime(2025, 3, 27, tzinfo=UTC))]  # for the April review
