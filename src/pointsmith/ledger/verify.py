"""`ledger verify`: prove the ledger's invariants from the raw postings.

1. every transaction has postings and they sum to zero;
2. every cached balance (available, pending, held, debt) equals its postings;
3. every lot's remaining and pending equal its postings, and neither is negative;
4. a member's available equals what their lots hold less their debt;
5. every hold's held postings match its state;
6. no transaction or posting was changed since it was written: each member's
   hash chain recomputes to the stored hashes;
7. each member's growth total (what history windows carry) equals their growth entries.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith.growth.tables import growth_entries, growth_totals
from pointsmith.ledger.tables import ledger_holds, ledger_lots, ledger_postings, ledger_transactions, point_balances
from pointsmith.ledger.writer import Posting, content_hash

MAX_REPORTED = 50


@dataclass
class Report:
    transactions: int = 0
    postings: int = 0
    members: int = 0
    lots: int = 0
    breaches: list[str] = field(default_factory=list)
    total_breaches: int = 0

    @property
    def ok(self) -> bool:
        return self.total_breaches == 0

    def breach(self, message: str) -> None:
        self.total_breaches += 1
        if len(self.breaches) < MAX_REPORTED:
            self.breaches.append(message)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "transactions": self.transactions, "postings": self.postings, "members": self.members,
                "lots": self.lots, "breaches": self.total_breaches, "details": self.breaches}


def verify(conn: Connection, *, progress: Callable[[int], None] | None = None) -> Report:
    report = Report()
    p, t = ledger_postings, ledger_transactions
    report.transactions = int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
    report.postings = int(conn.execute(sa.select(sa.func.count()).select_from(p)).scalar_one())
    _balanced(conn, report)
    _balances(conn, report)
    _lots(conn, report)
    _holds(conn, report)
    _hash_chains(conn, report, progress)
    _growth_totals(conn, report)
    return report


def _growth_totals(conn: Connection, report: Report) -> None:
    g, totals = growth_entries.c, growth_totals.c
    both = sa.union_all(sa.select(totals.member_id, totals.total.label("kept"), sa.literal(0).label("summed")),
                        sa.select(g.member_id, sa.literal(0), g.amount)).subquery()
    kept, summed = sa.func.sum(both.c.kept), sa.func.sum(both.c.summed)
    for member_id, total, entries in conn.execute(sa.select(both.c.member_id, kept, summed)
                                                  .group_by(both.c.member_id).having(kept != summed)
                                                  .order_by(both.c.member_id)):
        report.breach(f"member {member_id}: growth total {total}, but the growth entries sum to {entries}")


def _balanced(conn: Connection, report: Report) -> None:
    p, t = ledger_postings, ledger_transactions
    for tid, total in conn.execute(sa.select(p.c.transaction_id, sa.func.sum(p.c.amount))
                                   .group_by(p.c.transaction_id).having(sa.func.sum(p.c.amount) != 0)):
        report.breach(f"transaction {tid}: postings sum to {total}, not 0")
    empty = sa.select(t.c.id).where(~sa.exists().where(p.c.transaction_id == t.c.id))
    for (tid,) in conn.execute(empty):
        report.breach(f"transaction {tid}: has no postings")
    orphans = (sa.select(p.c.transaction_id).where(~sa.exists().where(t.c.id == p.c.transaction_id)).distinct()
               .limit(MAX_REPORTED))
    for (tid,) in conn.execute(orphans):
        report.breach(f"postings of transaction {tid}: the transaction does not exist")


def _sum_if(condition: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, ledger_postings.c.amount), else_=0)), 0)


def _balances(conn: Connection, report: Report) -> None:
    p, b = ledger_postings, point_balances
    derived = (sa.select(p.c.member_id.label("member_id"),
                         _sum_if(p.c.account == "available").label("available"),
                         _sum_if(p.c.account == "pending").label("pending"),
                         _sum_if(p.c.account == "held").label("held"),
                         (-_sum_if(sa.and_(p.c.account == "available", p.c.lot_id.is_(None)))).label("debt"))
               .group_by(p.c.member_id).subquery())
    lots = (sa.select(ledger_lots.c.member_id.label("member_id"),
                      sa.func.sum(ledger_lots.c.remaining).label("in_lots"))
            .group_by(ledger_lots.c.member_id).subquery())
    rows = conn.execute(sa.select(derived, b.c.member_id.label("cached"), b.c.available.label("c_available"),
                                  b.c.pending.label("c_pending"), b.c.held.label("c_held"), b.c.debt.label("c_debt"),
                                  sa.func.coalesce(lots.c.in_lots, 0).label("in_lots"))
                        .select_from(derived.outerjoin(b, b.c.member_id == derived.c.member_id)
                                     .outerjoin(lots, lots.c.member_id == derived.c.member_id))).mappings()
    for r in rows:
        report.members += 1
        member = r["member_id"]
        if r["cached"] is None:
            report.breach(f"member {member}: has postings but no cached balance")
            continue
        for account in ("available", "pending", "held", "debt"):
            if int(r[account]) != r["c_" + account]:
                report.breach(f"member {member}: cached {account} {r['c_' + account]} != postings {int(r[account])}")
        if r["debt"] < 0:
            report.breach(f"member {member}: negative debt {r['debt']}")
        if int(r["available"]) != int(r["in_lots"]) - int(r["debt"]):
            report.breach(f"member {member}: available {r['available']} != lots {r['in_lots']} - debt {r['debt']}")
    stray = sa.select(b.c.member_id).where(
        sa.or_(b.c.available != 0, b.c.pending != 0, b.c.held != 0, b.c.debt != 0),
        ~sa.exists().where(p.c.member_id == b.c.member_id))
    for (member,) in conn.execute(stray):
        report.breach(f"member {member}: cached balance without any posting")


def _lots(conn: Connection, report: Report) -> None:
    p, lt = ledger_postings, ledger_lots
    derived = (sa.select(p.c.lot_id.label("lot_id"), _sum_if(p.c.account == "available").label("remaining"),
                         _sum_if(p.c.account == "pending").label("pending"))
               .where(p.c.lot_id.is_not(None)).group_by(p.c.lot_id).subquery())
    rows = conn.execute(sa.select(lt.c.id, lt.c.remaining, lt.c.pending, lt.c.points,
                                  sa.func.coalesce(derived.c.remaining, 0).label("d_remaining"),
                                  sa.func.coalesce(derived.c.pending, 0).label("d_pending"))
                        .select_from(lt.outerjoin(derived, derived.c.lot_id == lt.c.id)))
    for lot_id, remaining, pending, points, d_remaining, d_pending in rows:
        report.lots += 1
        if (remaining, pending) != (int(d_remaining), int(d_pending)):
            report.breach(f"lot {lot_id}: cached remaining/pending {remaining}/{pending} != postings "
                          f"{d_remaining}/{d_pending}")
        if remaining < 0 or pending < 0 or remaining + pending > points:
            report.breach(f"lot {lot_id}: holds {remaining}+{pending} of {points} points")


def _holds(conn: Connection, report: Report) -> None:
    p, h = ledger_postings, ledger_holds
    held = (sa.select(p.c.hold_id.label("hold_id"), sa.func.sum(p.c.amount).label("held"))
            .where(p.c.account == "held", p.c.hold_id.is_not(None)).group_by(p.c.hold_id).subquery())
    rows = conn.execute(sa.select(h.c.id, h.c.status, h.c.points, sa.func.coalesce(held.c.held, 0))
                        .select_from(h.outerjoin(held, held.c.hold_id == h.c.id)))
    for hold_id, status, points, amount in rows:
        expected = points if status == "active" else 0
        if int(amount) != expected:
            report.breach(f"hold {hold_id} ({status}): {amount} points held, expected {expected}")


def _hash_chains(conn: Connection, report: Report, progress: Callable[[int], None] | None) -> None:
    last = dict(conn.execute(sa.select(point_balances.c.member_id, point_balances.c.last_hash)).all())
    chains: dict[str, str] = {}
    for member_id, tid, kind, effective_at, stored, postings in _transactions_with_postings(conn):
        previous = chains.get(member_id, "")
        digest = content_hash(previous, tid, member_id, kind, effective_at, postings)
        if digest != stored:
            report.breach(f"transaction {tid} of member {member_id}: content or order changed since it was written")
            digest = stored  # check the rest of the chain against what is stored
        chains[member_id] = digest
        if progress:
            progress(1)
    for member_id, digest in chains.items():
        if last.get(member_id, "") != digest:
            report.breach(f"member {member_id}: the newest transaction is not the one the balance last recorded")


def _transactions_with_postings(conn: Connection) -> Iterator[tuple[str, int, str, Any, str, list[Posting]]]:
    t, p = ledger_transactions, ledger_postings
    query = (sa.select(t.c.member_id, t.c.id, t.c.kind, t.c.effective_at, t.c.hash, p.c.account, p.c.amount,
                       p.c.lot_id, p.c.hold_id)
             .select_from(t.join(p, p.c.transaction_id == t.c.id)).order_by(t.c.id, p.c.line))
    current: tuple[str, int, str, Any, str] | None = None
    postings: list[Posting] = []
    for row in conn.execute(query.execution_options(yield_per=20_000)):
        key = (row.member_id, row.id, row.kind, row.effective_at, row.hash)
        if current is not None and key[1] != current[1]:
            yield (*current, postings)
            postings = []
        current = key
        postings.append(Posting(row.account, row.amount, row.lot_id, row.hold_id))
    if current is not None:
        yield (*current, postings)
