"""Domain errors: each carries a stable `code` and the HTTP status it maps to.

One handler (app.py) renders them as problem+json; the CLI prints `detail` on
one line and exits non-zero.
"""
from __future__ import annotations

from typing import Any


def shown(text: str) -> str:
    """`text` as an answer or a terminal can carry it: what is not Unicode (lone surrogates, from
    JSON's "\udcff" or a file's undecodable bytes) as escapes."""
    return text.encode("utf-8", "backslashreplace").decode()


class DomainError(Exception):
    code = "error"
    status = 400
    title = "Request failed"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        detail = shown(detail)  # a detail may quote what was sent
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class NotFound(DomainError):
    code, status, title = "not_found", 404, "Not found"


class UnknownMember(NotFound):
    code, title = "unknown_member", "Unknown member"


class Conflict(DomainError):
    code, status, title = "conflict", 409, "Conflict"


class MemberExists(Conflict):
    code, title = "member_exists", "Member exists"


class InvalidMemberState(Conflict):
    code, title = "invalid_member_state", "Member state does not allow this"


class IdempotencyConflict(Conflict):
    code, title = "idempotency_conflict", "Idempotency key reused with another request"


class ValidationFailed(DomainError):
    code, status, title = "validation_error", 422, "Validation error"


class InvalidProgram(ValidationFailed):
    code, title = "invalid_program", "Invalid program"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems), extra={"errors": problems})
        self.problems = problems


class ImportStopped(DomainError):
    code, status, title = "import_stopped", 500, "Import stopped"


class ImportInterrupted(ImportStopped):
    """The user stopped an import (Ctrl-C): the CLI exits 130, as an interrupted command does. It
    carries what the import did up to then (for a parallel import's parent, which adds them up)."""

    totals: dict[str, int]
    errors: list[dict[str, Any]]


class UnsupportedMediaType(DomainError):
    code, status, title = "unsupported_media_type", 415, "Unsupported media type"


class NoProgram(Conflict):
    code, title = "no_program", "No program published"


class Unauthorized(DomainError):
    code, status, title = "unauthorized", 401, "Unauthorized"


class Forbidden(DomainError):
    code, status, title = "forbidden", 403, "Forbidden"


class DatabaseNotReady(DomainError):
    code, status, title = "database_not_ready", 503, "Database needs migrating"


class InsufficientPoints(Conflict):
    code, title = "insufficient_points", "Insufficient points"


class HoldNotActive(Conflict):
    code, title = "hold_not_active", "Hold is not active"


class UnknownOrder(ValidationFailed):
    code, title = "unknown_order", "Unknown order"


class RefundExceedsOrder(ValidationFailed):
    code, title = "refund_exceeds_order", "Refund exceeds the order"


class DuplicateOrder(ValidationFailed):
    code, title = "duplicate_order", "Order already recorded"


class BenefitNotEntitled(Conflict):
    code, title = "benefit_not_entitled", "The member is not entitled to this benefit"


class QuotaExhausted(Conflict):
    code, title = "quota_exhausted", "The benefit's quota for this period is used up"
