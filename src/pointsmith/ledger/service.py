"""Points operations: credit, spend, reverse (claw back), adjust. Each is idempotent by key.

Every operation locks the member first (PostgreSQL row lock; SQLite holds the
database write lock), so parallel writes to one balance never overspend.
Program accounts are only ever inserted into, never locked or updated, so
they are never a hot spot.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import audit, clock, idempotency
from pointsmith.db import bulk_insert, driver_execute, is_postgres, loads
from pointsmith.errors import IdempotencyConflict, InsufficientPoints, ValidationFailed
from pointsmith.idempotency import Outcome, idempotency_keys, request_hash
from pointsmith.ledger.common import check_points, lock_member_points, transaction_view
from pointsmith.ledger.holds import release_lapsed
from pointsmith.ledger.lots import spendable_lots, take_from_lots
from pointsmith.ledger.policy import PointsPolicy, policy_at, policy_of
from pointsmith.ledger.tables import ledger_lots
from pointsmith.ledger.writer import Draft, NewLot, PointState, Posting, lock_states, write
from pointsmith.program import service as programs

CREDIT = "points.credit"


@dataclass(frozen=True)
class CreditRequest:
    member_id: str
    points: int
    key: str
    at: datetime | None = None
    pending: bool = False
    kind: str = "earn"  # earn | adjust | return
    reference: str | None = None
    event_id: str | None = None
    rule_key: str | None = None
    actor: str | None = None
    reason: str | None = None

    def request(self) -> dict[str, Any]:
        """What a retry must repeat exactly (everything but the key)."""
        return {"member_id": self.member_id, "points": self.points, "at": clock.iso(self.at) if self.at else None,
                "pending": self.pending, "kind": self.kind, "reference": self.reference, "event_id": self.event_id,
                "rule_key": self.rule_key, "actor": self.actor, "reason": self.reason}

    def digest(self) -> str:
        """The request hash an idempotency record keeps."""
        return request_hash(CREDIT, self.request())


# --- credit -----------------------------------------------------------------


def credit_draft(req: CreditRequest, policy: PointsPolicy, at: datetime, *, debt: int) -> Draft:
    """A credit: a new lot (pending or available); available points first pay off `debt`."""
    available_at = policy.available_at(at, pending=req.pending)
    pending = available_at > at
    lot = NewLot(req.points, at, available_at, policy.expires_at(at), req.reference, req.event_id, req.rule_key)
    postings = [Posting("pending" if pending else "available", req.points, lot_id=0),
                Posting("issued", -req.points)]
    if not pending:
        postings += settle_debt(debt, req.points, lot_id=0)
    return Draft(req.member_id, req.kind, at, tuple(postings), new_lot=lot, reference=req.reference,
                 event_id=req.event_id, rule_key=req.rule_key, program_version=policy.program_version,
                 actor=req.actor, reason=req.reason, activity=req.kind == "earn")


def settle_debt(debt: int, points: int, *, lot_id: int) -> list[Posting]:
    """Move newly available points from their lot to the member's debt, as far as both go."""
    paid = min(points, debt)
    return [Posting("available", -paid, lot_id=lot_id), Posting("available", paid)] if paid > 0 else []


def credit(conn: Connection, req: CreditRequest) -> Outcome:
    return credit_many(conn, [req])[0]


def credit_many(conn: Connection, requests: Sequence[CreditRequest],
                policy: PointsPolicy | None = None) -> list[Outcome]:
    """Credit many members set-based; each request is idempotent by (member, key)."""
    for req in requests:
        check_points(req.points)
    digests = [req.digest() for req in requests]
    states = lock_states(conn, (r.member_id for r in requests))
    stored = _stored(conn, requests, digests)
    first_in_batch: dict[tuple[str, str], int] = {}
    drafts: list[tuple[int, Draft]] = []
    versions = programs.timeline(conn) if policy is None else []
    policies: dict[int | None, PointsPolicy] = {}
    debt = {m: s.debt for m, s in states.items()}  # as this batch's earlier credits leave it
    for i, req in enumerate(requests):
        ident = (req.member_id, req.key)
        if ident in stored or ident in first_in_batch:
            continue  # answered below from the stored outcome, or this batch's first
        first_in_batch[ident] = i
        at = clock.ensure_utc(req.at) if req.at else clock.now()
        if policy is None:
            version = programs.in_force(versions, at)
            number = version.version if version else None
            if number not in policies:
                policies[number] = policy_of(version)
        draft = credit_draft(req, policy or policies[number], at, debt=debt[req.member_id])
        debt[req.member_id] -= sum(p.amount for p in draft.postings if p.account == "available" and p.lot_id is None)
        drafts.append((i, draft))
    written = write(conn, [d for _, d in drafts], states)
    outcomes: dict[int, Outcome] = {}
    now = clock.now()
    rows = []
    for (i, _), w in zip(drafts, written, strict=True):
        body = transaction_view(w, states[w.draft.member_id])
        outcomes[i] = Outcome(201, body, replayed=False)
        rows.append({"scope": requests[i].member_id, "key": requests[i].key, "operation": CREDIT,
                     "request_hash": digests[i], "status": 201, "result": body, "created_at": now})
    bulk_insert(conn, idempotency_keys, rows)
    answers = []
    for i, req in enumerate(requests):
        ident = (req.member_id, req.key)
        if i in outcomes:
            answers.append(outcomes[i])
            continue
        first, first_digest = stored[ident] if ident in stored else (outcomes[first_in_batch[ident]],
                                                                     digests[first_in_batch[ident]])
        if first_digest != digests[i]:
            raise IdempotencyConflict(f"idempotency key {req.key!r} was used with a different request")
        answers.append(Outcome(first.status, first.body, replayed=True))
    return answers


def _stored(conn: Connection, requests: Sequence[CreditRequest], digests: list[str]
            ) -> dict[tuple[str, str], tuple[Outcome, str]]:
    """Earlier outcomes of these (member, key) pairs, with the digest of the request that made them."""
    wanted = sorted({(r.member_id, r.key) for r in requests})
    found: dict[tuple[str, str], tuple[Outcome, str]] = {}
    postgres = is_postgres(conn)
    for start in range(0, len(wanted), 2000):
        chunk = wanted[start:start + 2000]
        # straight to the driver (placeholders only): this runs for every credit
        if postgres:
            rows = driver_execute(
                conn, "SELECT k.scope, k.key, k.request_hash, k.status, k.result::text FROM idempotency_keys k "
                "JOIN unnest(%s::text[], %s::text[]) AS w(scope, key) ON k.scope = w.scope AND k.key = w.key",
                ([m for m, _ in chunk], [x for _, x in chunk]))
        else:
            pairs = ", ".join(["(?, ?)"] * len(chunk))
            rows = driver_execute(
                conn, "SELECT scope, key, request_hash, status, result FROM idempotency_keys "  # noqa: S608
                f"WHERE (scope, key) IN (VALUES {pairs})", tuple(v for pair in chunk for v in pair))
        found.update({(scope, key): (Outcome(status, loads(result), replayed=True), digest)
                      for scope, key, digest, status, result in rows})
    return found


# --- spend --------------------------------------------------------------------


def spend(conn: Connection, member_id: str, points: int, *, key: str, reference: str | None = None,
          at: datetime | None = None, actor: str | None = None) -> Outcome:
    """Spend available points, soonest-expiring lots first; refused when not enough are spendable."""
    check_points(points)
    when = clock.ensure_utc(at) if at else clock.now()
    state = lock_member_points(conn, member_id)
    request = {"points": points, "reference": reference, "at": clock.iso(at) if at else None}

    def run() -> dict[str, Any]:
        policy = policy_at(conn, when)
        release_lapsed(conn, state, policy, when)
        lots = spendable_lots(conn, state, policy, when)
        postings, short = take_from_lots(lots, points)
        if short:
            raise InsufficientPoints(f"member {member_id!r} has {points - short} spendable points, "
                                     f"{points} needed")
        draft = Draft(member_id, "spend", when, (*postings, Posting("redeemed", points)), reference=reference,
                      program_version=policy.program_version, actor=actor, activity=True)
        return transaction_view(write(conn, [draft], {member_id: state})[0], state)

    return idempotency.run_once(conn, scope=member_id, key=key, operation="points.spend", request=request,
                                write=run)


# --- reverse (claw back) and adjust ----------------------------------------------


def reverse_draft(conn: Connection, state: PointState, points: int, *, at: datetime, policy: PointsPolicy,
                  kind: str, reference: str | None = None, from_reference_first: bool = True,
                  allow_debt: bool = True, **details: Any) -> tuple[Draft | None, int]:
    """Take back `points`: the reference's lot first (pending before available), then other lots
    soonest-expiring first, then debt. Returns the draft (None if nothing to take) and what was not taken."""
    postings: list[Posting] = []
    left = points
    if reference and from_reference_first:
        for lot in _lots_of_reference(conn, state.member_id, reference):
            for account, held in (("pending", lot.pending), ("available", lot.remaining)):
                part = min(left, held)
                if part > 0:
                    postings.append(Posting(account, -part, lot.id))
                    left -= part
    if left > 0:
        taken_ids = {p.lot_id for p in postings}
        lots = [lot for lot in spendable_lots(conn, state, policy, at) if lot.id not in taken_ids]
        more, left = take_from_lots(lots, left)
        postings += more
    if left > 0 and allow_debt:
        postings.append(Posting("available", -left))
        left = 0
    total = points - left
    if total == 0:
        return None, left
    draft = Draft(state.member_id, kind, at, (*postings, Posting("reversed", total)), reference=reference,
                  program_version=policy.program_version, **details)
    return draft, left


def reverse(conn: Connection, member_id: str, points: int, *, key: str, reference: str | None = None,
            reason: str | None = None, at: datetime | None = None, actor: str | None = None,
            allow_debt: bool = True, event_id: str | None = None, rule_key: str | None = None) -> Outcome:
    """Claw back points (a refund, a penalty): from the reference's lot first, then others, then debt."""
    check_points(points)
    when = clock.ensure_utc(at) if at else clock.now()
    state = lock_member_points(conn, member_id, must_be_active=False)
    request = {"points": points, "reference": reference, "reason": reason, "allow_debt": allow_debt,
               "at": clock.iso(at) if at else None}

    def run() -> dict[str, Any]:
        draft, short = reverse_draft(conn, state, points, at=when, policy=policy_at(conn, when), kind="reverse",
                                     reference=reference, allow_debt=allow_debt, actor=actor, reason=reason,
                                     event_id=event_id, rule_key=rule_key)
        if short or draft is None:
            raise InsufficientPoints(f"member {member_id!r} has {points - short} points to take back, "
                                     f"{points} asked")
        return transaction_view(write(conn, [draft], {member_id: state})[0], state)

    return idempotency.run_once(conn, scope=member_id, key=key, operation="points.reverse", request=request,
                                write=run)


def adjust(conn: Connection, member_id: str, points: int, *, key: str, reason: str, actor: str,
           at: datetime | None = None, allow_debt: bool = False) -> Outcome:
    """A manual correction by an operator: a credit when positive, a take-back when negative."""
    check_points(points, allow_negative=True)
    if not reason or not reason.strip():
        raise ValidationFailed("a reason is required for a manual adjustment")
    if points > 0:
        outcome = credit(conn, CreditRequest(member_id, points, key, at=at, kind="adjust", actor=actor,
                                             reason=reason))
        if not outcome.replayed:
            audit.record(conn, "points:adjust", member_id, actor, points=points, reason=reason)
        return outcome
    when = clock.ensure_utc(at) if at else clock.now()
    state = lock_member_points(conn, member_id, must_be_active=False)
    request_body = {"points": points, "reason": reason, "allow_debt": allow_debt,
                    "at": clock.iso(at) if at else None}

    def run() -> dict[str, Any]:
        draft, short = reverse_draft(conn, state, -points, at=when, policy=policy_at(conn, when), kind="adjust",
                                     from_reference_first=False, allow_debt=allow_debt, actor=actor, reason=reason)
        if short or draft is None:
            raise InsufficientPoints(f"member {member_id!r} has {-points - short} spendable points; "
                                     "send allow_debt to take more")
        audit.record(conn, "points:adjust", member_id, actor, points=points, reason=reason)
        return transaction_view(write(conn, [draft], {member_id: state})[0], state)

    return idempotency.run_once(conn, scope=member_id, key=key, operation="points.adjust", request=request_body,
                                write=run)


@dataclass(frozen=True)
class _ReferenceLot:
    id: int
    pending: int
    remaining: int


def _lots_of_reference(conn: Connection, member_id: str, reference: str) -> list[_ReferenceLot]:
    rows = conn.execute(sa.select(ledger_lots.c.id, ledger_lots.c.pending, ledger_lots.c.remaining)
                        .where(ledger_lots.c.member_id == member_id, ledger_lots.c.reference == reference)
                        .order_by(ledger_lots.c.id))
    return [_ReferenceLot(r.id, r.pending, r.remaining) for r in rows]
