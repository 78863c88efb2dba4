"""Tiers, benefits and the tier reports over real HTTP and the CLI."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pointsmith import clock
from tests.e2e.conftest import Cli, Live, assert_problem

PROGRAM = """\
program: {name: Perks, currency: USD, point_value: 0.01, timezone: UTC}
members: {auto_create: true}
points: {pending_days: 0, expiry: {policy: none}}
growth: {daily_cap: null}
tiers:
  qualification: period
  period: year
  warn_days: 5
  levels:
    - {key: member, name: Member, threshold: 0}
    - {key: silver, name: Silver, threshold: 100, multiplier: 1.5, benefits: [free_shipping]}
    - {key: gold, name: Gold, threshold: 300, multiplier: 2, benefits: [{key: free_shipping, quota: {month: 5}}]}
benefits:
  - {key: free_shipping, name: Free shipping, quota: {month: 1}}
rules:
  - {key: order, event: order.paid, points: "floor(event.amount * tier.multiplier)", growth: "floor(event.amount)"}
"""


def order(eid: str, member: str, at: str, amount: float) -> dict[str, Any]:
    return {"id": eid, "type": "order.paid", "member_id": member, "occurred_at": at,
            "attributes": {"order_id": "o" + eid, "amount": amount}}


# benefits are used in real time: the history is an hour old, and reviews fall on the next 1 January
NOW = datetime.now(UTC).replace(microsecond=0)
NEXT_YEAR = datetime(NOW.year + 1, 1, 1, tzinfo=UTC)
YEAR_AFTER = datetime(NOW.year + 2, 1, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def seeded(live: tuple[Live, Cli]) -> Live:
    server, cli = live
    path = cli.write("perks.yaml", PROGRAM)
    cli.run("program", "apply", str(path))
    hour_ago = clock.iso(NOW - timedelta(hours=1))
    r = server.call("POST", "/v1/events/batch", key=server.client, json={"events": [
        order("1", "t-a", hour_ago, 150), order("2", "t-b", hour_ago, 400)]})
    assert r.status_code == 200 and r.json()["accepted"] == 2, r.text
    return server


def test_the_member_view_shows_the_tier_outlook(seeded: Live) -> None:
    body = seeded.call("GET", "/v1/members/t-a", key=seeded.client).json()
    assert body["tier"] == "silver"
    assert body["growth"]["to_next_tier"] == 150 and body["growth"]["next_tier"] == "gold"
    assert body["tier_review"] == {"at": clock.iso(NEXT_YEAR), "kind": "review", "projected_tier": "silver"}
    tier = seeded.call("GET", "/v1/members/t-a/tier", key=seeded.client).json()
    assert tier["qualifying"] == 150 and tier["growth_to_keep"] == 0


def test_benefits_list_and_use_with_quota_errors_as_problems(seeded: Live) -> None:
    listing = seeded.call("GET", "/v1/members/t-a/benefits", key=seeded.client).json()
    assert [b["key"] for b in listing["benefits"]] == ["free_shipping"]
    assert listing["next_tier"]["benefits"][0]["quota"]["limit"] == 5
    use = seeded.call("POST", "/v1/members/t-a/benefits/free_shipping/use", key=seeded.client, json={},
                      headers={"Idempotency-Key": "ship-1"})
    assert use.status_code == 201 and use.json()["quota"]["remaining"] == 0, use.text
    again = seeded.call("POST", "/v1/members/t-a/benefits/free_shipping/use", key=seeded.client, json={},
                        headers={"Idempotency-Key": "ship-1"})
    assert again.status_code == 200 and again.json() == use.json()
    assert_problem(seeded.call("POST", "/v1/members/t-a/benefits/free_shipping/use", key=seeded.client, json={},
                               headers={"Idempotency-Key": "ship-2"}), 409, "quota_exhausted")
    assert_problem(seeded.call("POST", "/v1/members/t-a/benefits/lounge/use", key=seeded.client, json={},
                               headers={"Idempotency-Key": "l-1"}), 409, "benefit_not_entitled")
    assert_problem(seeded.call("POST", "/v1/members/t-a/benefits/free_shipping/use", key=seeded.client, json={}),
                   422, "validation_error")
    assert_problem(seeded.call("GET", "/v1/members/ghost/benefits", key=seeded.client), 404, "unknown_member")


def test_an_override_needs_an_admin_key_and_shows_in_the_history(seeded: Live) -> None:
    body = {"tier": "gold", "until": "2099-01-01T00:00:00Z", "reason": "partner"}
    assert_problem(seeded.call("POST", "/v1/members/t-a/tier/override", key=seeded.client, json=body,
                               headers={"Idempotency-Key": "ov-1"}), 403, "forbidden")
    assert_problem(seeded.call("POST", "/v1/members/t-a/tier/override", key=seeded.admin,
                               json={**body, "tier": "diamond"}, headers={"Idempotency-Key": "ov-0"}),
                   422, "validation_error")
    r = seeded.call("POST", "/v1/members/t-a/tier/override", key=seeded.admin, json=body,
                    headers={"Idempotency-Key": "ov-1"})
    assert r.status_code == 201, r.text
    history = seeded.call("GET", "/v1/members/t-a/tier/history", key=seeded.client).json()["changes"]
    assert history[-1]["reason"] == "manual" and history[-1]["to"] == "gold" and history[-1]["note"] == "partner"


def test_jobs_review_and_the_tier_flow_report(live: tuple[Live, Cli], seeded: Live) -> None:
    _, cli = live
    span = {"from": clock.iso(NOW), "to": clock.iso(YEAR_AFTER)}
    cli.run("jobs", "run", "--now", span["to"])
    flow = seeded.call("GET", "/v1/reports/tier-flow", key=seeded.admin, params=span).json()
    assert flow["flow"]["gold"]["member"] == 1 and flow["moved"]["down"] >= 1, flow
    assert_problem(seeded.call("GET", "/v1/reports/tier-flow", key=seeded.client, params=span), 403, "forbidden")
    assert_problem(seeded.call("GET", "/v1/reports/tier-flow", key=seeded.admin,
                               params={"from": span["to"], "to": span["from"]}), 422, "validation_error")
    text = cli.run("report", "tier-flow", "--from", span["from"], "--to", span["to"]).stdout
    assert "tier flow" in text and "down" in text
    history = cli.json("tiers", "history", "t-b")["changes"]
    assert [(c["to"], c["reason"]) for c in history] == [("gold", "upgrade"), ("member", "review")]
    warned = seeded.call("GET", "/v1/members/t-b/tier", key=seeded.client).json()["warnings"]
    assert [(w["type"], w["tier"], w["projected_tier"]) for w in warned] == [
        ("tier.downgrade_warning", "gold", "member")]
