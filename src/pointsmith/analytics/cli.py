"""`pointsmith report ...`"""
from __future__ import annotations

import typer

from pointsmith.analytics.summary import summary as summary_report
from pointsmith.cli_support import AtOption, DbOption, JsonFlag, print_json, reading, time_option

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
    for name in ("issued", "redeemed", "expired", "reversed", "outstanding", "pending", "held"):
        typer.echo(f"{name:<12} {p[name]:>14,}")
    typer.echo(f"liability    {data['liability']:>14,.2f} {data['currency'] or ''}")
