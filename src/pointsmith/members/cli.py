"""`pointsmith members ...`"""
from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pointsmith.benefits import service as benefit_service
from pointsmith.cli_support import (
    CLI_ACTOR,
    AtOption,
    DbOption,
    JsonFlag,
    print_json,
    reading,
    time_option,
    writing,
)
from pointsmith.errors import ValidationFailed
from pointsmith.members import service
from pointsmith.members.view import member_view
from pointsmith.program import service as programs

app = typer.Typer(help="Create, inspect and manage members.", no_args_is_help=True)
AttrOption = Annotated[list[str] | None, typer.Option("--attr", help="key=value (value may be JSON); repeatable")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept in the audit log)")]


def parse_attrs(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValidationFailed(f"--attr {pair!r}: expected key=value")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def show_member(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(data)
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        table.add_row(f"[bold]{key}[/]", json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list)
                      else str(value))
    Console().print(table)


@app.command()
def create(member_id: str, attr: AttrOption = None, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Create a member."""
    with writing(db) as conn:
        service.create(conn, member_id, attributes=parse_attrs(attr))
        data = member_view(conn, member_id)
    show_member(data, as_json)


@app.command()
def show(member_id: str, at: AtOption = None, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """One member's state (as recorded, or --at a past time)."""
    with reading(db) as conn:
        data = member_view(conn, member_id, at=time_option(at))
    show_member(data, as_json)


@app.command()
def update(member_id: str, attr: AttrOption = None, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Merge attributes into a member (key=null removes one)."""
    with writing(db) as conn:
        service.update_attributes(conn, member_id, parse_attrs(attr))
        data = member_view(conn, member_id)
    show_member(data, as_json)


@app.command()
def verify(member_id: str, kind: Annotated[service.Verification, typer.Option("--kind")],
           db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Record a verification: email, phone or real_name."""
    with writing(db) as conn:
        service.verify(conn, member_id, kind)
        data = member_view(conn, member_id)
    show_member(data, as_json)


def _status_command(action: str) -> None:
    def change(member_id: str, reason: ReasonOption, db: DbOption = None, as_json: JsonFlag = False) -> None:
        with writing(db) as conn:
            service.change_status(conn, member_id, action, reason=reason, actor=CLI_ACTOR)
            data = member_view(conn, member_id)
        show_member(data, as_json)

    change.__doc__ = f"{action.capitalize()} a member."
    app.command(action)(change)


for _action in service.TRANSITIONS:
    _status_command(_action)


@app.command("list")
def list_(limit: int = 50, after: str | None = None, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """List members by id."""
    with reading(db) as conn:
        rows = [m.as_dict() for m in service.list_members(conn, after=after, limit=limit)]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "status", "joined", "invite code", "attributes")
    for r in rows:
        table.add_row(r["id"], r["status"], r["joined_at"], r["invite_code"], json.dumps(r["attributes"]))
    Console().print(table)


@app.command()
def benefits(member_id: str, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """What a member is entitled to, with what remains of each quota."""
    with reading(db) as conn:
        data = benefit_service.listing(conn, programs.active(conn).program, member_id)
    if as_json:
        print_json(data)
        return
    table = Table("benefit", "kind", "from", "remaining", title=f"{member_id} ({data['tier']})")
    for b in data["benefits"]:
        quota = b.get("quota")
        left = "unlimited" if quota is None else f"{quota['remaining']}/{quota['limit']} per {quota['period']}"
        table.add_row(b["name"], b["kind"], b["source"], left)
    Console().print(table)


@app.command("use-benefit")
def use_benefit(member_id: str, benefit: str,
                key: Annotated[str, typer.Option("--key", help="Idempotency key (a retry with it uses once)")],
                times: Annotated[int, typer.Option("--times", min=1, max=1000)] = 1,
                reference: Annotated[str | None, typer.Option("--reference")] = None,
                db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Use a benefit (counts against its quota)."""
    with writing(db) as conn:
        outcome = benefit_service.use(conn, programs.active(conn).program, member_id, benefit, key=key, times=times,
                                      reference=reference)
    if as_json:
        print_json(outcome.body)
    else:
        quota = outcome.body["quota"]
        typer.echo(f"{member_id}: used {benefit}" + (f", {quota['remaining']} left this {quota['period']}"
                                                      if quota else ""))
