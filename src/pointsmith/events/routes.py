"""Events over HTTP."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from pointsmith import collector
from pointsmith.db import read_only, unit_of_work
from pointsmith.errors import ValidationFailed
from pointsmith.events import service
from pointsmith.events.group_commit import GroupCommitter
from pointsmith.events.validation import parse_event, parse_line
from pointsmith.http import ClientKey, EngineDep, WireJSON

router = APIRouter(prefix="/v1/events", tags=["events"])
MAX_BATCH = 1000


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


async def _json(request: Request) -> Any:
    # Parsed here, not by pydantic, so amounts arrive as exact Decimals.
    return parse_line((await request.body()).decode(errors="replace"))


@router.post("", status_code=201, summary="Ingest one event", openapi_extra=_body(EventIn),
             response_model=dict[str, Any], responses={200: {"description": "A duplicate: the stored outcome"}})
async def post_event(request: Request, key: ClientKey) -> Response:
    event = parse_event(await _json(request))
    group_commit: GroupCommitter = request.app.state.group_commit
    done = await asyncio.wrap_future(group_commit.submit(event))
    return WireJSON(done.as_dict(), status_code=200 if done.status == "duplicate" else 201)


@router.post("/batch", summary=f"Ingest up to {MAX_BATCH} events; rejects are reported one by one",
             openapi_extra=_body(BatchIn), response_model=dict[str, Any])
async def post_batch(request: Request, engine: EngineDep, key: ClientKey) -> Response:
    body = await _json(request)
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise ValidationFailed('the body must be {"events": [...]}')
    if len(body["events"]) > MAX_BATCH:
        raise ValidationFailed(f"at most {MAX_BATCH} events per batch")

    def work() -> dict[str, Any]:
        with unit_of_work(engine) as conn, collector.paused():  # paused once the writer lock is ours
            result = service.ingest_many(conn, body["events"])
        return {"accepted": result.accepted, "duplicate": result.duplicate, "rejected": result.rejected,
                "results": result.results}

    return WireJSON(await _run(work))


@router.get("/{event_id}", summary="A stored event and its outcome")
def get_event(event_id: str, engine: EngineDep, key: ClientKey) -> dict[str, Any]:
    with read_only(engine) as conn:
        return service.get(conn, event_id)


async def _run(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Database work off the event loop (the routes are async only to read the raw body)."""
    return await run_in_threadpool(work)
