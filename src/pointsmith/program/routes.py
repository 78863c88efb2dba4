"""The program over HTTP: publish, validate, read versions."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel

from pointsmith.bodies import MAX_ID, Time
from pointsmith.db import read_only, unit_of_work
from pointsmith.errors import InvalidProgram, ValidationFailed
from pointsmith.http import AdminKey, EngineDep, actor, answers
from pointsmith.program import service
from pointsmith.program.validation import parse_text, validate_program

router = APIRouter(prefix="/v1/program", tags=["program"])

DOCUMENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "description": "the program document (CONTRACT §1)"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


class ValidationResult(BaseModel):
    valid: bool
    errors: list[str]


async def _document(request: Request) -> tuple[Any, str]:
    """The body as data plus its source text; JSON or YAML by Content-Type."""
    raw = await request.body()
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise ValidationFailed("the body must be UTF-8 text") from None
    if not text.strip():
        raise ValidationFailed("the body is empty: send the program document")
    json_body = request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"
    return parse_text(text, as_json=json_body), text


@router.put("", summary="Validate and publish a program version (admin)", openapi_extra=DOCUMENT_BODY,
            status_code=201, responses=answers(replay="The latest version's document again, to take effect now: "
                                                      "that version, nothing published"))
async def put_program(request: Request, response: Response, engine: EngineDep, key: AdminKey,
                      effective: Annotated[Time | None, Query(description="default: now")] = None
                      ) -> dict[str, Any]:
    data, text = await _document(request)
    program = validate_program(data)
    with unit_of_work(engine) as conn:
        published = service.publish(conn, program, source=text, actor=actor(key), effective_at=effective)
    if not published.created:
        response.status_code = 200
    return {**published.version.summary(), "created": published.created}


@router.post("/validate", summary="Validate a program document without publishing it (admin)",
             openapi_extra=DOCUMENT_BODY)
async def validate(request: Request, key: AdminKey) -> ValidationResult:
    try:
        data, _ = await _document(request)
        validate_program(data)
    except InvalidProgram as e:
        return ValidationResult(valid=False, errors=e.problems)
    return ValidationResult(valid=True, errors=[])


@router.get("", summary="The version in force (now, or at a time)")
def get_program(engine: EngineDep, key: AdminKey, at: Time | None = None) -> dict[str, Any]:
    with read_only(engine) as conn:
        version = service.active(conn, at)
        return {**version.summary(), "document": version.program.model_dump(mode="json", by_alias=True)}


@router.get("/versions", summary="Every published version")
def list_versions(engine: EngineDep, key: AdminKey) -> list[dict[str, Any]]:
    with read_only(engine) as conn:
        return [v.summary() for v in service.versions(conn)]


@router.get("/versions/{number}", summary="One version with its source")
def get_version(number: Annotated[int, Path(ge=0, le=MAX_ID)], engine: EngineDep, key: AdminKey) -> dict[str, Any]:
    with read_only(engine) as conn:
        version = service.get_version(conn, number)
        return {**version.summary(), "source": service.source_of(conn, number)}
