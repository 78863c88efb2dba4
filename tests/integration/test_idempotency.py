"""A write with a key runs once; retries get the first answer, whatever happened in between."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Connection

from pointsmith.errors import Conflict, IdempotencyConflict, ValidationFailed
from pointsmith.idempotency import StoredFailure, run_once


def test_the_same_key_and_request_runs_once(conn: Connection) -> None:
    calls: list[int] = []

    def write() -> dict[str, Any]:
        calls.append(1)
        return {"n": len(calls)}

    first = run_once(conn, scope="m", key="k", operation="op", request={"a": 1}, write=write)
    again = run_once(conn, scope="m", key="k", operation="op", request={"a": 1}, write=write)
    assert (first.body, first.replayed, again.body, again.replayed) == ({"n": 1}, False, {"n": 1}, True)
    assert calls == [1]


def test_the_same_key_with_another_request_is_refused(conn: Connection) -> None:
    run_once(conn, scope="m", key="k", operation="op", request={"a": 1}, write=dict)
    with pytest.raises(IdempotencyConflict):
        run_once(conn, scope="m", key="k", operation="op", request={"a": 2}, write=dict)


def test_keys_are_scoped(conn: Connection) -> None:
    run_once(conn, scope="m1", key="k", operation="op", request={"a": 1}, write=dict)
    assert not run_once(conn, scope="m2", key="k", operation="op", request={"a": 2}, write=dict).replayed


def test_a_state_dependent_failure_is_remembered_and_its_writes_undone(conn: Connection) -> None:
    from pointsmith.members import service as members

    state = {"fail": True}

    def write() -> dict[str, Any]:
        members.create(conn, "half-written")
        if state["fail"]:
            raise Conflict("not now")
        return {}

    with pytest.raises(Conflict) as first:
        run_once(conn, scope="m", key="k", operation="op", request={}, write=write)
    assert getattr(first.value, "keep_transaction", False)
    assert not members.exists(conn, "half-written")
    state["fail"] = False
    with pytest.raises(StoredFailure) as again:
        run_once(conn, scope="m", key="k", operation="op", request={}, write=write)
    assert (again.value.code, again.value.status, again.value.detail) == ("conflict", 409, "not now")


def test_a_validation_failure_is_not_remembered(conn: Connection) -> None:
    def bad() -> dict[str, Any]:
        raise ValidationFailed("bad")

    with pytest.raises(ValidationFailed):
        run_once(conn, scope="m", key="v", operation="op", request={}, write=bad)
    assert not run_once(conn, scope="m", key="v", operation="op", request={}, write=dict).replayed
