"""Points over real HTTP and the CLI: idempotent writes, holds, reports, verify."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.e2e.conftest import Cli, Live, assert_problem


def new_member(server: Live, points: int = 0) -> str:
    mid = "p-" + uuid.uuid4().hex[:10]
    assert server.call("POST", "/v1/members", key=server.client, json={"id": mid}).status_code == 201
    if points:
        r = server.call("POST", f"/v1/members/{mid}/points/adjust", key=server.admin,
                        json={"points": points, "reason": "seed"}, headers={"Idempotency-Key": "seed-" + mid})
        assert r.status_code == 201, r.text
    return mid


def post(server: Live, path: str, body: dict, key: str, idem: str) -> object:
    return server.call("POST", path, key=key, json=body, headers={"Idempotency-Key": idem})


def test_spend_is_idempotent_and_never_overspends(server: Live) -> None:
    mid = new_member(server, 100)
    first = post(server, f"/v1/members/{mid}/points/spend", {"points": 30, "reference": "o-1"}, server.client, "s1")
    again = post(server, f"/v1/members/{mid}/points/spend", {"points": 30, "reference": "o-1"}, server.client, "s1")
    assert first.status_code == 201 and again.status_code == 200 and first.json() == again.json()
    assert_problem(post(server, f"/v1/members/{mid}/points/spend", {"points": 31, "reference": "o-1"},
                        server.client, "s1"), 409, "idempotency_conflict")
    assert_problem(post(server, f"/v1/members/{mid}/points/spend", {"points": 500}, server.client, "s2"),
                   409, "insufficient_points")
    assert_problem(server.call("POST", f"/v1/members/{mid}/points/spend", key=server.client, json={"points": 1}),
                   422, "validation_error")

    def race(i: int) -> int:
        return post(server, f"/v1/members/{mid}/points/spend", {"points": 10}, server.client, f"r{i}").status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(race, range(10)))
    assert statuses.count(201) == 7 and statuses.count(409) == 3, statuses
    assert server.call("GET", f"/v1/members/{mid}", key=server.client).json()["points"]["available"] == 0


def test_adjust_needs_an_admin_key_and_a_reason(server: Live) -> None:
    mid = new_member(server)
    assert_problem(post(server, f"/v1/members/{mid}/points/adjust", {"points": 5, "reason": "x"}, server.client, "a"),
                   403, "forbidden")
    assert_problem(post(server, f"/v1/members/{mid}/points/adjust", {"points": 5}, server.admin, "a"),
                   422, "validation_error")
    assert_problem(post(server, "/v1/members/ghost/points/adjust", {"points": 5, "reason": "x"}, server.admin, "a"),
                   404, "unknown_member")


def test_a_checkout_hold_then_partial_capture(server: Live) -> None:
    mid = new_member(server, 100)
    hold = post(server, f"/v1/members/{mid}/points/holds", {"points": 60, "reference": "cart"}, server.client, "h1")
    assert hold.status_code == 201, hold.text
    hold_id = hold.json()["hold"]["id"]
    assert_problem(post(server, f"/v1/members/{mid}/points/spend", {"points": 50}, server.client, "s"),
                   409, "insufficient_points")
    cap = post(server, f"/v1/members/{mid}/points/holds/{hold_id}/capture", {"points": 40}, server.client, "c1")
    assert cap.status_code == 201 and cap.json()["hold"]["status"] == "captured"
    assert_problem(post(server, f"/v1/members/{mid}/points/holds/{hold_id}/void", {}, server.client, "v1"),
                   409, "hold_not_active")
    points = server.call("GET", f"/v1/members/{mid}/points", key=server.client).json()
    assert (points["available"], points["held"]) == (60, 0)
    history = server.call("GET", f"/v1/members/{mid}/points/history?limit=2", key=server.client).json()
    assert [t["kind"] for t in history["transactions"]] == ["release", "capture"] and history["next_cursor"]


def test_reports_and_verify(live: tuple[Live, Cli]) -> None:
    server, cli = live
    new_member(server, 40)
    summary = server.call("GET", "/v1/reports/summary", key=server.admin).json()
    assert summary["points"]["outstanding"] == summary["points"]["issued"] - summary["points"]["redeemed"] - \
        summary["points"]["expired"] - summary["points"]["reversed"]
    assert_problem(server.call("GET", "/v1/reports/summary", key=server.client), 403, "forbidden")
    cli_summary = cli.json("report", "summary")
    assert cli_summary["points"] == summary["points"]
    verified = cli.json("ledger", "verify")
    assert verified["ok"] is True and verified["transactions"] > 0
    jobs = cli.json("jobs", "run", "--now", "2030-01-01T00:00:00Z")
    assert {j["job"] for j in jobs} >= {"points.expire-lots", "points.activate-pending"}


def test_the_cli_moves_points_with_a_retry_safe_key(cli: Cli) -> None:
    cli.run("members", "create", "c-1")
    first = cli.json("points", "credit", "c-1", "50", "--key", "k1")
    again = cli.json("points", "credit", "c-1", "50", "--key", "k1")
    assert first == again and first["balance"]["available"] == 50
    r = cli.run("points", "spend", "c-1", "80", check=False)
    assert r.returncode == 1 and r.stderr.startswith("error: member 'c-1' has 50 spendable points")
    cli.json("points", "spend", "c-1", "20")
    shown = cli.json("members", "show", "c-1")
    assert shown["points"]["available"] == 30 and [lot["points"] for lot in shown["points"]["lots"]] == [30]
    assert cli.run("ledger", "verify").returncode == 0
