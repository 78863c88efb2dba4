"""`pointsmith jobs ...`"""
from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pointsmith.cli_support import DbOption, JsonFlag, engine, print_json, time_option
from pointsmith.jobs import service

app = typer.Typer(help="Scheduled work (expiry, pending points, holds...).", no_args_is_help=True)


NowOption = Annotated[str | None, typer.Option(
    "--now", help="Catch up to this time (ISO 8601, UTC without an offset; default: now)")]


@app.command()
def run(now: NowOption = None, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Run all scheduled work due up to --now (default: now), each item at the time it was due."""
    when = time_option(now, "--now")
    console = Console(stderr=True)
    show = not as_json and sys.stderr.isatty()
    with console.status("running jobs", spinner="dots") if show else nullcontext():
        results = service.run_due(engine(db), when)
    if as_json:
        print_json(results)
    else:
        for r in results:
            typer.echo(f"{r['job']:<32} {r['processed']:>8} done")


@app.command()
def status(db: DbOption = None, as_json: JsonFlag = False) -> None:
    """When each job last ran and how far it has caught up."""
    rows = service.status(engine(db))
    if as_json:
        print_json(rows)
        return
    table = Table("job", "caught up to", "last run", "processed", "runs")
    for r in rows:
        table.add_row(r["job"], r["caught_up_to"] or "never", r["last_finished_at"] or "", str(r["last_processed"]),
                      str(r["runs"]))
    Console().print(table)
