"""The timeline every runbook keeps, and the small formatting every step needs."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.common import TimelineEntry, format_duration, innermost_message


class Timeline:
    """What happened, in order, with who did it; the step is whichever the runbook is in."""

    def __init__(self) -> None:
        self.entries: list[TimelineEntry] = []
        self.step = ""

    def record(self, event: str, detail: str = "", actor: str = "runbook", key_id: str | None = None) -> None:
        self.entries.append(
            TimelineEntry(at=workflow.now(), step=self.step, event=event, actor=actor, detail=detail, key_id=key_id)
        )

    def __len__(self) -> int:
        return len(self.entries)


# Short names for the steps' messages.
fmt = format_duration
cause = innermost_message
