"""`pointsmith events import`"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

from pointsmith.cli_support import DbOption, JsonFlag, engine, print_json
from pointsmith.db import unit_of_work
from pointsmith.errors import DomainError, ValidationFailed
from pointsmith.events import service
from pointsmith.events.replay import ReplayClock
from pointsmith.events.validation import parse_line

app = typer.Typer(help="Ingest events.", no_args_is_help=True)
BATCH = 1000


def _lines(stream: IO[str], advance: Any) -> Iterator[tuple[int, Any]]:
    """(line number from 1, parsed object or the error), skipping blank lines."""
    for number, line in enumerate(stream, 1):
        advance(len(line))
        if not line.strip():
            continue
        try:
            yield number, parse_line(line)
        except DomainError as e:
            yield number, e


def _batches(items: Iterator[tuple[int, Any]]) -> Iterator[list[tuple[int, Any]]]:
    batch: list[tuple[int, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


@app.command("import")
def import_(file: Annotated[str, typer.Argument(help="NDJSON file, or - for standard input")],
            replay: Annotated[bool, typer.Option("--replay", help="Follow event time: run scheduled work "
                                                 "as time passes (for a history in time order)")] = False,
            db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Ingest an NDJSON file of events; rejects are listed with their line numbers."""
    target = engine(db)
    if file == "-":
        stream: IO[str] = sys.stdin
        size = None
    else:
        path = Path(file)
        try:
            stream = path.open(encoding="utf-8")
        except OSError as e:
            raise ValidationFailed(f"cannot read {file}: {e.strerror}") from None
        size = path.stat().st_size
    totals = {"accepted": 0, "duplicate": 0, "rejected": 0}
    errors: list[dict[str, Any]] = []
    progress = Progress(TextColumn("importing"), BarColumn(), TransferSpeedColumn(), TimeElapsedColumn(),
                        disable=as_json or not sys.stderr.isatty(), transient=True)
    with stream, progress:
        task = progress.add_task("events", total=size)
        replay_clock = ReplayClock() if replay else None
        for batch in _batches(_lines(stream, lambda n: progress.advance(task, n))):
            numbers = [n for n, _ in batch]
            with unit_of_work(target) as conn:
                result = service.ingest_many(conn, [raw for _, raw in batch], replay=replay_clock, outcomes=False)
            for key in totals:
                totals[key] += getattr(result, key)
            errors += [{"line": numbers[r.index], "id": r.id, "code": r.code, "message": r.message}
                       for r in result.errors]
    if replay_clock is not None:
        with unit_of_work(target) as conn:
            replay_clock.finish(conn)
    summary = {**totals, "errors": errors}
    if as_json:
        print_json(summary)
    else:
        typer.echo(f"accepted {totals['accepted']}, duplicate {totals['duplicate']}, "
                   f"rejected {totals['rejected']}")
        for error in errors:
            typer.echo(f"  line {error['line']}: {error['code']}: {error['message']}", err=True)
    if totals["rejected"]:
        raise typer.Exit(1)
