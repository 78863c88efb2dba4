"""`pointsmith keys ...`"""
from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pointsmith.auth import service
from pointsmith.auth.service import Scope
from pointsmith.cli_support import DbOption, JsonFlag, print_json, reading, writing

app = typer.Typer(help="API keys for the HTTP API.", no_args_is_help=True)


@app.command()
def create(scope: Annotated[Scope, typer.Option("--scope", help="admin or client")],
           name: Annotated[str, typer.Option("--name", help="What the key is for")] = "",
           db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Create an API key; it is shown once and stored only as a hash."""
    with writing(db) as conn:
        key, token = service.create_key(conn, scope, name=name)
    if as_json:
        print_json({"key": token, "scope": key.scope.value, "id": key.id})
    else:
        typer.echo(f"{token}\n(id {key.id}, scope {key.scope.value}; store it now, it will not be shown again)")


@app.command("list")
def list_(db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Keys by id (secrets are never shown)."""
    with reading(db) as conn:
        rows = service.list_keys(conn)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "scope", "name", "created", "revoked")
    for r in rows:
        table.add_row(*(str(r[c] or "") for c in ("id", "scope", "name", "created_at", "revoked_at")))
    Console().print(table)


@app.command()
def revoke(key_id: str, db: DbOption = None) -> None:
    """Revoke a key by id."""
    with writing(db) as conn:
        service.revoke(conn, key_id)
    typer.echo(f"revoked {key_id}")
