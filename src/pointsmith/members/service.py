"""Member operations. Every function takes the connection first and never commits."""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import audit, clock
from pointsmith.db import is_postgres, json_size, plain_json
from pointsmith.errors import InvalidMemberState, MemberExists, UnknownMember, ValidationFailed
from pointsmith.members.tables import members

# \Z, not $ (which also matches before a final newline); no NUL or lone surrogate: no database stores them
MEMBER_ID = re.compile(r"[^\s/?#\x00\ud800-\udfff]{1,128}\Z")
MAX_ATTRIBUTES_BYTES = 16_384
INVITE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: codes are read aloud and typed
INVITE_LENGTH = 8


class Status(StrEnum):
    active = "active"
    frozen = "frozen"
    closed = "closed"


class Verification(StrEnum):
    email = "email"
    phone = "phone"
    real_name = "real_name"


# Which status each action moves from and to; closed is final.
TRANSITIONS: dict[str, tuple[frozenset[Status], Status]] = {
    "freeze": (frozenset({Status.active}), Status.frozen),
    "unfreeze": (frozenset({Status.frozen}), Status.active),
    "close": (frozenset({Status.active, Status.frozen}), Status.closed),
}


@dataclass(frozen=True)
class Member:
    id: str
    status: Status
    attributes: dict[str, Any]
    verified: dict[str, bool]
    invite_code: str
    invited_by: str | None
    joined_at: datetime
    status_reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "status": self.status.value, "attributes": plain_json(self.attributes),
            "verified": self.verified, "invite_code": self.invite_code, "invited_by": self.invited_by,
            "joined_at": clock.iso(self.joined_at), "status_reason": self.status_reason,
        }

    def expression_names(self) -> dict[str, Any]:
        """What rule expressions see as `member.<attr>` (tier is added by the tier feature). `joined_at`
        is ISO 8601 text in UTC, which orders as time does: `member.joined_at >= '2026-11-01'`."""
        return {**self.attributes, "joined_at": clock.iso(self.joined_at),
                **{f"verified_{k}": v for k, v in self.verified.items()}}


def check_member_id(member_id: Any) -> str:
    if not isinstance(member_id, str) or not MEMBER_ID.match(member_id):
        raise ValidationFailed("member id must be 1 to 128 characters with no spaces, '/', '?' or '#'")
    return member_id


def check_attributes(attributes: Any) -> dict[str, Any]:
    if not isinstance(attributes, dict) or not all(isinstance(k, str) for k in attributes):
        raise ValidationFailed("attributes must be a JSON object")
    if json_size(attributes) > MAX_ATTRIBUTES_BYTES:
        raise ValidationFailed(f"attributes are larger than {MAX_ATTRIBUTES_BYTES} bytes")
    return attributes


def create(conn: Connection, member_id: str, *, attributes: dict[str, Any] | None = None,
           joined_at: datetime | None = None, invited_by: str | None = None) -> Member:
    check_member_id(member_id)
    attrs = check_attributes(attributes or {})
    if exists(conn, member_id):
        raise MemberExists(f"member {member_id!r} already exists")
    now = clock.now()
    values = {"id": member_id, "status": Status.active.value, "attributes": attrs,
              "invite_code": _new_invite_code(conn), "invited_by": invited_by,
              "joined_at": clock.ensure_utc(joined_at) if joined_at else now,
              "created_at": now, "updated_at": now}
    try:
        with conn.begin_nested():
            conn.execute(members.insert().values(**values))
    except sa.exc.IntegrityError:
        # A concurrent create of the same id won the race.
        raise MemberExists(f"member {member_id!r} already exists") from None
    return get(conn, member_id)


# the keys a concurrent creation of a member can collide on
CREATION_KEYS = frozenset({"pk_members", "uq_members_invite_code"})


def created_elsewhere(error: BaseException) -> bool:
    """Whether `error` is another transaction having created a member (or drawn an invite code) that
    this one was creating: PostgreSQL says so only once the other has committed, so the work tried
    again finds the member (and draws another code)."""
    orig = getattr(error, "orig", None) or error  # SQLAlchemy's wrapper, or the driver's own (COPY)
    diag = getattr(orig, "diag", None)
    return getattr(orig, "sqlstate", None) == "23505" and getattr(diag, "constraint_name", None) in CREATION_KEYS


def exists(conn: Connection, member_id: str) -> bool:
    return conn.execute(sa.select(members.c.id).where(members.c.id == member_id)).first() is not None


def get(conn: Connection, member_id: str, *, for_update: bool = False) -> Member:
    query = sa.select(members).where(members.c.id == member_id)
    if for_update and is_postgres(conn):
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise UnknownMember(f"no member with id {member_id!r}")
    return member_from_row(row)


def lock(conn: Connection, member_id: str) -> Member:
    """Lock the member's row for the rest of the transaction: member writes are serialised on it."""
    return get(conn, member_id, for_update=True)


def find_by_invite_code(conn: Connection, code: str) -> Member | None:
    row = conn.execute(sa.select(members).where(members.c.invite_code == code.upper())).mappings().first()
    return member_from_row(row) if row else None


def update_attributes(conn: Connection, member_id: str, changes: dict[str, Any]) -> Member:
    """Merge `changes` into the attributes; a null value removes that attribute."""
    member = lock(conn, member_id)
    check_attributes(changes)
    merged = {k: v for k, v in {**member.attributes, **changes}.items() if v is not None}
    check_attributes(merged)
    _update(conn, member_id, attributes=merged)
    return get(conn, member_id)


def verify(conn: Connection, member_id: str, kind: Verification | str) -> Member:
    try:
        flag = Verification(kind)
    except ValueError:
        raise ValidationFailed("kind must be one of email, phone, real_name") from None
    lock(conn, member_id)
    _update(conn, member_id, **{f"verified_{flag.value}": True})
    return get(conn, member_id)


def change_status(conn: Connection, member_id: str, action: str, *, reason: str, actor: str) -> Member:
    if action not in TRANSITIONS:
        raise ValidationFailed(f"unknown action {action!r}")
    if not reason.strip():
        raise ValidationFailed("a reason is required")
    member = lock(conn, member_id)
    allowed, target = TRANSITIONS[action]
    if member.status not in allowed:
        raise InvalidMemberState(f"cannot {action} member {member_id!r}: it is {member.status.value}")
    _update(conn, member_id, status=target.value, status_reason=reason)
    audit.record(conn, f"member:{action}", member_id, actor, reason=reason, previous=member.status.value)
    return get(conn, member_id)


def list_members(conn: Connection, *, after: str | None = None, limit: int = 100,
                 status: Status | None = None) -> list[Member]:
    query = sa.select(members).order_by(members.c.id).limit(limit)
    if after is not None:
        query = query.where(members.c.id > after)
    if status is not None:
        query = query.where(members.c.status == status.value)
    return [member_from_row(r) for r in conn.execute(query).mappings()]


def count(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(members)).scalar_one())


def _update(conn: Connection, member_id: str, **values: Any) -> None:
    conn.execute(members.update().where(members.c.id == member_id).values(updated_at=clock.now(), **values))


def random_invite_code() -> str:
    return "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_LENGTH))


def _new_invite_code(conn: Connection) -> str:
    while True:
        code = random_invite_code()
        if find_by_invite_code(conn, code) is None:
            return code


def member_from_row(row: sa.RowMapping) -> Member:
    """A member from a row of the members table."""
    return Member(
        id=row["id"], status=Status(row["status"]), attributes=dict(row["attributes"] or {}),
        verified={"email": bool(row["verified_email"]), "phone": bool(row["verified_phone"]),
                  "real_name": bool(row["verified_real_name"])},
        invite_code=row["invite_code"], invited_by=row["invited_by"], joined_at=row["joined_at"],
        status_reason=row["status_reason"],
    )
