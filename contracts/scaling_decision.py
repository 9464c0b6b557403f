"""The scaling decisions runbook's run: its start, triggers, capacity, plans, view and result."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from contracts.approvals import Decision
from contracts.common import Strict, TimelineEntry
from contracts.paging import PagerDutyRef
from contracts.policy import MetricQuery
from contracts.scaling_rules import Judgement, ScalingRule


def scaling_workflow_id(service: str, region: str) -> str:
    """One run per service and region: the only writer of that service's capacity."""
    return f"scaling/{service}/{region}"


class ScalingStatus(StrEnum):
    CONFIRMING = "confirming"
    HOLDING = "holding"
    AWAITING_APPROVAL = "awaiting-approval"
    SCALING = "scaling"
    VERIFYING = "verifying"
    WATCHING = "watching"  # scaled up; waiting for the pressure to pass
    AT_MAXIMUM = "at-maximum"  # no step left; a P1 page went out
    # closed
    NOT_SUSTAINED = "not-sustained"
    PLANNED = "planned"
    AT_BASELINE = "at-baseline"
    HELD = "held"  # a hold outlasted the policy's hold_for
    CANCELLED = "cancelled"
    REFUSED = "refused"


CLOSED_SCALING = frozenset(
    {
        ScalingStatus.NOT_SUSTAINED,
        ScalingStatus.PLANNED,
        ScalingStatus.AT_BASELINE,
        ScalingStatus.HELD,
        ScalingStatus.CANCELLED,
        ScalingStatus.REFUSED,
    }
)


class ScalingInput(Strict):
    service: str
    region: str
    opened_by: str
    plan: bool = False  # plan mode: read, judge and decide; change nothing


class ScalingTrigger(Strict):
    """`runbook trigger scaling`: an operator asks the run to judge the service now."""

    by: str
    plan: bool = False
    reason: str = "operator trigger"
    assertion: str | None = None  # signed by the intake for the signed-in operator


class CapacityRequest(Strict):
    region: str
    ecs_cluster: str
    ecs_service: str
    lambda_function: str | None = None
    lambda_qualifier: str | None = None


class Capacity(Strict):
    """A service's capacity as AWS reports it."""

    desired: int
    running: int
    rolling_out: str | None = None  # why a deployment is still rolling out; None: settled
    autoscaled: bool = False  # Application Auto Scaling manages the desired count
    min_capacity: int | None = None  # its minimum (autoscaled)
    max_capacity: int | None = None
    provisioned: int | None = None  # Lambda provisioned concurrency requested (None: no function)
    provisioned_ready: bool = True

    @property
    def ecs_level(self) -> int:
        """What the runbook scales: the autoscaler's minimum where one manages the service."""
        return self.min_capacity if self.autoscaled and self.min_capacity is not None else self.desired


class AwsCall(Strict):
    service: str
    operation: str
    params: dict[str, str | int]

    def render(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.service}:{self.operation}({args})"


class ScalePlan(Strict):
    """One step, up or down: exact targets, computed once, so a retry finds its step done."""

    service: str
    region: str
    direction: Literal["up", "down"]
    step: int  # the run's step number (1, 2, ...): part of the plan id
    rule: str | None  # the rule that fired (up)
    request: CapacityRequest
    autoscaled: bool
    ecs_from: int
    ecs_to: int
    lambda_from: int | None = None
    lambda_to: int | None = None
    reason: str

    @property
    def plan_id(self) -> str:
        digest = hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:8]
        return f"scale-{self.direction}-{self.step}-{digest}"

    @property
    def action_name(self) -> str:
        return "scale_up" if self.direction == "up" else "scale_in"

    def describe(self) -> str:
        what = "minimum capacity" if self.autoscaled else "desired count"
        parts = [f"ECS {what} {self.ecs_from} -> {self.ecs_to} ({self.request.ecs_service})"]
        if self.lambda_to is not None and self.lambda_to != self.lambda_from:
            parts.append(f"Lambda provisioned concurrency {self.lambda_from} -> {self.lambda_to}")
        return "; ".join(parts)

    def calls(self) -> list[AwsCall]:
        """The exact AWS calls the step makes (plan mode prints them, makes none)."""
        calls = []
        if self.ecs_to != self.ecs_from:
            if self.autoscaled:
                resource = f"service/{self.request.ecs_cluster}/{self.request.ecs_service}"
                calls.append(
                    AwsCall(
                        service="application-autoscaling",
                        operation="RegisterScalableTarget",
                        params={
                            "ServiceNamespace": "ecs",
                            "ResourceId": resource,
                            "ScalableDimension": "ecs:service:DesiredCount",
                            "MinCapacity": self.ecs_to,
                        },
                    )
                )
            else:
                calls.append(
                    AwsCall(
                        service="ecs",
                        operation="UpdateService",
                        params={
                            "cluster": self.request.ecs_cluster,
                            "service": self.request.ecs_service,
                            "desiredCount": self.ecs_to,
                        },
                    )
                )
        if self.lambda_to is not None and self.lambda_to != self.lambda_from:
            assert self.request.lambda_function is not None and self.request.lambda_qualifier is not None
            calls.append(
                AwsCall(
                    service="lambda",
                    operation="PutProvisionedConcurrencyConfig",
                    params={
                        "FunctionName": self.request.lambda_function,
                        "Qualifier": self.request.lambda_qualifier,
                        "ProvisionedConcurrentExecutions": self.lambda_to,
                    },
                )
            )
        return calls


class Check(Strict):
    """One judgement a watch makes at each reading (see `scaling_rules.judge`)."""

    rule: ScalingRule
    query: MetricQuery
    threshold: float
    below: bool = False


class PressureSeen(Strict):
    outcome: Literal["breach", "calm", "timeout"]
    judgement: Judgement | None = None  # the breach, or the first calm check
    at: datetime


class ScaleDone(Strict):
    plan_id: str
    changed: bool  # False: a retry found the step done already
    detail: str


class StepRecord(Strict):
    plan_id: str
    direction: Literal["up", "down"]
    at: datetime
    describe: str


class ScalingView(Strict):
    workflow_id: str
    service: str
    region: str
    status: ScalingStatus
    opened_by: str
    opened_at: datetime
    plan_only: bool
    judgement: Judgement | None = None  # the rule that fired, with the datapoints that breached
    baseline: Capacity | None = None
    capacity: Capacity | None = None  # as last read
    steps: list[StepRecord] = Field(default_factory=list)
    planned_calls: list[str] = Field(default_factory=list)
    pending_approval: ScalePlan | None = None
    decision: Decision | None = None
    next_step_at: datetime | None = None  # the cooldown or the hourly budget allows the next one then
    pagerduty: PagerDutyRef | None = None
    outcome: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    refused_signals: int = 0


class ScalingResult(Strict):
    outcome: str
    view: ScalingView
