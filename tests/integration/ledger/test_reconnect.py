"""The pool keeps no pre-ping (a round trip per checkout): a connection the server dropped must
still not fail a balance read, and a write after it must reconnect."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from pointsmith.db import get_engine, normalize_url, unit_of_work
from pointsmith.ledger import queries
from pointsmith.ledger.service import CreditRequest, credit
from pointsmith.members import service as members
from tests.databases import postgres_admin_url


def test_a_balance_read_survives_the_server_dropping_its_connections(backend: str, fresh_database: str) -> None:
    if backend != "postgresql":
        pytest.skip("only a server can drop connections")
    engine = get_engine(fresh_database)
    with unit_of_work(engine) as conn:
        members.create(conn, "m-1")
        credit(conn, CreditRequest("m-1", 40, "k-1"))
    assert queries.current_balance(engine, "m-1")["available"] == 40  # a pooled connection now exists
    database = fresh_database.rsplit("/", 1)[1]
    admin = sa.create_engine(normalize_url(postgres_admin_url() or ""), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        dropped = c.execute(sa.text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                    "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": database}).scalar()
    admin.dispose()
    assert dropped >= 1
    assert queries.current_balance(engine, "m-1")["available"] == 40
    with unit_of_work(engine) as conn:
        credit(conn, CreditRequest("m-1", 2, "k-2"))
    assert queries.current_balance(engine, "m-1")["available"] == 42
