"""`pointsmith demo`: a realistic program and membership to explore, in the default database."""
from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from sqlalchemy.engine import Connection, Engine

from pointsmith import clock
from pointsmith.auth import service as auth
from pointsmith.db import migrate, unit_of_work
from pointsmith.demo.history import demo_history
from pointsmith.events.replay import ReplayClock
from pointsmith.events.service import ingest_many
from pointsmith.jobs.service import run_due
from pointsmith.ledger.service import CreditRequest, credit_many, spend
from pointsmith.members import service as members
from pointsmith.program import service as programs
from pointsmith.program.validation import load_program

CITIES = ["Shanghai", "Beijing", "Shenzhen", "Madrid", "Mexico City", "New York", "London", "Singapore"]
CHANNELS = ["app", "web", "mini-program", "store"]
SEGMENTS = ["student", "professional", "family", "senior"]
DEMO_ACTOR = "demo"


def demo_program_source() -> str:
    return resources.files("pointsmith.demo").joinpath("program.yaml").read_text()


def member_attributes(rng: random.Random) -> dict[str, Any]:
    return {"city": rng.choice(CITIES), "channel": rng.choice(CHANNELS), "segment": rng.choice(SEGMENTS),
            "years_of_experience": rng.randint(0, 25)}


def _seed_points(conn: Connection, count: int) -> None:
    """Welcome points for everyone, and a first redemption for a third of them.

    Amounts and times derive from each member alone, so a rerun repeats the same
    requests under the same idempotency keys and adds nothing.
    """
    ids = [f"demo-{n:05d}" for n in range(1, count + 1)]
    joined = {m: members.get(conn, m).joined_at for m in ids}
    credit_many(conn, [CreditRequest(m, 100 + random.Random(m).randrange(0, 50) * 20, "demo-welcome",
                                     at=joined[m] + timedelta(hours=1), reference="welcome") for m in ids])
    for m in ids[::3]:
        spend(conn, m, random.Random(m + "spend").randint(10, 100), key="demo-first-redemption",
              reference=f"demo-order-{m}", at=joined[m] + timedelta(days=1))


def seed(engine: Engine, *, members_wanted: int = 300, seed_value: int = 7,
         progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Create or top up the demo data; running it again reuses what is there. `progress(done, total)`
    hears how far the history's import has come."""
    migrate(engine)
    rng = random.Random(seed_value)
    now = clock.now()
    created = 0
    with unit_of_work(engine) as conn:
        if programs.active_or_none(conn) is None:
            source = demo_program_source()
            programs.publish(conn, load_program(source), source=source, actor=DEMO_ACTOR)
        for n in range(1, members_wanted + 1):
            member_id = f"demo-{n:05d}"
            attributes = member_attributes(rng)
            joined = now - timedelta(days=rng.randint(0, 540), minutes=rng.randint(0, 1439))
            if not members.exists(conn, member_id):
                members.create(conn, member_id, attributes=attributes, joined_at=joined)
                created += 1
        _seed_points(conn, members_wanted)
        history = demo_history([(m.id, str(m.attributes.get("segment", "")), m.joined_at)
                                for m in members.list_members(conn, limit=members_wanted)
                                if m.id.startswith("demo-")], end=_day(now))
    imported = _import(engine, history, progress or (lambda _done, _total: None))
    with unit_of_work(engine) as conn:
        _, admin_key = auth.create_key(conn, "admin", name="demo admin", actor=DEMO_ACTOR)
        _, client_key = auth.create_key(conn, "client", name="demo client", actor=DEMO_ACTOR)
        total = members.count(conn)
    return {"members": total, "created": created, "events": imported, "admin_key": admin_key,
            "client_key": client_key}


def _day(t: datetime) -> datetime:
    """History ends at the start of today, so a rerun the same day generates the same events."""
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def _import(engine: Engine, history: list[dict[str, Any]], progress: Callable[[int, int], None]) -> int:
    """Replay the history in batches (event time drives expiry and activation), then catch up to now."""
    replay = ReplayClock()
    accepted = 0
    for start in range(0, len(history), 500):
        with unit_of_work(engine) as conn:
            accepted += ingest_many(conn, history[start:start + 500], replay=replay).accepted
        progress(min(start + 500, len(history)), len(history))
    with unit_of_work(engine) as conn:
        replay.finish(conn)
    run_due(engine)
    return accepted
