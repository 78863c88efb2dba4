"""HTTP plumbing shared by every feature's routes: problem+json, auth, the database."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

import orjson
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from pointsmith.auth import service as auth
from pointsmith.auth.service import ApiKey, Scope
from pointsmith.db import driver_operational_errors, json_default, unavailable
from pointsmith.errors import DomainError, NotFound, ValidationFailed

log = logging.getLogger("pointsmith.http")
PROBLEM = "application/problem+json"
STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 406: "not_acceptable",
                413: "payload_too_large", 415: "unsupported_media_type", 429: "too_many_requests"}


class WireJSON(JSONResponse):
    """A route's dict written by orjson as it is, returned by the event routes. FastAPI's own way with a
    dict (validate it against the return type, serialize it, then `json.dumps`) took 17-20 ms of a
    1,000-event batch's outcomes, orjson 2 ms. Decimals go out as `json_default` writes them (as
    FastAPI's encoder did), times as ISO text."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=json_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": f"urn:pointsmith:problem:{code}", "title": title, "status": status, "detail": detail,
            "code": code, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def error_answer(exc: Exception, method: str, path: str) -> JSONResponse:
    """The problem+json answer to a failure that is not about the request's syntax: the app's exception
    handlers and the event lane (`events.routes.lane`, which runs outside FastAPI) both answer by it."""
    if isinstance(exc, DomainError):
        response = problem(exc.status, exc.code, exc.title, exc.detail, **exc.extra)
        if exc.status == 401:  # RFC 9110: a 401 names the scheme it wants
            response.headers["WWW-Authenticate"] = "Bearer"
        return response
    if isinstance(exc, StarletteHTTPException):
        code = STATUS_CODES.get(exc.status_code, "http_error")
        response = problem(exc.status_code, code, code.replace("_", " ").capitalize(), str(exc.detail))
        response.headers.update(exc.headers or {})  # a 405's Allow
        return response
    if isinstance(exc, ClientDisconnect):  # nobody is left to answer; nothing failed on our side
        log.info("client went away during %s %s", method, path)
        return problem(400, "client_disconnected", "Client disconnected", "the client went away mid-request")
    trouble = unavailable(exc)
    if trouble is not None:
        # locked, unreachable or out of resources: nothing was written, the same request can be sent again
        log.warning("database unavailable on %s %s: %s", method, path, trouble)
        response = problem(503, "database_unavailable", "Database unavailable",
                           "the database could not take the request now; nothing was written, send it again")
        response.headers["Retry-After"] = "1"
        return response
    log.exception("unhandled error on %s %s", method, path, exc_info=exc)
    return problem(500, "internal_error", "Internal error", "the server failed; the error is in its log")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI reads a JSON body before the route's dependencies run: the key is checked first all the same
        route = request.scope.get("route")
        scope = key_scope(route.dependant) if isinstance(route, APIRoute) else None
        if scope is not None:
            try:
                authorize(request.app.state.engine, request.headers.get("authorization"), scope)
            except Exception as e:  # a refused key, or the database unavailable: their own answer
                return error_answer(e, request.method, request.url.path)
        errors = [{"path": ".".join(str(p) for p in e["loc"] if p != "body") or "body", "message": e["msg"]}
                  for e in exc.errors()]
        detail = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
        return problem(422, "validation_error", "Validation error", detail, errors=errors)

    def _answer(request: Request, exc: Exception) -> JSONResponse:
        return error_answer(exc, request.method, request.url.path)

    app.add_exception_handler(StarletteHTTPException, _answer)

    # ours, the database's (wrapped by SQLAlchemy, or straight from the driver on the hot paths below it),
    # and anything else (Exception: a 500, answered outermost by Starlette, which then re-raises it)
    kinds: tuple[type[Exception], ...] = (DomainError, ClientDisconnect, sa.exc.OperationalError, sa.exc.TimeoutError,
                                          *driver_operational_errors(), Exception)
    for kind in kinds:
        app.add_exception_handler(kind, _answer)


def nul_refusal(scope: AsgiScope) -> DomainError | None:
    """Why a request with NUL in its path or query is refused, if it has one: no id or value the
    engine stores may hold one, and PostgreSQL refuses it even in a lookup (which would be a 500)."""
    if "\x00" in scope["path"]:
        return NotFound("nothing here: the path holds a NUL character")
    if b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
        return ValidationFailed("the query string holds a NUL character")
    return None


async def answered_in_full(app: ASGIApp, scope: AsgiScope, receive: Receive, send: Send) -> None:
    """`app`, except that an error it has already answered (a 500, which Starlette sends and then
    raises again for the server's log: ours, `error_answer`, has it already) does not reach the
    server, which would drop the client's keep-alive connection and fail its next request."""
    answered = False

    async def tracked(message: Message) -> None:
        nonlocal answered
        answered = answered or (message["type"] == "http.response.body" and not message.get("more_body", False))
        await send(message)

    try:
        await app(scope, receive, tracked)
    except Exception:
        if not answered:
            raise


# The dependencies are async so that they run on the event loop: a sync one costs a trip to the
# thread pool on every request. The key check is one indexed read (microseconds on SQLite, one
# round trip on PostgreSQL), cheaper there than the trip.
async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def authorize(engine: Engine, authorization: str | None, scope: Scope) -> ApiKey:
    """The key of an `Authorization` header, if it may use a route that needs `scope`."""
    return auth.permitted(auth.active_key(engine, auth.bearer_token(authorization)), scope)


def key_scope(dependant: Dependant) -> Scope | None:
    """The key scope a route's dependencies require (`require`), if any."""
    for sub in dependant.dependencies:
        scope = getattr(sub.call, "key_scope", None) or key_scope(sub)
        if scope is not None:
            return Scope(scope)
    return None


def require(scope: Scope) -> Callable[..., Awaitable[ApiKey]]:
    async def dependency(engine: EngineDep,
                   authorization: Annotated[str | None, Header(include_in_schema=False)] = None) -> ApiKey:
        return authorize(engine, authorization, scope)

    dependency.key_scope = scope  # type: ignore[attr-defined]  # read by openapi.py: the route's security
    return dependency


ClientKey = Annotated[ApiKey, Depends(require(Scope.client))]
AdminKey = Annotated[ApiKey, Depends(require(Scope.admin))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255,
                                              description="Retries with the same key give the first answer")]
# the writes that must not run twice: without a key FastAPI answers 422, and the document says required
RequiredIdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=255,
                                               description="Required: retries with the same key give the first "
                                                           "answer and never write twice")]


def answers(*conflicts: type[DomainError], replay: str | None = None) -> dict[int | str, dict[str, Any]]:
    """What a write route answers besides its success, for its OpenAPI entry: the conflicts it refuses
    with (409, each by its `code`), and the 200 of a request it has answered before (`replay`)."""
    out: dict[int | str, dict[str, Any]] = {}
    if conflicts:
        out[409] = {"description": "Conflict, by `code`: " + "; ".join(f"`{c.code}`: {c.title.lower()}"
                                                                        for c in conflicts)}
    if replay:
        out[200] = {"description": replay}
    return out


RETRY = "A retry with the same Idempotency-Key: the first answer again, nothing written twice"


def actor(key: ApiKey) -> str:
    return f"key:{key.id}"


# The most a request body may hold: what the largest valid request needs, with room to spare. Bodies
# are read whole before they are checked, so without a bound one request could take the server's memory.
MAX_BODY = 1 << 20
# 1,000 events of 16 KiB each on average (most are well under 1 KiB). A batch of larger events is
# split; a bound near the per-event one (64 KiB) times 1,000 would let one request hold gigabytes
# while it is parsed (its numbers as Decimals).
MAX_BATCH_BODY = 16 << 20


def body_limit(path: str) -> int:
    return MAX_BATCH_BODY if path == "/v1/events/batch" else MAX_BODY


def too_large(limit: int) -> StarletteHTTPException:
    return StarletteHTTPException(413, f"the request body is larger than {limit:,} bytes")


def declared_length(scope: AsgiScope) -> int | None:
    value = next((v for k, v in scope["headers"] if k == b"content-length"), None)
    return int(value) if value is not None and value.isdigit() else None


def capped(receive: Receive, limit: int) -> Receive:
    """`receive`, failing with 413 once the body it has passed on goes past `limit` bytes (a body sent
    without a length, or longer than the length it declared)."""
    seen = 0

    async def run() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise too_large(limit)
        return message

    return run
