"""`pointsmith members ...`"""
from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

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
