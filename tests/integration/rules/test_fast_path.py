"""The set-based import path gives exactly what ingesting one event at a time gives."""
from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.events import service as events
from pointsmith.events.tables import events as events_table
from pointsmith.events.validation import parse_event
from pointsmith.growth.tables import growth_entries, growth_totals
from pointsmith.ledger import queries
from pointsmith.ledger.verify import verify
from pointsmith.members.view import member_view
from pointsmith.tiers import service as tiers
from pointsmith.tiers.tables import member_tiers
from tests.factories import SIMPLE_PROGRAM, publish
from tests.integration.rules.test_replay import PROGRAM, history

LIMITED = PROGRAM.replace('pending: true}', 'pending: true, limits: {points: {day: 150}, times: {week: 6}}}') \
    .replace("growth: {daily_cap: null}", "growth: {daily_cap: 120}")


def snapshot(conn: Connection) -> dict[str, Any]:
    assert verify(conn).ok
    outcomes = {r.id: r.outcome for r in conn.execute(sa.select(events_table.c.id, events_table.c.outcome))}
    views = {m: {k: v for k, v in member_view(conn, m).items() if k not in {"invite_code", "joined_at"}}
             for m in ("a", "b", "c")}
    for view in views.values():  # lot ids are allocated differently by the two paths
        view["points"]["lots"] = [{k: v for k, v in lot.items() if k != "id"} for lot in view["points"]["lots"]]
    totals = {m: int(t) for m, t in conn.execute(sa.select(growth_totals.c.member_id, growth_totals.c.total))}
    sums = {m: int(t) for m, t in conn.execute(sa.select(growth_entries.c.member_id, sa.func.sum(
        growth_entries.c.amount)).group_by(growth_entries.c.member_id))}
    assert totals == sums  # each member's total is kept in step with their entries, by both paths
    return {"members": views, "growth_totals": totals,
            "history": {m: [(t["kind"], t["points"], t["effective_at"], t["rule_key"])
                            for t in queries.history(conn, m, limit=1000)[0]] for m in ("a", "b", "c")},
            "outcomes": outcomes}


def ingest_both_ways(engine: Any, program: str, raws: list[dict[str, Any]],
                     sizes: Iterator[int] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The state after ingesting `raws` in batches (`ingest_many`: all at once, or in chunks of `sizes`)
    and after ingesting them one at a time by the per-event path, each in a transaction rolled back."""
    out = []
    for batch in (True, False):
        with engine.connect() as conn, conn.begin() as transaction:
            publish(conn, program)
            codes: list[str] = []
            if batch:
                position = 0
                while position < len(raws):
                    size = next(sizes) if sizes else len(raws)
                    codes += [e.code for e in events.ingest_many(conn, raws[position:position + size]).errors]
                    position += size
            else:
                for raw in raws:
                    try:
                        with conn.begin_nested():
                            events.ingest(conn, parse_event(raw))
                    except Exception as e:
                        codes.append(getattr(e, "code", repr(e)))
            tier_state = {r.member_id: (r.tier, r.level, int(r.lifetime), r.since, r.as_of)
                          for r in conn.execute(sa.select(member_tiers))}
            out.append({**snapshot(conn), "codes": sorted(codes), "tier_state": tier_state,
                        "tiers": {m: tiers.history(conn, m) for m in ("a", "b", "c")}})
            transaction.rollback()
    return out[0], out[1]


def test_a_batch_and_one_at_a_time_end_in_the_same_state(engine: Any) -> None:
    raws = history(seed=5)
    raws.insert(10, dict(raws[3]))                                       # a resend: a duplicate
    raws.insert(20, {**raws[5], "attributes": {"order_id": "x", "amount": 1}})  # same id, other content
    batched, single = ingest_both_ways(engine, LIMITED, raws)
    assert batched["codes"] == single["codes"] and "idempotency_conflict" in batched["codes"]
    assert batched["history"] == single["history"]
    for m in single["members"]:
        assert batched["members"][m] == single["members"][m], m
    assert batched["outcomes"] == single["outcomes"]


TIERED = LIMITED.replace("points: {day: 150}", "points: {day: 150, lifetime: 1200}").replace(
    "    - {key: silver, name: Silver, threshold: 100, multiplier: 1.5}\n",
    "    - {key: silver, name: Silver, threshold: 100, multiplier: 1.5}\n"
    "    - {key: gold, name: Gold, threshold: 900, multiplier: 2}\n"
    "    - {key: platinum, name: Platinum, threshold: 2000, multiplier: 3}\n")


def test_backdated_events_in_small_batches_end_as_one_at_a_time(engine: Any) -> None:
    """Later batches read only a window of each member's history (with the earlier total carried) and
    redo only the tier changes from there on: backdated events, refunds and limits must not notice."""
    assert "gold" in TIERED and "lifetime: 1200" in TIERED
    rng = random.Random(11)
    raws = history(seed=7)
    order = sorted(range(len(raws)), key=lambda i: i + rng.uniform(0, 15))  # arrive up to ~15 events late
    raws = [raws[i] for i in order]
    batched, single = ingest_both_ways(engine, TIERED, raws, iter(lambda: rng.randint(1, 12), 0))
    assert batched["codes"] == single["codes"]
    assert {c["to"] for h in single["tiers"].values() for c in h} >= {"gold", "platinum"}  # the tiers did move
    assert batched["tiers"] == single["tiers"]
    assert batched["tier_state"] == single["tier_state"]
    assert batched["history"] == single["history"]
    for m in single["members"]:
        assert batched["members"][m] == single["members"][m], m
    assert batched["outcomes"] == single["outcomes"]


def test_a_cooldown_cuts_the_same_awards_in_small_late_batches_as_one_at_a_time(engine: Any) -> None:
    """A cooldown looks both ways in time: a late event is cut by an award that came before it in the
    file but after it in time, and a batch must find that award in the window it reads."""
    cooled = TIERED.replace("times: {week: 6}", 'times: {week: 6}, cooldown: "9d"')  # past a week's reach
    rng = random.Random(3)
    raws = history(seed=9)
    order = sorted(range(len(raws)), key=lambda i: i + rng.uniform(0, 15))
    raws = [raws[i] for i in order]
    batched, single = ingest_both_ways(engine, cooled, raws, iter(lambda: rng.randint(1, 12), 0))
    cut = [e for e, o in single["outcomes"].items() if any(r.get("cut_by") == "cooldown" for r in o["rules"])]
    assert len(cut) >= 3, cut
    assert batched["codes"] == single["codes"]
    assert batched["outcomes"] == single["outcomes"]
    assert batched["history"] == single["history"]
    assert batched["members"] == single["members"]


def dense_history(seed: int, n: int = 70) -> list[dict[str, Any]]:
    """Orders, check-ins and partial or whole refunds minutes to hours apart (several a local day, where
    a refund gives growth back to its order's day), arriving up to ten events late."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    paid: list[list[Any]] = []  # [member, order, amount not yet refunded]
    t = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(n):
        t += timedelta(minutes=rng.choice([0, 30, 120, 400, 900]))
        member = rng.choice("abc")
        kind = rng.choices(["order.paid", "checkin", "order.refunded"], [5, 2, 4])[0]
        attrs: dict[str, Any] = {}
        if kind == "order.paid":
            attrs = {"order_id": f"o{i}", "amount": rng.randint(5, 200)}
            paid.append([member, f"o{i}", attrs["amount"]])
        elif kind == "order.refunded":
            if not paid:
                continue
            order = rng.choice(paid)
            member, amount = order[0], order[2] if rng.random() < 0.4 else rng.randint(1, order[2])
            order[2] -= amount
            if not order[2]:
                paid.remove(order)
            attrs = {"order_id": order[1], "amount": amount}
        out.append({"id": f"d{i}", "type": kind, "member_id": member, "occurred_at": clock.iso(t),
                    "attributes": attrs})
    order_of = sorted(range(len(out)), key=lambda i: i + rng.uniform(0, 10))
    return [out[i] for i in order_of]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_refunds_give_growth_back_to_the_daily_cap_alike_in_small_late_batches_and_one_at_a_time(
        engine: Any, seed: int) -> None:
    capped = SIMPLE_PROGRAM.replace("daily_cap: null", "daily_cap: 60").replace("timezone: UTC",
                                                                                 "timezone: Asia/Kolkata")
    rng = random.Random(seed)
    batched, single = ingest_both_ways(engine, capped, dense_history(seed), iter(lambda: rng.randint(1, 6), 0))
    assert batched["codes"] == single["codes"]
    assert batched["outcomes"] == single["outcomes"]
    assert batched["members"] == single["members"]


def test_a_tier_policy_that_reads_whole_histories_ends_as_one_at_a_time(engine: Any) -> None:
    """Under a period policy a batch reads each member's whole growth history, not a window of it."""
    periodic = TIERED.replace("qualification: lifetime", "qualification: period\n  period: quarter")
    assert "period: quarter" in periodic
    rng = random.Random(5)
    batched, single = ingest_both_ways(engine, periodic, history(seed=9), iter(lambda: rng.randint(1, 12), 0))
    assert batched["codes"] == single["codes"]
    assert any(single["tiers"].values())  # the tiers did move
    assert batched["tiers"] == single["tiers"]
    # `as_of` too: a batch takes each member it touched to that member's latest event, not the batch's
    assert batched["tier_state"] == single["tier_state"]
    assert batched["history"] == single["history"]
    assert batched["members"] == single["members"]
    assert batched["outcomes"] == single["outcomes"]


def test_an_award_past_the_ledgers_bound_rejects_its_event_alone_both_ways(engine: Any) -> None:
    raws = [{"id": f"e{i}", "type": "order.paid", "member_id": m, "occurred_at": "2026-01-01T10:00:00Z",
             "attributes": {"order_id": "o", "amount": amount}}
            for i, (m, amount) in enumerate([("a", 5), ("b", 5 * 10**12), ("c", 7), ("b", 3)])]
    raws[3]["attributes"]["order_id"] = "o2"
    batched, single = ingest_both_ways(engine, SIMPLE_PROGRAM, raws)
    assert batched["codes"] == single["codes"] == ["validation_error"]
    assert [batched["members"][m]["points"]["available"] for m in ("a", "b", "c")] == [5, 3, 7]
    assert batched["members"] == single["members"]


def test_a_daily_growth_cap_counts_a_day_whose_midnight_repeats_from_its_first_midnight(engine: Any) -> None:
    """Havana falls back at 01:00 to 00:00 on 2 November 2025: 04:30Z and 05:30Z are both 00:30 local,
    one local day, which the limits' day and the growth cap must agree on, both ways."""
    capped = SIMPLE_PROGRAM.replace("timezone: UTC", "timezone: America/Havana").replace(
        "daily_cap: null", "daily_cap: 100")
    raws = [{"id": f"h{i}", "type": "order.paid", "member_id": "a", "occurred_at": at,
             "attributes": {"order_id": f"o{i}", "amount": 80}}
            for i, at in enumerate(["2025-11-02T04:30:00Z", "2025-11-02T05:30:00Z"])]
    raws += [{"id": m, "type": "login", "member_id": m, "occurred_at": "2025-11-03T00:00:00Z"} for m in "bc"]
    batched, single = ingest_both_ways(engine, capped, raws)
    assert [single["outcomes"][f"h{i}"]["growth"] for i in range(2)] == [80, 20]
    assert batched["outcomes"] == single["outcomes"]


def test_a_batch_judges_each_member_by_the_program_in_force_at_their_own_latest_event(engine: Any) -> None:
    """Silver needs 100 under the first version and 1,000 under the second: a's order of 150 before the
    change makes a silver (and stays in the tier history) though b's event after it ends the batch."""
    stricter = SIMPLE_PROGRAM.replace("threshold: 100", "threshold: 1000")
    raws = [{"id": f"v{i}", "type": "order.paid", "member_id": m, "occurred_at": at,
             "attributes": {"order_id": f"o{i}", "amount": amount}}
            for i, (m, at, amount) in enumerate([("a", "2025-01-10T00:00:00Z", 150), ("b", "2025-03-15T00:00:00Z", 10),
                                                 ("c", "2025-03-16T00:00:00Z", 1)])]
    out = []
    for batch in (True, False):
        with engine.connect() as conn, conn.begin() as transaction:
            publish(conn, SIMPLE_PROGRAM, effective_at=datetime(2025, 1, 1, tzinfo=UTC))
            publish(conn, stricter, effective_at=datetime(2025, 3, 1, tzinfo=UTC))
            if batch:
                assert not events.ingest_many(conn, raws).errors
            else:
                for raw in raws:
                    events.ingest(conn, parse_event(raw))
            out.append(({m: tiers.history(conn, m) for m in "abc"},
                        {r.member_id: (r.tier, r.as_of) for r in conn.execute(sa.select(member_tiers))}))
            transaction.rollback()
    assert [c["to"] for c in out[1][0]["a"]] == ["silver"]
    assert out[0] == out[1]


def test_a_late_event_meets_the_limits_of_the_version_in_force_then_though_a_later_version_changed_them(
        engine: Any) -> None:
    """A bonus once a lifetime under the first version, five a day under the second: a late event under
    the first must count the member's whole past (what a lifetime limit counts), not only the window
    the second version's day limit would need."""
    once = SIMPLE_PROGRAM + "  - {key: bonus, event: checkin, points: 7, limits: {times: {lifetime: 1}}}\n"
    raws = [{"id": f"k{i}", "type": "checkin", "member_id": "a", "occurred_at": at}
            for i, at in enumerate(["2025-02-01T00:00:00Z", "2025-06-01T00:00:00Z"])]
    out = []
    for batch in (True, False):
        with engine.connect() as conn, conn.begin() as transaction:
            publish(conn, once, effective_at=datetime(2025, 1, 1, tzinfo=UTC))
            publish(conn, once.replace("lifetime: 1", "day: 5"), effective_at=datetime(2026, 1, 1, tzinfo=UTC))
            for raw in raws:  # each event a batch of its own: the second one's window starts late
                if batch:
                    assert not events.ingest_many(conn, [raw]).errors
                else:
                    events.ingest(conn, parse_event(raw))
            out.append([events.get(conn, raw["id"])["outcome"]["points"] for raw in raws])
            transaction.rollback()
    assert out[1] == [7, 0]
    assert out[0] == out[1]
