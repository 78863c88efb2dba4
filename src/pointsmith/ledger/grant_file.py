"""Reading a grant file: CSV with a header, `member_id,points[,reference]`, one credit per line.

The file is checked whole before anything is posted (every line, every member),
so a bad file changes nothing; each line's idempotency key is the grant's key
and the line number, so running the same file again posts nothing twice.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsmith.db import in_list, read_only
from pointsmith.errors import ValidationFailed
from pointsmith.ledger.common import check_points
from pointsmith.ledger.service import CreditRequest
from pointsmith.members.tables import members

COLUMNS = ("member_id", "points", "reference")


def read(path: Path, *, key: str, reason: str, actor: str) -> Iterator[CreditRequest]:
    """The file's credits, in order (assumes `check` passed)."""
    for number, row in _rows(path):
        yield CreditRequest(row["member_id"], int(row["points"]), f"{key}:{number}", kind="adjust",
                            reference=row.get("reference") or None, actor=actor, reason=reason)


def check(engine: Engine, path: Path) -> tuple[int, int]:
    """Lines and points of a valid file; ValidationFailed naming the first bad line otherwise."""
    lines = points = 0
    pending: list[tuple[int, str]] = []
    for number, row in _rows(path):
        member_id = (row.get("member_id") or "").strip()
        if not member_id:
            raise ValidationFailed(f"{path.name} line {number}: member_id is empty")
        try:
            value = check_points(int(row.get("points") or ""))
        except ValueError:
            raise ValidationFailed(f"{path.name} line {number}: points must be a whole number") from None
        except ValidationFailed as e:
            raise ValidationFailed(f"{path.name} line {number}: {e}") from None
        lines, points = lines + 1, points + value
        pending.append((number, member_id))
        if len(pending) == 5000:
            _check_members(engine, path, pending)
            pending = []
    _check_members(engine, path, pending)
    if lines == 0:
        raise ValidationFailed(f"{path.name} has no credits")
    return lines, points


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        stream = path.open(encoding="utf-8", newline="")
    except OSError as e:
        raise ValidationFailed(f"cannot read {path}: {e.strerror}") from None
    with stream:
        reader = csv.DictReader(stream)
        missing = [c for c in COLUMNS[:2] if c not in (reader.fieldnames or [])]
        if missing:
            raise ValidationFailed(f"{path.name}: the header must name {', '.join(COLUMNS[:2])} "
                                   f"(and optionally reference); missing {', '.join(missing)}")
        for row in reader:
            if any((v or "").strip() for v in row.values()):
                yield reader.line_num, row


def _check_members(engine: Engine, path: Path, pending: list[tuple[int, str]]) -> None:
    if not pending:
        return
    ids = sorted({m for _, m in pending})
    with read_only(engine) as conn:
        known = set(conn.execute(sa.select(members.c.id).where(in_list(conn, members.c.id, ids))).scalars())
    for number, member_id in pending:
        if member_id not in known:
            raise ValidationFailed(f"{path.name} line {number}: no member with id {member_id!r}")
