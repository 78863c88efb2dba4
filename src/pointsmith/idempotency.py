"""Idempotent writes: the same key and request give the first answer, once.

A write runs inside the caller's transaction. Its result is stored under
(scope, key) with a hash of the request; a retry with the same request gets
the stored result and changes nothing, a retry with another request is
refused. A write that failed for a state-dependent reason (a 409 such as
insufficient points) stores that failure too, so its retry fails the same way.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.db import Json, Read, UtcDateTime, advisory_lock, metadata
from pointsmith.errors import Conflict, DomainError, IdempotencyConflict

idempotency_keys = sa.Table(
    "idempotency_keys", metadata,
    # scope is the member id for member writes (so the table shards by member), else a global scope name
    sa.Column("scope", sa.String(160), primary_key=True),
    sa.Column("key", sa.String(512), primary_key=True),  # a refund event's: its id (up to 255) and more
    sa.Column("operation", sa.String(64), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("result", Json, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sqlite_with_rowid=False,
)


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, Any]
    replayed: bool


class StoredFailure(DomainError):
    """A remembered state-dependent failure, raised again with its first code and detail."""

    def __init__(self, code: str, status: int, title: str, detail: str, extra: dict[str, Any]) -> None:
        super().__init__(detail, extra=extra)
        self.code, self.status, self.title = code, status, title


def request_hash(operation: str, request: Any) -> str:
    text = json.dumps([operation, request], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def lock(conn: Connection, scope: str, key: str) -> None:
    """Serialise writers of one key."""
    advisory_lock(conn, _lock_name(scope, key))


def lock_many_read(conn: Connection, scope: str, keys: list[str]) -> Read | None:
    """`lock` for many keys in one statement, in a fixed order so two batches never deadlock, as a read
    to run before others (`db.read_together`); none is needed on SQLite (one writer at a time)."""
    if conn.dialect.name != "postgresql" or not keys:
        return None
    names = sorted({_lock_name(scope, k) for k in keys})
    return Read("SELECT pg_advisory_xact_lock(hashtextextended(n, 0)) FROM unnest(%s::text[]) AS n ORDER BY n",
                (names,), lambda _: None)


def _lock_name(scope: str, key: str) -> str:
    return f"{len(scope)}:{scope}:{key}"


def run_once(conn: Connection, *, scope: str, key: str, operation: str, request: Any,
             write: Callable[[], dict[str, Any]], status: int = 201) -> Outcome:
    """Run `write` once for (scope, key); later calls get the stored outcome."""
    digest = request_hash(operation, request)
    lock(conn, scope, key)
    row = conn.execute(
        sa.select(idempotency_keys.c.request_hash, idempotency_keys.c.status, idempotency_keys.c.result)
        .where(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
    ).first()
    if row is not None:
        if row.request_hash != digest:
            raise IdempotencyConflict(f"idempotency key {key!r} was used with a different request")
        if row.status >= 400:
            r = row.result
            raise StoredFailure(r["code"], row.status, r["title"], r["detail"], r.get("extra", {}))
        return Outcome(row.status, row.result, replayed=True)
    savepoint = conn.begin_nested()
    try:
        body = write()
    except Conflict as e:
        if isinstance(e, IdempotencyConflict):
            raise
        savepoint.rollback()
        failure = {"code": e.code, "title": e.title, "detail": e.detail, "extra": e.extra}
        _store(conn, scope, key, operation, digest, e.status, failure)
        e.keep_transaction = True  # type: ignore[attr-defined]  # read by unit_of_work: commit the record
        raise
    savepoint.commit()
    _store(conn, scope, key, operation, digest, status, body)
    return Outcome(status, body, replayed=False)


def _store(conn: Connection, scope: str, key: str, operation: str, digest: str,
           status: int, result: dict[str, Any]) -> None:
    conn.execute(idempotency_keys.insert().values(
        scope=scope, key=key, operation=operation, request_hash=digest, status=status,
        result=json.loads(json.dumps(result, default=str)), created_at=clock.now()))
