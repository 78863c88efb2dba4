"""The Python API: ingestion, the stored outcome and the member's state, on a real database."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pointsmith import api
from pointsmith.db import get_engine, unit_of_work
from pointsmith.errors import NotFound, ValidationFailed
from tests.databases import create_database, drop_database
from tests.factories import SIMPLE_PROGRAM, event, publish


def test_the_python_api_ingests_explains_and_reports(backend: str, tmp_path: Path) -> None:
    url = create_database(backend, tmp_path)
    try:
        with unit_of_work(get_engine(url)) as conn:
            publish(conn, SIMPLE_PROGRAM)
        batch = [event("a1", order_id="o1", amount=Decimal("120.50")),
                 event("a2", member="m-2", order_id="o2", amount=19.99),  # a float: by its shortest repr
                 {"id": "bad", "type": "order.paid"}, "not an event"]
        result = api.ingest(batch, db=url)
        assert (result.accepted, result.duplicate, result.rejected) == (2, 0, 2), result.errors
        assert result.errors[0].code == "validation_error"
        again = api.ingest(batch[:1], db=url)  # a retry credits nothing
        assert (again.accepted, again.duplicate) == (0, 1)
        conflict = api.ingest([event("a1", order_id="o1", amount=1)], db=url)
        assert conflict.errors[0].code == "idempotency_conflict"
        assert [api.event(e, db=url)["outcome"]["points"] for e in ("a1", "a2")] == [120, 19]
        assert api.member("m-1", db=url)["points"]["available"] == 120
        assert api.member("m-1", db=url, at="2025-12-31T00:00:00Z")["points"]["available"] == 0
        at = datetime(2026, 1, 2, 10, tzinfo=UTC)  # a datetime is taken as the wire's text
        assert api.ingest([{**event("a3", "checkin"), "occurred_at": at}], db=url).accepted == 1
        naive = api.ingest([{**event("a4", "checkin"), "occurred_at": at.replace(tzinfo=None)}], db=url)
        assert naive.errors[0].message.startswith("occurred_at")
        with pytest.raises(NotFound):
            api.event("nothing", db=url)
        with pytest.raises(ValidationFailed, match="at most 1000 events per call"):
            api.ingest([event(f"x{i}") for i in range(api.MAX_BATCH + 1)], db=url)
    finally:
        drop_database(url)


def test_a_preview_gives_what_ingesting_would_and_records_nothing(backend: str, tmp_path: Path) -> None:
    url = create_database(backend, tmp_path)
    try:
        tiered = SIMPLE_PROGRAM + ('  - {key: tiered, event: order.paid, limits: {points: {day: 100}},'
                                   ' points: "floor(event.amount) * tier.multiplier"}\n')
        with unit_of_work(get_engine(url)) as conn:
            publish(conn, tiered)
        assert api.ingest([event("a1", order_id="o1", amount=150)], db=url).accepted == 1  # silver: x1.5
        before = api.member("m-1", db=url)
        order = event("a2", order_id="o2", amount=80, at="2026-01-01T11:00:00Z")
        shown = api.preview(order, db=url)
        assert (shown["status"], shown["preview"], shown["outcome"]["tier"]) == ("accepted", True, "silver")
        assert [(r["rule"], r["points"]) for r in shown["outcome"]["rules"]] == [("order", 80), ("tiered", 0)]
        assert shown["outcome"]["rules"][1]["cut_by"] == "points.day"  # a1 took the day's 100
        assert api.member("m-1", db=url) == before
        with pytest.raises(NotFound):
            api.event("a2", db=url)
        newcomer = api.preview(event("n1", member="new", order_id="o9", amount=5), db=url)
        assert newcomer["outcome"]["member_created"] is True
        with pytest.raises(NotFound):
            api.member("new", db=url)
        assert api.ingest([order], db=url).results[0]["outcome"] == shown["outcome"]  # the same, for real
        assert api.preview(order, db=url) == {**shown, "status": "duplicate"}  # sent before: its outcome
        with pytest.raises(ValidationFailed):
            api.preview({"id": "bad", "type": "order.paid"}, db=url)
    finally:
        drop_database(url)
