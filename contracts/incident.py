"""The P0 incident runbook's own models: its input, status, diagnosis, remediation, what operators
see of it, and the search attributes its workflows carry."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from temporalio.common import SearchAttributeKey

from contracts.approvals import Decision
from contracts.common import Severity, Strict, TimelineEntry
from contracts.paging import PagerDutyRef
from contracts.policy import Policy
from contracts.systems import DeploymentState, HealthReading, LogScan, MetricReading, ProbeResult

# Search attributes of incident workflows (Keyword), for `runbook incidents` filters. The
# local stack's dev server registers them; the worker registers them elsewhere at start.
SEARCH_STATUS = SearchAttributeKey.for_keyword("IncidentStatus")
SEARCH_SERVICE = SearchAttributeKey.for_keyword("IncidentService")
SEARCH_SEVERITY = SearchAttributeKey.for_keyword("IncidentSeverity")
SEARCH_ATTRIBUTES = (SEARCH_STATUS, SEARCH_SERVICE, SEARCH_SEVERITY)


class IncidentInput(Strict):
    incident_id: str
    service: str
    region: str
    opened_by: str
    # Handed over at start, so the run needs no activity to read it (runs started by an older
    # intake or CLI have none and read it with the load_policy activity).
    policy: Policy | None = None


class IncidentStatus(StrEnum):
    OPENING = "opening"
    AWAITING_ACK = "awaiting_ack"
    UNPAGED = "unpaged"  # awaiting acknowledgement, but the page failed for good: nobody was told
    DIAGNOSING = "diagnosing"
    AWAITING_APPROVAL = "awaiting_approval"
    REMEDIATING = "remediating"
    VERIFYING = "verifying"
    UNDOING = "undoing"
    RESOLVED = "resolved"
    ESCALATED = "escalated"  # handed to people; the automated runbook has stopped
    CANCELLED = "cancelled"  # stopped by an operator; what it had changed and not verified, undone
    REFUSED = "refused"  # started by no alert the intake signed: nothing done, nobody paged


# --- diagnosis


class Diagnosis(Strict):
    health: HealthReading
    metrics: list[MetricReading]
    logs: LogScan
    deployment: DeploymentState | None
    deployment_error: str | None = None
    # the service's whole region, probed when the service can fail over out of it
    region: ProbeResult | None = None

    @property
    def region_down(self) -> bool:
        return self.region is not None and not self.region.ok

    @property
    def critical_metrics(self) -> list[MetricReading]:
        return [m for m in self.metrics if m.level == "critical"]

    def summary(self) -> str:
        parts = [f"health {'ok' if self.health.healthy else 'FAILING'} ({self.health.detail or '-'})"]
        graded = [f"{m.key}={m.value:g} {m.level}" for m in self.metrics if m.value is not None]
        if graded:
            parts.append("metrics: " + ", ".join(graded))
        parts.append(f"{self.logs.error_count} ERROR log line(s)")
        if self.deployment:
            parts.append(f"running {self.deployment.task_definition.rsplit('/', 1)[-1]}")
        if self.region is not None:
            state = "answers" if self.region.ok else f"DOWN ({self.region.detail or '-'})"
            parts.append(f"region {self.region.region} {state}")
        return "; ".join(parts)


# --- remediation


class RemediationAction(StrEnum):
    ROLLBACK = "rollback"
    FORCE_NEW_DEPLOYMENT = "force_new_deployment"
    EMERGENCY_SWITCH = "emergency_switch"


class RemediationPlan(Strict):
    plan_id: str
    action: RemediationAction
    cluster: str
    service: str
    region: str
    reason: str
    from_task_definition: str | None = None
    to_task_definition: str | None = None
    expected_deployment_id: str | None = None

    @classmethod
    def build(cls, **fields: Any) -> RemediationPlan:
        """The plan id is a hash of what the plan does, so an approval binds to exactly it."""
        body = {k: v for k, v in fields.items() if k not in ("plan_id", "reason")}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
        return cls(plan_id=f"plan-{digest[:12]}", **fields)

    @property
    def action_name(self) -> str:
        return self.action.value

    def describe(self) -> str:
        match self.action:
            case RemediationAction.ROLLBACK:
                return (
                    f"roll {self.cluster}/{self.service} ({self.region}) back from "
                    f"{_short(self.from_task_definition)} to {_short(self.to_task_definition)}"
                )
            case RemediationAction.FORCE_NEW_DEPLOYMENT:
                return f"force a new deployment of {self.cluster}/{self.service} ({self.region})"
            case RemediationAction.EMERGENCY_SWITCH:
                return "disable hybrid routing (emergency switch; fall back to standard routing)"


def _short(task_definition: str | None) -> str:
    return (task_definition or "?").rsplit("/", 1)[-1]


class RemediationRecord(Strict):
    """What a remediation activity did; `changed=False` means it found the work already done."""

    action: RemediationAction
    changed: bool
    detail: str


# --- what operators see


class IncidentView(Strict):
    """What `runbook show` prints and the status query returns, at any moment."""

    id: str
    workflow_id: str
    service: str
    region: str
    severity: Severity | None
    status: IncidentStatus
    summary: str
    opened_at: datetime
    opened_by: str
    alert_count: int
    acknowledged_by: str | None
    pending_approval: RemediationPlan | None
    diagnosis: Diagnosis | None
    decision: Decision | None
    remediation: RemediationRecord | None
    pagerduty: PagerDutyRef | None
    outcome: str | None
    timeline: list[TimelineEntry]
    refused_signals: int = 0  # signals not signed by the intake (forged, or replayed), dropped
    failover: str | None = None  # the failover run this incident handed its region to


class IncidentResult(Strict):
    outcome: str
    view: IncidentView
