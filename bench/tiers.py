"""Tier benchmark: the yearly review of a million members, set-based.

    python -m bench.tiers [--members 1000000] [--backends sqlite,postgresql]

Members hold tier states as the event path leaves them at the end of a year
(their growth that year spread over four tiers); `jobs run --now` just past
1 January then sends the downgrade warnings and runs the review for every
member. Baseline: one plain `UPDATE` of every state row in the same run (the
database's floor for touching each member once).
"""
from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from bench.common import machine, scratch_database, timed
from pointsmith import clock
from pointsmith.db import driver_time, get_engine, insert_rows, read_only, unit_of_work
from pointsmith.jobs.service import run_due
from pointsmith.outbox import domain_events
from pointsmith.program import service as programs
from pointsmith.program.validation import load_program
from pointsmith.tiers import service
from pointsmith.tiers.policy import level_for
from pointsmith.tiers.tables import member_tiers, tier_changes

PROGRAM = """\
program: {name: Bench, currency: USD, point_value: 0.01, timezone: Asia/Shanghai}
points: {expiry: {policy: none}}
tiers:
  qualification: period
  period: year
  max_drop: 1
  warn_days: 30
  levels:
    - {key: member, name: Member, threshold: 0}
    - {key: silver, name: Silver, threshold: 1000}
    - {key: gold, name: Gold, threshold: 5000}
    - {key: platinum, name: Platinum, threshold: 20000}
"""
TZ_NEW_YEAR = datetime(2025, 12, 31, 16, tzinfo=UTC)  # 1 January 2026 in Shanghai
AS_OF = datetime(2025, 12, 31, 12, tzinfo=UTC)


def seed(url: str, n: int) -> None:
    """Members and their end-of-year tier states, written in batches like the event path leaves them."""
    program = load_program(PROGRAM)
    engine = get_engine(url)
    with unit_of_work(engine) as conn:
        programs.publish(conn, program, source=PROGRAM, actor="bench", effective_at=datetime(2020, 1, 1, tzinfo=UTC))
    rng = random.Random(7)
    levels = program.tiers.levels
    policy = service.checksum(program.tiers)
    columns = ("member_id", "level", "tier", "review_level", "qualifying", "lifetime", "since", "next_review_at",
               "as_of", "policy")
    for start in range(0, n, 50_000):
        rows = []
        for i in range(start, min(n, start + 50_000)):
            growth = int(rng.paretovariate(1.2) * 400)  # a long tail, as spend is
            held = max(level_for(levels, growth), rng.choice([0, 0, 1, 2]))  # some reached more last year
            rows.append((f"m{i:07d}", held, levels[held].key, 0, growth, growth * 2, AS_OF, TZ_NEW_YEAR, AS_OF,
                         policy))
        with unit_of_work(engine) as conn:
            stamp = driver_time(conn)
            insert_rows(conn, "member_tiers", columns, [(*r[:6], stamp(r[6]), stamp(r[7]), stamp(r[8]), r[9])
                                                        for r in rows])


def run_backend(backend: str, n: int) -> dict[str, Any]:
    with scratch_database(backend) as url:
        seed(url, n)
        engine = get_engine(url)
        baseline = timed(lambda: _touch_all(url))
        seconds = timed(lambda: run_due(engine, datetime(2026, 1, 2, tzinfo=UTC)))
        with read_only(engine) as conn:
            changes = conn.execute(sa.select(sa.func.count()).select_from(tier_changes)).scalar_one()
            warnings = conn.execute(sa.select(sa.func.count()).select_from(domain_events)).scalar_one()
            due = member_tiers.c.next_review_at <= datetime(2026, 1, 2, tzinfo=UTC)
            left = conn.execute(sa.select(sa.func.count()).select_from(member_tiers).where(due)).scalar_one()
        assert left == 0
        return {"backend": backend, "members": n, "review_seconds": round(seconds, 2),
                "members_per_second": round(n / seconds), "downgrades": changes, "warnings": warnings,
                "baseline_update_all_seconds": round(baseline, 2), "review_vs_baseline": round(seconds / baseline, 2)}


def _touch_all(url: str) -> None:
    with unit_of_work(get_engine(url)) as conn:
        conn.execute(member_tiers.update().values(lifetime=member_tiers.c.lifetime + 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    with clock.frozen(datetime(2026, 1, 2, tzinfo=UTC)):
        results = [run_backend(b, args.members) for b in args.backends.split(",")]
    print(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
