"""The database's own trouble: told apart from a request's, and not left in the pool."""
from __future__ import annotations

import logging
import sqlite3

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.requests import ClientDisconnect

from pointsmith.db import unavailable, unit_of_work
from pointsmith.http import error_answer


def test_a_connection_that_found_its_file_read_only_leaves_the_pool(backend: str, engine: Engine) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite's connections open a file they cannot write read-only, and stay so")
    spoiled = _driver_connection_failing_with(engine, sqlite3.OperationalError("attempt to write a readonly database"))
    with unit_of_work(engine) as conn:
        assert conn.connection.driver_connection is not spoiled


def test_a_connection_that_failed_on_the_request_stays_in_the_pool(backend: str, engine: Engine) -> None:
    if backend != "sqlite":
        pytest.skip("the control of the test above, on its store")
    kept = _driver_connection_failing_with(engine, ValueError("the request's own fault"))
    with unit_of_work(engine) as conn:
        assert conn.connection.driver_connection is kept


def _driver_connection_failing_with(engine: Engine, error: Exception) -> object:
    """The driver connection of a unit of work that failed with `error`."""
    used: list[object] = []

    def work() -> None:
        with unit_of_work(engine) as conn:
            used.append(conn.connection.driver_connection)
            raise error

    with pytest.raises(type(error), match=str(error)):
        work()
    return used[0]


def test_a_pool_with_no_connection_free_is_the_databases_trouble_503() -> None:
    busy = sa.exc.TimeoutError("QueuePool limit of size 10 overflow 20 reached")
    assert unavailable(busy) is busy
    answer = error_answer(busy, "POST", "/v1/events/batch")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"


def test_a_client_that_went_away_is_not_logged_as_a_server_error(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pointsmith.http"):
        error_answer(ClientDisconnect(), "POST", "/v1/events/batch")
    assert [r.levelno for r in caplog.records] == [logging.INFO]
