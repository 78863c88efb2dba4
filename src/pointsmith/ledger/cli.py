"""`pointsmith points ...` and `pointsmith ledger verify`."""
from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pointsmith.cli_support import (
    CLI_ACTOR,
    AtOption,
    DbOption,
    JsonFlag,
    engine,
    print_json,
    reading,
    time_option,
    writing,
)
from pointsmith.ledger import grant_file, grants, queries, service
from pointsmith.ledger.verify import verify
from pointsmith.members import service as members

points_app = typer.Typer(help="Credit, spend, adjust and inspect points.", no_args_is_help=True)
ledger_app = typer.Typer(help="Audit the ledger.", no_args_is_help=True)
KeyOption = Annotated[str | None, typer.Option("--key", help="Idempotency key (default: a new one); "
                                               "retry with the same key to be safe")]
ReferenceOption = Annotated[str | None, typer.Option("--reference", help="e.g. an order id")]


def _key(key: str | None) -> str:
    return key or "cli-" + uuid.uuid4().hex


def _show_transaction(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(body)
    else:
        b = body["balance"]
        typer.echo(f"transaction {body['id']} ({body['kind']}, {body['points']:+d}): available {b['available']}, "
                   f"pending {b['pending']}, held {b['held']}" + (f", debt {b['debt']}" if b["debt"] else ""))


@points_app.command()
def credit(member_id: str, points: int, reference: ReferenceOption = None,
           pending: Annotated[bool, typer.Option("--pending", help="Wait out points.pending_days first")] = False,
           key: KeyOption = None, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Credit points to a member as a new lot."""
    with writing(db) as conn:
        outcome = service.credit(conn, service.CreditRequest(member_id, points, _key(key), pending=pending,
                                                             reference=reference, actor=CLI_ACTOR))
    _show_transaction(outcome.body, as_json)


@points_app.command()
def spend(member_id: str, points: int, reference: ReferenceOption = None, key: KeyOption = None,
          db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Spend points, soonest-expiring lots first."""
    with writing(db) as conn:
        outcome = service.spend(conn, member_id, points, key=_key(key), reference=reference, actor=CLI_ACTOR)
    _show_transaction(outcome.body, as_json)


@points_app.command()
def adjust(member_id: str, points: int, reason: Annotated[str, typer.Option("--reason")],
           allow_debt: Annotated[bool, typer.Option("--allow-debt")] = False, key: KeyOption = None,
           db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Manual adjustment (negative takes back); the reason goes to the audit log."""
    with writing(db) as conn:
        outcome = service.adjust(conn, member_id, points, key=_key(key), reason=reason, actor=CLI_ACTOR,
                                 allow_debt=allow_debt)
    _show_transaction(outcome.body, as_json)


@points_app.command()
def reverse(member_id: str, points: int, reference: ReferenceOption = None,
            reason: Annotated[str | None, typer.Option("--reason")] = None, key: KeyOption = None,
            db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Claw points back: the reference's lot first, then other lots, then debt."""
    with writing(db) as conn:
        outcome = service.reverse(conn, member_id, points, key=_key(key), reference=reference, reason=reason,
                                  actor=CLI_ACTOR)
    _show_transaction(outcome.body, as_json)


@points_app.command()
def balance(member_id: str, at: AtOption = None, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Balances and lots, as recorded or --at a time."""
    with reading(db) as conn:
        members.get(conn, member_id)
        view = queries.points_view(conn, member_id, at=time_option(at))
    if as_json:
        print_json(view)
        return
    typer.echo(f"available {view['available']}, pending {view['pending']}, held {view['held']}, debt {view['debt']}")
    table = Table("lot", "points", "pending", "earned", "expires", "reference")
    for lot in view["lots"]:
        table.add_row(str(lot["id"]), str(lot["available"]), str(lot["pending"]), lot["earned_at"],
                      lot["expires_at"] or "never", lot["reference"] or "")
    Console().print(table)


@points_app.command()
def history(member_id: str, limit: int = 20, cursor: int | None = None, db: DbOption = None,
            as_json: JsonFlag = False) -> None:
    """Transactions, newest first."""
    with reading(db) as conn:
        members.get(conn, member_id)
        items, next_cursor = queries.history(conn, member_id, before=cursor, limit=limit)
    if as_json:
        print_json({"transactions": items, "next_cursor": next_cursor})
        return
    table = Table("id", "kind", "points", "effective", "reference", "rule", "reason")
    for t in items:
        table.add_row(str(t["id"]), t["kind"], f"{t['points']:+d}", t["effective_at"], t["reference"] or "",
                      t["rule_key"] or "", t["reason"] or "")
    Console().print(table)
    if next_cursor:
        typer.echo(f"more: --cursor {next_cursor}")


@ledger_app.command("verify")
def verify_command(db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Prove the ledger invariants; exits 1 on any breach."""
    progress = Progress(TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), transient=True,
                        disable=as_json or not sys.stderr.isatty())
    with reading(db) as conn, progress:
        task = progress.add_task("transactions", total=None)
        report = verify(conn, progress=lambda n: progress.advance(task, n))
    if as_json:
        print_json(report.as_dict())
    else:
        verdict = "OK" if report.ok else f"{report.total_breaches} BREACH(ES)"
        typer.echo(f"ledger {verdict}: {report.transactions} transactions, {report.postings} postings, "
                   f"{report.members} members, {report.lots} lots")
        for line in report.breaches:
            typer.echo(f"  {line}", err=True)
    if not report.ok:
        raise typer.Exit(1)


@points_app.command()
def grant(file: Annotated[Path, typer.Argument(help="CSV with a header: member_id,points[,reference]")],
          key: Annotated[str, typer.Option("--key", help="The grant's idempotency key: the same file with the "
                                           "same key never credits twice")],
          reason: Annotated[str, typer.Option("--reason", help="Why (kept on every credit)")],
          workers: Annotated[int | None, typer.Option("--workers", min=1, max=8, help="Connections at once "
                                                      "(default: 2 on PostgreSQL, 1 on SQLite)")] = None,
          db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Credit many members from a file (a campaign, a migration); checked whole before anything is posted."""
    target = engine(db)
    lines, total = grant_file.check(target, file)
    progress = Progress(TextColumn("granting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        disable=as_json or not sys.stderr.isatty(), transient=True)
    with progress:
        task = progress.add_task("credits", total=lines)
        result = grants.grant(target, grant_file.read(file, key=key, reason=reason, actor=CLI_ACTOR),
                              workers=workers, progress=lambda n: progress.advance(task, n))
    data = {"lines": lines, "credited": result.credited, "replayed": result.replayed, "points": result.points,
            "points_in_file": total}
    if as_json:
        print_json(data)
    else:
        typer.echo(f"credited {result.credited:,} ({result.points:,} points); {result.replayed:,} already done")
