"""Events are checked field by field; amounts stay exact."""
from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import pytest

from pointsmith.errors import ValidationFailed
from pointsmith.events.validation import MAX_ATTRIBUTES_BYTES, MAX_DEPTH, Event, parse_event, parse_line
from tests.factories import event


def test_amounts_are_parsed_as_exact_decimals() -> None:
    e = parse_event(parse_line('{"id": "1", "type": "order.paid", "member_id": "m", '
                               '"occurred_at": "2026-01-01T00:00:00+08:00", '
                               '"attributes": {"order_id": "o", "amount": 11.77}}'))
    assert e.attributes["amount"] == Decimal("11.77")
    assert e.occurred_at.isoformat() == "2025-12-31T16:00:00+00:00"


def test_the_same_content_hashes_the_same_whatever_the_offset_used() -> None:
    a = parse_event(event("1", at="2026-01-01T08:00:00+08:00", order_id="o", amount=1))
    b = parse_event(event("1", at="2026-01-01T00:00:00Z", order_id="o", amount=1))
    assert a.body_hash == b.body_hash


@pytest.mark.parametrize(("raw", "message"), [
    ({**event("1", order_id="o", amount=1), "occurred_at": "yesterday"}, "occurred_at"),
    ({**event("1", order_id="o", amount=1), "occurred_at": "2026-01-01T00:00:00"}, "no offset"),
    ({k: v for k, v in event("1", order_id="o", amount=1).items() if k != "member_id"}, "member_id"),
    (event("1", order_id="o"), "attributes.amount"),
    (event("1", order_id="o", amount=-1), "attributes.amount"),
    (event("1", order_id="o", amount="12"), "attributes.amount"),
    (event("1", order_id="o", amount=True), "attributes.amount"),
    (event("1", amount=5), "attributes.order_id"),
    (event("1", kind="member.verified", kind_="x"), "attributes.kind"),
    ({**event("1", kind="member.verified"), "attributes": {"kind": "fax"}}, "attributes.kind"),
    ({**event("1", kind="member.verified"), "attributes": {"kind": ["email"]}}, "attributes.kind"),
    ({**event("1", kind="member.verified"), "attributes": {"kind": {"email": 1}}}, "attributes.kind"),
    (event("1", kind="Order Paid"), "type"),
    ({**event("1"), "extra": 1}, "unknown field"),
    ({**event("1"), "attributes": [1]}, "attributes"),
    ("not an object", "JSON object"),
])
def test_rejects_a_bad_event_naming_the_field(raw: object, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        parse_event(raw)


def test_an_order_of_zero_is_valid_and_custom_types_pass() -> None:
    assert parse_event(event("1", order_id="o", amount=0)).attributes["amount"] == 0
    assert parse_event(event("2", kind="game.level_up", level=3)).type == "game.level_up"


def test_bad_json_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed, match="not valid JSON"):
        parse_line("{nope")


def test_a_float_from_a_python_caller_is_the_decimal_it_reads_as() -> None:
    parsed = parse_event(event("e", order_id="o", amount=84.19, rate=0.1))
    assert parsed.attributes["amount"] == Decimal("84.19") and parsed.attributes["rate"] == Decimal("0.1")
    assert parse_event(event("e", order_id="o", amount=12.0)).attributes["amount"] == 12
    assert parsed.body_hash == parse_event(parse_line(
        '{"id": "e", "type": "order.paid", "member_id": "m-1", "occurred_at": "2026-01-01T10:00:00Z",'
        ' "attributes": {"order_id": "o", "amount": 84.19, "rate": 0.1}}')).body_hash


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_a_number_that_is_not_finite_is_refused_in_any_attribute(text: str) -> None:
    line = ('{"id": "e", "type": "order.paid", "member_id": "m-1", "occurred_at": "2026-01-01T10:00:00Z",'
            f' "attributes": {{"order_id": "o", "amount": 5, "score": {text}}}}}')
    with pytest.raises(ValidationFailed, match=r"attributes\.score: must be a finite number"):
        parse_event(parse_line(line))


def test_attributes_are_limited_by_their_bytes_as_compact_utf8_json() -> None:
    frame = len('{"note":""}')
    fits = parse_event(event("1", "custom.note", note="x" * (MAX_ATTRIBUTES_BYTES - frame)))
    assert len(fits.attributes["note"]) == MAX_ATTRIBUTES_BYTES - frame
    with pytest.raises(ValidationFailed, match="larger than 65536 bytes"):
        parse_event(event("1", "custom.note", note="x" * (MAX_ATTRIBUTES_BYTES - frame + 1)))
    with pytest.raises(ValidationFailed, match="larger than"):  # a character of three bytes counts three
        parse_event(event("1", "custom.note", note="十" * ((MAX_ATTRIBUTES_BYTES - frame) // 3 + 1)))
    with pytest.raises(ValidationFailed, match="larger than"):  # integers past 64 bits are counted too
        parse_event(event("1", "custom.note", big=[2**70] * 4000))


ORDER = '{"id": "e", "type": "order.paid", "member_id": "m-1", "occurred_at": "2026-01-01T10:00:00Z", '


@pytest.mark.parametrize(("raw", "message"), [
    (event("e\n", order_id="o", amount=1), "^id"),  # `$` would let a final newline through
    ({**event("e", order_id="o", amount=1), "member_id": "m\n"}, "^member_id"),
    (event("e", kind="login\n"), "^type"),
    (event("e\x00", order_id="o", amount=1), "^id"),
    (event("e\ud800", order_id="o", amount=1), "^id"),
    ({**event("e", order_id="o", amount=1), "member_id": "m\udcff"}, "^member_id"),
    (event("e", order_id="o", amount=1, note="a\x00b"), r"^attributes\.note: text with NUL"),
    (event("e", order_id="o", amount=1, deep={"x": ["\udc00"]}), r"^attributes\.deep\.x\[0\]: text"),
    (event("e", order_id="o", amount=1, deep={"\ud800": 1}), r"^attributes\.deep: a name"),
    (event("e", order_id="o", amount=1, deep={"x": float("nan")}), r"^attributes\.deep\.x: must be a finite"),
    (event("e", order_id="o", amount=1, deep=[Decimal("Infinity")]), r"^attributes\.deep\[0\]: must be a finite"),
    (event("e", order_id="o", amount=1, deep={"x": [Decimal("1e5000")]}), r"^attributes\.deep\.x\[0\]: a number of"),
    (event("e", order_id="o", amount=1, big=-(10**30)), r"^attributes\.big: a number of at most 30 digits"),
    (event("e", order_id="o", amount=1, deep={1: 2}), r"^attributes\.deep: names must be text"),
    ({**event("e", order_id="o", amount=1), "\udcff": 1}, r"^unknown field\(s\): \\udcff$"),  # escaped
])
def test_text_no_database_can_store_and_trailing_newlines_are_refused_at_any_depth(raw: object, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        parse_event(raw)


def test_attributes_nest_at_most_max_depth_and_json_nested_past_the_parser_is_refused() -> None:
    nested: object = 1
    for _ in range(MAX_DEPTH):
        nested = [nested]
    assert parse_event(event("e", order_id="o", amount=1, deep=nested)).attributes["deep"] == nested
    with pytest.raises(ValidationFailed, match=f"nested more than {MAX_DEPTH} levels"):
        parse_event(event("e", order_id="o", amount=1, deep=[nested]))
    with pytest.raises(ValidationFailed, match="not valid JSON: nested too deeply"):
        parse_line(ORDER + '"attributes": {"x": ' + "[" * 100_000 + "}}")


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1899-12-31T23:59:59Z",
                                "3000-01-01T00:00:00Z", "2999-12-31T23:00:00-01:00"])
def test_a_time_outside_the_years_the_engine_computes_in_is_refused(at: str) -> None:
    with pytest.raises(ValidationFailed, match=r"occurred_at: .* is outside 1900 to 2999"):
        parse_event({**event("e", order_id="o", amount=1), "occurred_at": at})
    assert parse_event({**event("e", order_id="o", amount=1), "occurred_at": "1900-01-01T00:00:00Z"})


def test_equal_numbers_hash_the_same_however_written_and_a_stored_hash_of_the_old_form_still_matches() -> None:
    def hashed(attributes: str) -> Event:
        return parse_event(parse_line(ORDER + f'"attributes": {attributes}}}'))

    plain = hashed('{"order_id": "o", "amount": 1.5, "x": {"y": [2, 0.25]}}')
    for same in ('{"order_id": "o", "amount": 1.50, "x": {"y": [2.0, 0.250]}}',
                 '{"x": {"y": [2e0, 25e-2]}, "amount": 15e-1, "order_id": "o"}'):
        assert hashed(same).body_hash == plain.body_hash
    assert hashed('{"order_id": "o", "amount": 1.51, "x": {"y": [2, 0.25]}}').body_hash != plain.body_hash
    # what was stored before numbers were made canonical: the attributes hashed as written
    written = hashed('{"order_id": "o", "amount": 1.50}')
    old_form = hashlib.sha256(json.dumps(["order.paid", "m-1", "2026-01-01T10:00:00Z", written.attributes],
                                         sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()
    assert old_form != written.body_hash and written.same_body(old_form) and written.same_body(written.body_hash)
    assert not hashed('{"order_id": "o", "amount": 1.5}').same_body(old_form.replace("0", "1"))


def test_an_amount_has_at_most_the_decimal_places_an_order_keeps() -> None:
    assert parse_event(parse_line(ORDER + '"attributes": {"order_id": "o", "amount": 1.1234560}}'))
    with pytest.raises(ValidationFailed, match=r"attributes\.amount: at most 6 decimal places"):
        parse_event(parse_line(ORDER + '"attributes": {"order_id": "o", "amount": 100.1234567}}'))
