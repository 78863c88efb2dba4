"""What every CLI command shares: the --db option, output, and the edge transaction."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer
from sqlalchemy.engine import Connection, Engine

from pointsmith import clock
from pointsmith.db import get_engine, json_default, read_only, unit_of_work

DbOption = Annotated[str | None, typer.Option(
    "--db", help="Database URL (sqlite:///PATH or postgresql://USER@HOST:PORT/DB); "
    "default: $POINTSMITH_DATABASE_URL or sqlite:///pointsmith.db", show_default=False)]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
AtOption = Annotated[str | None, typer.Option("--at", help="As of this time (ISO 8601, UTC without an offset)")]
CLI_ACTOR = "cli"


def engine(db: str | None) -> Engine:
    return get_engine(db)


@contextmanager
def writing(db: str | None) -> Iterator[Connection]:
    with unit_of_work(get_engine(db)) as conn:
        yield conn


@contextmanager
def reading(db: str | None) -> Iterator[Connection]:
    with read_only(get_engine(db)) as conn:
        yield conn


def time_option(value: str | None, name: str = "--at") -> datetime | None:
    if value is None:
        return None
    try:
        return clock.parse_time(value)
    except clock.OutOfRange as e:
        raise typer.BadParameter(f"{value!r} {e}", param_hint=name) from None
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=name) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=json_default, ensure_ascii=False) + "\n")
