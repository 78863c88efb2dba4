"""How failures that are nobody's input map to HTTP answers."""
from __future__ import annotations

import sqlite3

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from pointsmith.http import PROBLEM, install_error_handlers


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/locked")
    def locked() -> None:
        raise sa.exc.OperationalError("INSERT ...", {}, Exception("database is locked"))

    @app.get("/locked-driver")
    def locked_driver() -> None:
        raise sqlite3.OperationalError("database is locked")  # from below SQLAlchemy (driver_execute)

    @app.get("/deadlock-driver")
    def deadlock_driver() -> None:
        raise psycopg.errors.DeadlockDetected("deadlock detected")

    @app.get("/bug")
    def bug() -> None:
        raise RuntimeError("secret internals")

    return app


@pytest.mark.anyio
async def test_a_database_that_cannot_take_the_request_is_a_503_to_retry() -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/locked")
        assert r.status_code == 503 and r.headers["content-type"] == PROBLEM
        assert r.json()["code"] == "database_unavailable" and r.headers["retry-after"] == "1"
        assert "locked" not in r.text  # the driver's words stay in the log
        for path in ("/locked-driver", "/deadlock-driver"):
            r = await client.get(path)
            assert r.status_code == 503 and r.json()["code"] == "database_unavailable", path
        r = await client.get("/bug")
        assert r.status_code == 500 and "secret" not in r.text
