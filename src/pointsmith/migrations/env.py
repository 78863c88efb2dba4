"""Alembic environment: runs against the engine handed over in config.attributes."""
from __future__ import annotations

from alembic import context

from pointsmith import tables  # noqa: F401  (registers every table on the metadata)
from pointsmith.db import metadata

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
