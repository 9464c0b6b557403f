"""The timeline every runbook keeps, and the small formatting every step needs."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts import TimelineEntry


class Timeline:
    """What happened, in order, with who did it; the step is whichever the runbook is in."""

    def __init__(self) -> None:
        self.entries: list[TimelineEntry] = []
        self.step = ""

    def record(self, event: str, detail: str = "", actor: str = "runbook") -> None:
        self.entries.append(TimelineEntry(at=workflow.now(), step=self.step, event=event, actor=actor, detail=detail))

    def __len__(self) -> int:
        return len(self.entries)


def fmt(duration: timedelta | None) -> str:
    if duration is None:
        return "never"
    seconds = int(duration.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def cause(err: BaseException) -> str:
    """The innermost message: 'activity failed' says nothing an operator can use."""
    while err.__cause__ is not None:
        err = err.__cause__
    return str(err) or type(err).__name__
