"""The versioned program store.

A version is immutable once published. The version in force at time T is the
one with the latest `effective_at` ≤ T (the higher version number on a tie).
The first version is in force from the beginning of time, so a history can be
imported after it. Every process reads the store, so a new version is seen
everywhere at once; parsed versions are cached by their immutable number.
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import audit, clock
from pointsmith.db import advisory_lock, driver_execute
from pointsmith.errors import NoProgram, NotFound
from pointsmith.program.schema import Program
from pointsmith.program.tables import program_versions
from pointsmith.program.validation import document, validate_program

BEGINNING = clock.EARLIEST


@dataclass(frozen=True)
class Version:
    version: int
    effective_at: datetime
    published_at: datetime
    published_by: str
    checksum: str
    program: Program

    def summary(self) -> dict[str, Any]:
        return {"version": self.version, "name": self.program.program.name,
                "effective_at": clock.iso(self.effective_at), "published_at": clock.iso(self.published_at),
                "published_by": self.published_by, "checksum": self.checksum}


@dataclass(frozen=True)
class Published:
    version: Version
    created: bool  # False when the same document was already the latest version


_cache: dict[tuple[str, int], Program] = {}
_cache_lock = threading.Lock()


def checksum(program: Program) -> str:
    return hashlib.sha256(json.dumps(document(program), sort_keys=True).encode()).hexdigest()


def publish(conn: Connection, program: Program, *, source: str, actor: str,
            effective_at: datetime | None = None) -> Published:
    """Publish a validated program; re-publishing the latest document unchanged, to take effect now, is
    a no-op once that version is in force (not while it waits for a later effective time: then
    "now" asks for a version of its own)."""
    advisory_lock(conn, "program.publish")  # two publishers at once would take one version number
    digest = checksum(program)
    latest = conn.execute(sa.select(program_versions.c.version, program_versions.c.checksum,
                                    program_versions.c.effective_at)
                          .order_by(program_versions.c.version.desc()).limit(1)).first()
    if latest is not None and latest.checksum == digest and effective_at is None \
            and clock.ensure_utc(latest.effective_at) <= clock.now():
        return Published(get_version(conn, latest.version), created=False)
    number = 1 if latest is None else latest.version + 1
    if effective_at is None:
        effective_at = BEGINNING if latest is None else clock.now()
    conn.execute(program_versions.insert().values(
        version=number, name=program.program.name, effective_at=clock.ensure_utc(effective_at),
        published_at=clock.now(), published_by=actor, checksum=digest, document=document(program),
        source=source))
    audit.record(conn, "program:publish", str(number), actor, checksum=digest,
                 effective_at=clock.iso(effective_at))
    return Published(get_version(conn, number), created=True)


def active(conn: Connection, at: datetime | None = None) -> Version:
    """The version in force at `at` (default: now)."""
    found = active_or_none(conn, at)
    if found is None:
        raise NoProgram("no program is published yet: run `pointsmith program apply FILE`")
    return found


def active_or_none(conn: Connection, at: datetime | None = None) -> Version | None:
    return in_force(timeline(conn), clock.ensure_utc(at) if at else clock.now())


def in_force(versions_: list[Version], at: datetime) -> Version | None:
    """The version of a timeline in force at `at`."""
    candidates = [v for v in versions_ if v.effective_at <= at]
    return max(candidates, key=lambda v: (v.effective_at, v.version)) if candidates else None


_timelines: dict[tuple[str, int, str, str, str], list[Version]] = {}


def timeline(conn: Connection) -> list[Version]:
    """Every version, read once per process and again only when a version is added (one cheap query)."""
    # asked on every write: straight to the driver
    # (the times too: a publish rolled back and its number taken again by the same document, later)
    found = driver_execute(conn, "SELECT version, checksum, effective_at, published_at FROM program_versions"
                                 " ORDER BY version DESC LIMIT 1")
    if not found:
        return []
    latest = found[0]
    key = (str(conn.engine.url), int(latest[0]), str(latest[1]), str(latest[2]), str(latest[3]))
    with _cache_lock:
        cached = _timelines.get(key)
    if cached is None:
        cached = versions(conn)
        with _cache_lock:
            _timelines[key] = cached
    return cached


def forget_timelines() -> None:
    with _cache_lock:
        _timelines.clear()


def spans(timeline: list[Version]) -> list[tuple[Version, datetime | None]]:
    """Each version that is ever in force, in time order, with when it stops being so (None: never)."""
    ordered = sorted(timeline, key=lambda v: (v.effective_at, v.version))
    out = []
    for i, version in enumerate(ordered):
        end = ordered[i + 1].effective_at if i + 1 < len(ordered) else None
        if end is None or end > version.effective_at:  # a tie goes to the higher version number
            out.append((version, end))
    return out


def get_version(conn: Connection, number: int) -> Version:
    row = conn.execute(
        sa.select(program_versions.c.version, program_versions.c.effective_at, program_versions.c.published_at,
                  program_versions.c.published_by, program_versions.c.checksum)
        .where(program_versions.c.version == number)
    ).first()
    if row is None:
        raise NotFound(f"no program version {number}")
    return Version(row.version, row.effective_at, row.published_at, row.published_by, row.checksum,
                   _program(conn, number, row.checksum))


def versions(conn: Connection) -> list[Version]:
    numbers = conn.execute(sa.select(program_versions.c.version).order_by(program_versions.c.version)).scalars()
    return [get_version(conn, n) for n in numbers]


def source_of(conn: Connection, number: int) -> str:
    text = conn.execute(sa.select(program_versions.c.source).where(program_versions.c.version == number)).scalar()
    if text is None:
        raise NotFound(f"no program version {number}")
    return str(text)


def _program(conn: Connection, number: int, digest: str) -> Program:
    # Keyed by checksum too, so two databases in one process never share an entry by mistake.
    key = (digest, number)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    doc = conn.execute(sa.select(program_versions.c.document).where(program_versions.c.version == number)).scalar()
    program = validate_program(doc, stored=True)
    with _cache_lock:
        _cache[key] = program
    return program
