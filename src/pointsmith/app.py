"""The HTTP application: `create_app()` mounts each feature's routes."""
from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from pointsmith import __version__, openapi
from pointsmith.analytics.routes import router as reports_router
from pointsmith.auth.service import Scope as KeyScope
from pointsmith.benefits.routes import router as benefits_router
from pointsmith.db import get_engine, read_only
from pointsmith.events.group_commit import GroupCommitter
from pointsmith.events.routes import lane as events_lane
from pointsmith.events.routes import router as events_router
from pointsmith.http import (
    answered_in_full,
    body_limit,
    capped,
    declared_length,
    error_answer,
    install_error_handlers,
    nul_refusal,
    too_large,
)
from pointsmith.ledger.routes import router as points_router
from pointsmith.members.routes import router as members_router
from pointsmith.program.routes import router as program_router
from pointsmith.tiers.routes import router as tiers_router

DESCRIPTION = """Membership and points engine.

Authenticate with `Authorization: Bearer <key>` (`pointsmith keys create`).
Client keys ingest events, create and read members, spend and redeem; admin
keys also configure, adjust and report. Errors are `application/problem+json`
with a stable `code`. Writes take an `Idempotency-Key` header (events use their id).
"""


class PointsmithAPI(FastAPI):
    """FastAPI, except for single events: `POST /v1/events` is the route live traffic sends most, and
    goes straight to its handler (`events.routes.lane`) past the framework's layers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            unreadable = nul_refusal(scope)
            if unreadable is not None:  # no stored id or value holds one; PostgreSQL cannot even compare it
                await error_answer(unreadable, scope["method"], scope["path"])(scope, receive, send)
                return
            limit = body_limit(scope["path"])
            declared = declared_length(scope)
            if declared is not None and declared > limit:  # refused before a byte of it is read
                await error_answer(too_large(limit), scope["method"], scope["path"])(scope, receive, send)
                return
            receive = capped(receive, limit)
            if scope["path"] == "/v1/events" and scope["method"] == "POST":
                await events_lane(self.state, scope, receive, send)
                return
            await answered_in_full(super().__call__, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(database_url: str | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.group_commit.close()  # commit what is queued before the process ends

    app = PointsmithAPI(title="Pointsmith", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                        docs_url=None, redoc_url=None)  # served below, from files of our own: no CDN
    app.state.engine = get_engine(database_url)
    app.state.group_commit = GroupCommitter(app.state.engine)
    install_error_handlers(app)
    routers = [members_router, events_router, points_router, reports_router, program_router, tiers_router,
               benefits_router]
    for router in routers:
        app.include_router(router)
    # `POST /v1/events` checks its key in the lane (events.routes), past FastAPI
    lane = {("post", "/v1/events"): KeyScope.client}
    app.openapi = lambda: openapi.document(app, routers, lane_scopes=lane)  # type: ignore[method-assign]

    _docs(app)

    @app.get("/health", tags=["health"], summary="Liveness and database check")
    def health() -> dict[str, Any]:
        with read_only(app.state.engine) as conn:
            conn.execute(sa.text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    return app


def _docs(app: FastAPI) -> None:
    """Swagger UI at /docs and ReDoc at /redoc with their scripts served from the package
    (fastapi-offline's copies): FastAPI's own pages load them from a CDN, a blank page offline."""
    assets = "/docs-assets"
    app.mount(assets, StaticFiles(directory=str(resources.files("fastapi_offline") / "static")), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Pointsmith API",
                                   swagger_js_url=f"{assets}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{assets}/swagger-ui.css",
                                   swagger_favicon_url=f"{assets}/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title="Pointsmith API",
                              redoc_js_url=f"{assets}/redoc.standalone.js", redoc_favicon_url=f"{assets}/favicon.png",
                              with_google_fonts=False)


def create_server_app() -> FastAPI:
    """The app as `pointsmith serve` runs it (in each worker process): `create_app` with the objects
    built so far (modules, routes, schemas: about 100,000) frozen out of the garbage
    collector's full collections. Requests promote short-lived objects into the oldest generation,
    which triggers full collections that scan everything: 60-90 ms pauses of every request in flight
    several times a second under load, the whole p99 of the single-event route. Frozen, a full
    collection scans only what came after (about a tenth of that time). Left to the embedding
    application when it builds the app itself, as its process is its own."""
    app = create_app()
    gc.collect()
    gc.freeze()
    return app
