"""The event routes' JSON (orjson) reads as FastAPI's own encoder would have written it."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from fastapi.encoders import jsonable_encoder

from pointsmith.http import WireJSON


def test_outcomes_go_out_as_fastapi_wrote_them() -> None:
    outcome = {"refund": {"refunded": Decimal("50.5"), "order_amount": Decimal("123.45"), "points_back": 70},
               "whole": Decimal("12"), "at": datetime(2026, 3, 1, 10, 0, tzinfo=UTC), "rules": [], "note": None,
               "text": "双十一 ×3", "big": 2**62}
    body = WireJSON(outcome, status_code=201).body
    assert json.loads(body) == json.loads(json.dumps(jsonable_encoder(outcome)))
    assert b'"refunded":50.5' in body and b'"whole":12' in body and b'"at":"2026-03-01T10:00:00+00:00"' in body
