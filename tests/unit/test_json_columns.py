"""What JSON columns store: the fast encoder writes what the standard one wrote, and values it refuses
still get written; read back, amounts are exact Decimals."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pointsmith.db import dumps, json_default, loads

_STANDARD = json.JSONEncoder(default=json_default, separators=(",", ":"), ensure_ascii=False)

leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(),
                   st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-10**12, max_value=10**12),
                   st.datetimes(timezones=st.just(UTC)))
documents = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20)


@given(documents)
def test_the_stored_text_reads_back_as_the_standard_encoders_does(value: Any) -> None:
    assert loads(dumps(value)) == loads(_STANDARD.encode(value))


def test_what_the_fast_encoder_refuses_is_still_written() -> None:
    value = {"big": 2**70, "amount": Decimal("12.34"), 1: "a key that is not text"}
    assert loads(dumps(value)) == {"big": 2**70, "amount": Decimal("12.34"), "1": "a key that is not text"}


def test_amounts_and_times() -> None:
    at = datetime(2026, 11, 11, 0, 0, 1, 5, tzinfo=UTC)
    assert dumps({"whole": Decimal("300.00"), "part": Decimal("0.1"), "at": at, "text": "会员"}) == (
        '{"whole":300,"part":0.1,"at":"2026-11-11T00:00:01.000005+00:00","text":"会员"}')


def test_non_finite_numbers_are_written_as_the_standard_encoder_writes_them() -> None:
    # orjson would write null; the standard encoder's NaN is refused by PostgreSQL's JSONB, as it always was
    for value in ({"x": float("nan")}, [float("inf"), None], {"y": [-float("inf")]}):
        assert dumps(value) == _STANDARD.encode(value)
