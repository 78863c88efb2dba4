"""`POST /v1/events` by the app's lane (plain ASGI, ahead of FastAPI) answers exactly as the FastAPI route does."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pointsmith.app import create_app
from pointsmith.auth.service import create_key
from pointsmith.db import get_engine, unit_of_work
from pointsmith.http import PROBLEM
from tests.factories import event, publish


@pytest.fixture
def app(fresh_database: str) -> Iterator[FastAPI]:
    with unit_of_work(get_engine(fresh_database)) as conn:
        publish(conn)
    app = create_app(fresh_database)
    yield app
    app.state.group_commit.close()


def _key(app: FastAPI, scope: str) -> str:
    with unit_of_work(app.state.engine) as conn:
        return create_key(conn, scope)[1]


def _client(asgi: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://t")


async def _answers(asgi: Any, prefix: str, key: str) -> list[tuple[int, str, Any]]:
    """Status, content type and body of a run of requests covering each kind of answer, with the
    event ids (`prefix`) taken out of the bodies so that two runs compare."""
    first = json.dumps(event(f"{prefix}-1", member=f"{prefix}-m", amount=80.5, order_id=f"{prefix}-o1")).encode()
    changed = first.replace(b"80.5", b"1")
    known = {"Authorization": f"Bearer {key}"}
    sends: list[tuple[dict[str, str], bytes]] = [
        ({}, first), ({"Authorization": "Bearer nope"}, first),  # no key, an unknown key
        ({"Authorization": "Bearer nope"}, b"[1]"),  # an unknown key comes before a bad body
        (known, b"[1]"), (known, b"{not json"), (known, first.replace(f"{prefix}-m".encode(), b"")),  # invalid
        (known, first), (known, first), (known, changed)]  # accepted, a duplicate, a conflict
    answers = []
    async with _client(asgi) as client:
        for headers, body in sends:
            r = await client.post("/v1/events", content=body, headers={"Content-Type": "application/json", **headers})
            answers.append((r.status_code, r.headers["content-type"], json.loads(r.text.replace(prefix, "ID"))))
    return answers


@pytest.mark.anyio
async def test_the_lane_answers_as_the_route_does(app: FastAPI) -> None:
    key = _key(app, "client")

    async def route_only(scope: Any, receive: Any, send: Any) -> None:  # the app without its lane
        await FastAPI.__call__(app, scope, receive, send)

    by_lane = await _answers(app, "lane", key)
    by_route = await _answers(route_only, "route", key)
    assert by_lane == by_route
    codes = [(status, body.get("code")) for status, _, body in by_lane]
    assert codes == [(401, "unauthorized")] * 3 + [(422, "validation_error"), (422, "validation_error"),
                     (422, "validation_error"), (201, None), (200, None), (409, "idempotency_conflict")]
    assert {kind for status, kind, _ in by_lane if status >= 400} == {PROBLEM}
    assert by_lane[6][1] == "application/json" and by_lane[6][2]["outcome"]["points"] == 80  # floor(80.50)


@pytest.mark.anyio
async def test_an_admin_key_may_send_events_by_the_lane(app: FastAPI) -> None:
    async with _client(app) as client:
        r = await client.post("/v1/events", json=event("admin-1", amount=5, order_id="o-a1"),
                              headers={"Authorization": f"Bearer {_key(app, 'admin')}"})
        other = await client.post("/v1/events/", json=event("a-2", amount=5, order_id="o-a2"))  # not the lane's
    assert r.status_code == 201, r.text
    assert other.status_code in (307, 401, 404, 405)  # 405: the path is GET /v1/events/{id} with an empty id
