"""Members over HTTP."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from pointsmith import idempotency
from pointsmith.bodies import Body, Time
from pointsmith.db import read_only, unit_of_work
from pointsmith.errors import IdempotencyConflict, InvalidMemberState, MemberExists
from pointsmith.http import RETRY, AdminKey, ClientKey, EngineDep, IdempotencyKey, actor, answers
from pointsmith.members import service
from pointsmith.members.service import Status, Verification
from pointsmith.members.view import member_view

router = APIRouter(prefix="/v1/members", tags=["members"])


class MemberIn(Body):
    id: Annotated[str, Field(min_length=1, max_length=128, examples=["m-1"])]
    attributes: dict[str, Any] = Field(default_factory=dict)
    joined_at: Time | None = None


class AttributesIn(Body):
    attributes: dict[str, Any] = Field(description="merged into the member's attributes; null removes one")


class StatusIn(Body):
    reason: Annotated[str, Field(min_length=1, max_length=1000)]


class VerifyIn(Body):
    kind: Verification


class MemberPage(BaseModel):
    members: list[dict[str, Any]]
    next_cursor: str | None


@router.post("", status_code=201, summary="Create a member",
             responses=answers(MemberExists, IdempotencyConflict, replay=RETRY))
def create_member(body: MemberIn, engine: EngineDep, key: ClientKey,
                  idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    with unit_of_work(engine) as conn:
        def write() -> dict[str, Any]:
            service.create(conn, body.id, attributes=body.attributes, joined_at=body.joined_at)
            return member_view(conn, body.id)

        if idempotency_key is None:
            return write()
        service.check_member_id(body.id)
        return idempotency.run_once(conn, scope=body.id, key=idempotency_key, operation="member.create",
                                    request=body.model_dump(mode="json"), write=write).body


@router.get("", summary="List members (cursor pagination)")
def list_members(engine: EngineDep, key: AdminKey, cursor: str | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 status: Status | None = None) -> MemberPage:
    with read_only(engine) as conn:
        page = service.list_members(conn, after=cursor, limit=limit + 1, status=status)
    more = len(page) > limit
    page = page[:limit]
    return MemberPage(members=[m.as_dict() for m in page], next_cursor=page[-1].id if more else None)


@router.get("/{member_id}", summary="A member's state")
def get_member(member_id: str, engine: EngineDep, key: ClientKey,
               at: Annotated[Time | None, Query(description="state as of this time")] = None
               ) -> dict[str, Any]:
    with read_only(engine) as conn:
        return member_view(conn, member_id, at=at)


@router.patch("/{member_id}", summary="Update a member's attributes")
def update_member(member_id: str, body: AttributesIn, engine: EngineDep, key: ClientKey) -> dict[str, Any]:
    with unit_of_work(engine) as conn:
        service.update_attributes(conn, member_id, body.attributes)
        return member_view(conn, member_id)


@router.post("/{member_id}/verify", summary="Mark a verification (email, phone, real name) done")
def verify_member(member_id: str, body: VerifyIn, engine: EngineDep, key: ClientKey) -> dict[str, Any]:
    with unit_of_work(engine) as conn:
        service.verify(conn, member_id, body.kind)
        return member_view(conn, member_id)


def _status_route(action: str) -> None:
    def change(member_id: str, body: StatusIn, engine: EngineDep, key: AdminKey) -> dict[str, Any]:
        with unit_of_work(engine) as conn:
            service.change_status(conn, member_id, action, reason=body.reason, actor=actor(key))
            return member_view(conn, member_id)

    router.add_api_route(f"/{{member_id}}/{action}", change, methods=["POST"], name=f"{action}_member",
                         summary=f"{action.capitalize()} a member (admin)", responses=answers(InvalidMemberState))


for _action in service.TRANSITIONS:
    _status_route(_action)
