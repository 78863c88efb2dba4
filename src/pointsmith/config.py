"""Settings read from the environment (POINTSMITH_*)."""
from __future__ import annotations

import os

DEFAULT_DATABASE_URL = "sqlite:///pointsmith.db"


def database_url(override: str | None = None) -> str:
    """The database to use: an explicit `--db`, else POINTSMITH_DATABASE_URL, else the SQLite default."""
    return override or os.environ.get("POINTSMITH_DATABASE_URL") or DEFAULT_DATABASE_URL
