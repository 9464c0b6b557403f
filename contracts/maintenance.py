"""Maintenance windows (`runbooks/maintenance.md`): what a window does, how it is asked for, and
what it reports. A window is one run of `MaintenanceWindowWorkflow`: asked for by an operator
(`runbook maintenance schedule`, signed by the sign-in service) or started by a Schedule the
policy declares (`schedules:` with `runbook: maintenance` and a `maintenance:` entry)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from contracts.common import Duration, Severity, Strict, TimelineEntry, format_duration
from contracts.paging import PagerDutyRef
from contracts.scaling import ScalableTarget

MAINTENANCE_TYPE = "MaintenanceWindowWorkflow"
MaintenanceAction = Literal["deploy", "force_new_deployment", "scale", "restart"]
ACTIONS: tuple[str, ...] = ("deploy", "force_new_deployment", "scale", "restart")
MAX_DURATION = timedelta(hours=24)


class MaintenanceSpec(Strict):
    """What the window does to which service: deploy task definition revision `revision`, force
    a new deployment, scale to `count` tasks, or restart (a new deployment of what runs)."""

    service: str = Field(min_length=1)
    action: MaintenanceAction
    duration: Duration = timedelta(hours=1)
    revision: int | None = Field(default=None, ge=1)
    count: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _arguments_fit_the_action(self) -> MaintenanceSpec:
        if self.action == "deploy" and self.revision is None:
            raise ValueError("revision: the deploy action needs the task definition revision to deploy")
        if self.action == "scale" and self.count is None:
            raise ValueError("count: the scale action needs the task count to scale to")
        if self.action != "deploy" and self.revision is not None:
            raise ValueError(f"revision: only the deploy action takes one, not {self.action}")
        if self.action != "scale" and self.count is not None:
            raise ValueError(f"count: only the scale action takes one, not {self.action}")
        if not timedelta(minutes=1) <= self.duration <= MAX_DURATION:
            raise ValueError("duration: from 1m to 24h")
        return self

    @property
    def risk_action(self) -> str:
        """The action's name in the policy's `approvals.risk` (missing there: high risk)."""
        return f"maintenance_{self.action}"

    def describe(self) -> str:
        match self.action:
            case "deploy":
                what = f"deploy task definition revision {self.revision}"
            case "scale":
                what = f"scale to {self.count} tasks"
            case _:
                what = self.action.replace("_", " ")
        return f"{what} on {self.service}"


class MaintenanceRequest(Strict):
    """The signal that asks for a window, signed by the intake in the operator's name."""

    by: str
    spec: MaintenanceSpec
    start: datetime
    plan: bool = False
    reason: str = Field(default="scheduled maintenance", min_length=1, max_length=512)
    assertion: str | None = None  # signed by the intake for the signed-in operator


class MaintenanceInput(Strict):
    """`schedule`: the policy schedule that started the run (its spec is read from the policy,
    never from here); None: an operator's window, whose signed `request` signal says what."""

    service: str
    opened_by: str
    schedule: str | None = None


class MaintenancePolicy(Strict):
    """The policy's `maintenance:` (all optional). Alerts of an `exempt` severity for a held
    service still open incidents; post-validation must hold `verify_window` within
    `verify_timeout`; a pre-check reads the service's health and levels for up to
    `pre_check_timeout`. `pagerduty_services` names each service's PagerDuty service id (else
    the worker's PAGERDUTY_SERVICE_ID)."""

    exempt: list[Severity] = Field(default_factory=lambda: [Severity.P0])
    verify_window: Duration = timedelta(minutes=5)
    verify_interval: Duration = timedelta(seconds=30)
    verify_timeout: Duration = timedelta(minutes=15)
    pre_check_timeout: Duration = timedelta(seconds=30)
    pagerduty_services: dict[str, str] = Field(default_factory=dict)


class MaintenanceStatus(StrEnum):
    SCHEDULED = "scheduled"  # waiting for its start
    AWAITING_APPROVAL = "awaiting_approval"
    CHECKING = "checking"  # pre-validation
    HOLDING = "holding"  # the PagerDuty window is open and the target held: acting, verifying, undoing
    CLOSING = "closing"
    DONE = "done"
    UNDONE = "undone"  # post-validation failed: the action undone and paged
    CANCELLED = "cancelled"  # a failed pre-check, or an operator
    NOT_APPROVED = "not_approved"
    FAILED = "failed"
    PLANNED = "planned"
    REFUSED = "refused"


CLOSED_MAINTENANCE = frozenset(
    {
        MaintenanceStatus.DONE,
        MaintenanceStatus.UNDONE,
        MaintenanceStatus.CANCELLED,
        MaintenanceStatus.NOT_APPROVED,
        MaintenanceStatus.FAILED,
        MaintenanceStatus.PLANNED,
        MaintenanceStatus.REFUSED,
    }
)


class MaintenancePlan(Strict):
    """The change, bound to where it found the service (an approval names `plan_id`, a hash of
    what it does): the ECS activities refuse it if the service has moved since."""

    plan_id: str = ""
    spec: MaintenanceSpec
    start: datetime
    cluster: str
    ecs_service: str
    region: str
    from_task_definition: str
    to_task_definition: str | None = None  # deploy
    deployment_id: str | None = None  # force_new_deployment, restart: the deployment it replaces
    from_count: int
    to_count: int | None = None  # scale
    scalable_target: ScalableTarget | None = None

    def bound(self) -> MaintenancePlan:
        body = json.dumps(self.model_dump(mode="json", exclude={"plan_id"}), sort_keys=True)
        return self.model_copy(update={"plan_id": f"maint-{hashlib.sha256(body.encode()).hexdigest()[:12]}"})

    @property
    def action_name(self) -> str:
        return self.spec.risk_action

    def describe(self) -> str:
        return f"{self.spec.describe()} at {self.start:%Y-%m-%d %H:%M:%S} UTC for {format_duration(self.spec.duration)}"

    def calls(self) -> list[str]:
        """What the window would change, as plan mode prints it."""
        name = f"{self.cluster}/{self.ecs_service}"
        end = self.start + self.spec.duration
        window = f"pagerduty POST /maintenance_windows {self.start:%H:%M}-{end:%H:%M} UTC ({self.spec.service})"
        match self.spec.action:
            case "deploy":
                act = f"ecs UpdateService {name} taskDefinition {short(self.from_task_definition)} -> "
                act += short(self.to_task_definition)
            case "scale":
                act = f"ecs UpdateService {name} desiredCount {self.from_count} -> {self.to_count}"
            case _:
                act = f"ecs UpdateService {name} forceNewDeployment"
        return [window, act, "pagerduty DELETE /maintenance_windows/{id} (after post-validation)"]


def short(arn: str | None) -> str:
    return (arn or "?").rsplit("/", 1)[-1]


# --- PagerDuty's maintenance windows


class OpenWindow(Strict):
    """Open (or find, on a retry) the PagerDuty window `key` names."""

    key: str  # the run's workflow and run id: its marker in the description makes the call idempotent
    service_id: str | None  # None: the worker's PAGERDUTY_SERVICE_ID
    start: datetime
    end: datetime
    description: str


class PagerDutyWindow(Strict):
    id: str
    service_id: str
    start: datetime
    end: datetime
    html_url: str | None = None
    created: bool  # False: found the window a previous attempt opened


class CloseWindow(Strict):
    window_id: str


class WindowClosed(Strict):
    window_id: str
    closed: bool  # False: it had ended or was gone already (a retry finds its own work done)
    detail: str


class HoldRequest(Strict):
    service: str
    asking: str = ""  # the asking run's id, left out of the answer


# --- what operators see


class HeldAlert(Strict):
    at: datetime
    source: str
    summary: str
    severity: str | None


class MaintenanceView(Strict):
    workflow_id: str
    service: str
    status: MaintenanceStatus
    step: str
    opened_by: str
    opened_at: datetime
    schedule: str | None
    spec: MaintenanceSpec | None
    start: datetime | None
    plan_only: bool
    plan: MaintenancePlan | None
    planned_calls: list[str]
    pending_approval: MaintenancePlan | None
    pagerduty_window: PagerDutyWindow | None
    held: bool
    held_alerts: list[HeldAlert]
    acted: str | None
    undone: str | None
    pagerduty: PagerDutyRef | None
    outcome: str | None
    timeline: list[TimelineEntry]


class MaintenanceResult(Strict):
    outcome: str
    view: MaintenanceView


def maintenance_workflow_id(service: str, start: datetime) -> str:
    """One operator window per service and start time (to the second)."""
    return f"maintenance/{service}/{start:%Y-%m-%dT%H:%M:%SZ}"


HOLDING = (
    f"WorkflowType = '{MAINTENANCE_TYPE}' AND ExecutionStatus = 'Running' "
    f"AND IncidentStatus = '{MaintenanceStatus.HOLDING.value}'"
)


def maintenance_hold_query(service: str) -> str:
    """The visibility query for the windows holding `service` (the run indexes its status and
    service on the incidents' search attributes; a closed run holds nothing)."""
    quoted = service.replace("'", "")
    return f"{HOLDING} AND IncidentService = '{quoted}'"


def task_definition_revision(arn: str, revision: int) -> str:
    """The same family's `revision`, as the ARN of the one running names it."""
    return f"{arn.rpartition(':')[0]}:{revision}"


MaintenanceOutcome = Literal["scheduled", "active", "done"]
