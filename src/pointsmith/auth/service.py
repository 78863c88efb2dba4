"""API keys: random secrets shown once, stored as SHA-256 hashes.

The secrets are 256-bit random tokens, so a fast hash is enough (there is
nothing to brute-force); a slow password hash would only slow every request.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pointsmith import audit, clock
from pointsmith.auth.tables import api_keys
from pointsmith.db import driver_execute, driver_in, read_one
from pointsmith.errors import Forbidden, NotFound, Unauthorized, ValidationFailed

PREFIX = "psk"


class Scope(StrEnum):
    admin = "admin"
    client = "client"


@dataclass(frozen=True)
class ApiKey:
    id: str
    scope: Scope
    name: str

    def allows(self, needed: Scope) -> bool:
        return self.scope is Scope.admin or needed is Scope.client


def hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_key(conn: Connection, scope: Scope | str, *, name: str = "", actor: str = "cli") -> tuple[ApiKey, str]:
    """A new key and its token; the token is never stored and cannot be shown again."""
    try:
        scope = Scope(scope)
    except ValueError:
        raise ValidationFailed("scope must be admin or client") from None
    key_id = secrets.token_hex(4)
    token = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    conn.execute(api_keys.insert().values(id=key_id, name=name, scope=scope.value,
                                          secret_hash=hash_secret(token), created_at=clock.now()))
    audit.record(conn, "key:create", key_id, actor, scope=scope.value, name=name)
    return ApiKey(key_id, scope, name), token


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <key>` header."""
    token = authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else ""
    if not token:
        raise Unauthorized("an API key is required: send `Authorization: Bearer <key>`")
    return token


def active_key(engine: Engine, token: str) -> ApiKey | None:
    """The active key of `token`, if any (asked on every request: one driver round trip, no transaction)."""
    row = read_one(engine, "SELECT id, scope, name FROM api_keys WHERE secret_hash = {mark} AND revoked_at IS NULL",
                   (hash_secret(token),))
    return ApiKey(row[0], Scope(row[1]), row[2]) if row is not None else None


def active_keys(conn: Connection, tokens: set[str]) -> dict[str, ApiKey]:
    """The active keys among `tokens`, by token, in one read inside `conn`'s transaction (the group
    commit checks the keys of every event it takes at once)."""
    hashes = {hash_secret(t): t for t in tokens}
    match, params = driver_in(conn, list(hashes))
    return {hashes[secret]: ApiKey(key_id, Scope(scope), name) for secret, key_id, scope, name in driver_execute(
        conn, f"SELECT secret_hash, id, scope, name FROM api_keys WHERE secret_hash {match} "  # noqa: S608
        "AND revoked_at IS NULL", params)}


def permitted(key: ApiKey | None, scope: Scope) -> ApiKey:
    """`key` (as found: None if unknown or revoked), if it may use a route that needs `scope`."""
    if key is None:
        raise Unauthorized("unknown or revoked API key")
    if not key.allows(scope):
        raise Forbidden(f"this route needs an {scope.value} key")
    return key


def revoke(conn: Connection, key_id: str, *, actor: str = "cli") -> None:
    done = conn.execute(api_keys.update().where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                        .values(revoked_at=clock.now()))
    if done.rowcount == 0:
        raise NotFound(f"no active key {key_id!r}")
    audit.record(conn, "key:revoke", key_id, actor)


def list_keys(conn: Connection) -> list[dict[str, object]]:
    rows = conn.execute(sa.select(api_keys.c.id, api_keys.c.name, api_keys.c.scope, api_keys.c.created_at,
                                  api_keys.c.revoked_at).order_by(api_keys.c.created_at))
    return [{"id": r.id, "name": r.name, "scope": r.scope, "created_at": clock.iso(r.created_at),
             "revoked_at": clock.iso(r.revoked_at) if r.revoked_at else None} for r in rows]
