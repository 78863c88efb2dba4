"""`pointsmith program ...`"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
from pointsmith.errors import InvalidProgram, ValidationFailed
from pointsmith.program import service
from pointsmith.program.validation import load_program

app = typer.Typer(help="Validate, publish and inspect program versions.", no_args_is_help=True)


def read_source(path: Path) -> str:
    try:
        return path.read_text() if str(path) != "-" else typer.get_text_stream("stdin").read()
    except OSError as e:
        raise ValidationFailed(f"cannot read {path}: {e.strerror}") from None


@app.command()
def apply(file: Annotated[Path, typer.Argument(help="Program file (YAML or JSON); - for stdin")],
          dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only")] = False,
          effective: Annotated[str | None, typer.Option(
              "--effective", help="When it takes effect (ISO 8601, UTC without an offset; default: now)")]
          = None,
          db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Validate a program file and publish it as a new version."""
    text = read_source(file)
    try:
        program = load_program(text, as_json=file.suffix.lower() == ".json")
    except InvalidProgram as e:
        if not as_json:
            raise
        print_json({"valid": False, "published": False, "errors": e.problems})  # a CI check reads it whole
        raise typer.Exit(1) from None
    when = time_option(effective, "--effective")
    if dry_run:
        result = {"valid": True, "name": program.program.name, "published": False}
        print_json(result) if as_json else typer.echo(f"{file}: valid ({program.program.name}); nothing published")
        return
    with writing(db) as conn:
        published = service.publish(conn, program, source=text, actor=CLI_ACTOR, effective_at=when)
    summary = {**published.version.summary(), "created": published.created}
    if published.created and published.version.version == 1 and when is not None:
        typer.echo(f"warning: the first version takes effect at {summary['effective_at']}: events before then earn "
                   "nothing (only a first version applied without --effective is in force from the beginning of "
                   "time)", err=True)
    if as_json:
        print_json(summary)
    elif published.created:
        typer.echo(f"published version {summary['version']} of {summary['name']!r}, "
                   f"effective {summary['effective_at']}")
    else:
        typer.echo(f"unchanged: version {summary['version']} already has this content")


@app.command()
def show(version: Annotated[int | None, typer.Option("--version", help="A version number")] = None,
         at: AtOption = None, db: DbOption = None, as_json: JsonFlag = False) -> None:
    """The version in force now (or --at a time, or a --version), with its source."""
    with reading(db) as conn:
        v = service.get_version(conn, version) if version else service.active(conn, time_option(at))
        source = service.source_of(conn, v.version)
    if as_json:
        print_json({**v.summary(), "document": v.program.model_dump(mode="json", by_alias=True)})
    else:
        typer.echo(f"# version {v.version}, effective {v.summary()['effective_at']}\n{source}")


@app.command()
def versions(db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Every published version."""
    with reading(db) as conn:
        rows = [v.summary() for v in service.versions(conn)]
    if as_json:
        print_json(rows)
        return
    table = Table("version", "name", "effective", "published", "by")
    for r in rows:
        table.add_row(str(r["version"]), r["name"], r["effective_at"], r["published_at"], r["published_by"])
    Console().print(table)
