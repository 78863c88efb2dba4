"""Points over HTTP: balances, lots, history, spend, adjust, reverse, holds."""
from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import Field, StrictBool

from pointsmith.bodies import MAX_ID, Body, Time, WholeNumber
from pointsmith.db import read_only, unit_of_work
from pointsmith.errors import HoldNotActive, IdempotencyConflict, InsufficientPoints, InvalidMemberState
from pointsmith.http import RETRY, AdminKey, ClientKey, EngineDep, RequiredIdempotencyKey, actor, answers
from pointsmith.idempotency import Outcome
from pointsmith.ledger import holds, queries, service
from pointsmith.members import service as members

router = APIRouter(prefix="/v1/members/{member_id}/points", tags=["points"])
Points = Annotated[WholeNumber, Field(gt=0, le=10**12, description="whole points")]


class SpendIn(Body):
    points: Points
    reference: Annotated[str | None, Field(max_length=255, description="e.g. the order id")] = None


class AdjustIn(Body):
    points: Annotated[WholeNumber, Field(ge=-(10**12), le=10**12, description="positive credits, negative takes back")]
    reason: Annotated[str, Field(min_length=1, max_length=1000)]
    allow_debt: StrictBool = Field(False, description="let a deduction take more than the member has (leaves a debt)")


class ReverseIn(Body):
    points: Points
    reference: Annotated[str | None, Field(max_length=255, description="take from this reference's lot first")] = None
    reason: Annotated[str | None, Field(max_length=1000)] = None


class HoldIn(Body):
    points: Points
    reference: Annotated[str | None, Field(max_length=255)] = None
    timeout_seconds: Annotated[WholeNumber, Field(ge=1, le=30 * 86400)] = 900


class CaptureIn(Body):
    points: Annotated[WholeNumber | None, Field(gt=0, le=10**12,
                                                description="default: the whole hold; the rest is returned")] = None


def _answer(outcome: Outcome, response: Response) -> dict[str, Any]:
    response.status_code = 200 if outcome.replayed else outcome.status
    return outcome.body


@router.get("", summary="Balances and lots (now, or as of a time)")
def get_points(member_id: str, engine: EngineDep, key: ClientKey, at: Time | None = None) -> dict[str, Any]:
    with read_only(engine) as conn:
        members.get(conn, member_id)
        return queries.points_view(conn, member_id, at=at)


@router.get("/history", summary="Transactions, newest first (cursor pagination)")
def get_history(member_id: str, engine: EngineDep, key: ClientKey,
                cursor: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
                limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    with read_only(engine) as conn:
        members.get(conn, member_id)
        items, next_cursor = queries.history(conn, member_id, before=cursor, limit=limit)
    return {"transactions": items, "next_cursor": next_cursor}


@router.post("/spend", status_code=201, summary="Spend points (soonest-expiring lots first)",
             responses=answers(InsufficientPoints, InvalidMemberState, IdempotencyConflict, replay=RETRY))
def spend(member_id: str, body: SpendIn, response: Response, engine: EngineDep, key: ClientKey,
          idempotency_key: RequiredIdempotencyKey) -> dict[str, Any]:
    with unit_of_work(engine) as conn:
        outcome = service.spend(conn, member_id, body.points, key=idempotency_key, reference=body.reference,
                                actor=actor(key))
    return _answer(outcome, response)


@router.post("/adjust", status_code=201, summary="Manual adjustment with a reason (admin)",
             responses=answers(InsufficientPoints, InvalidMemberState, IdempotencyConflict, replay=RETRY))
def adjust(member_id: str, body: AdjustIn, response: Response, engine: EngineDep, key: AdminKey,
           idempotency_key: RequiredIdempotencyKey) -> dict[str, Any]:
    with unit_of_work(engine) as conn:
        outcome = service.adjust(conn, member_id, body.points, key=idempotency_key, reason=body.reason,
                                 actor=actor(key), allow_debt=body.allow_debt)
    return _answer(outcome, response)


@router.post("/reverse", status_code=201, summary="Claw points back, from a reference's lot first (admin)",
             responses=answers(InsufficientPoints, InvalidMemberState, IdempotencyConflict, replay=RETRY))
def reverse(member_id: str, body: ReverseIn, response: Response, engine: EngineDep, key: AdminKey,
            idempotency_key: RequiredIdempotencyKey) -> dict[str, Any]:
    with unit_of_work(engine) as conn:
        outcome = service.reverse(conn, member_id, body.points, key=idempotency_key, reference=body.reference,
                                  reason=body.reason, actor=actor(key))
    return _answer(outcome, response)


@router.post("/holds", status_code=201, summary="Hold points for a checkout (two-phase spend)",
             responses=answers(InsufficientPoints, InvalidMemberState, IdempotencyConflict, replay=RETRY))
def create_hold(member_id: str, body: HoldIn, response: Response, engine: EngineDep, key: ClientKey,
                idempotency_key: RequiredIdempotencyKey) -> dict[str, Any]:
    with unit_of_work(engine) as conn:
        outcome = holds.hold(conn, member_id, body.points, key=idempotency_key, reference=body.reference,
                             timeout=timedelta(seconds=body.timeout_seconds))
    return _answer(outcome, response)


@router.get("/holds", summary="The member's holds")
def list_holds(member_id: str, engine: EngineDep, key: ClientKey) -> list[dict[str, Any]]:
    with read_only(engine) as conn:
        members.get(conn, member_id)
        return [h.as_dict() for h in holds.list_holds(conn, member_id)]


@router.post("/holds/{hold_id}/capture", status_code=201, summary="Redeem all or part of a hold",
             responses=answers(HoldNotActive, IdempotencyConflict, replay=RETRY))
def capture_hold(member_id: str, hold_id: str, body: CaptureIn, response: Response, engine: EngineDep,
                 key: ClientKey, idempotency_key: RequiredIdempotencyKey) -> dict[str, Any]:
    with unit_of_work(engine) as conn:
        outcome = holds.capture(conn, member_id, hold_id, body.points, key=idempotency_key)
    return _answer(outcome, response)


@router.post("/holds/{hold_id}/void", status_code=201, summary="Return a hold's points",
             responses=answers(HoldNotActive, IdempotencyConflict, replay=RETRY))
def void_hold(member_id: str, hold_id: str, response: Response, engine: EngineDep, key: ClientKey,
              idempotency_key: RequiredIdempotencyKey) -> dict[str, Any]:
    with unit_of_work(engine) as conn:
        outcome = holds.void(conn, member_id, hold_id, key=idempotency_key)
    return _answer(outcome, response)
