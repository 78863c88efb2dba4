"""What the JSON bodies and query values of the HTTP routes share with the event path's checks: no
unknown fields, no text a database cannot store (NUL, lone surrogates: a 500 from the database
otherwise), whole numbers that are numbers (not `true` or `"5"`), and times within the dates the
engine keeps. A value that breaks one is a 422 like any other invalid body."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, StrictInt, model_validator

from pointsmith import clock

# text no database can store as it came: NUL (PostgreSQL's text and jsonb refuse it) and lone surrogates
# (no UTF-8 for them: JSON's "\ud800", or a file's undecodable bytes, read as surrogates)
UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")
MAX_ID = 2**63 - 1  # a database's BIGINT: a larger cursor or version number finds nothing, it is no 500


def storable(value: Any, where: str = "") -> None:
    """Refuse (ValueError) text anywhere in `value`, keys included, that no database can store."""
    if isinstance(value, str):
        if UNSTORABLE_TEXT.search(value):
            raise ValueError(f"{where or 'text'}: holds NUL or invalid UTF-8")
    elif isinstance(value, dict):
        for k, v in value.items():
            storable(k, f"{where}.{k!r}" if where else repr(k))
            storable(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            storable(v, f"{where}[{i}]")


class Body(BaseModel):
    """A request body: only its own fields, and text that can be stored."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        storable(data)
        return data


Time = Annotated[datetime, AfterValidator(clock.within_dates)]
WholeNumber = StrictInt
