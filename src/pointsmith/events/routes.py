"""Events over HTTP."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from pointsmith.auth import service as auth
from pointsmith.db import read_only
from pointsmith.errors import DomainError, UnsupportedMediaType, ValidationFailed
from pointsmith.events import service
from pointsmith.events.group_commit import GroupCommitter
from pointsmith.events.validation import parse_event, parse_line
from pointsmith.http import ClientKey, EngineDep, WireJSON, error_answer

router = APIRouter(prefix="/v1/events", tags=["events"])
MAX_BATCH = service.MAX_BATCH


class EventIn(BaseModel):
    id: Annotated[str, Field(description="the idempotency key", examples=["evt-1"])]
    type: Annotated[str, Field(examples=["order.paid"])]
    member_id: str
    occurred_at: datetime
    attributes: dict[str, Any] = {}


class BatchIn(BaseModel):
    events: Annotated[list[EventIn], Field(max_length=MAX_BATCH)]


def _body(schema: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": schema.model_json_schema(ref_template="#/components/schemas/{model}")}}}}


def _json_declared(content_type: str | None) -> None:
    """The event routes read their body as JSON themselves (below): a body declared as something else
    (a form, text) is refused as the app's other routes refuse it, not read as JSON regardless. No
    Content-Type at all is taken as JSON."""
    if not content_type:
        return
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind != "application/json" and not (kind.startswith("application/") and kind.endswith("+json")):
        raise UnsupportedMediaType(f"the body must be JSON (Content-Type: application/json), not {kind!r}")


def _parse(body: bytes) -> Any:
    # Parsed here, not by pydantic, so amounts arrive as exact Decimals.
    try:
        text = body.decode()
    except UnicodeDecodeError as e:  # not replaced: two ids that differ only there would become one
        raise ValidationFailed(f"the body is not valid UTF-8 (byte {e.start})") from None
    return parse_line(text)


@router.post("", status_code=201, summary="Ingest one event", openapi_extra=_body(EventIn),
             response_model=dict[str, Any], responses={
                 200: {"description": "A duplicate: the stored outcome"},
                 409: {"description": "The id came before with another body (problem+json, `idempotency_conflict`)"},
                 415: {"description": "A body declared as other than JSON (problem+json, `unsupported_media_type`)"},
                 422: {"description": "An invalid event (problem+json, `validation_error`)"}})
async def post_event(request: Request) -> Response:
    # the app serves this path by `lane` (below); the route stays for the OpenAPI document and for
    # apps that mount the router themselves
    return await ingest_one(request.app.state, request.headers.get("authorization"),
                            request.headers.get("content-type"), request.body)


async def ingest_one(state: State, authorization: str | None, content_type: str | None,
                     body: Callable[[], Awaitable[bytes]]) -> Response:
    """`POST /v1/events`: the event and its key, handed to the group commit (`group_commit.py`), which
    checks the key."""
    token = auth.bearer_token(authorization)
    try:
        _json_declared(content_type)
        event = parse_event(_parse(await body()))
    except DomainError:
        auth.permitted(auth.active_key(state.engine, token), auth.Scope.client)  # an unknown key: 401 before 422
        raise
    group_commit: GroupCommitter = state.group_commit
    done = await asyncio.wrap_future(group_commit.submit(event, token))
    return WireJSON(done.as_dict(), status_code=200 if done.status == "duplicate" else 201)


async def lane(state: State, scope: Scope, receive: Receive, send: Send) -> None:
    """`POST /v1/events` as plain ASGI, ahead of FastAPI (`app.PointsmithAPI`). Under load the
    framework's layers around this one route (eight middlewares, routing, dependency solving) cost
    about as much server time as ingesting the event: without them one server process answers
    10-40% more single events a second (bench/README.md). Same answers: the route's own function
    behind it, failures by the app's error answer."""

    async def body() -> bytes:
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect  # as Starlette's `Request.body`
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

    headers: dict[bytes, str] = {}
    for name, value in scope["headers"]:  # the first of a repeated header, as Starlette's `headers.get`
        if name in (b"authorization", b"content-type"):
            headers.setdefault(name, value.decode("latin-1"))
    try:
        response = await ingest_one(state, headers.get(b"authorization"), headers.get(b"content-type"), body)
    except ClientDisconnect:
        return  # nobody to answer
    except Exception as e:
        response = error_answer(e, "POST", scope["path"])
    await response(scope, receive, send)


@router.post("/batch", summary=f"Ingest up to {MAX_BATCH} events; rejects are reported one by one",
             openapi_extra=_body(BatchIn), response_model=dict[str, Any], responses={
                 415: {"description": "A body declared as other than JSON (problem+json, `unsupported_media_type`)"}})
async def post_batch(request: Request, engine: EngineDep, key: ClientKey) -> Response:
    _json_declared(request.headers.get("content-type"))
    body = await run_in_threadpool(_parse, await request.body())  # up to 16 MiB: not on the event loop
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise ValidationFailed('the body must be {"events": [...]}')
    if len(body["events"]) > MAX_BATCH:
        raise ValidationFailed(f"at most {MAX_BATCH} events per batch")

    def work() -> dict[str, Any]:
        result = service.ingest_batch(engine, body["events"])
        return {"accepted": result.accepted, "duplicate": result.duplicate, "rejected": result.rejected,
                "results": result.results}

    return WireJSON(await _run(work))


@router.post("/preview", summary="What an event would earn now, recording nothing",
             openapi_extra=_body(EventIn), response_model=dict[str, Any], responses={
                 200: {"description": "The outcome ingesting the event would give (`status` accepted, or duplicate "
                                      "with the stored outcome of an id sent before), with `preview: true`"},
                 409: {"description": "The id came before with another body (problem+json, `idempotency_conflict`)"},
                 415: {"description": "A body declared as other than JSON (problem+json, `unsupported_media_type`)"},
                 422: {"description": "An invalid event (problem+json, `validation_error`)"}})
async def preview_event(request: Request, engine: EngineDep, key: ClientKey) -> Response:
    """The event is applied in a transaction that is rolled back: what a checkout page would show as
    "you will earn" (limits, caps, campaigns and the tier's multiplier included)."""
    _json_declared(request.headers.get("content-type"))
    raw = _parse(await request.body())
    return WireJSON(await _run(lambda: service.preview(engine, raw)))


@router.get("/{event_id:path}", summary="A stored event and its outcome")  # an id may hold a '/'
def get_event(event_id: str, engine: EngineDep, key: ClientKey) -> dict[str, Any]:
    with read_only(engine) as conn:
        return service.get(conn, event_id)


async def _run(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Database work off the event loop (the routes are async only to read the raw body)."""
    return await run_in_threadpool(work)
