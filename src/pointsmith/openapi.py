"""The OpenAPI document as the server really answers: FastAPI's, with what it cannot know added.

FastAPI documents a 422 as its own `{"detail": [...]}`; every error here is
problem+json (`http.problem`). It does not see the API keys (read from the
header by `http.require`, so that the event lane and the routes share one
check), so it lists no security and no 401/403; nor the 404 of an unknown
id, the 413 of a body past its bound, or the 503 of a database that cannot
take the request. A request body given as a JSON schema of its own (the
event routes, which parse their body themselves) keeps its models in `$defs`,
which are moved where its references point.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from pointsmith.auth.service import Scope
from pointsmith.http import key_scope

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object", "title": "Problem", "description": "RFC 9457 problem details, with a stable `code`.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "examples": ["urn:pointsmith:problem:unknown_member"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "stable: what a client branches on",
                 "examples": ["validation_error", "unknown_member", "idempotency_conflict"]},
        "errors": {"type": "array", "description": "what was wrong, one by field: `{path, message}` for "
                                                   "`validation_error`, a `path: message` line for `invalid_program`",
                   "items": {"anyOf": [{"type": "object", "properties": {"path": {"type": "string"},
                                                                        "message": {"type": "string"}}},
                                       {"type": "string"}]}},
    },
    "additionalProperties": True,
}
SCHEMES = {
    Scope.client: {"type": "http", "scheme": "bearer",
                   "description": "A client or admin key (`pointsmith keys create --scope client`)."},
    Scope.admin: {"type": "http", "scheme": "bearer",
                  "description": "An admin key (`pointsmith keys create --scope admin`)."},
}
SCHEME_NAMES = {Scope.client: "ClientKey", Scope.admin: "AdminKey"}
ERRORS = {
    "401": "No key, or an unknown or revoked one (`unauthorized`)",
    "403": "A client key on an admin route (`forbidden`)",
    "404": "Nothing with that id (`not_found`, `unknown_member`, ...)",
    "413": "The body is past the route's bound (`payload_too_large`)",
    "422": "An invalid request (`validation_error`, ...)",
    "503": "The database cannot take the request now; nothing was written, send it again "
           "(`database_unavailable`, with Retry-After)",
}
WRITES = {"post", "put", "patch"}


def document(app: FastAPI, routers: list[APIRouter], *, lane_scopes: dict[tuple[str, str], Scope]
             ) -> dict[str, Any]:
    """The app's OpenAPI document (built once): `routers` are the ones it includes; `lane_scopes`, the
    key scope of each (method, path) served past FastAPI, whose own check FastAPI cannot see."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    doc["components"]["securitySchemes"] = {SCHEME_NAMES[s]: scheme for s, scheme in SCHEMES.items()}
    scopes = {**_route_scopes(routers), **lane_scopes}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            scope = scopes.get((method, path))
            _complete(operation, method, path, scope)
            if scope is not None:
                operation["security"] = [{SCHEME_NAMES[scope]: []}]
    _hoist_defs(doc, schemas)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = doc
    return doc


def _complete(operation: dict[str, Any], method: str, path: str, scope: Scope | None) -> None:
    responses = operation.setdefault("responses", {})
    wanted = {"503", *(["422"] if method in WRITES else [])}  # FastAPI's 422 where a route has parameters
    if scope is not None:
        wanted |= {"401", "403"} if scope is Scope.admin else {"401"}
    if "{" in path:
        wanted.add("404")
    if method in WRITES:
        wanted.add("413")
    for status in sorted(wanted | {s for s in responses if s[0] in "45"}):
        answer = responses.setdefault(status, {"description": ERRORS.get(status, "An error")})
        if status == "422" and answer.get("description") == "Validation Error":  # FastAPI's own
            answer["description"] = ERRORS["422"]
        answer["content"] = {"application/problem+json": {"schema": PROBLEM_REF}}


def _route_scopes(routers: list[APIRouter]) -> dict[tuple[str, str], Scope]:
    out = {}
    for route in (route for router in routers for route in router.routes):
        if isinstance(route, APIRoute):
            scope = key_scope(route.dependant)
            if scope is not None:
                out.update({(m.lower(), route.path_format): scope for m in route.methods or ()})
    return out


def _hoist_defs(node: Any, schemas: dict[str, Any]) -> None:
    """Move every `$defs` into the document's component schemas, where `#/components/schemas/...` points."""
    if isinstance(node, dict):
        for name, schema in node.pop("$defs", {}).items():
            schemas.setdefault(name, schema)
        for value in node.values():
            _hoist_defs(value, schemas)
    elif isinstance(node, list):
        for value in node:
            _hoist_defs(value, schemas)
