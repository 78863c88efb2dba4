"""Bulk grants on two connections at once: every credit once, balances exact, a rerun changes nothing."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from pointsmith.db import get_engine, read_only, unit_of_work
from pointsmith.errors import ValidationFailed
from pointsmith.ledger import grant_file, grants, queries
from pointsmith.ledger.service import CreditRequest
from pointsmith.ledger.verify import verify
from pointsmith.members import service as members


def test_a_grant_on_two_connections_credits_each_request_once(fresh_database: str) -> None:
    engine = get_engine(fresh_database)
    with unit_of_work(engine) as conn:
        for i in range(50):
            members.create(conn, f"g{i}")
    rng = random.Random(5)
    requests = [CreditRequest(f"g{rng.randrange(50)}", rng.randint(1, 100), f"grant:{i}", kind="adjust",
                              reason="spring campaign", actor="test") for i in range(2500)]
    expected: dict[str, int] = {}
    for r in requests:
        expected[r.member_id] = expected.get(r.member_id, 0) + r.points
    first = grants.grant(engine, requests, batch=100, workers=2)  # members recur across batches in flight
    assert (first.credited, first.replayed, first.points) == (2500, 0, sum(expected.values()))
    again = grants.grant(engine, requests, batch=100, workers=2)
    assert (again.credited, again.replayed) == (0, 2500)
    with read_only(engine) as conn:
        assert {m: queries.balance(conn, m)["available"] for m in expected} == expected
        assert verify(conn).ok


def test_a_grant_file_is_checked_whole_before_anything_is_posted(fresh_database: str, tmp_path: Path) -> None:
    engine = get_engine(fresh_database)
    with unit_of_work(engine) as conn:
        members.create(conn, "f1")
    bad = tmp_path / "bad.csv"
    bad.write_text("member_id,points\nf1,10\nghost,5\n")
    with pytest.raises(ValidationFailed, match="line 3: no member with id 'ghost'"):
        grant_file.check(engine, bad)
    (tmp_path / "neg.csv").write_text("member_id,points\nf1,-4\n")
    with pytest.raises(ValidationFailed, match="line 2"):
        grant_file.check(engine, tmp_path / "neg.csv")
    (tmp_path / "head.csv").write_text("member,points\nf1,4\n")
    with pytest.raises(ValidationFailed, match="header"):
        grant_file.check(engine, tmp_path / "head.csv")
    good = tmp_path / "good.csv"
    good.write_text("member_id,points,reference\nf1,10,promo-1\n\nf1,15,\n")
    assert grant_file.check(engine, good) == (2, 25)
    result = grants.grant(engine, grant_file.read(good, key="spring", reason="promo", actor="ops"))
    assert (result.credited, result.points) == (2, 25)
    with read_only(engine) as conn:
        assert queries.balance(conn, "f1")["available"] == 25
