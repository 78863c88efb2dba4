"""Reports over HTTP (admin)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter

from pointsmith.analytics.summary import summary
from pointsmith.db import plain_json, read_only
from pointsmith.http import AdminKey, EngineDep

router = APIRouter(prefix="/v1/reports", tags=["reports"])


@router.get("/summary", summary="Members and points totals, liability (now, or as of a time)")
def get_summary(engine: EngineDep, key: AdminKey, at: datetime | None = None) -> dict[str, Any]:
    with read_only(engine) as conn:
        data: dict[str, Any] = plain_json(summary(conn, at=at))
        return data
