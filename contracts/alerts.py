"""What arrives at the intake (alerts, PagerDuty events) and the incident identity they map to."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import Field

from contracts.common import Severity, Strict


class Alert(Strict):
    """One alert, normalised from whichever sender raised it (CLI, Alertmanager, SNS, ...)."""

    source: str = Field(min_length=1)
    service: str = Field(min_length=1)
    region: str = Field(min_length=1)
    summary: str = Field(min_length=1, max_length=1024)
    severity: Severity | None = None
    status: Literal["firing", "resolved"] = "firing"
    kind: str | None = None  # e.g. "hybrid-router-down"; policy classification keys on it
    labels: dict[str, str] = Field(default_factory=dict)
    raised_by: str | None = None
    received_at: datetime
    # Identifies one delivery (SNS MessageId, EventBridge id, an Alertmanager alert's
    # fingerprint and state): a sender's retry of it changes nothing a second time.
    delivery_id: str | None = Field(default=None, max_length=512)
    # Which alert this is across its states (Alertmanager fingerprint, alarm name): the
    # condition clears when every alert that fired has resolved.
    fingerprint: str | None = Field(default=None, max_length=512)
    # The intake left this alert's labels out and cut its summary (`brief`): a repeat of an
    # alert the incident knows, or one past the incident's budget of full alerts. It still
    # counts, fires and clears like any other.
    brief: bool = False
    assertion: str | None = None  # signed by the intake (contracts.identity)


# What one hand-over may carry into a run: the intake splits what it coalesced to stay under.
MAX_BATCH_ALERTS = 100
MAX_BATCH_BYTES = 256 * 1024


class AlertBatch(Strict):
    """Alerts for one target that arrived together (coalesced by the intake), handed over as
    one signal signed once: a storm costs a run one history event per batch, not per alert."""

    alerts: list[Alert] = Field(min_length=1, max_length=MAX_BATCH_ALERTS)
    assertion: str | None = None  # signed by the intake (contracts.identity)


PagerDutyEventType = Literal[
    "incident.acknowledged",
    "incident.escalated",
    "incident.reassigned",
    "incident.resolved",
    "incident.unacknowledged",
    "incident.delegated",
]


class PagerDutyEvent(Strict):
    """Something a person did in PagerDuty (webhooks v3), signalled into the incident."""

    event_id: str
    event_type: PagerDutyEventType
    incident_id: str
    agent: str  # who, as PagerDuty names them
    occurred_at: datetime
    incident_key: str | None = None  # the page's dedup key: which runbook run paged it
    assertion: str | None = None  # signed by the intake (contracts.identity)


def incident_workflow_id(service: str, region: str) -> str:
    """Identity is the dedup: one incident workflow per target, however many alerts."""
    return f"incident/{service}/{region}"


def new_incident_id(workflow_id: str, at: datetime) -> str:
    """`INC-{timestamp}` as the runbook's template says, plus a short suffix so that two
    targets opened in the same second do not share an id."""
    suffix = hashlib.sha1(f"{workflow_id}@{at.isoformat()}".encode()).hexdigest()[:4]
    return f"INC-{at:%Y%m%d-%H%M%S}-{suffix}"
