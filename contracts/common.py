"""Building blocks every other contracts module uses, so none of them depends on a sibling for them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _parse_duration(value: Any) -> Any:
    """Accepts "90s", "5m", "1h30m", "2d" as well as what pydantic reads (seconds, ISO 8601)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text and _DURATION_PART.sub("", text).strip() == "":
            return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text)))
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]


def format_duration(duration: timedelta | None) -> str:
    """The policy's own notation back: "90s", "5m", "2h", "1d"; None reads "never"."""
    if duration is None:
        return "never"
    seconds = int(duration.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def innermost_message(err: BaseException) -> str:
    """A failure as an operator reads it: the innermost message ('activity failed' says nothing)."""
    while err.__cause__ is not None:
        err = err.__cause__
    return str(err) or type(err).__name__


class Strict(BaseModel):
    """Unknown fields are an error: a typo in the policy file must not pass silently."""

    model_config = ConfigDict(extra="forbid")


class Severity(StrEnum):
    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


class TimelineEntry(Strict):
    at: datetime
    step: str
    event: str
    actor: str = "runbook"
    detail: str = ""
    key_id: str | None = None  # the key that signed the actor's assertion (contracts.identity)
