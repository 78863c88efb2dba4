"""The job registry and runner: `run_due(engine, now)` catches every job up to `now`.

Jobs run in registry order (points become available before they can expire).
Each finds its own due work from the data, so a job that missed a day simply
finds more to do, each item dated when it was due.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pointsmith import clock
from pointsmith.db import advisory_lock, read_only, unit_of_work
from pointsmith.jobs.tables import scheduled_jobs
from pointsmith.ledger import jobs as ledger_jobs
from pointsmith.tiers import jobs as tier_jobs

CHUNK = 1000


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    step: Callable[[Connection, datetime, int], int]  # does up to `limit` due items, returns how many
    next_due: Callable[[Connection], datetime | None]  # when it next has work (replays wake up then)


JOBS: list[Job] = [
    Job("points.activate-pending", "make pending points available after the returns window",
        ledger_jobs.activate_pending, ledger_jobs.next_activation),
    Job("points.release-lapsed-holds", "return holds that were not captured in time",
        ledger_jobs.release_lapsed_holds, ledger_jobs.next_lapse),
    Job("points.expire-lots", "expire what remains in lots past their expiry", ledger_jobs.expire_lots,
        ledger_jobs.next_expiry),
    Job("points.expire-inactive", "expire the points of members idle too long (inactivity policy)",
        ledger_jobs.expire_inactive, ledger_jobs.next_inactivity),
    Job("tiers.review", "downgrade warnings, period reviews, decay and the end of manual overrides",
        tier_jobs.step, tier_jobs.next_due),
]


def register(job: Job) -> None:
    """Features that add scheduled work append their jobs here."""
    if all(j.name != job.name for j in JOBS):
        JOBS.append(job)


def run_due(engine: Engine, now: datetime | None = None) -> list[dict[str, Any]]:
    """Catch every job up to `now`, one short transaction per chunk of work."""
    when = clock.ensure_utc(now) if now else clock.now()
    results = []
    for job in JOBS:
        started, processed = clock.now(), 0
        while True:
            with unit_of_work(engine) as conn:
                done = job.step(conn, when, CHUNK)
                processed += done
                if done == 0:
                    _record(conn, job.name, when, started, processed)
                    break
        results.append({"job": job.name, "processed": processed})
    return results


def next_due(conn: Connection) -> datetime | None:
    """The earliest time any job has work, or None."""
    times = [t for job in JOBS if (t := job.next_due(conn)) is not None]
    return min(times) if times else None


def run_due_within(conn: Connection, now: datetime) -> int:
    """The same catch-up inside the caller's transaction (replays, tests); returns the items done."""
    total = 0
    for job in JOBS:
        while (done := job.step(conn, now, CHUNK)) > 0:
            total += done
    return total


def status(engine: Engine) -> list[dict[str, Any]]:
    with read_only(engine) as conn:
        rows = {r["name"]: r for r in conn.execute(sa.select(scheduled_jobs)).mappings()}
    out = []
    for job in JOBS:
        r = rows.get(job.name)
        out.append({"job": job.name, "description": job.description,
                    "caught_up_to": clock.iso(r["caught_up_to"]) if r and r["caught_up_to"] else None,
                    "last_finished_at": clock.iso(r["last_finished_at"]) if r and r["last_finished_at"] else None,
                    "last_processed": r["last_processed"] if r else 0, "runs": r["runs"] if r else 0})
    return out


def _record(conn: Connection, name: str, now: datetime, started: datetime, processed: int) -> None:
    advisory_lock(conn, f"job:{name}")  # two runners may finish the same job at once
    row = conn.execute(sa.select(scheduled_jobs.c.caught_up_to).where(scheduled_jobs.c.name == name)).first()
    values = {"last_started_at": started, "last_finished_at": clock.now(), "last_processed": processed}
    if row is None:
        conn.execute(scheduled_jobs.insert().values(name=name, caught_up_to=now, runs=1, **values))
    else:
        caught_up = max(filter(None, (row.caught_up_to, now)))
        conn.execute(scheduled_jobs.update().where(scheduled_jobs.c.name == name)
                     .values(caught_up_to=caught_up, runs=scheduled_jobs.c.runs + 1, **values))
