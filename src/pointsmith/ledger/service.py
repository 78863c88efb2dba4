"""Points operations: credit, spend, reverse (claw back), adjust. Each is idempotent by key.

Every operation locks the member first (PostgreSQL row lock; SQLite holds the
database write lock), so parallel writes to one balance never overspend.
Program accounts are only ever inserted into, never locked or updated, so
they are never a hot spot.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from pointsmith import audit, clock, idempotency
from pointsmith.db import driver_execute, driver_time, insert_rows, is_postgres, loads
from pointsmith.errors import IdempotencyConflict, InsufficientPoints, ValidationFailed
from pointsmith.idempotency import Outcome
from pointsmith.ledger import backdated
from pointsmith.ledger.common import check_points, lock_member_points, stored_view, transaction_view
from pointsmith.ledger.holds import release_lapsed
from pointsmith.ledger.lots import spendable_lots, take_from_lots
from pointsmith.ledger.policy import PointsPolicy, policy_at, policy_of
from pointsmith.ledger.writer import Draft, NewLot, PointState, Posting, Written, lock_states, write
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

    def digest(self) -> str:
        """The request hash an idempotency record keeps: of the fields in a fixed order, as the repr
        of a tuple of strings, numbers and None (unambiguous: strings are quoted and escaped)."""
        fields = (CREDIT, self.member_id, self.points, clock.iso(self.at) if self.at else None, self.pending,
                  self.kind, self.reference, self.event_id, self.rule_key, self.actor, self.reason)
        return hashlib.sha256(repr(fields).encode()).hexdigest()


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


@dataclass(frozen=True)
class Credited:
    """How one credit request was answered: by this call's write, or by an earlier one of its key."""

    replayed: bool
    written: Written | None = None  # this call's write (when replayed: the batch's first with the key)
    stored: dict[str, Any] | None = None  # an earlier call's record: its transaction id and balances

    def outcome(self, conn: Connection) -> Outcome:
        if self.written is not None:
            return Outcome(201, transaction_view(self.written), self.replayed)
        assert self.stored is not None
        return Outcome(201, stored_view(conn, self.stored["transaction_id"], self.stored["balance"]), True)


def credit_many(conn: Connection, requests: Sequence[CreditRequest],
                policy: PointsPolicy | None = None) -> list[Outcome]:
    """Credit many members set-based; each request is idempotent by (member, key)."""
    return [c.outcome(conn) for c in post_credits(conn, requests, policy)]


def post_credits(conn: Connection, requests: Sequence[CreditRequest], policy: PointsPolicy | None = None, *,
                 versions: list[programs.Version] | None = None, balances: dict[str, PointState] | None = None,
                 keys_are_new: bool = False) -> list[Credited]:
    """`credit_many` for callers that need no answer bodies (event ingestion, bulk grants).

    A caller that has already read the program timeline, or locked the members, says so
    (`versions`; `balances`: their stored balances as `writer.balances_read` answers, read under
    the members' locks) and saves those statements. Event ingestion also vouches
    that its keys are new (`keys_are_new`): they derive from an event id that the same
    transaction records, under that id's lock, so the event row is the idempotency record
    and there is nothing to look up or to write besides it."""
    for req in requests:
        check_points(req.points)
    digest = functools.cache(lambda i: requests[i].digest())  # only where a key may be seen again
    states = lock_states(conn, (r.member_id for r in requests)) if balances is None else {
        r.member_id: balances.get(r.member_id) or PointState(r.member_id) for r in requests}
    stored = {} if keys_are_new else _stored(conn, requests)
    first: dict[tuple[str, str], int] = {}  # (member, key) -> the index of its first request in this batch
    drafts: list[Draft] = []
    policy_in_force = _policies(conn, versions) if policy is None else (lambda _: policy)
    debt = {m: s.debt for m, s in states.items()}  # as this batch's earlier credits leave it
    for i, req in enumerate(requests):
        ident = (req.member_id, req.key)
        if ident in stored or ident in first:
            continue  # answered below from the stored record, or this batch's first
        first[ident] = i
        at = clock.ensure_utc(req.at) if req.at else clock.now()
        draft = credit_draft(req, policy_in_force(at), at, debt=debt[req.member_id])
        debt[req.member_id] -= sum(p.amount for p in draft.postings if p.account == "available" and p.lot_id is None)
        drafts.append(draft)
    written = dict(zip(first.values(), write(conn, drafts, states), strict=True))
    created = driver_time(conn)(clock.now())
    # the record keeps what a retry needs to answer the same: the transaction and the balances after it
    if not keys_are_new:
        insert_rows(conn, "idempotency_keys", IDEMPOTENCY_COLUMNS, [
            (requests[i].member_id, requests[i].key, CREDIT, digest(i), 201, _record(w), created)
            for i, w in written.items()])
    answers = []
    for i, req in enumerate(requests):
        ident = (req.member_id, req.key)
        if keys_are_new and first[ident] == i:  # vouched new, and its only use in the batch
            answers.append(Credited(False, written[i]))
            continue
        record, stored_digest = stored[ident] if ident in stored else (None, digest(first[ident]))
        if stored_digest != digest(i):
            raise IdempotencyConflict(f"idempotency key {req.key!r} was used with a different request")
        answers.append(Credited(record is not None or first[ident] != i, written.get(first.get(ident, -1)), record))
    return answers


def _policies(conn: Connection, known: list[programs.Version] | None) -> Callable[[datetime], PointsPolicy]:
    """The points policy in force at a time, remembered per time and per version for one batch."""
    versions = programs.timeline(conn) if known is None else known
    by_version: dict[int | None, PointsPolicy] = {}

    @functools.lru_cache(maxsize=1024)
    def at(when: datetime) -> PointsPolicy:
        version = programs.in_force(versions, when)
        number = version.version if version else None
        if number not in by_version:
            by_version[number] = policy_of(version)
        return by_version[number]

    return at


IDEMPOTENCY_COLUMNS = ("scope", "key", "operation", "request_hash", "status", "result", "created_at")


def _record(w: Written) -> str:
    b = w.balance  # JSON of whole numbers only, so a format string is exact
    return (f'{{"transaction_id":{w.transaction_id},"balance":{{"available":{b["available"]},'
            f'"pending":{b["pending"]},"held":{b["held"]},"debt":{b["debt"]}}}}}')


def _stored(conn: Connection, requests: Sequence[CreditRequest]) -> dict[tuple[str, str], tuple[dict[str, Any], str]]:
    """Earlier records of these (member, key) pairs, with the digest of the request that made them."""
    wanted = sorted({(r.member_id, r.key) for r in requests})
    found: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
    postgres = is_postgres(conn)
    for start in range(0, len(wanted), 2000):
        chunk = wanted[start:start + 2000]
        # straight to the driver (placeholders only): this runs for every credit
        if postgres:
            rows = driver_execute(
                conn, "SELECT k.scope, k.key, k.request_hash, k.result::text FROM idempotency_keys k "
                "JOIN unnest(%s::text[], %s::text[]) AS w(scope, key) ON k.scope = w.scope AND k.key = w.key",
                ([m for m, _ in chunk], [x for _, x in chunk]))
        else:
            pairs = ", ".join(["(?, ?)"] * len(chunk))
            # CROSS JOIN keeps the wanted pairs as the outer loop, so each is one primary-key search
            # (a row-value IN over VALUES would scan the whole table)
            rows = driver_execute(
                conn, f"WITH w(scope, key) AS (VALUES {pairs}) SELECT k.scope, k.key, k.request_hash, "  # noqa: S608
                "k.result FROM w CROSS JOIN idempotency_keys k ON k.scope = w.scope AND k.key = w.key",
                tuple(v for pair in chunk for v in pair))
        found.update({(scope, key): (loads(result), digest) for scope, key, digest, result in rows})
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
        return transaction_view(write(conn, [draft], {member_id: state})[0])

    return idempotency.run_once(conn, scope=member_id, key=key, operation="points.spend", request=request,
                                write=run)


# --- reverse (claw back) and adjust ----------------------------------------------


def reverse_draft(conn: Connection, state: PointState, points: int, *, at: datetime, policy: PointsPolicy,
                  kind: str, reference: str | None = None, from_reference_first: bool = True,
                  own_event: str | None = None, allow_debt: bool = True, **details: Any) -> tuple[list[Draft], int]:
    """Take back `points`: first the lots of the event `own_event` (an order's own points), or else of
    the reference, as they stood at `at` (the pending points of all of them before any available ones:
    a refund cancels what the member could not use yet first; ledger/backdated.py), then other lots
    soonest-expiring first, then debt. A lot past its expiry at `at` gives nothing, whether or not the
    expiry job has run. Returns the drafts (none if nothing to take: the take-back first, then the
    corrections of scheduled work it overtook) and what was not taken."""
    postings: list[Posting] = []
    corrections: list[backdated.Correction] = []
    own: list[backdated.OwnLot] = []
    left = points
    if own_event or (reference and from_reference_first):
        own = _own_lots(conn, state, policy, at, event_id=own_event, reference=reference)
        for account in ("pending", "available"):
            for lot in own:  # every lot's pending points before any lot's available ones
                took, fixes, part = backdated.take(lot, left, pending_only=account == "pending")
                postings += took
                corrections += fixes
                left -= part
    if left > 0:
        own_ids = {lot.id for lot in own}  # judged as they stood at `at` already: the others now
        lots = [lot for lot in spendable_lots(conn, state, policy, at) if lot.id not in own_ids]
        more, left = take_from_lots(lots, left)
        postings += more
    if left > 0 and allow_debt:
        postings.append(Posting("available", -left))
        left = 0
    total = points - left
    if total == 0:
        return [], left
    draft = Draft(state.member_id, kind, at, (*postings, Posting("reversed", total)), reference=reference,
                  program_version=policy.program_version, **details)
    why = f"{kind} dated {clock.iso(at)} overtook it"
    return [draft, *(Draft(state.member_id, "correct", when, fix, reference=reference, reason=why,
                           event_id=details.get("event_id"), program_version=policy.program_version)
                     for when, fix in sorted(corrections, key=lambda c: c[0]))], left


def reverse(conn: Connection, member_id: str, points: int, *, key: str, reference: str | None = None,
            reason: str | None = None, at: datetime | None = None, actor: str | None = None,
            allow_debt: bool = True, event_id: str | None = None, rule_key: str | None = None,
            own_event: str | None = None) -> Outcome:
    """Claw back points (a refund; an operator's take-back): from the lots of `own_event` (an order's
    paying event), else of the reference, first (pending before available), then others, then debt."""
    check_points(points)
    when = clock.ensure_utc(at) if at else clock.now()
    state = lock_member_points(conn, member_id, must_be_active=False)
    request = {"points": points, "reference": reference, "reason": reason, "allow_debt": allow_debt,
               "at": clock.iso(at) if at else None}

    def run() -> dict[str, Any]:
        drafts, short = reverse_draft(conn, state, points, at=when, policy=policy_at(conn, when), kind="reverse",
                                      reference=reference, own_event=own_event, allow_debt=allow_debt, actor=actor,
                                      reason=reason, event_id=event_id, rule_key=rule_key)
        if short or not drafts:
            raise InsufficientPoints(f"member {member_id!r} has {points - short} points to take back, "
                                     f"{points} asked")
        return transaction_view(write(conn, drafts, {member_id: state})[0])

    return idempotency.run_once(conn, scope=member_id, key=key, operation="points.reverse", request=request,
                                write=run)


def deduct(conn: Connection, member_id: str, points: int, *, at: datetime, event_id: str, rule_key: str) -> int:
    """A rule's negative incentive: up to `points` from what the member can spend at `at`, never into
    debt (CONTRACT §3: only an order refund may leave `available` below 0). Returns what was taken.
    The event's own row, written in the same transaction under its id's lock, keeps it from running twice."""
    state = lock_member_points(conn, member_id, must_be_active=False)
    drafts, short = reverse_draft(conn, state, points, at=at, policy=policy_at(conn, at), kind="reverse",
                                  allow_debt=False, reason=f"rule {rule_key}", event_id=event_id, rule_key=rule_key)
    write(conn, drafts, {member_id: state})
    return points - short


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
        drafts, short = reverse_draft(conn, state, -points, at=when, policy=policy_at(conn, when), kind="adjust",
                                      from_reference_first=False, allow_debt=allow_debt, actor=actor, reason=reason)
        if short or not drafts:
            raise InsufficientPoints(f"member {member_id!r} has {-points - short} spendable points; "
                                     "send allow_debt to take more")
        audit.record(conn, "points:adjust", member_id, actor, points=points, reason=reason)
        return transaction_view(write(conn, drafts, {member_id: state})[0])

    return idempotency.run_once(conn, scope=member_id, key=key, operation="points.adjust", request=request_body,
                                write=run)


def _own_lots(conn: Connection, state: PointState, policy: PointsPolicy, at: datetime, *, event_id: str | None,
              reference: str | None) -> list[backdated.OwnLot]:
    """The lots an event (else a reference) credited that held points at `at`; none once inactivity
    had expired the member's points."""
    deadline = policy.inactivity_deadline(state.last_activity_at)
    if deadline is not None and at >= deadline:
        return []
    return backdated.own_lots(conn, state.member_id, at, event_id=event_id, reference=reference)
