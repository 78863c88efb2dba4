"""Tier state, history, overrides and the member's tier view.

The tier is a pure function of the growth history, the policy and the time
(`tiers.policy`). This module keeps what that function implies where the
database can use it: each member's state (`member_tiers`, so reviews run
set-based) and the changes with their reasons (`tier_changes`). `refresh`
recomputes members whose growth changed; `tiers.jobs` moves everyone else
along as time passes. Manual overrides are the one input that is not growth.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import audit, clock, outbox
from pointsmith.db import (
    Read,
    bulk_insert,
    driver_execute,
    driver_in,
    driver_time,
    is_postgres,
    member_bounds,
    pipelined,
    select_read,
    time_from_driver,
)
from pointsmith.errors import ValidationFailed
from pointsmith.growth import service as growth
from pointsmith.program import service as programs
from pointsmith.program.schema import Level, Program, Qualification, TiersConfig
from pointsmith.program.service import Version
from pointsmith.tiers.policy import (
    Segment,
    moves,
    next_decay_drop,
    next_period,
    next_review,
    outlook,
    period_start,
    projected_level,
    segment_at,
    tier_at,
)
from pointsmith.tiers.tables import member_tiers, tier_changes

mt, tc = member_tiers.c, tier_changes.c
# kept as they are when a member is recomputed
STATE_FIELDS = ("override_tier", "override_from", "override_until")


WARNING = "tier.downgrade_warning"


def warning_time(config: TiersConfig, tz: ZoneInfo, review: datetime) -> datetime:
    """`warn_days` before a review, counted in the program's time zone (the same local hour, across a
    change of daylight saving time), but not before the period the review judges began: a warning
    looks at that period's growth (with `warn_days` longer than the period, at its first moment)."""
    judged = period_start(review - timedelta(microseconds=1), config.period, tz)
    return max(review.astimezone(tz) - timedelta(days=config.warn_days), judged)


def warning_row(levels: list[Level], member_id: str, review: datetime, at: datetime, level: int, projected: int,
                qualifying: Decimal, now: datetime) -> dict[str, Any]:
    """A `tier.downgrade_warning` domain event: the review at `review` would lower `level` to `projected`."""
    return {"type": WARNING, "member_id": member_id, "occurred_at": at,
            "dedupe": f"{WARNING}:{member_id}:{clock.iso(review)}",
            "payload": {"tier": levels[level].key, "projected_tier": levels[projected].key,
                        "review_at": clock.iso(review),
                        "growth_to_keep": max(int(levels[level].threshold - qualifying), 0)},
            "recorded_at": now, "delivered_at": None}


Warned = list[tuple[datetime, TiersConfig | None]]  # reviews looked at for a warning, and under which policy


def _passed_warnings(spans: list[Segment], member_id: str, history: list[tuple[datetime, int]],
                     previous: dict[str, Any], as_of: datetime) -> tuple[list[dict[str, Any]], Warned]:
    """The downgrade warnings that fell due while this refresh carries a member from the time its state
    stood at to `as_of`, as the warning job would have sent them: for each review a policy schedules
    (from its start on), judged by that policy on the growth by the warning's time, while the policy
    is in force, dated no earlier than its start. Also every review looked at (warned of or not: a
    later growth or refund does not make the job judge it again), the stored one first."""
    first = min((t for t, _ in history), default=None)
    if first is None:
        return [], []
    after = max(first, clock.ensure_utc(previous["as_of"])) if previous else first
    warned: Warned = []
    if previous.get("warned_review_at"):
        warned.append((clock.ensure_utc(previous["warned_review_at"]), segment_at(spans, after).config))
    rows, now = [], clock.now()
    for segment in spans:
        config, tz = segment.config, segment.tz
        if config.qualification is not Qualification.period:
            continue
        review = next_period(period_start(after, config.period, tz), config.period)
        while (at := warning_time(config, tz, review)) <= as_of:
            at = max(at, segment.start) if segment.start is not None else at
            ours = segment.start is None or review >= segment.start
            if ours and after < at <= as_of and segment.holds(at) and not _warned_of(review, config, warned):
                # judged before the review itself (warn_days 0, or a policy that begins on its review day)
                state = tier_at(config, tz, history, min(at, review - timedelta(microseconds=1)))
                projected = projected_level(config, state)
                if projected < state.level:
                    rows.append(warning_row(config.levels, member_id, review, at, state.level, projected,
                                            state.qualifying, now))
                warned.append((review, config))  # looked at, as the job marks every member due
            review = next_period(review, config.period)
    return rows, warned


def _warned_of(review: datetime, config: TiersConfig, warned: Warned) -> bool:
    """Whether this review was looked at for a warning: at this instant, or the same review of the same
    policy that a new time zone moved by some hours."""
    return any(review == w or (config == c and abs(review - w) < timedelta(days=2)) for w, c in warned)


_segments: dict[tuple[tuple[int, str, datetime], ...], list[Segment]] = {}


def segments(timeline: list[Version]) -> list[Segment]:
    """The spans of the timeline's tier policies: versions that leave the tiers (and the time zone) as
    they were are one span with the version before them. Each span's `lineage` sums up it and every
    span before it, so a state computed under another history of policies is known by it (a version
    published later with an earlier effective time). Remembered per timeline."""
    key = tuple((v.version, v.checksum, v.effective_at) for v in timeline)
    found = _segments.get(key)
    if found is None:
        found = []
        for version, end in programs.spans(timeline):
            config, tz = version.program.tiers, ZoneInfo(version.program.program.timezone)
            if found and (found[-1].config, found[-1].tz) == (config, tz):
                found[-1] = Segment(found[-1].start, end, config, tz, found[-1].lineage)
                continue
            start = version.effective_at if found else None
            text = (found[-1].lineage if found else "") + f"|{start}|{config.model_dump_json()}|{tz.key}"
            found.append(Segment(start, end, config, tz, hashlib.sha256(text.encode()).hexdigest()[:16]))
        _segments[key] = found
    return found


def refresh(conn: Connection, timeline: list[Version], member_ids: Iterable[str],
            until: datetime | Mapping[str, datetime], *, histories: dict[str, list[tuple[datetime, int]]] | None = None,
            since: Mapping[str, datetime] | None = None, stored: dict[str, dict[str, Any]] | None = None) -> None:
    """Recompute these members' tier state and derived history from their growth, up to `until` (one
    time for all, or each member's own) or the time their state was already computed to, if later,
    under the tier policy of each version of the timeline in its span (`policy.moves`).
    A caller that holds the members' growth histories passes them (`histories`) and saves reading
    them again: whole histories, or (lifetime policy only) each member's entries from
    `since[member]` on after the carried total of the earlier ones (`growth.windows`), when nothing
    before `since` changed; the stored changes before it stand. `stored`: the members' stored states
    (`states`), if the caller has read them."""
    ids = sorted(set(member_ids))
    if not ids or not timeline:
        return
    spans = segments(timeline)
    if stored is None:
        stored = states(conn, ids)
    if histories is None:
        histories = growth.histories(conn, ids)
    if since:  # a window that begins past a new policy's start, which a member's state has not reached
        unseen = _window_misses_a_start(spans, stored, since)
        histories = {**histories, **growth.histories(conn, unseen)} if unseen else histories
        since = {m: t for m, t in since.items() if m not in unseen}
    earlier = _last_changes_before(conn, {m: t for m, t in (since or {}).items()
                                         if m in stored and _since_at_or_after(stored[m], t)})
    rows, changes, warnings = [], [], []
    for member_id in ids:
        history = histories.get(member_id, [])
        if not history and member_id not in stored:
            continue  # no growth ever: the base tier, nothing to keep
        previous = stored.get(member_id, {})
        own = until[member_id] if isinstance(until, Mapping) else until
        as_of = max(own, clock.ensure_utc(previous["as_of"])) if previous else own
        segment = segment_at(spans, as_of)
        config, tz = segment.config, segment.tz
        state = tier_at(config, tz, history, as_of)
        changed = moves(spans, history, as_of)
        start = since.get(member_id) if since else None
        if start is not None:
            changed = [c for c in changed if c.at >= start]
        ahead = next_review(config, tz, history, as_of) or next_decay_drop(config, history, as_of)
        passed, warned = _passed_warnings(spans, member_id, history, previous, as_of)
        warnings += passed
        rows.append({
            "member_id": member_id, "level": state.level, "tier": config.levels[state.level].key,
            "review_level": state.review_level, "qualifying": state.qualifying.quantize(Decimal("0.000001")),
            "lifetime": sum(g for t, g in history if t <= as_of),
            "since": changed[-1].at if changed else _last_kept(previous, start, earlier),
            "next_review_at": ahead, "as_of": as_of, "policy": segment.lineage,
            "warned_review_at": _warned(previous, ahead, config, warned), **{f: previous.get(f) for f in STATE_FIELDS}})
        changes += [{"member_id": member_id, "effective_at": c.at, "from_tier": c.from_tier,
                     "to_tier": c.to_tier, "reason": c.reason} for c in changed]
    match, params = driver_in(conn, ids)
    with pipelined(conn, rows, changes):
        driver_execute(conn, f"DELETE FROM member_tiers WHERE member_id {match}", params)  # noqa: S608
        _forget_changes(conn, ids, since or {})
        bulk_insert(conn, member_tiers, rows)
        bulk_insert(conn, tier_changes, changes)
    outbox.record(conn, warnings)


def _window_misses_a_start(spans: list[Segment], stored: Mapping[str, dict[str, Any]],
                           since: Mapping[str, datetime]) -> list[str]:
    """Members whose window of growth does not hold all that changed: it starts after a policy start
    their stored state stands before (the change at that start needs the growth before the window),
    or their state was computed under another history of policies (a version published since with an
    earlier effective time)."""
    starts = [s.start for s in spans if s.start is not None]
    out = []
    for member_id, t in since.items():
        if member_id in stored:
            as_of = clock.ensure_utc(stored[member_id]["as_of"])
            if stored[member_id]["policy"] != segment_at(spans, as_of).lineage or any(
                    as_of < start < t for start in starts):
                out.append(member_id)
    return out


def _warned(previous: dict[str, Any], ahead: datetime | None, config: TiersConfig, warned: Warned
            ) -> datetime | None:
    """The review the stored state marks as looked at for a warning: the next one, if it was (in this
    refresh, or before a new time zone moved it), else what was stored."""
    if ahead is not None and _warned_of(ahead, config, warned):
        return ahead
    stored: datetime | None = previous.get("warned_review_at")
    return stored


def _since_at_or_after(previous: dict[str, Any], start: datetime) -> bool:
    return previous["since"] is not None and clock.ensure_utc(previous["since"]) >= start


def _last_kept(previous: dict[str, Any], start: datetime | None, earlier: dict[str, datetime]) -> datetime | None:
    """The last change a windowed refresh keeps (before `start`): what was stored, unless that is being redone."""
    if start is None or not previous:
        return None
    if _since_at_or_after(previous, start):
        return earlier.get(previous["member_id"])
    return clock.ensure_utc(previous["since"]) if previous["since"] is not None else None


def _last_changes_before(conn: Connection, bounds: dict[str, datetime]) -> dict[str, datetime]:
    if not bounds:
        return {}
    table, params = member_bounds(conn, bounds)
    rows = driver_execute(
        conn, f"SELECT c.member_id, MAX(c.effective_at) FROM {table} b JOIN tier_changes c"  # noqa: S608 (fixed SQL; values are bound)
        " ON c.member_id = b.member_id AND c.effective_at < b.since AND c.reason <> 'manual' GROUP BY c.member_id",
        params)
    return {m: time_from_driver(t) for m, t in rows}


def _forget_changes(conn: Connection, ids: list[str], since: Mapping[str, datetime]) -> None:
    """Delete the derived changes about to be recomputed: all of them, or from a member's `since` on."""
    whole = [m for m in ids if m not in since]
    if whole:
        match, params = driver_in(conn, whole)
        driver_execute(conn, f"DELETE FROM tier_changes WHERE member_id {match} AND reason <> 'manual'",  # noqa: S608
                       params)
    partial = {m: since[m] for m in ids if m in since}
    if partial and is_postgres(conn):  # one statement, not one a member
        bounds, params = member_bounds(conn, partial)
        driver_execute(conn, f"DELETE FROM tier_changes t USING {bounds} b WHERE t.member_id = b.member_id"  # noqa: S608
                       " AND t.effective_at >= b.since AND t.reason <> 'manual'", params)
    elif partial:  # SQLite has no DELETE ... USING; its executemany is one call into C anyway
        to_driver = driver_time(conn)
        driver_execute(conn, "DELETE FROM tier_changes WHERE member_id = ? AND effective_at >= ?"
                       " AND reason <> 'manual'", [(m, to_driver(t)) for m, t in partial.items()], many=True)


def overrides(conn: Connection, member_ids: list[str], at: datetime) -> dict[str, str]:
    """Tiers set by an admin and in force at `at`, by member."""
    return {m: tier for m, (tier, start, end) in override_spans(conn, member_ids).items() if start <= at < end}


def override_spans(conn: Connection, member_ids: list[str]) -> dict[str, tuple[str, datetime, datetime]]:
    """Each member's manual override: (tier, from, until)."""
    return {m: span for m, row in states(conn, member_ids).items() if (span := override_span(row)) is not None}


def states(conn: Connection, member_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored tier state of each of these members that has one."""
    if not member_ids:
        return {}
    answer: dict[str, dict[str, Any]] = states_read(conn, member_ids).now(conn)
    return answer


def states_read(conn: Connection, member_ids: list[str]) -> Read:
    """`states` as a read to run with others (read for every import batch: straight to the driver)."""
    match, params = driver_in(conn, member_ids)
    columns = list(member_tiers.c.keys())
    return select_read(conn, member_tiers, columns, f"member_id {match}", params).then(
        lambda rows: {row[0]: dict(zip(columns, row, strict=True)) for row in rows})


def override_span(state: dict[str, Any]) -> tuple[str, datetime, datetime] | None:
    """A stored state's manual override: (tier, from, until), if it has one."""
    if state["override_tier"] is None:
        return None
    start, end = clock.ensure_utc(state["override_from"]), clock.ensure_utc(state["override_until"])
    return str(state["override_tier"]), start, end


def level_at(program: Program, history: list[tuple[datetime, int]], at: datetime,
             override: tuple[str, datetime, datetime] | None) -> Level:
    """The level whose multiplier an event at `at` gets: an override in force, else the growth's."""
    if override is not None and override[1] <= at < override[2]:
        held = next((level for level in program.tiers.levels if level.key == override[0]), None)
        if held is not None:  # (a tier a later version dropped is ignored)
            return held
    return program.tiers.levels[tier_at(program.tiers, ZoneInfo(program.program.timezone), history, at).level]


def set_override(conn: Connection, program: Program, member_id: str, tier: str, *, until: datetime, reason: str,
                 actor: str, at: datetime | None = None) -> dict[str, Any]:
    """Hold a member at `tier` until `until` whatever their growth (a manual change, recorded with its reason)."""
    when = clock.ensure_utc(at) if at else clock.now()
    until = clock.ensure_utc(until)
    if tier not in {level.key for level in program.tiers.levels}:
        raise ValidationFailed(f"no tier {tier!r} in the program (tiers: "
                               f"{', '.join(level.key for level in program.tiers.levels)})")
    if until <= when:
        raise ValidationFailed("the override must end after it starts")
    if not reason or not reason.strip():
        raise ValidationFailed("a reason is required for a manual tier change")
    before = current(conn, program, member_id, when)
    if conn.execute(sa.select(mt.member_id).where(mt.member_id == member_id)).first() is None:
        conn.execute(member_tiers.insert().values(
            member_id=member_id, level=0, tier=program.tiers.levels[0].key, review_level=0, qualifying=0,
            lifetime=0, as_of=when, policy=segment_at(segments(programs.timeline(conn)), when).lineage))
    conn.execute(member_tiers.update().where(mt.member_id == member_id).values(
        override_tier=tier, override_from=when, override_until=until))
    conn.execute(tier_changes.insert().values(
        member_id=member_id, effective_at=when, from_tier=before, to_tier=tier, reason="manual", actor=actor,
        note=reason, until=until))
    audit.record(conn, "tiers:override", member_id, actor, tier=tier, until=clock.iso(until), reason=reason)
    return {"member_id": member_id, "tier": tier, "from": before, "until": clock.iso(until), "reason": reason}


def current(conn: Connection, program: Program, member_id: str, at: datetime) -> str:
    """The tier a member holds at `at`: an admin's override in force, else what growth gives."""
    held = overrides(conn, [member_id], at).get(member_id)
    if held is not None:
        return held
    state = tier_at(program.tiers, ZoneInfo(program.program.timezone), growth.history(conn, member_id, until=at), at)
    return program.tiers.levels[state.level].key


def view(conn: Connection, program: Program, member_id: str, at: datetime, *, as_recorded: bool = False
         ) -> dict[str, Any]:
    """The tier part of the member view: the tier, the growth that counts, and what the next review holds.
    `as_recorded`: an override holds while it is stored (until the job that ends it has run), as
    `report summary` counts it, rather than by its dates at `at`."""
    config, tz = program.tiers, ZoneInfo(program.program.timezone)
    history = growth.history(conn, member_id, until=at)
    state = tier_at(config, tz, history, at)
    ahead = outlook(config, tz, history, at)
    levels = config.levels
    decay_at = next_decay_drop(config, history, at)
    projected = tier_at(config, tz, history, decay_at).level if decay_at else ahead.projected_level
    span = override_spans(conn, [member_id]).get(member_id)
    override, until = (span[0], span[2]) if span and (as_recorded or span[1] <= at < span[2]) else (None, None)
    return {
        "tier": override or levels[state.level].key,
        "computed_tier": levels[state.level].key,
        "override": {"tier": override, "until": clock.iso(until)} if override and until else None,
        "qualifying": int(state.qualifying.to_integral_value(ROUND_FLOOR)),
        "next_review_at": clock.iso(ahead.next_review_at) if ahead.next_review_at else None,
        "projected_tier": levels[projected].key,
        "growth_to_keep": ahead.growth_to_keep,
        "next_tier": levels[state.level + 1].key if state.level + 1 < len(levels) else None,
        "growth_to_next": ahead.growth_to_next,
        "next_decay_at": _iso(decay_at),
    }


def _iso(t: datetime | None) -> str | None:
    return clock.iso(t) if t else None


def history(conn: Connection, member_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(tier_changes).where(tc.member_id == member_id)
                        .order_by(tc.effective_at, tc.id)).mappings()
    return [{"effective_at": clock.iso(r["effective_at"]), "from": r["from_tier"], "to": r["to_tier"],
             "reason": r["reason"], **({"actor": r["actor"], "note": r["note"],
                                        "until": clock.iso(r["until"]) if r["until"] else None}
                                       if r["reason"] == "manual" else {})} for r in rows]
