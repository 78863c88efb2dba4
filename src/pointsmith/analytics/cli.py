"""`pointsmith report ...`"""
from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pointsmith.analytics.summary import summary as summary_report
from pointsmith.analytics.tiers import tier_flow as tier_flow_report
from pointsmith.cli_support import AtOption, DbOption, JsonFlag, print_json, reading, time_option
from pointsmith.program import service as programs

app = typer.Typer(help="Reports.", no_args_is_help=True)


@app.command()
def summary(at: AtOption = None, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Members, points totals and liability (as recorded, or --at a time)."""
    with reading(db) as conn:
        data = summary_report(conn, at=time_option(at))
    if as_json:
        print_json(data)
        return
    p = data["points"]
    typer.echo(f"members      {data['members']:>14,}")
    for tier, n in data["tiers"].items():
        typer.echo(f"  {tier:<10} {n:>14,}")
    for name in ("issued", "redeemed", "expired", "reversed", "outstanding", "pending", "held"):
        typer.echo(f"{name:<12} {p[name]:>14,}")
    typer.echo(f"liability    {data['liability']:>14,.2f} {data['currency'] or ''}")


@app.command("tier-flow")
def tier_flow(start: Annotated[str, typer.Option("--from", help="Start (ISO 8601)")],
              end: Annotated[str, typer.Option("--to", help="End (ISO 8601)")],
              db: DbOption = None, as_json: JsonFlag = False) -> None:
    """How many members moved from each tier to each other between two times."""
    t0, t1 = time_option(start, "--from"), time_option(end, "--to")
    assert t0 is not None
    assert t1 is not None
    if t1 < t0:
        raise typer.BadParameter("--to must not be before --from", param_hint="--to")
    with reading(db) as conn:
        data = tier_flow_report(conn, programs.active(conn, t1).program, t0, t1)
    if as_json:
        print_json(data)
        return
    table = Table("from \\ to", *data["tiers"], title=f"tier flow {data['from']} -> {data['to']}")
    for source in data["tiers"]:
        table.add_row(source, *(f"{data['flow'][source][target]:,}" for target in data["tiers"]))
    Console().print(table)
    typer.echo(f"up {data['moved']['up']:,}   down {data['moved']['down']:,}   same {data['moved']['same']:,}")
