"""Over real HTTP: every error is problem+json with the right status and stable code."""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn
from openapi_spec_validator import validate

from pointsmith.app import create_app
from pointsmith.http import MAX_BATCH_BODY, MAX_BODY
from tests.e2e.conftest import Cli, Live, assert_problem


def new_id() -> str:
    return "m-" + uuid.uuid4().hex[:10]


def test_health_and_openapi_list_every_route(server: Live) -> None:
    assert server.call("GET", "/health").json()["status"] == "ok"
    paths = server.call("GET", "/openapi.json").json()["paths"]
    assert {"/v1/members", "/v1/members/{member_id}", "/v1/events", "/v1/events/batch", "/v1/program",
            "/v1/program/validate"} <= set(paths)
    assert server.call("GET", "/docs").status_code == 200


def test_the_docs_pages_load_nothing_from_outside(server: Live) -> None:
    # FastAPI's own pages take their scripts from a CDN: a blank page on a machine without the internet
    for page, assets in (("/docs", ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css")),
                         ("/redoc", ("/docs-assets/redoc.standalone.js",))):
        html = server.call("GET", page).text
        assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html, page
        for asset in assets:
            assert asset in html
            served = server.call("GET", asset)
            assert served.status_code == 200 and len(served.content) > 100_000, asset


def test_the_openapi_document_is_valid_and_says_what_the_server_answers(server: Live) -> None:
    doc = server.call("GET", "/openapi.json").json()
    validate(doc)
    for ref in _refs(doc):  # every reference points at something (a validator need not follow them)
        target: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
    assert set(doc["components"]["securitySchemes"]) == {"ClientKey", "AdminKey"}
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    batch = doc["paths"]["/v1/events/batch"]["post"]
    assert batch["security"] == [{"ClientKey": []}] and doc["paths"]["/v1/events"]["post"]["security"] == [
        {"ClientKey": []}]
    assert {s: batch["responses"][s]["content"] for s in ("401", "413", "422", "503")} == dict.fromkeys(
        ("401", "413", "422", "503"), problem)
    assert set(doc["paths"]["/v1/program"]["put"]["responses"]) >= {"401", "403"}
    assert set(doc["paths"]["/v1/events/{event_id}"]["get"]["responses"]) >= {"401", "404"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    # each write names the conflicts it refuses with, by code, and documents the answer a retry gets
    conflicts = {("/v1/members/{member_id}/points/spend", "post"): ("insufficient_points", "idempotency_conflict"),
                 ("/v1/members/{member_id}/points/holds/{hold_id}/capture", "post"): ("hold_not_active",),
                 ("/v1/members", "post"): ("member_exists",),
                 ("/v1/members/{member_id}/freeze", "post"): ("invalid_member_state",),
                 ("/v1/members/{member_id}/benefits/{benefit_key}/use", "post"): ("quota_exhausted",
                                                                                  "benefit_not_entitled")}
    for (path, method), codes in conflicts.items():
        answer = doc["paths"][path][method]["responses"]["409"]
        assert answer["content"] == problem and all(f"`{code}`" in answer["description"] for code in codes), path
    assert "200" in doc["paths"]["/v1/members/{member_id}/points/spend"]["post"]["responses"]
    assert "200" in doc["paths"]["/v1/program"]["put"]["responses"]
    # the writes that refuse to run without an idempotency key say so; member creation takes one if given
    key_required = {(path, method): next(p["required"] for p in operation.get("parameters", [])
                                         if p["name"] == "Idempotency-Key")
                    for path, operations in doc["paths"].items() for method, operation in operations.items()
                    if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))}
    assert key_required.pop(("/v1/members", "post")) is False
    assert len(key_required) == 8 and all(key_required.values()), key_required  # points (6), tiers, benefits
    spend = server.call("POST", "/v1/members/nobody/points/spend", key=server.client, json={"points": 1})
    assert_problem(spend, 422, "validation_error")
    assert spend.json()["errors"][0]["path"] == "header.Idempotency-Key"


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_create_then_read_a_member(server: Live) -> None:
    mid = new_id()
    r = server.call("POST", "/v1/members", key=server.client, json={"id": mid, "attributes": {"city": "Lima"}})
    assert r.status_code == 201 and r.json()["attributes"] == {"city": "Lima"}
    assert server.call("GET", f"/v1/members/{mid}", key=server.client).json()["id"] == mid


def test_unknown_member_is_404(server: Live) -> None:
    assert_problem(server.call("GET", "/v1/members/nobody", key=server.client), 404, "unknown_member")


def test_duplicate_member_is_409(server: Live) -> None:
    mid = new_id()
    server.call("POST", "/v1/members", key=server.client, json={"id": mid})
    assert_problem(server.call("POST", "/v1/members", key=server.client, json={"id": mid}), 409, "member_exists")


def test_create_with_an_idempotency_key_answers_a_retry_the_same(server: Live) -> None:
    mid = new_id()
    h = {"Idempotency-Key": "create-" + mid}
    first = server.call("POST", "/v1/members", key=server.client, json={"id": mid}, headers=h)
    again = server.call("POST", "/v1/members", key=server.client, json={"id": mid}, headers=h)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()


def test_bad_json_and_bad_bodies_are_422(server: Live) -> None:
    body = assert_problem(server.call("POST", "/v1/members", key=server.client, content=b"{not json",
                                      headers={"Content-Type": "application/json"}), 422, "validation_error")
    assert body["errors"]
    assert_problem(server.call("POST", "/v1/members", key=server.client, json={"attributes": {}}),
                   422, "validation_error")
    assert_problem(server.call("POST", "/v1/members", key=server.client, json={"id": "a b"}), 422, "validation_error")
    assert_problem(server.call("POST", "/v1/events", key=server.client, content=b"[1]"), 422, "validation_error")


def test_an_event_body_declared_as_other_than_json_is_415_and_stores_nothing(server: Live) -> None:
    event = {"id": "ct-" + new_id(), "type": "checkin", "member_id": new_id(), "occurred_at": "2026-01-01T00:00:00Z"}
    for path, body in (("/v1/events", event), ("/v1/events/batch", {"events": [event]})):
        for declared in ("application/x-www-form-urlencoded", "text/plain; charset=utf-8"):
            refused = server.call("POST", path, key=server.client, content=json.dumps(body),
                                  headers={"Content-Type": declared})
            assert "application/json" in assert_problem(refused, 415, "unsupported_media_type")["detail"]
        assert_problem(server.call("POST", path, content=json.dumps(body), headers={"Content-Type": "text/plain"}),
                       401, "unauthorized")  # who asks comes first
    assert_problem(server.call("GET", f"/v1/events/{event['id']}", key=server.client), 404, "not_found")
    for declared in ("application/json; charset=utf-8", "application/cloudevents+json"):
        sent = server.call("POST", "/v1/events", key=server.client, content=json.dumps(event),
                           headers={"Content-Type": declared})
        assert sent.status_code in (200, 201), sent.text
    for first, status in (("text/plain", 415), ("application/json", None)):  # a repeated header: its first
        for path, body in (("/v1/events", {**event, "id": f"{event['id']}-{first}"}), ("/v1/events/batch",
                                                                                       {"events": [event]})):
            sent = server.http.post(server.base + path, content=json.dumps(body), headers=[
                ("Authorization", f"Bearer {server.client}"), ("Content-Type", first),
                ("Content-Type", "text/plain" if status is None else "application/json")])
            assert sent.status_code == status if status else sent.status_code in (200, 201), (path, sent.text)
    doc = server.call("GET", "/openapi.json").json()["paths"]
    assert "415" in doc["/v1/events"]["post"]["responses"] and "415" in doc["/v1/events/batch"]["post"]["responses"]


def test_a_body_past_the_routes_bound_is_413_whether_or_not_it_declares_its_length(server: Live) -> None:
    big = b"x" * (MAX_BODY + 1)
    for path in ("/v1/events", "/v1/members"):
        assert_problem(server.call("POST", path, key=server.client, content=big), 413, "payload_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked, counted as it comes
            yield from (big[i:i + 65536] for i in range(0, len(big), 65536))

        assert_problem(server.call("POST", path, key=server.client, content=chunks()), 413, "payload_too_large")
    # the batch route takes up to 1,000 events of up to 64 KiB of attributes each
    assert server.call("POST", "/v1/events/batch", key=server.client, content=big).status_code == 422


def test_missing_or_wrong_keys_are_401(server: Live) -> None:
    assert_problem(server.call("GET", "/v1/members/x"), 401, "unauthorized")
    assert_problem(server.call("GET", "/v1/members/x", key="psk_nope_nope"), 401, "unauthorized")
    assert_problem(server.call("GET", "/v1/members/x", headers={"Authorization": "Basic abc"}), 401, "unauthorized")


def test_a_revoked_key_is_refused_at_once(live: tuple[Live, Cli]) -> None:
    server, cli = live
    made = cli.json("keys", "create", "--scope", "client", "--name", "to revoke")
    assert server.call("GET", "/v1/events/nothing", key=made["key"]).status_code == 404  # known key, no event
    cli.run("keys", "revoke", made["id"])
    assert_problem(server.call("GET", "/v1/events/nothing", key=made["key"]), 401, "unauthorized")
    assert server.call("GET", "/v1/events/nothing", key=server.client).status_code == 404  # others still work


def test_a_client_key_on_an_admin_route_is_403(server: Live) -> None:
    assert_problem(server.call("PUT", "/v1/program", key=server.client, json={"program": {}}), 403, "forbidden")
    assert_problem(server.call("POST", "/v1/members/x/freeze", key=server.client, json={"reason": "r"}),
                   403, "forbidden")


def test_the_key_is_checked_before_the_body_is_read(server: Live) -> None:
    malformed = {"content": b"{not json", "headers": {"Content-Type": "application/json", "Idempotency-Key": "k"}}
    assert_problem(server.call("POST", "/v1/members/x/points/spend", **malformed), 401, "unauthorized")
    assert_problem(server.call("POST", "/v1/members", key="psk_nope_nope", **malformed), 401, "unauthorized")
    assert_problem(server.call("POST", "/v1/members/x/points/adjust", key=server.client, **malformed),
                   403, "forbidden")
    assert_problem(server.call("POST", "/v1/members/x/points/adjust", key=server.admin, **malformed),
                   422, "validation_error")


def test_unknown_routes_and_methods_are_problems_too(server: Live) -> None:
    assert_problem(server.call("GET", "/v1/nothing", key=server.client), 404, "not_found")
    assert_problem(server.call("DELETE", "/health"), 405, "method_not_allowed")


def test_an_unexpected_failure_is_500_without_a_stack_trace_and_the_connection_stays(database_url: str) -> None:
    app = create_app(database_url)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    try:
        while not uv.started:
            time.sleep(0.02)
        port = uv.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:  # one keep-alive connection
            r = client.get("/boom")
            after = client.get("/health")  # on the same connection: the server did not drop it
    finally:
        uv.should_exit = True
        thread.join(10)
    body = assert_problem(r, 500, "internal_error")
    assert "secret" not in r.text and "Traceback" not in r.text and body["detail"]
    assert after.status_code == 200
    assert after.extensions["network_stream"] is r.extensions["network_stream"]  # the same connection


def test_a_nul_in_a_path_or_query_names_nothing(server: Live) -> None:
    for path in ("/v1/events/e1%00", "/v1/members/a%00"):
        assert_problem(server.call("GET", path, key=server.client), 404, "not_found")
    assert_problem(server.call("GET", "/v1/members/a?x=%00", key=server.client), 422, "validation_error")


def test_error_answers_carry_the_headers_their_status_needs(server: Live) -> None:
    refused = server.call("PUT", "/v1/events/batch", key=server.client)
    assert_problem(refused, 405, "method_not_allowed")
    assert refused.headers["allow"] == "POST"
    unknown = server.call("GET", "/v1/members/x")
    assert_problem(unknown, 401, "unauthorized")
    assert unknown.headers["www-authenticate"] == "Bearer"


def test_a_batch_body_past_its_bound_is_413(server: Live) -> None:
    big = b" " * (MAX_BATCH_BODY + 1)
    assert_problem(server.call("POST", "/v1/events/batch", key=server.client, content=big), 413, "payload_too_large")


def test_program_publish_and_validate_over_http(server: Live) -> None:
    from tests.factories import SIMPLE_PROGRAM

    ok = server.call("POST", "/v1/program/validate", key=server.admin, content=SIMPLE_PROGRAM,
                     headers={"Content-Type": "application/yaml"})
    assert ok.json() == {"valid": True, "errors": []}
    bad = server.call("POST", "/v1/program/validate", key=server.admin,
                      content=SIMPLE_PROGRAM.replace("threshold: 100", "threshold: 0"))
    assert bad.json()["errors"] == ["tiers.levels[1].threshold: must be greater than 0"]
    put = server.call("PUT", "/v1/program", key=server.admin, content=SIMPLE_PROGRAM)
    assert put.status_code in (200, 201) and put.json()["name"] == "Simple"
    again = server.call("PUT", "/v1/program", key=server.admin, content=SIMPLE_PROGRAM)
    assert again.status_code == 200 and again.json()["version"] == put.json()["version"]
    refused = server.call("PUT", "/v1/program", key=server.admin, content="program: {name: ''}\n")
    assert_problem(refused, 422, "invalid_program")
    assert refused.json()["errors"][0].startswith("program.name")
    assert server.call("GET", "/v1/program", key=server.admin).json()["version"] == put.json()["version"]


def test_events_over_http_are_idempotent_by_id(server: Live) -> None:
    mid = new_id()
    ev = {"id": "ev-" + mid, "type": "order.paid", "member_id": mid, "occurred_at": "2026-01-01T00:00:00Z",
          "attributes": {"order_id": "o1", "amount": 10.5}}
    first = server.call("POST", "/v1/events", key=server.client, json=ev)
    assert first.status_code == 201 and first.json()["status"] == "accepted"
    again = server.call("POST", "/v1/events", key=server.client, json=ev)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    changed = {**ev, "attributes": {"order_id": "o1", "amount": 11}}
    assert_problem(server.call("POST", "/v1/events", key=server.client, json=changed), 409, "idempotency_conflict")
    stored = server.call("GET", f"/v1/events/{ev['id']}", key=server.client).json()
    assert stored["attributes"]["amount"] == 10.5
    batch = server.call("POST", "/v1/events/batch", key=server.client,
                        json={"events": [ev, {"id": "x"}]}).json()
    assert (batch["duplicate"], batch["rejected"]) == (1, 1)


def test_a_preview_over_http_answers_what_the_event_would_earn_and_records_nothing(server: Live) -> None:
    mid = new_id()
    ev = {"id": "pv-" + mid, "type": "order.paid", "member_id": mid, "occurred_at": "2026-01-01T00:00:00Z",
          "attributes": {"order_id": "o1", "amount": 42.5}}
    shown = server.call("POST", "/v1/events/preview", key=server.client, json=ev)
    assert shown.status_code == 200 and shown.json()["preview"] is True, shown.text
    assert (shown.json()["status"], shown.json()["outcome"]["member_created"]) == ("accepted", True)
    assert_problem(server.call("GET", f"/v1/events/{ev['id']}", key=server.client), 404, "not_found")
    assert_problem(server.call("GET", f"/v1/members/{mid}", key=server.client), 404, "unknown_member")
    sent = server.call("POST", "/v1/events", key=server.client, json=ev).json()
    assert sent["outcome"] == shown.json()["outcome"]
    assert_problem(server.call("POST", "/v1/events/preview", json=ev), 401, "unauthorized")
    assert_problem(server.call("POST", "/v1/events/preview", key=server.client, json={"id": "x"}),
                   422, "validation_error")
    assert server.call("GET", "/openapi.json").json()["paths"]["/v1/events/preview"]["post"]["security"] == [
        {"ClientKey": []}]


def test_events_that_no_database_could_store_are_422_and_leave_the_rest_of_a_batch(server: Live) -> None:
    mid = new_id()
    good = {"id": "ok-" + mid, "type": "order.paid", "member_id": mid, "occurred_at": "2026-01-01T00:00:00Z",
            "attributes": {"order_id": "o1", "amount": 3}}
    # not UTF-8: refused, not replaced (two ids that differ only there would become one event)
    raw = '{"id": "u-\xff", "type": "login", "member_id": "' + mid + '", "occurred_at": "2026-01-01T00:00:00Z"}'
    assert_problem(server.call("POST", "/v1/events", key=server.client, content=raw.encode("latin-1")),
                   422, "validation_error")
    year_one = {**good, "id": "y1-" + mid, "occurred_at": "0001-01-01T00:00:00+01:00"}
    assert_problem(server.call("POST", "/v1/events", key=server.client, json=year_one), 422, "validation_error")
    lone_surrogates = [{**good, "id": "s-" + mid, "member_id": mid + "\ud800"}, {**good, "id": "s-\udcff"},
                       {**good, "id": "k-" + mid, "\udcff": 1}]  # quoted by its reject, escaped
    batch = server.call("POST", "/v1/events/batch", key=server.client, content=json.dumps(  # JSON's \u escapes
        {"events": [good, year_one, *lone_surrogates]}), headers={"Content-Type": "application/json"}).json()
    assert (batch["accepted"], batch["rejected"]) == (1, 4), batch
    assert [r["code"] for r in batch["results"][1:]] == ["validation_error"] * 4
    assert batch["results"][3]["id"] == "s-\\udcff"  # shown escaped: no answer can carry it as it came


def test_an_event_id_with_a_slash_can_be_read_back(server: Live) -> None:
    mid = new_id()
    ev = {"id": f"shop/{mid}/1", "type": "login", "member_id": mid, "occurred_at": "2026-01-01T00:00:00Z"}
    assert server.call("POST", "/v1/events", key=server.client, json=ev).status_code == 201
    stored = server.call("GET", f"/v1/events/shop%2F{mid}%2F1", key=server.client)
    assert stored.status_code == 200 and stored.json()["id"] == ev["id"]


def test_the_same_event_sent_ten_times_at_once_credits_once(live: tuple[Live, object]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.factories import SIMPLE_PROGRAM

    server = live[0]
    server.call("PUT", "/v1/program", key=server.admin, content=SIMPLE_PROGRAM)
    mid = new_id()
    ev = {"id": "same-" + mid, "type": "order.paid", "member_id": mid, "occurred_at": "2026-01-01T00:00:00Z",
          "attributes": {"order_id": "o1", "amount": 77}}
    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda _: server.call("POST", "/v1/events", key=server.client, json=ev).status_code,
                                 range(10)))
    assert sorted(statuses) == [200] * 9 + [201], statuses
    member = server.call("GET", f"/v1/members/{mid}", key=server.client).json()
    assert member["points"]["available"] == 77 and member["growth"]["lifetime"] == 77


def test_concurrent_single_events_each_get_their_own_answer(live: tuple[Live, object]) -> None:
    """Many clients at once: the server commits their events in shared transactions (group commit), and
    each request still gets the answer its own event deserves."""
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    from tests.factories import SIMPLE_PROGRAM

    server = live[0]
    server.call("PUT", "/v1/program", key=server.admin, content=SIMPLE_PROGRAM)
    run = new_id()
    members = [f"{run}-{m}" for m in range(4)]

    def order(i: int, order_no: int | None = None) -> dict[str, object]:
        return {"id": f"{run}-e{i}", "type": "order.paid", "member_id": members[i % 4],
                "occurred_at": "2026-01-01T00:00:00Z",
                "attributes": {"order_id": f"o{i if order_no is None else order_no}", "amount": 10 + i}}

    def send_all(events: list[dict[str, object]]) -> list[tuple[object, httpx.Response]]:
        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(lambda ev: (ev["id"], server.call("POST", "/v1/events", key=server.client,
                                                                    json=ev)), events))

    # resent at once: one of the two sends is accepted, the other answered as a duplicate
    first = Counter((event_id, r.status_code) for event_id, r in send_all(
        [order(i) for i in range(20)] + [order(i) for i in range(5)]))
    assert all(first[(f"{run}-e{i}", 201)] == 1 for i in range(20)), first
    assert sum(first[(f"{run}-e{i}", 200)] for i in range(5)) == 5
    # then, at once, events for orders already paid and known ids with other content, among new ones
    later = send_all([order(20 + i, order_no=i) for i in (8, 9)] + [order(40 + i) for i in range(8)]
                     + [{**order(i), "occurred_at": "2026-01-02T00:00:00Z"} for i in (1, 2)])
    answers = dict(later)
    for i in (28, 29):
        assert_problem(answers[f"{run}-e{i}"], 422, "duplicate_order")
    for i in (1, 2):
        assert_problem(answers[f"{run}-e{i}"], 409, "idempotency_conflict")
    assert all(answers[f"{run}-e{40 + i}"].status_code == 201 for i in range(8))
    for m, member in enumerate(members):
        balance = server.call("GET", f"/v1/members/{member}", key=server.client).json()["points"]["available"]
        assert balance == sum(10 + i for i in [*range(20), *range(40, 48)] if i % 4 == m)


def test_bodies_and_query_values_no_database_can_take_are_422_and_change_nothing(server: Live) -> None:
    mid = new_id()
    assert server.call("POST", "/v1/members", key=server.client, json={"id": mid}).status_code == 201
    seed = server.call("POST", f"/v1/members/{mid}/points/adjust", key=server.admin,
                       json={"points": 50, "reason": "seed"}, headers={"Idempotency-Key": "seed-" + mid})
    assert seed.status_code == 201
    json_body = {"Content-Type": "application/json"}
    refused = [  # (method, path, key, raw JSON body)
        ("POST", f"/v1/members/{mid}/points/adjust", server.admin, b'{"points": 5, "reason": "a\\u0000b"}'),
        ("POST", f"/v1/members/{mid}/points/spend", server.client, b'{"points": 5, "reference": "r\\u0000"}'),
        ("POST", f"/v1/members/{mid}/points/spend", server.client, b'{"points": true}'),
        ("POST", f"/v1/members/{mid}/points/spend", server.client, b'{"points": "5"}'),
        ("POST", f"/v1/members/{mid}/points/holds", server.client, b'{"points": 5, "timeout_seconds": "60"}'),
        ("POST", f"/v1/members/{mid}/points/adjust", server.admin, b'{"points": 5, "reason": "x", "allow_debt": 1}'),
        ("POST", "/v1/members", server.client, b'{"id": "n-' + mid.encode() + b'", "attributes": {"k": "\\ud800"}}'),
        ("POST", "/v1/members", server.client, b'{"id": "n-' + mid.encode() + b'", "attributes": {"\\u0000": 1}}'),
        ("PATCH", f"/v1/members/{mid}", server.client, b'{"attributes": {"k": ["ok", "\\u0000"]}}'),
        ("POST", f"/v1/members/{mid}/tier/override", server.admin,
         b'{"tier": "member", "until": "0001-01-01T00:00:00+01:00", "reason": "x"}'),
    ]
    for i, (method, path, key, body) in enumerate(refused):
        answer = server.call(method, path, key=key, content=body, headers={**json_body, "Idempotency-Key": f"k{i}"})
        assert_problem(answer, 422, "validation_error")
    for path in (f"/v1/members/{mid}", f"/v1/members/{mid}/points", f"/v1/members/{mid}/tier", "/v1/reports/summary",
                 "/v1/program", f"/v1/members/{mid}/points/history?cursor=9223372036854775808",
                 "/v1/program/versions/9223372036854775808"):
        query = "" if "?" in path or "versions/" in path else "?at=0001-01-01T00:00:00%2B01:00"
        assert_problem(server.call("GET", path + query, key=server.admin), 422, "validation_error")
    assert server.call("GET", f"/v1/members/{mid}/points", key=server.client).json()["available"] == 50
    assert server.call("GET", f"/v1/members/{mid}", key=server.client).json()["attributes"] == {}
    assert server.call("GET", f"/v1/members/n-{mid}", key=server.client).status_code == 404


def test_a_program_no_database_can_store_or_nested_past_reading_is_refused(server: Live) -> None:
    named = '{"program": {"name": "Shop\\u0000", "currency": "USD", "point_value": 0.01, "timezone": "UTC"}}'
    refused = server.call("PUT", "/v1/program", key=server.admin, content=named,
                          headers={"Content-Type": "application/json"})
    assert_problem(refused, 422, "invalid_program")
    assert refused.json()["errors"] == ["program.name: holds NUL or invalid UTF-8"]
    from tests.factories import SIMPLE_PROGRAM
    assert_problem(server.call("PUT", "/v1/program?effective=0001-01-01T00:00:00%2B01:00", key=server.admin,
                               content=SIMPLE_PROGRAM), 422, "validation_error")
    deep = "[" * 5000 + "]" * 5000
    for content_type in ("application/json", "application/yaml"):
        checked = server.call("POST", "/v1/program/validate", key=server.admin, content=deep,
                              headers={"Content-Type": content_type})
        assert checked.json() == {"valid": False, "errors": ["file: nested too deeply"]}
        assert_problem(server.call("PUT", "/v1/program", key=server.admin, content=deep,
                                   headers={"Content-Type": content_type}), 422, "invalid_program")

