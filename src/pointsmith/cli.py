"""The `pointsmith` command: the root only mounts each feature's commands."""
from __future__ import annotations

import os
import socket
import sys
from typing import Annotated

import sqlalchemy as sa
import typer

from pointsmith import __version__
from pointsmith.analytics.cli import app as report_app
from pointsmith.auth.cli import app as keys_app
from pointsmith.cli_support import DbOption, JsonFlag, engine, print_json
from pointsmith.db import migrate, unavailable
from pointsmith.errors import DomainError, ImportInterrupted, InvalidProgram, ValidationFailed
from pointsmith.events.cli import app as events_app
from pointsmith.jobs.cli import app as jobs_app
from pointsmith.ledger.cli import ledger_app, points_app
from pointsmith.members.cli import app as members_app
from pointsmith.program.cli import app as program_app
from pointsmith.tiers.cli import app as tiers_app

app = typer.Typer(name="pointsmith", help="Pointsmith: a membership and points engine.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
app.add_typer(members_app, name="members")
app.add_typer(program_app, name="program")
app.add_typer(keys_app, name="keys")
app.add_typer(events_app, name="events")
app.add_typer(points_app, name="points")
app.add_typer(ledger_app, name="ledger")
app.add_typer(jobs_app, name="jobs")
app.add_typer(report_app, name="report")
app.add_typer(tiers_app, name="tiers")

HostOption = Annotated[str, typer.Option("--host", help="Address to listen on")]
PortOption = Annotated[int, typer.Option("--port", help="Port to listen on")]


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(__version__)
        raise typer.Exit


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", help="Print the version", callback=_print_version,
                                              is_eager=True)] = False) -> None:
    """Eager: `--version` answers before Typer asks for a command."""


@app.command()
def init(db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Create the database, or migrate it to this version's schema."""
    target = engine(db)
    before, after = migrate(target)
    where = target.url.render_as_string(hide_password=True)
    if as_json:
        print_json({"database": where, "from": before, "to": after})
    elif before == after:
        typer.echo(f"{where}: up to date (revision {after})")
    else:
        typer.echo(f"{where}: migrated from {before or 'empty'} to revision {after}")


@app.command()
def serve(host: HostOption = "127.0.0.1", port: PortOption = 8000,
          workers: Annotated[int, typer.Option("--workers", help="Worker processes")] = 1,
          access_log: Annotated[bool, typer.Option(
              "--access-log/--no-access-log",
              help="A line per request on the log (off behind a proxy that logs them: ~10% less work a request)")
          ] = True,
          db: DbOption = None) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs)."""
    import uvicorn

    from pointsmith.db import ensure_migrated

    ensure_migrated(engine(db))  # refuse to start on a database that needs `init`
    _check_port(host, port)
    if db:
        os.environ["POINTSMITH_DATABASE_URL"] = db  # workers are new processes: pass the choice on
    uvicorn.run("pointsmith.app:create_server_app", factory=True, host=host, port=port, workers=workers,
                log_level="info", access_log=access_log)


@app.command()
def demo(host: HostOption = "127.0.0.1", port: PortOption = 8000,
         members: Annotated[int, typer.Option("--members", help="How many demo members")] = 300,
         no_serve: Annotated[bool, typer.Option("--no-serve", help="Seed the data, then exit")] = False,
         db: DbOption = None) -> None:
    """Create (or reuse) a demo program and members, then serve the API."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pointsmith.demo import seed

    if not no_serve:
        _check_port(host, port)  # before the seeding, not half a minute later
    target = engine(db)
    bar = Progress(TextColumn("seeding the demo's history"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), disable=not sys.stderr.isatty(), transient=True)
    with bar:
        task = bar.add_task("events", total=None)
        result = seed(target, members_wanted=members,
                      progress=lambda done, total: bar.update(task, completed=done, total=total))
    base = f"http://{host}:{port}"
    typer.echo(f"Demo database: {target.url.render_as_string(hide_password=True)} "
               f"({result['members']} members, {result['created']} new; {result['events']} new events)")
    typer.echo(f"Admin key:  {result['admin_key']}\nClient key: {result['client_key']}")
    if no_serve:
        typer.echo(f"Serve it with: pointsmith serve --port {port}" + (f" --db {db}" if db else ""))
        return
    typer.echo(f"Try:  curl -H 'Authorization: Bearer {result['client_key']}' {base}/v1/members/demo-00001")
    typer.echo(f"Docs: {base}/docs")
    serve(host=host, port=port, workers=1, db=db)


def _check_port(host: str, port: int) -> None:
    """A port another process holds is one clear line, not a server's traceback. The probe binds as
    the server will (SO_REUSEADDR: a port a closed server's connections still wait on is free)."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise ValidationFailed(f"cannot listen on {host}: {e.strerror}") from None
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            raise ValidationFailed(f"cannot listen on {host}:{port} ({e.strerror}); choose another with --port") \
                from None


def main() -> None:
    """Entry point: usage and domain errors become a one-line message and a non-zero exit."""
    try:
        # not standalone: Click would draw its usage errors as a box of several lines
        code = app(standalone_mode=False, prog_name="pointsmith")
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(1)
    except InvalidProgram as e:
        typer.echo(f"error: the program has {len(e.problems)} problem(s); nothing was changed", err=True)
        for p in e.problems:
            typer.echo(f"  {p}", err=True)
        sys.exit(1)
    except DomainError as e:
        typer.echo(f"error: {e.detail}", err=True)
        sys.exit(130 if isinstance(e, ImportInterrupted) else 1)
    except sa.exc.ArgumentError as e:
        typer.echo(f"error: database URL: {e}", err=True)
        sys.exit(1)
    except typer.TyperException as e:  # a usage error (Typer's Click exceptions): one line, and where help is
        if type(e).__name__ == "NoArgsIsHelpError":  # a bare command: its help, as Typer shows it (rich_utils)
            if help_text := e.format_message():  # (rich has printed it already)
                typer.echo(help_text, err=True)
            sys.exit(e.exit_code)
        context = getattr(e, "ctx", None)
        hint = f" (see `{context.command_path} --help`)" if context is not None else ""
        typer.echo(f"error: {' '.join(e.format_message().split())}{hint}", err=True)
        sys.exit(e.exit_code)
    except Exception as e:
        trouble = unavailable(e)  # locked, unreachable: wrapped by SQLAlchemy or straight from the driver
        if trouble is None:
            raise
        typer.echo(f"error: database: {(str(trouble).strip().splitlines() or [type(trouble).__name__])[0]}",
                   err=True)
        sys.exit(1)
    if isinstance(code, int) and code:  # `typer.Exit(1)`: Click returns the code when not standalone
        sys.exit(code)
