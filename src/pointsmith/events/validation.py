"""Event validation: pure functions from a JSON object to a checked Event.

Numbers are parsed as Decimal (json.loads(parse_float=Decimal)) so amounts
are exact from the wire to the ledger.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import Any

from pointsmith import clock
from pointsmith.bodies import UNSTORABLE_TEXT
from pointsmith.clock import iso
from pointsmith.db import json_size, loads
from pointsmith.errors import ValidationFailed
from pointsmith.members.service import MEMBER_ID, Verification
from pointsmith.program.schema import EVENT_TYPE

# \Z, not $: `$` also matches before a final newline, which would let "e-1\n" in as an id of its own
EVENT_ID = re.compile(r"[^\s\x00\ud800-\udfff]{1,255}\Z")
MAX_ATTRIBUTES_BYTES = 65_536
MAX_DEPTH = 32  # of objects and arrays within attributes
MAX_MAGNITUDE = 30  # digits before the point of a number in attributes
_TOO_LARGE = 10**MAX_MAGNITUDE
MAX_AMOUNT = Decimal("1e13")
MAX_DIGITS = 15  # what a float (and so any JSON consumer, and SQLite's REAL) holds exactly
MAX_DECIMALS = 6  # what an order's amount keeps (db.Amount)
_HASH_ENCODER = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))  # one for every event


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    member_id: str
    occurred_at: datetime
    attributes: dict[str, Any]

    @cached_property  # asked by the idempotency check and again by the write
    def body_hash(self) -> str:
        """What makes two sends of one id the same event (the id itself aside): equal numbers hash the
        same however they are written (1.5, 1.50, 15e-1; 2 and 2.0), at any depth."""
        return _hash([self.type, self.member_id, iso(self.occurred_at), _canonical(self.attributes)])

    def same_body(self, stored_hash: str) -> bool:
        """Whether an event stored under this id with `stored_hash` had this content. Events stored
        before numbers were made canonical hashed them as written (`body_hash` then): a retry sent
        as it first was still matches."""
        return stored_hash == self.body_hash or stored_hash == _hash(
            [self.type, self.member_id, iso(self.occurred_at), self.attributes])

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "member_id": self.member_id,
                "occurred_at": iso(self.occurred_at), "attributes": self.attributes}


def _hash(body: list[Any]) -> str:
    return hashlib.sha256(_HASH_ENCODER.encode(body).encode()).hexdigest()


def _canonical(value: Any) -> Any:
    """`value` with every number in one form: whole ones as ints, others without trailing zeros."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value.normalize()
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def parse_line(line: str) -> Any:
    try:
        return loads(line)
    except ValueError as e:
        raise ValidationFailed(f"not valid JSON: {e}") from None
    except RecursionError:
        raise ValidationFailed("not valid JSON: nested too deeply") from None


def parse_event(raw: Any) -> Event:
    """A checked Event, or ValidationFailed naming the first field that is wrong."""
    if not isinstance(raw, dict):
        raise ValidationFailed("an event must be a JSON object")
    unknown = set(raw) - {"id", "type", "member_id", "occurred_at", "attributes"}
    if unknown:
        raise ValidationFailed(f"unknown field(s): {', '.join(sorted(unknown))}")
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not EVENT_ID.match(event_id):
        raise ValidationFailed("id: required, 1 to 255 characters without spaces (nor NUL or invalid UTF-8)")
    kind = raw.get("type")
    if not isinstance(kind, str) or len(kind) > 100 or not EVENT_TYPE.match(kind):
        raise ValidationFailed("type: required, lower-case words joined by dots (e.g. order.paid)")
    member_id = raw.get("member_id")
    if not isinstance(member_id, str) or not MEMBER_ID.match(member_id):
        raise ValidationFailed("member_id: required, 1 to 128 characters with no spaces, '/', '?' or '#' "
                               "(nor NUL or invalid UTF-8)")
    occurred_at = _time(raw.get("occurred_at"))
    attributes = raw.get("attributes", {})
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        raise ValidationFailed("attributes: must be a JSON object")
    try:
        attributes = _checked(attributes, -1)  # the attributes object itself is not a level of nesting
    except _Refused as e:
        raise ValidationFailed(f"attributes{''.join(reversed(e.where))}: {e.reason}") from None
    if json_size(attributes) > MAX_ATTRIBUTES_BYTES:
        raise ValidationFailed(f"attributes: larger than {MAX_ATTRIBUTES_BYTES} bytes")
    check = STANDARD_TYPES.get(kind)
    if check:
        check(attributes)
    return Event(event_id, kind, member_id, occurred_at, _normalise(attributes))


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValidationFailed("occurred_at: required, an ISO 8601 time with an offset")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValidationFailed(f"occurred_at: {value!r} is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise ValidationFailed(f"occurred_at: {value!r} has no offset (add Z or +08:00)")
    try:
        return clock.within_dates(t)
    except clock.OutOfRange:
        raise ValidationFailed(f"occurred_at: {value!r} is outside {clock.EARLIEST.year} to "
                               f"{clock.LATEST.year - 1} (UTC)") from None


class _Refused(Exception):
    """An attribute value refused by `_checked`: why, and where (the path's steps, innermost first,
    gathered on the way out: no path is built for values that pass)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.where: list[str] = []


def _checked(value: Any, depth: int) -> Any:
    """An attribute value as it is stored: floats (from a Python caller, or JSON's NaN/Infinity) as the
    Decimal their shortest text reads (84.19 stays 84.19, not the binary fraction nearest to it),
    at any depth; refused if not finite, too large, nested too deeply, or holding text no database
    can store."""
    if isinstance(value, str):
        if UNSTORABLE_TEXT.search(value):
            raise _Refused("text with NUL or invalid UTF-8")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Refused("must be a finite number")
        value = Decimal(repr(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _Refused("must be a finite number")
        if value and value.adjusted() >= MAX_MAGNITUDE:  # 1e5000 would hash as a 5,001-digit integer
            raise _Refused(f"a number of at most {MAX_MAGNITUDE} digits before the point")
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _TOO_LARGE:
        raise _Refused(f"a number of at most {MAX_MAGNITUDE} digits before the point")
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        raise _Refused(f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, list):
        items = []
        for i, item in enumerate(value):
            try:
                items.append(_checked(item, depth + 1))
            except _Refused as e:
                e.where.append(f"[{i}]")
                raise
        return items
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _Refused("names must be text")
            if UNSTORABLE_TEXT.search(k):
                raise _Refused("a name with NUL or invalid UTF-8")
            try:
                out[k] = _checked(v, depth + 1)
            except _Refused as e:
                e.where.append(f".{k}")
                raise
        return out
    return value


def _normalise(attributes: dict[str, Any]) -> dict[str, Any]:
    """Exact numbers stay exact but store as JSON numbers: whole Decimals become ints."""
    out: dict[str, Any] = {}
    for k, v in attributes.items():
        if isinstance(v, Decimal):
            out[k] = int(v) if v == v.to_integral_value() else v
        else:
            out[k] = v
    return out


def _string(attrs: dict[str, Any], name: str, *, required: bool) -> None:
    value = attrs.get(name)
    if value is None and not required:
        return
    if not isinstance(value, str) or not value or len(value) > 255:
        raise ValidationFailed(f"attributes.{name}: {'required, ' if required else ''}a non-empty string")


def _amount(attrs: dict[str, Any], name: str = "amount") -> None:
    value = attrs.get(name)
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        raise ValidationFailed(f"attributes.{name}: required, a number ≥ 0")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValidationFailed(f"attributes.{name}: must be a finite number")
    if value < 0 or value > MAX_AMOUNT:
        raise ValidationFailed(f"attributes.{name}: must be a number from 0 to {MAX_AMOUNT:,.0f}")
    if isinstance(value, Decimal) and significant_digits(value) > MAX_DIGITS:
        raise ValidationFailed(f"attributes.{name}: at most {MAX_DIGITS} significant digits")
    if isinstance(value, Decimal) and int(value.normalize().as_tuple().exponent) < -MAX_DECIMALS:
        raise ValidationFailed(f"attributes.{name}: at most {MAX_DECIMALS} decimal places")


def significant_digits(value: Decimal) -> int:
    """How many significant digits `value` has (1.50 has two): what an amount may have at most."""
    return len(value.normalize().as_tuple().digits)


def _registered(attrs: dict[str, Any]) -> None:
    for name in ("invite_code", "ip", "device"):
        _string(attrs, name, required=False)


def _verified(attrs: dict[str, Any]) -> None:
    kind = attrs.get("kind")
    if not isinstance(kind, str) or kind not in {v.value for v in Verification}:
        raise ValidationFailed("attributes.kind: required, one of email, phone, real_name")


def _order(attrs: dict[str, Any]) -> None:
    _string(attrs, "order_id", required=True)
    _amount(attrs)


def _review(attrs: dict[str, Any]) -> None:
    value = attrs.get("content")
    if value is not None and not isinstance(value, str):
        raise ValidationFailed("attributes.content: must be a string")
    _string(attrs, "order_id", required=False)


STANDARD_TYPES: dict[str, Callable[[dict[str, Any]], None]] = {
    "member.registered": _registered,
    "member.verified": _verified,
    "order.paid": _order,
    "order.refunded": _order,
    "review.posted": _review,
}
