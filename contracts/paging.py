"""Activity inputs and outputs of PagerDuty: the paging side of an incident."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contracts.common import Strict


class PagerDutyRef(Strict):
    dedup_key: str
    incident_id: str | None = None
    html_url: str | None = None
    escalation_level: int = 1


PagerDutySeverity = Literal["critical", "error", "warning", "info"]  # PagerDuty's scale, not P0-P3


class PageRequest(Strict):
    dedup_key: str
    summary: str
    source: str
    severity: PagerDutySeverity
    details: dict[str, str] = Field(default_factory=dict)


class NoteRequest(Strict):
    incident_id: str
    note_key: str  # makes the note idempotent: an activity retry finds it and adds none
    content: str


class EscalateRequest(Strict):
    incident_id: str
    level: int = Field(ge=1)


# One activity where the runbook used several: each saves history events and a round trip.


class PageAndNote(Strict):
    """Trigger, find the PagerDuty incident, add the initial notification: one activity."""

    page: PageRequest
    note_key: str
    note: str


class FallbackNotice(Strict):
    """A page PagerDuty did not take, told by the other path (`PAGING_FALLBACK_URL`)."""

    dedup_key: str
    summary: str
    severity: str
    reason: str  # why the page failed
    workflow_id: str


class FallbackSent(Strict):
    sent: bool
    detail: str  # where it went, or why it did not


class PagerDutyNote(Strict):
    note_key: str  # idempotency: a retry finds the note and adds none
    content: str


class PagerDutySync(Strict):
    """What the runbook owes PagerDuty, sent as one batch: notes in order, then ack or resolve."""

    dedup_key: str
    incident_id: str | None = None
    notes: list[PagerDutyNote] = Field(default_factory=list)
    acknowledge: bool = False
    resolve: bool = False


class PagerDutySynced(Strict):
    notes_added: int
    refused: list[str] = Field(default_factory=list)  # what PagerDuty refused for good, and why
