"""Tiers across program versions that change the tier policy: each version's policy rules its own span,
a member the new policy puts elsewhere moves at its effective time (`program`), and what came before
stands, whatever order the events arrive in and whether they are replayed, batched or sent one by one."""
from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from pointsmith import clock, outbox
from pointsmith.events import service as events
from pointsmith.events.replay import ReplayClock
from pointsmith.growth import service as growth
from pointsmith.jobs.service import run_due_within
from pointsmith.members.view import member_view
from pointsmith.program import service as programs
from pointsmith.tiers import service as tiers
from pointsmith.tiers.policy import moves
from tests.factories import SIMPLE_PROGRAM, YEARLY, event, publish

RAISED = SIMPLE_PROGRAM.replace("threshold: 100,", "threshold: 1000,")  # silver: 100 under v1, 1000 from May

def t(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def history_of(conn: Connection, member_id: str) -> list[tuple[str, str, str, str]]:
    return [(c["effective_at"], c["from"], c["to"], c["reason"]) for c in tiers.history(conn, member_id)]


def catch_up(conn: Connection, until: datetime) -> None:
    with clock.frozen(until):
        run_due_within(conn, until)


LIFETIME_EVENTS = [
    event("m1", member="m", at="2026-03-01T10:00:00Z", order_id="m-o1", amount=150),   # silver under v1
    event("m2", member="m", at="2026-06-01T10:00:00Z", order_id="m-o2", amount=900),   # 1050: silver under v2
    event("n1", member="n", at="2026-03-02T10:00:00Z", order_id="n-o1", amount=150),   # silver, then not from May
]

LIFETIME_HISTORY = {
    "m": [("2026-03-01T10:00:00Z", "member", "silver", "upgrade"),
          ("2026-05-01T00:00:00Z", "silver", "member", "program"),
          ("2026-06-01T10:00:00Z", "member", "silver", "upgrade")],
    "n": [("2026-03-02T10:00:00Z", "member", "silver", "upgrade"),
          ("2026-05-01T00:00:00Z", "silver", "member", "program")],
}


@pytest.mark.parametrize("arrival", ["in order", "reversed", "one batch", "one by one reversed", "replayed"])
def test_a_raised_threshold_moves_members_at_its_start_and_keeps_what_came_before(conn: Connection,
                                                                                  arrival: str) -> None:
    publish(conn)
    publish(conn, RAISED, effective_at=t(2026, 5, 1))
    raws = list(reversed(LIFETIME_EVENTS)) if "reversed" in arrival else LIFETIME_EVENTS
    if arrival == "one batch":
        assert events.ingest_many(conn, raws).rejected == 0
    elif arrival == "replayed":
        replay = ReplayClock()
        assert events.ingest_many(conn, sorted(raws, key=lambda r: r["occurred_at"]), replay=replay).rejected == 0
        replay.finish(conn)
    else:
        for raw in raws:
            assert events.ingest_many(conn, [raw]).rejected == 0
    catch_up(conn, t(2026, 7, 1))
    assert {m: history_of(conn, m) for m in ("m", "n")} == LIFETIME_HISTORY
    assert [member_view(conn, "n", at=at)["tier"] for at in (t(2026, 4, 15), t(2026, 5, 15))] == ["silver", "member"]
    assert member_view(conn, "n")["tier"] == "member" and member_view(conn, "m")["tier"] == "silver"
    # the June order is judged by v2's tiers: 150 is no silver then, so no multiplier
    assert events.get(conn, "m2")["outcome"]["tier"] == "member"


def test_the_jobs_move_a_member_without_events_across_a_new_policy_once(conn: Connection) -> None:
    publish(conn)
    assert events.ingest_many(conn, LIFETIME_EVENTS[2:]).rejected == 0
    publish(conn, RAISED, effective_at=t(2026, 5, 1))
    catch_up(conn, t(2026, 4, 30))
    assert history_of(conn, "n") == LIFETIME_HISTORY["n"][:1]
    catch_up(conn, t(2026, 5, 2))
    catch_up(conn, t(2026, 9, 1))
    assert history_of(conn, "n") == LIFETIME_HISTORY["n"]
    assert tiers.states(conn, ["n"])["n"]["tier"] == "member"


def test_a_lowered_period_threshold_upgrades_at_its_start_and_the_next_review_follows_it(conn: Connection) -> None:
    publish(conn, YEARLY)
    publish(conn, YEARLY.replace("threshold: 1000,", "threshold: 500,"), effective_at=t(2026, 7, 1))
    assert events.ingest_many(conn, [event("p1", member="p", at="2026-03-01T10:00:00Z", order_id="p-o1",
                                           amount=600)]).rejected == 0
    catch_up(conn, t(2027, 1, 2))
    # not silver in March (v1 asked 1000); silver from July (v2 asks 500); the 2026 review keeps it
    assert history_of(conn, "p") == [("2026-07-01T00:00:00Z", "member", "silver", "program")]
    assert member_view(conn, "p", at=t(2026, 6, 30))["tier"] == "member"
    assert member_view(conn, "p", at=t(2026, 12, 31))["tier"] == "silver"


def test_a_version_that_leaves_the_tiers_alone_changes_no_tier_and_sends_no_warning_twice(conn: Connection) -> None:
    publish(conn, YEARLY)
    publish(conn, YEARLY.replace("floor(event.amount)\", growth", "floor(event.amount) * 2\", growth"),
            effective_at=t(2026, 6, 1))
    raws = [event("w1", member="w", at="2026-02-01T10:00:00Z", order_id="w-o1", amount=1200),
            event("w2", member="w", at="2027-03-01T10:00:00Z", order_id="w-o2", amount=100)]
    for raw in raws:
        assert events.ingest_many(conn, [raw]).rejected == 0
    catch_up(conn, t(2027, 3, 2))
    assert history_of(conn, "w") == [("2026-02-01T10:00:00Z", "member", "silver", "upgrade")]  # the 2026 review kept it
    catch_up(conn, t(2028, 1, 2))
    assert history_of(conn, "w")[1:] == [("2028-01-01T00:00:00Z", "silver", "member", "review")]
    warnings = [e for e in outbox.since(conn) if e["type"] == "tier.downgrade_warning"]
    assert [(w["review_at"], w["occurred_at"]) for w in warnings] == [("2028-01-01T00:00:00Z", "2027-12-02T00:00:00Z")]


def _random_history(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(60):
        at = t(2026, 1, 1) + (t(2027, 6, 1) - t(2026, 1, 1)) * rng.random()
        member = f"r{rng.randrange(6)}"
        out.append(event(f"r{i}", member=member, at=clock.iso(at.replace(microsecond=0)), order_id=f"o{i}",
                         amount=rng.choice([50, 200, 400, 900, 1500])))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_any_arrival_order_leaves_the_tier_history_the_policies_imply(conn: Connection, seed: int) -> None:
    periodic = YEARLY.replace("period: year", "period: quarter")
    publish(conn, periodic)
    publish(conn, RAISED, effective_at=t(2026, 5, 1))                                    # lifetime, silver 1000
    publish(conn, periodic.replace("threshold: 1000,", "threshold: 300,"), effective_at=t(2026, 11, 1))
    publish(conn, periodic.replace("timezone: UTC", "timezone: Asia/Shanghai"), effective_at=t(2027, 2, 1))
    raws = _random_history(seed)
    rng = random.Random(seed)
    rng.shuffle(raws)
    while raws:  # batches of random sizes, out of time order
        size = rng.randint(1, 12)
        assert events.ingest_many(conn, raws[:size]).rejected == 0
        raws = raws[size:]
    until = t(2027, 6, 2)
    catch_up(conn, until)
    spans = tiers.segments(programs.timeline(conn))
    for member_id in {f"r{i}" for i in range(6)}:
        implied = moves(spans, growth.history(conn, member_id), until)
        assert history_of(conn, member_id) == [(clock.iso(m.at), m.from_tier, m.to_tier, m.reason)
                                               for m in implied], member_id
        stored = tiers.states(conn, [member_id]).get(member_id)
        if implied:
            assert stored is not None and stored["tier"] == implied[-1].to_tier, member_id


def test_a_version_published_later_for_an_earlier_span_is_applied_where_it_was_in_force(conn: Connection) -> None:
    publish(conn)
    publish(conn, SIMPLE_PROGRAM.replace('points: "floor(event.amount)"', 'points: "floor(event.amount) * 2"'),
            effective_at=t(2026, 8, 1))  # rules only: the tiers stay v1's
    for raw in (event("n1", member="n", at="2026-03-02T10:00:00Z", order_id="n-o1", amount=150),
                event("n2", member="n", at="2026-09-01T10:00:00Z", order_id="n-o2", amount=10)):
        assert events.ingest_many(conn, [raw]).rejected == 0
    catch_up(conn, t(2026, 9, 2))
    publish(conn, RAISED, effective_at=t(2026, 5, 1))  # silver at 1000 from May until August
    catch_up(conn, t(2026, 9, 3))
    assert history_of(conn, "n") == [("2026-03-02T10:00:00Z", "member", "silver", "upgrade"),
                                     ("2026-05-01T00:00:00Z", "silver", "member", "program"),
                                     ("2026-08-01T00:00:00Z", "member", "silver", "program")]


def test_an_import_after_a_version_for_an_earlier_span_recomputes_the_history_it_changed(conn: Connection) -> None:
    publish(conn)
    assert events.ingest_many(conn, LIFETIME_EVENTS[:2]).rejected == 0
    publish(conn, RAISED, effective_at=t(2026, 5, 1))
    later = [event("m3", member="m", at="2026-07-10T10:00:00Z", order_id="m-o3", amount=5),
             event("x1", member="x", at="2026-07-10T11:00:00Z", order_id="x-o1", amount=5)]
    assert events.ingest_many(conn, later).rejected == 0  # a batch: the windowed way, before any job ran
    catch_up(conn, t(2026, 7, 11))
    assert history_of(conn, "m") == LIFETIME_HISTORY["m"]


@pytest.mark.parametrize("lived", [False, True])
def test_a_version_taking_effect_on_a_review_day_records_the_review_and_its_warning(conn: Connection,
                                                                                    lived: bool) -> None:
    publish(conn, YEARLY)
    publish(conn, YEARLY.replace("threshold: 5000,", "threshold: 6000,"), effective_at=t(2027, 1, 1))
    assert events.ingest_many(conn, [event("w1", member="w", at="2025-03-01T10:00:00Z", order_id="w-o1",
                                           amount=1200)]).rejected == 0
    if lived:
        catch_up(conn, t(2027, 3, 1))
    assert events.ingest_many(conn, [event("w2", member="w", at="2027-03-01T10:00:00Z", order_id="w-o2",
                                           amount=10)]).rejected == 0
    catch_up(conn, t(2027, 3, 2))
    assert history_of(conn, "w") == [("2025-03-01T10:00:00Z", "member", "silver", "upgrade"),
                                     ("2027-01-01T00:00:00Z", "silver", "member", "review")]
    warnings = [e for e in outbox.since(conn) if e["type"] == "tier.downgrade_warning"]
    assert [(w["review_at"], w["occurred_at"]) for w in warnings] == [("2027-01-01T00:00:00Z", "2026-12-02T00:00:00Z")]


def test_a_warning_is_judged_no_earlier_than_the_policy_that_holds_the_review(conn: Connection) -> None:
    publish(conn)
    quarterly = YEARLY.replace("period: year", "period: quarter")
    publish(conn, quarterly, effective_at=t(2026, 9, 10))
    raws = [event("q1", member="q", at="2026-06-01T10:00:00Z", order_id="q-o1", amount=1200),
            event("q2", member="q", at="2026-08-20T10:00:00Z", order_id="q-o2", amount=900),
            event("q3", member="q", at="2026-09-05T10:00:00Z", order_id="q-o3", amount=900),
            event("q4", member="q", at="2026-11-01T10:00:00Z", order_id="q-o4", amount=10)]
    assert events.ingest_many(conn, raws).rejected == 0
    catch_up(conn, t(2026, 11, 2))
    # the October review judges the third quarter's 1,800 under the quarterly policy: silver stays
    assert [e for e in outbox.since(conn) if e["type"] == "tier.downgrade_warning"] == []
    assert tiers.states(conn, ["q"])["q"]["tier"] == "silver"


def test_the_spans_of_policies_are_remembered_by_their_effective_times_too(conn: Connection) -> None:
    publish(conn)
    publish(conn, RAISED, effective_at=t(2026, 5, 1))
    timeline = programs.timeline(conn)
    moved = [dataclasses.replace(v, effective_at=t(2026, 8, 1)) if v.version == 2 else v for v in timeline]
    assert [s.start for s in tiers.segments(timeline)] == [None, t(2026, 5, 1)]
    assert [s.start for s in tiers.segments(moved)] == [None, t(2026, 8, 1)]


def test_a_new_time_zone_moves_a_review_without_warning_for_it_twice(conn: Connection) -> None:
    publish(conn, YEARLY)
    assert events.ingest_many(conn, [event("z1", member="z", at="2026-02-01T10:00:00Z", order_id="z-o1",
                                           amount=1200)]).rejected == 0
    catch_up(conn, t(2027, 12, 5))  # the warning for the review of 2028-01-01 is sent on 2027-12-02
    publish(conn, YEARLY.replace("timezone: UTC", "timezone: Asia/Shanghai"), effective_at=t(2027, 12, 15))
    catch_up(conn, t(2028, 1, 2))
    warnings = [e for e in outbox.since(conn) if e["type"] == "tier.downgrade_warning"]
    assert [(w["review_at"], w["occurred_at"]) for w in warnings] == [("2028-01-01T00:00:00Z", "2027-12-02T00:00:00Z")]
    assert history_of(conn, "z")[-1] == ("2027-12-31T16:00:00Z", "silver", "member", "review")


LIFETIME_YEARLY_LEVELS = YEARLY.replace("qualification: period\n  period: year\n  warn_days: 30",
                                        "qualification: lifetime")


def _warnings(conn: Connection) -> list[tuple[str, str, str, str]]:
    return [(w["review_at"], w["occurred_at"], w["tier"], w["projected_tier"])
            for w in outbox.since(conn) if w["type"] == "tier.downgrade_warning"]


def _run(conn: Connection, raws: list[dict[str, Any]], stops: list[datetime], until: datetime) -> None:
    """The events in time order, the jobs run at each of `stops` on the way and at `until`."""
    pending = sorted(raws, key=lambda r: r["occurred_at"])
    for stop in [*stops, until]:
        due = [r for r in pending if clock.parse_time(r["occurred_at"]) <= stop]
        for raw in due:
            assert events.ingest_many(conn, [raw]).rejected == 0
        pending = pending[len(due):]
        catch_up(conn, stop)


WAYS = {"imported": [], "jobs now and then": "sparse", "jobs daily": "daily"}


def _stops(way: str, start: datetime, until: datetime) -> list[datetime]:
    if way == "imported":
        return []
    step = timedelta(days=1 if way == "jobs daily" else 45)
    return [start + step * i for i in range(1, (until - start) // step + 1)]


@pytest.mark.parametrize("way", list(WAYS))
@pytest.mark.parametrize(("versions", "raws", "until", "expected"), [
    pytest.param(  # a period policy that begins on its first review day: that review judges 2026 under it
        [(LIFETIME_YEARLY_LEVELS, None), (YEARLY, t(2027, 1, 1))],
        [event("a1", member="a", at="2026-03-01T10:00:00Z", order_id="a-1", amount=1200),
         event("a2", member="a", at="2027-01-10T10:00:00Z", order_id="a-2", amount=1)],
        t(2027, 1, 20), [], id="policy starting on a review"),
    pytest.param(  # a yearly UTC policy, then monthly in Shanghai: two reviews, each warned of
        [(YEARLY, None), (YEARLY.replace("period: year", "period: month").replace("UTC", "Asia/Shanghai"),
                          t(2026, 12, 15))],
        [event("b1", member="b", at="2025-05-01T10:00:00Z", order_id="b-1", amount=6000),
         event("b2", member="b", at="2026-11-10T10:00:00Z", order_id="b-2", amount=1200),
         event("b3", member="b", at="2027-01-10T10:00:00Z", order_id="b-3", amount=1)],
        t(2027, 1, 20), [("2027-01-01T00:00:00Z", "2026-12-02T00:00:00Z", "gold", "silver"),
                         ("2026-12-31T16:00:00Z", "2026-12-15T00:00:00Z", "silver", "member")],
        id="period and time zone changed"),
    pytest.param(  # quarterly, then lifetime from 15 March: the warning due on 2 March went out then
        [(YEARLY.replace("period: year", "period: quarter"), None), (LIFETIME_YEARLY_LEVELS, t(2027, 3, 15))],
        [event("c1", member="c", at="2026-11-01T10:00:00Z", order_id="c-1", amount=1200),
         event("c2", member="c", at="2027-04-10T10:00:00Z", order_id="c-2", amount=1)],
        t(2027, 4, 20), [("2027-04-01T00:00:00Z", "2027-03-02T00:00:00Z", "silver", "member")],
        id="warning due before a policy without reviews"),
    pytest.param(  # monthly in Los Angeles: 30 days before 1 April is 2 March at local midnight (PST)
        [(YEARLY.replace("period: year", "period: month").replace("UTC", "America/Los_Angeles"), None)],
        [event("d1", member="d", at="2026-02-10T10:00:00Z", order_id="d-1", amount=1200),
         event("d2", member="d", at="2026-04-10T10:00:00Z", order_id="d-2", amount=1)],
        t(2026, 4, 20), [("2026-04-01T07:00:00Z", "2026-03-02T08:00:00Z", "silver", "member")],
        id="warning across daylight saving time"),
    pytest.param(  # warn_days 0: at the review, judged on the period it closes
        [(YEARLY.replace("period: year\n  warn_days: 30", "period: month\n  warn_days: 0"), None)],
        [event("e1", member="e", at="2026-03-10T10:00:00Z", order_id="e-1", amount=1200),
         event("e2", member="e", at="2026-05-10T10:00:00Z", order_id="e-2", amount=1)],
        t(2026, 5, 20), [("2026-05-01T00:00:00Z", "2026-05-01T00:00:00Z", "silver", "member")],
        id="warning on the review day"),
    pytest.param(  # looked at on 2 December (2026's 1,200 keeps silver): a refund after it warns of nothing
        [(YEARLY, None)],
        [event("g0", member="g", at="2025-03-01T10:00:00Z", order_id="g-0", amount=1200),
         event("g1", member="g", at="2026-11-01T10:00:00Z", order_id="g-1", amount=1200),
         event("g2", "order.refunded", member="g", at="2026-12-10T10:00:00Z", order_id="g-1", amount=1200)],
        t(2026, 12, 20), [], id="refund after the warning time"),
    pytest.param(  # looked at on 2 December under v1 (1,200 keeps silver); v2 from 20 December asks 2,000
        [(YEARLY, None), (YEARLY.replace("threshold: 1000,", "threshold: 2000,"), t(2026, 12, 20))],
        [event("h0", member="h", at="2025-03-01T10:00:00Z", order_id="h-0", amount=2500),
         event("h1", member="h", at="2026-03-01T10:00:00Z", order_id="h-1", amount=1200),
         event("h2", member="h", at="2027-01-10T10:00:00Z", order_id="h-2", amount=1)],
        t(2027, 1, 20), [], id="review looked at before a new policy"),
])
def test_downgrade_warnings_are_the_same_however_time_passes(
        conn: Connection, way: str, versions: list[tuple[str, datetime | None]], raws: list[dict[str, Any]],
        until: datetime, expected: list[tuple[str, str, str, str]]) -> None:
    for source, effective in versions:
        publish(conn, source, **({"effective_at": effective} if effective else {}))
    _run(conn, raws, _stops(way, clock.parse_time(raws[0]["occurred_at"]), until), until)
    assert sorted(_warnings(conn)) == sorted(expected)


def test_a_new_policy_that_moves_a_member_at_its_start_records_its_own_reason_only_for_that_move(
        conn: Connection) -> None:
    # lifetime with silver at 8000: 7,200 in all is no tier; the yearly policy (as if it had always
    # applied) had the member gold for 2025's 6,000 and its review of 2026's 1,200 gives silver: the
    # member goes from no tier to silver at its start, which is no review of theirs
    publish(conn, LIFETIME_YEARLY_LEVELS.replace("threshold: 1000,", "threshold: 8000,").replace(
        "threshold: 5000,", "threshold: 9000,"))
    publish(conn, YEARLY, effective_at=t(2027, 1, 1))
    raws = [event("f1", member="f", at="2025-03-01T10:00:00Z", order_id="f-1", amount=6000),
            event("f2", member="f", at="2026-03-01T10:00:00Z", order_id="f-2", amount=1200)]
    assert events.ingest_many(conn, raws).rejected == 0
    catch_up(conn, t(2027, 1, 2))
    assert history_of(conn, "f") == [("2027-01-01T00:00:00Z", "member", "silver", "program")]
