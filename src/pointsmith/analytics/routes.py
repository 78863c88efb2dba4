"""Reports over HTTP (admin)."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from pointsmith.analytics.summary import summary
from pointsmith.analytics.tiers import tier_flow
from pointsmith.bodies import Time
from pointsmith.db import plain_json, read_only
from pointsmith.errors import ValidationFailed
from pointsmith.http import AdminKey, EngineDep
from pointsmith.program import service as programs

router = APIRouter(prefix="/v1/reports", tags=["reports"])


@router.get("/summary", summary="Members and points totals, liability (now, or as of a time)")
def get_summary(engine: EngineDep, key: AdminKey, at: Time | None = None) -> dict[str, Any]:
    with read_only(engine) as conn:
        data: dict[str, Any] = plain_json(summary(conn, at=at))
        return data


@router.get("/tier-flow", summary="Members moving between tiers from one time to another (a matrix)")
def get_tier_flow(engine: EngineDep, key: AdminKey, from_: Annotated[Time, Query(alias="from")],
                  to: Time) -> dict[str, Any]:
    if to < from_:
        raise ValidationFailed("`to` must not be before `from`")
    with read_only(engine) as conn:
        return tier_flow(conn, programs.active(conn, to).program, from_, to)
