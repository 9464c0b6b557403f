"""The post-incident follow-up runbook (`runbooks/post-incident.md`): its inputs, operators'
requests, action items, view and result. One run per incident: `postincident/{incident id}`."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator

from contracts.common import Duration, Severity, Strict, TimelineEntry
from contracts.incident import IncidentView
from contracts.paging import PagerDutyRef


def postincident_workflow_id(incident_id: str) -> str:
    return f"postincident/{incident_id}"


class FollowupStatus(StrEnum):
    DRAFTING = "drafting"  # the post-mortem draft is being written from the incident's record
    REVIEW_PENDING = "review-pending"  # the immediate review is not recorded yet
    POSTMORTEM_PENDING = "postmortem-pending"  # reviewed; the post-mortem is not complete yet
    TRACKING = "tracking"  # the post-mortem is complete; action items are open
    COMPLETE = "complete"  # reviewed, post-mortem complete, every action item done or dropped
    CANCELLED = "cancelled"
    REFUSED = "refused"  # not started by the incident it names (nor continued from its run)


CLOSED_FOLLOWUP = frozenset({FollowupStatus.COMPLETE, FollowupStatus.CANCELLED, FollowupStatus.REFUSED})


class ItemStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    DROPPED = "dropped"


class ActionItem(Strict):
    item_id: str  # A1, A2, ... in the order they were added
    text: str
    owner: str
    due: datetime
    added_by: str
    added_at: datetime
    status: ItemStatus = ItemStatus.OPEN
    closed_by: str | None = None
    closed_at: datetime | None = None
    evidence: str | None = None  # done: what shows it was really done
    drop_reason: str | None = None
    drop_requested_by: str | None = None  # a drop waits for an approver who is someone else
    reminded: bool = False
    escalated: bool = False

    def overdue(self, now: datetime) -> bool:
        return self.status == ItemStatus.OPEN and now >= self.due

    def describe(self, now: datetime) -> str:
        state = self.status.value.upper() if self.status != ItemStatus.OPEN else "open"
        if self.overdue(now):
            state = "OVERDUE"
        closed = f" by {self.closed_by}" if self.closed_by else ""
        why = f": {self.evidence or self.drop_reason}" if self.evidence or self.drop_reason else ""
        asked = f" (drop asked by {self.drop_requested_by})" if self.drop_requested_by and not closed else ""
        return f"{self.item_id} [{state}{closed}{why}] {self.text} (owner {self.owner}, due {self.due:%Y-%m-%d}){asked}"


class FollowupCarry(Strict):
    """What a follow-up that outlives its history hands the run it continues as."""

    reviewed_by: str | None
    reviewed_at: datetime | None
    review_notes: str | None
    postmortem_uri: str | None
    completed_by: str | None
    items: list[ActionItem]
    sent: list[str]  # reminders and escalations already sent (their keys): none twice
    timeline: list[TimelineEntry]


class FollowupInput(Strict):
    """Started by the incident as it closes (its child), with what the follow-up needs of it."""

    incident_id: str
    incident_workflow_id: str
    service: str
    region: str
    severity: Severity
    closed_status: str
    closed_at: datetime
    commander: str  # who acknowledged (else who opened it): reminded of the review
    opened_by: str
    pagerduty: PagerDutyRef | None = None  # the incident's page: reminders are notes on it
    incident_run_id: str | None = None  # asked by hand: the incident run whose record it follows
    carried: FollowupCarry | None = None


class IncidentRef(Strict):
    workflow_id: str
    run_id: str | None = None


class FollowupAsk(Strict):
    """`runbook followup start ID`: an operator asks for the follow-up of an incident that closed
    without one (before this runbook existed), signed by the intake in their name."""

    by: str = Field(min_length=1)
    assertion: str | None = None


def followup_input_of(view: IncidentView, opened_by: str, run_id: str | None = None) -> FollowupInput:
    """The follow-up's start, from the incident's own final record; ValueError if it cannot
    have one (still open, or never classified)."""
    if view.outcome is None:
        raise ValueError(f"{view.id} is still {view.status.value}: its follow-up starts when it closes")
    if view.severity is None:
        raise ValueError(f"{view.id} was never classified ({view.status.value}): nothing to follow up")
    closed = next((entry.at for entry in reversed(view.timeline) if entry.event == "closed"), None)
    return FollowupInput(
        incident_id=view.id,
        incident_workflow_id=view.workflow_id,
        service=view.service,
        region=view.region,
        severity=view.severity,
        closed_status=view.status.value,
        closed_at=closed or (view.timeline[-1].at if view.timeline else view.opened_at),
        commander=view.acknowledged_by or view.opened_by,
        opened_by=opened_by,
        pagerduty=view.pagerduty,
        incident_run_id=run_id,
    )


def same_incident(asked: FollowupInput, record: FollowupInput) -> bool:
    """Whether a start says of the incident what its own record says (who asked aside)."""
    return asked.model_copy(update={"opened_by": record.opened_by, "carried": None}) == record


class StorePostmortem(Strict):
    """Draft the post-mortem from the incident's own record and store it (S3)."""

    incident_workflow_id: str
    bucket: str
    region: str
    key: str


class StoredPostmortem(Strict):
    uri: str  # s3://bucket/key
    etag: str | None = None
    bytes: int
    # the figures people ask for first, from the same draft
    time_to_acknowledge: timedelta | None = None
    time_to_mitigate: timedelta | None = None
    time_to_resolve: timedelta | None = None


# --- operators' requests (signed by the sign-in service, like every operator Update)


class Review(Strict):
    by: str = Field(min_length=1)
    notes: str = Field(min_length=1, max_length=8000)
    assertion: str | None = None


class CompletePostmortem(Strict):
    by: str = Field(min_length=1)
    note: str | None = Field(default=None, max_length=2000)
    assertion: str | None = None


class AddActionItem(Strict):
    by: str = Field(min_length=1)
    owner: str = Field(min_length=1, max_length=128)
    text: str = Field(min_length=1, max_length=2000)
    due_in: Duration | None = None  # None: the policy's default for the incident's severity
    assertion: str | None = None

    @field_validator("due_in")
    @classmethod
    def _ahead(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and not timedelta(hours=1) <= value <= timedelta(days=365):
            raise ValueError("must be between 1 hour and 365 days")
        return value

    @field_validator("text", "owner")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class CloseActionItem(Strict):
    """`action done` (evidence) or `action drop` (reason; a second person, an approver, confirms)."""

    by: str = Field(min_length=1)
    item_id: str = Field(min_length=1, max_length=16)
    how: Literal["done", "drop"]
    why: str = Field(min_length=1, max_length=4000)  # the evidence, or the reason to drop it
    assertion: str | None = None


# --- what `runbook show`, the page and `runbook actions` read


class FollowupView(Strict):
    workflow_id: str
    incident_id: str
    incident_workflow_id: str
    service: str
    severity: Severity
    status: FollowupStatus
    opened_at: datetime
    opened_by: str
    commander: str
    review_due: datetime
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    review_notes: str | None = None
    postmortem_uri: str | None = None
    postmortem_due: datetime
    completed_by: str | None = None
    items: list[ActionItem] = Field(default_factory=list)
    now: datetime  # the run's clock when read: what "overdue" is judged against
    outcome: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    refused_signals: int = 0
    plan_only: bool = False  # what every typed view says; a follow-up changes nothing outside itself
    pending_approval: None = None  # it asks no approval of a plan: a drop asks a second person instead

    @property
    def open_items(self) -> list[ActionItem]:
        return [item for item in self.items if item.status == ItemStatus.OPEN]

    def facts(self) -> list[tuple[str, str]]:
        """What `runbook show` and the approval page show besides the status and the timeline."""
        facts = [("incident", f"{self.incident_id} ({self.severity.value}, {self.service})")]
        if self.reviewed_by:
            assert self.reviewed_at is not None
            facts.append(("review", f"by {self.reviewed_by} at {self.reviewed_at:%Y-%m-%d %H:%M} UTC"))
        else:
            late = " OVERDUE" if self.now >= self.review_due else ""
            facts.append(("review", f"due {self.review_due:%Y-%m-%d %H:%M} UTC{late} ({self.commander})"))
        if self.postmortem_uri:
            facts.append(("post-mortem", self.postmortem_uri))
        if self.completed_by:
            facts.append(("post-mortem", f"complete, by {self.completed_by}"))
        else:
            late = " OVERDUE" if self.now >= self.postmortem_due else ""
            facts.append(("post-mortem", f"due {self.postmortem_due:%Y-%m-%d %H:%M} UTC{late}"))
        facts.extend(("action", item.describe(self.now)) for item in self.items)
        return facts


class FollowupResult(Strict):
    outcome: str
    view: FollowupView
