"""Tiers over HTTP: a member's tier and its outlook, the tier history, manual overrides."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import Field

from pointsmith import idempotency, outbox
from pointsmith.bodies import Body, Time
from pointsmith.db import read_only, unit_of_work
from pointsmith.errors import IdempotencyConflict
from pointsmith.http import RETRY, AdminKey, ClientKey, EngineDep, RequiredIdempotencyKey, actor, answers
from pointsmith.members import service as members
from pointsmith.members.view import member_time
from pointsmith.program import service as programs
from pointsmith.tiers import service
from pointsmith.tiers.jobs import WARNING

router = APIRouter(prefix="/v1/members/{member_id}/tier", tags=["tiers"])


class OverrideIn(Body):
    tier: Annotated[str, Field(min_length=1, max_length=64, description="the tier to hold the member at")]
    until: Annotated[Time, Field(description="when the override ends and the computed tier returns")]
    reason: Annotated[str, Field(min_length=1, max_length=1000)]


@router.get("", summary="The member's tier, qualifying growth, what the next review holds, and the downgrade "
            "warnings sent")
def get_tier(member_id: str, engine: EngineDep, key: ClientKey, at: Time | None = None) -> dict[str, Any]:
    with read_only(engine) as conn:
        members.get(conn, member_id)
        when = at or member_time(conn, member_id)
        return {"member_id": member_id, **service.view(conn, programs.active(conn, when).program, member_id, when,
                                                       as_recorded=at is None),
                "warnings": outbox.of_member(conn, member_id, type_=WARNING)}


@router.get("/history", summary="Every change of tier with its reason and effective time")
def get_history(member_id: str, engine: EngineDep, key: ClientKey) -> dict[str, Any]:
    with read_only(engine) as conn:
        members.get(conn, member_id)
        return {"member_id": member_id, "changes": service.history(conn, member_id)}


@router.post("/override", status_code=201, summary="Hold a member at a tier until a date (admin)",
             responses=answers(IdempotencyConflict, replay=RETRY))
def override(member_id: str, body: OverrideIn, response: Response, engine: EngineDep, key: AdminKey,
             idempotency_key: RequiredIdempotencyKey) -> dict[str, Any]:
    with unit_of_work(engine) as conn:
        members.get(conn, member_id)
        program = programs.active(conn).program
        outcome = idempotency.run_once(
            conn, scope=member_id, key=idempotency_key, operation="tiers.override",
            request={"tier": body.tier, "until": body.until.isoformat(), "reason": body.reason},
            write=lambda: service.set_override(conn, program, member_id, body.tier, until=body.until,
                                               reason=body.reason, actor=actor(key)))
    response.status_code = 200 if outcome.replayed else 201
    return outcome.body
