"""`pointsmith events import`"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

from pointsmith.cli_support import DbOption, JsonFlag, engine, print_json
from pointsmith.errors import ValidationFailed
from pointsmith.events import importing
from pointsmith.events.replay import ReplayClock

app = typer.Typer(help="Ingest events.", no_args_is_help=True)


@app.command("import")
def import_(file: Annotated[str, typer.Argument(help="NDJSON file, or - for standard input")],
            replay: Annotated[bool, typer.Option("--replay", help="Follow event time: run scheduled work "
                                                 "as time passes (for a history in time order)")] = False,
            workers: Annotated[int | None, typer.Option("--workers", min=1, max=16, help=(
                "Worker processes, each taking its own members (PostgreSQL; each member's events keep "
                "their file order). Default: one a core on PostgreSQL where the file allows it, else one"),
                show_default=False)] = None,
            db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Ingest an NDJSON file of events; rejects are listed with their line numbers."""
    target = engine(db)
    if workers is not None and workers > 1 and (file == "-" or replay):
        raise ValidationFailed("--workers reads a file (not -) and does not replay")
    if file == "-":
        stream = importing.open_events(None)
        size, workers = None, 1
    else:
        path = Path(file)
        try:
            stream = importing.open_events(path)
        except OSError as e:
            raise ValidationFailed(f"cannot read {file}: {e.strerror}") from None
        size = path.stat().st_size
        if workers is None:  # what the file and the database allow
            workers = 1 if replay else importing.auto_workers(target, path)
        elif workers > 1:
            importing.check_parallel(target, path, workers)
    if importing.without_program(target):
        typer.echo("warning: no program is published: these events earn nothing, now or when imported again "
                   "(`pointsmith program apply FILE` first)", err=True)
    progress = Progress(TextColumn("importing"), BarColumn(), TransferSpeedColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True), disable=as_json or not sys.stderr.isatty(), transient=True)
    with stream, progress:
        task = progress.add_task("events", total=size)
        if workers > 1:
            totals, errors = importing.import_parallel(target.url.render_as_string(hide_password=False), path,
                                                       workers, lambda read: progress.update(task, completed=read))
        else:
            totals, errors = importing.import_stream(target, stream, lambda n: progress.advance(task, n),
                                                     replay=ReplayClock() if replay else None)
    importing.refresh_statistics(target, totals["accepted"])
    summary = {**totals, "errors": errors, "workers": workers}
    if as_json:
        print_json(summary)
    else:
        typer.echo(f"accepted {totals['accepted']}, duplicate {totals['duplicate']}, "
                   f"rejected {totals['rejected']}")
        for error in errors:
            typer.echo(f"  line {error['line']}: {error['code']}: {error['message']}", err=True)
    if totals["rejected"]:
        raise typer.Exit(1)
