"""Contracts shared by workflows, activities, the worker and the operators' CLI.

Everything that crosses a Temporal boundary is one of these pydantic models, so both
sides agree on shape and validation. The policy (thresholds, timers, people, targets)
lives here too: it is data loaded from YAML, never constants in workflow code.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from temporalio.common import SearchAttributeKey

# Search attributes of incident workflows (Keyword), for `runbook incidents` filters. The
# local stack's dev server registers them; the worker registers them elsewhere at start.
SEARCH_STATUS = SearchAttributeKey.for_keyword("IncidentStatus")
SEARCH_SERVICE = SearchAttributeKey.for_keyword("IncidentService")
SEARCH_SEVERITY = SearchAttributeKey.for_keyword("IncidentSeverity")
SEARCH_ATTRIBUTES = (SEARCH_STATUS, SEARCH_SERVICE, SEARCH_SEVERITY)

# --------------------------------------------------------------------------- durations

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _parse_duration(value: Any) -> Any:
    """Accepts "90s", "5m", "1h30m", "2d" as well as what pydantic reads (seconds, ISO 8601)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text and _DURATION_PART.sub("", text).strip() == "":
            return timedelta(
                seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
            )
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]


class Strict(BaseModel):
    """Unknown fields are an error: a typo in the policy file must not pass silently."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- alerts


class Severity(StrEnum):
    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


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


class PagerDutyEvent(Strict):
    """Something a person did in PagerDuty (webhooks v3), signalled into the incident."""

    event_id: str
    event_type: Literal["incident.acknowledged", "incident.escalated", "incident.reassigned", "incident.resolved",
                        "incident.unacknowledged", "incident.delegated"]  # fmt: skip
    incident_id: str
    agent: str  # who, as PagerDuty names them
    occurred_at: datetime


def incident_workflow_id(service: str, region: str) -> str:
    """Identity is the dedup: one incident workflow per target, however many alerts."""
    return f"incident/{service}/{region}"


def new_incident_id(workflow_id: str, at: datetime) -> str:
    """`INC-{timestamp}` as the runbook's template says, plus a short suffix so that two
    targets opened in the same second do not share an id."""
    suffix = hashlib.sha1(f"{workflow_id}@{at.isoformat()}".encode()).hexdigest()[:4]
    return f"INC-{at:%Y%m%d-%H%M%S}-{suffix}"


# --------------------------------------------------------------------------- policy


class SeverityPolicy(Strict):
    respond_within: Duration | None
    escalate_after: Duration | None  # None: never escalate (P3)
    # Every alert resolved before anyone acknowledged: keep paging people (the outage may
    # come back), or resolve the incident and its page. None: keep paging for P0/P1.
    on_clear: Literal["keep_paging", "resolve"] | None = None


class MetricQuery(Strict):
    """One CloudWatch metric judged against the platform's service levels.

    `direction` says which side is bad: "above" for latency, "below" for cache hit rate.
    `target` is the SLO that verification requires; `warning`/`critical` grade a diagnosis.
    """

    key: str
    namespace: str
    metric_name: str
    dimensions: dict[str, str] = Field(default_factory=dict)
    stat: str = "Average"  # "Maximum", "p95", ...: percentiles need real CloudWatch
    period_seconds: int = Field(default=60, ge=1)
    lookback: Duration = timedelta(minutes=10)
    direction: Literal["above", "below"] = "above"
    target: float | None = None
    warning: float | None = None
    critical: float | None = None
    region: str | None = None  # defaults to the service's region


class ServiceTarget(Strict):
    """What the runbook acts on for one service, and where to look."""

    region: str
    ecs_cluster: str
    ecs_service: str
    log_group: str
    health_component: str
    impact: str = "Requests to the hybrid-routing API fail or are slow"


class IncidentTimers(Strict):
    approval_timeout: Duration = timedelta(minutes=30)
    verify_window: Duration = timedelta(minutes=5)
    verify_interval: Duration = timedelta(seconds=30)
    verify_timeout: Duration = timedelta(minutes=15)
    log_lookback: Duration = timedelta(minutes=10)
    next_update_every: Duration = timedelta(minutes=30)


class Communication(Strict):
    incident_commander: str = "on-call primary"
    channel: str = "#incident-hybrid-routing"
    status_page: str = "https://status.example.com"
    approval_page: str | None = None  # the intake's /ui, linked from the PagerDuty incident


class RouteMatch(Strict):
    """All given conditions must hold. Labels compare exactly; `alarm_name` is a regex."""

    source: str | None = None  # alertmanager, sns, eventbridge, generic
    labels: dict[str, str] = Field(default_factory=dict)
    alarm_name: str | None = None
    namespace: str | None = None
    metric: str | None = None

    @field_validator("alarm_name")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"alarm_name is not a valid regex: {exc}") from None
        return pattern


class Route(Strict):
    """Maps a normalised alert to a runbook, a target and (optionally) a severity."""

    name: str
    match: RouteMatch
    runbook: Literal["incident"] = "incident"
    service: str | None = None  # None: the alert's own `service` label
    region: str | None = None  # None: the service's region in `services`
    severity: Severity | None = None  # None: the alert's severity label, else classification
    kind: str | None = None


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class ApprovalRule(Strict):
    """Who may approve an action of one risk level, and how many of them.

    `four_eyes`: whoever opened the incident cannot be the only approver.
    `on_timeout`: the final answer when nobody decided; "approve" only for low risk.
    """

    approvers: list[str] = Field(default_factory=list)  # people, or "group:NAME"
    required: int = Field(default=1, ge=1)
    four_eyes: bool = False
    on_timeout: Literal["deny", "approve"] = "deny"


class LadderStep(Strict):
    after: Duration  # since the proposal
    action: Literal["remind", "repage"]  # a note and a timeline entry; or one more PagerDuty level


class Approvals(Strict):
    risk: dict[str, RiskLevel] = Field(
        default_factory=lambda: {
            "rollback": RiskLevel.MEDIUM,
            "force_new_deployment": RiskLevel.MEDIUM,
            "emergency_switch": RiskLevel.HIGH,
            "region_failover": RiskLevel.CRITICAL,
        }
    )
    rules: dict[RiskLevel, ApprovalRule] = Field(default_factory=dict)
    groups: dict[str, list[str]] = Field(default_factory=dict)
    ladder: list[LadderStep] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Approvals:
        for level, rule in self.rules.items():
            if rule.on_timeout == "approve" and level != RiskLevel.LOW:
                raise ValueError(f"approvals.rules.{level.value}: on_timeout approve is allowed for low risk only")
            for name in rule.approvers:
                if name.startswith("group:") and name[6:] not in self.groups:
                    raise ValueError(f"approvals.rules.{level.value}: unknown group {name[6:]!r}")
        return self


class Policy(Strict):
    severities: dict[Severity, SeverityPolicy]
    escalation_levels: int = Field(default=3, ge=1)
    classification: dict[str, Severity] = Field(default_factory=dict)
    default_severity: Severity = Severity.P2
    responders: list[str] = Field(default_factory=list)  # may acknowledge
    approvers: list[str] = Field(default_factory=list)  # may approve or reject remediation
    # Per risk level (optional): without it, any of `approvers` approves anything alone.
    approvals: Approvals | None = None
    services: dict[str, ServiceTarget]
    metrics: list[MetricQuery] = Field(default_factory=list)
    timers: IncidentTimers = Field(default_factory=IncidentTimers)
    communication: Communication = Field(default_factory=Communication)
    # Alert intake: first matching route wins; an alert no route matches is refused.
    routes: list[Route] = Field(default_factory=list)
    # A sender's severity label (Alertmanager `severity`, generic `severity`) to P0-P3.
    severity_labels: dict[str, Severity] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _every_severity_has_timers(self) -> Policy:
        missing = [s.value for s in Severity if s not in self.severities]
        if missing:
            raise ValueError(f"severities: missing {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _routes_name_known_services(self) -> Policy:
        for route in self.routes:
            if route.service is not None and route.service not in self.services:
                raise ValueError(f"routes: {route.name} names service {route.service!r}, not in services")
        return self

    @field_validator("metrics")
    @classmethod
    def _metric_keys_unique(cls, metrics: list[MetricQuery]) -> list[MetricQuery]:
        keys = [m.key for m in metrics]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"metrics: duplicate key(s) {', '.join(duplicates)}")
        return metrics

    def may_acknowledge(self, person: str) -> bool:
        return person in self.responders or self.may_approve(person)

    def may_approve(self, person: str) -> bool:
        """May approve something: in `approvers` or in the rule of some risk level."""
        rules = self.approvals.rules.values() if self.approvals else []
        return person in self.approvers or any(person in self.members(rule) for rule in rules)

    def risk_of(self, action: str) -> RiskLevel:
        default = Approvals().risk
        return (self.approvals.risk if self.approvals else default).get(action, RiskLevel.HIGH)

    def rule_for(self, action: str) -> ApprovalRule:
        rules = self.approvals.rules if self.approvals else {}
        return rules.get(self.risk_of(action)) or ApprovalRule(approvers=list(self.approvers))

    def members(self, rule: ApprovalRule) -> set[str]:
        groups = self.approvals.groups if self.approvals else {}
        people: set[str] = set()
        for name in rule.approvers:
            people.update(groups.get(name[6:], []) if name.startswith("group:") else [name])
        return people


class PolicyError(ValueError):
    """The policy file is missing or invalid; the message names the file and the field."""


def load_policy_file(path: Path) -> Policy:
    import yaml  # only the loader needs YAML; workflows never call this

    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise PolicyError(f"policy file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {path} is not valid YAML: {exc}") from exc
    try:
        return Policy.model_validate(raw)
    except ValueError as exc:
        raise PolicyError(f"policy file {path} is invalid: {exc}") from exc


# --------------------------------------------------------------------------- incident


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
    DIAGNOSING = "diagnosing"
    AWAITING_APPROVAL = "awaiting_approval"
    REMEDIATING = "remediating"
    VERIFYING = "verifying"
    UNDOING = "undoing"
    RESOLVED = "resolved"
    ESCALATED = "escalated"  # handed to people; the automated runbook has stopped
    CANCELLED = "cancelled"  # stopped by an operator; what it had changed and not verified, undone


class TimelineEntry(Strict):
    at: datetime
    step: str
    event: str
    actor: str = "runbook"
    detail: str = ""


# --- diagnosis


class HealthReading(Strict):
    component: str
    healthy: bool
    status_code: int | None = None
    detail: str = ""


class SystemStatus(Strict):
    healthy: bool
    hybrid_routing: str = "unknown"
    detail: str = ""


MetricLevel = Literal["ok", "warning", "critical", "no-data"]


class MetricReading(Strict):
    key: str
    value: float | None
    level: MetricLevel
    within_target: bool
    detail: str = ""


class LogScan(Strict):
    log_group: str
    error_count: int
    samples: list[str] = Field(default_factory=list)
    detail: str = ""


class DeploymentState(Strict):
    cluster: str
    service: str
    region: str
    task_definition: str
    previous_task_definition: str | None
    primary_deployment_id: str | None


class Diagnosis(Strict):
    health: HealthReading
    metrics: list[MetricReading]
    logs: LogScan
    deployment: DeploymentState | None
    deployment_error: str | None = None

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


# --- operators


class Acknowledge(Strict):
    by: str = Field(min_length=1)
    note: str | None = None


class Approve(Strict):
    by: str = Field(min_length=1)
    plan_id: str = Field(min_length=1)
    comment: str | None = None


class Reject(Strict):
    by: str = Field(min_length=1)
    plan_id: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class Cancel(Strict):
    by: str = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=2000)


class Comment(Strict):
    by: str = Field(min_length=1)
    text: str = Field(min_length=1, max_length=4000)


class OperatorReply(Strict):
    message: str
    status: IncidentStatus


class Decision(Strict):
    approved: bool
    by: str
    at: datetime
    plan_id: str | None = None
    reason: str = ""


class PagerDutyRef(Strict):
    dedup_key: str
    incident_id: str | None = None
    html_url: str | None = None
    escalation_level: int = 1


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


class IncidentResult(Strict):
    outcome: str
    view: IncidentView


# --- activity inputs


class PageRequest(Strict):
    dedup_key: str
    summary: str
    source: str
    severity: Literal["critical", "error", "warning", "info"]  # PagerDuty's scale, not P0-P3
    details: dict[str, str] = Field(default_factory=dict)


class NoteRequest(Strict):
    incident_id: str
    note_key: str  # makes the note idempotent: an activity retry finds it and adds none
    content: str


class EscalateRequest(Strict):
    incident_id: str
    level: int = Field(ge=1)


class HealthRequest(Strict):
    component: str


class MetricsRequest(Strict):
    region: str
    queries: list[MetricQuery]


class LogScanRequest(Strict):
    region: str
    log_group: str
    lookback: Duration
    pattern: str = "ERROR"


class DeploymentRequest(Strict):
    cluster: str
    service: str
    region: str


class EmergencySwitchRequest(Strict):
    hybrid_routing_enabled: bool
    reason: str


# --------------------------------------------------------------------------- lean runbook calls
# One activity where the runbook used several: each saves history events and a round trip.


class PageAndNote(Strict):
    """Trigger, find the PagerDuty incident, add the initial notification: one activity."""

    page: PageRequest
    note_key: str
    note: str


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


class DiagnoseRequest(Strict):
    health: HealthRequest
    metrics: MetricsRequest
    logs: LogScanRequest
    deployment: DeploymentRequest


class VerifyRequest(Strict):
    """Hold within SLO for `window` before `deadline`, checked every `interval`.

    `system_status`: judge the platform's status instead of one component's health (after the
    emergency switch the component stays broken by design).
    """

    health: HealthRequest
    system_status: bool = False
    metrics: MetricsRequest
    window: Duration
    interval: Duration
    deadline: datetime


class Verification(Strict):
    verified: bool
    detail: str
