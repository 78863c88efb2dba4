"""`pointsmith tiers ...`: a member's tier history, manual overrides."""
from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pointsmith.cli_support import CLI_ACTOR, DbOption, JsonFlag, print_json, reading, time_option, writing
from pointsmith.members import service as members
from pointsmith.program import service as programs
from pointsmith.tiers import service

app = typer.Typer(help="Tiers: history and manual overrides.", no_args_is_help=True)


@app.command()
def history(member_id: str, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Every change of a member's tier, with its reason and effective time."""
    with reading(db) as conn:
        members.get(conn, member_id)
        changes = service.history(conn, member_id)
    if as_json:
        print_json({"member_id": member_id, "changes": changes})
        return
    table = Table("effective", "from", "to", "reason", "note")
    for c in changes:
        table.add_row(c["effective_at"], c["from"], c["to"], c["reason"], c.get("note") or "")
    Console().print(table)


@app.command()
def override(member_id: str, tier: str,
             until: Annotated[str, typer.Option("--until", help="When the override ends (ISO 8601)")],
             reason: Annotated[str, typer.Option("--reason", help="Why (kept in the tier history)")],
             db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Hold a member at TIER until a date, whatever their growth."""
    end = time_option(until, "--until")
    assert end is not None
    with writing(db) as conn:
        members.get(conn, member_id)
        data = service.set_override(conn, programs.active(conn).program, member_id, tier, until=end, reason=reason,
                                    actor=CLI_ACTOR)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"{member_id}: {data['from']} -> {tier} until {data['until']}")
