"""Benefits over HTTP: entitlements with remaining quota, and using one."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import Field

from pointsmith.benefits import service
from pointsmith.bodies import Body, WholeNumber
from pointsmith.db import read_only, unit_of_work
from pointsmith.errors import BenefitNotEntitled, IdempotencyConflict, InvalidMemberState, NoProgram, QuotaExhausted
from pointsmith.http import RETRY, ClientKey, EngineDep, RequiredIdempotencyKey, answers
from pointsmith.program import service as programs

router = APIRouter(prefix="/v1/members/{member_id}/benefits", tags=["benefits"])


class UseIn(Body):
    times: Annotated[WholeNumber, Field(ge=1, le=1000)] = 1
    reference: Annotated[str | None, Field(max_length=255, description="e.g. the order the benefit served")] = None


@router.get("", summary="What the member is entitled to, what remains of each quota, and what the next tier adds")
def list_benefits(member_id: str, engine: EngineDep, key: ClientKey) -> dict[str, Any]:
    with read_only(engine) as conn:
        return service.listing(conn, programs.active(conn).program, member_id)


@router.post("/{benefit_key}/use", status_code=201, summary="Use a benefit (counts against its quota)",
             responses=answers(BenefitNotEntitled, QuotaExhausted, InvalidMemberState, NoProgram, IdempotencyConflict,
                               replay=RETRY))
def use_benefit(member_id: str, benefit_key: str, response: Response, engine: EngineDep, key: ClientKey,
                idempotency_key: RequiredIdempotencyKey, body: UseIn | None = None) -> dict[str, Any]:
    body = body or UseIn()
    with unit_of_work(engine) as conn:
        outcome = service.use(conn, programs.active(conn).program, member_id, benefit_key, key=idempotency_key,
                              times=body.times, reference=body.reference)
    response.status_code = 200 if outcome.replayed else outcome.status
    return outcome.body
