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
from contracts.scaling import (
    AwsCall,
    EcsCapacity,
    EcsCapacityRequest,
    EcsScalePlan,
    LambdaConcurrencyPlan,
    LambdaConcurrencyRequest,
    ProvisionedConcurrency,
)
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
    carried: ScalingCarry | None = None  # a continued run: what its predecessor knew (never a start's)


class ScalingCarry(Strict):
    """What a long run hands the run it continues as (its watch goes on there)."""

    baseline: Capacity
    steps: list[StepRecord]
    next_step_at: datetime | None
    stuck: str | None
    judgement: Judgement | None
    plan_only: bool
    triggers: int
    opened_by: str
    status: ScalingStatus
    pagerduty: PagerDutyRef | None
    timeline: list[TimelineEntry]
    deliveries: list[str]


class ScalingTrigger(Strict):
    """`runbook trigger scaling`: an operator asks the run to judge the service now."""

    by: str
    plan: bool = False
    reason: str = "operator trigger"
    assertion: str | None = None  # signed by the intake for the signed-in operator


class CapacityRequest(Strict):
    """Where a service's capacity lives: its ECS service and, optionally, its Lambda alias."""

    region: str
    ecs_cluster: str
    ecs_service: str
    lambda_function: str | None = None
    lambda_qualifier: str | None = None

    @property
    def ecs(self) -> EcsCapacityRequest:
        return EcsCapacityRequest(cluster=self.ecs_cluster, service=self.ecs_service, region=self.region)

    @property
    def concurrency(self) -> LambdaConcurrencyRequest | None:
        if self.lambda_function is None or self.lambda_qualifier is None:
            return None
        return LambdaConcurrencyRequest(
            function_name=self.lambda_function, qualifier=self.lambda_qualifier, region=self.region
        )


class Capacity(Strict):
    """A service's capacity as AWS reports it: its ECS service and its provisioned concurrency."""

    ecs: EcsCapacity
    concurrency: ProvisionedConcurrency | None = None

    @property
    def ecs_level(self) -> int:
        """What the runbook scales: the autoscaler's minimum where one manages the service."""
        return self.ecs.current

    @property
    def provisioned(self) -> int | None:
        return self.concurrency.requested if self.concurrency is not None else None

    @property
    def rolling_out(self) -> str | None:
        return self.ecs.rollout_detail or "an ECS deployment is rolling out" if self.ecs.rolling_out else None

    def describe(self) -> str:
        ecs = self.ecs
        what = f"minimum {ecs.current} (autoscaled)" if ecs.autoscaled else f"{ecs.desired_count} desired"
        lam = f", provisioned concurrency {self.provisioned}" if self.concurrency is not None else ""
        return f"ECS {what}, {ecs.running_count} running{lam}"


class ScalePlan(Strict):
    """One step, up or down, of ECS and (where the service has one) Lambda: exact targets,
    computed once, so a retry finds its step done."""

    direction: Literal["up", "down"]
    step: int  # the run's step number (1, 2, ...): part of the plan id
    rule: str | None  # the rule that fired (up)
    ecs: EcsScalePlan | None = None
    concurrency: LambdaConcurrencyPlan | None = None
    reason: str

    @property
    def plan_id(self) -> str:
        parts = [self.direction, str(self.step), *(p.plan_id for p in (self.ecs, self.concurrency) if p is not None)]
        digest = hashlib.sha256("/".join(parts).encode()).hexdigest()[:8]
        return f"scale-{self.direction}-{self.step}-{digest}"

    @property
    def action_name(self) -> str:
        return "scale_up" if self.direction == "up" else "scale_in"

    def describe(self) -> str:
        return "; ".join(p.describe() for p in (self.ecs, self.concurrency) if p is not None)

    def calls(self) -> list[AwsCall]:
        """The exact AWS calls the step makes (plan mode prints them, makes none)."""
        return [call for p in (self.ecs, self.concurrency) if p is not None for call in p.aws_calls()]


class StepRecord(Strict):
    plan_id: str
    direction: Literal["up", "down"]
    at: datetime
    describe: str
    detail: str  # what AWS was told, or that the step was found done


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

    def facts(self) -> list[tuple[str, str]]:
        """What `runbook show` and the approval page show of the run besides its status, approval
        and timeline, as (label, text) in order: capacities, the rule with its datapoints, the
        steps, when the next step is allowed, the calls a plan would make."""

        def capacity(found: Capacity | None) -> str:
            return found.describe() if found is not None else "-"

        facts = [("baseline", capacity(self.baseline)), ("last read", capacity(self.capacity))]
        if self.judgement is not None:
            judged = self.judgement
            verdict = "held" if judged.sustained else "not sustained"
            facts.append(("rule", f"{judged.rule} ({judged.metric} > {judged.threshold:g}): {verdict}"))
            points = ", ".join(f"{p.at:%H:%M:%S} {p.value:g}" for p in judged.points[-10:])
            facts.append(("datapoints", points or "-"))
        for step in self.steps:
            facts.append(("step", f"{step.at:%H:%M:%S} {step.direction}: {step.describe} ({step.plan_id})"))
        if self.next_step_at is not None and self.status.value not in ("at-baseline", "planned", "not-sustained"):
            allowed = f"{self.next_step_at:%H:%M:%S} UTC at the earliest (cooldown, hourly budget)"
            facts.append(("next step at", allowed))
        facts.extend(("would call", call) for call in self.planned_calls)
        return facts


class ScalingResult(Strict):
    outcome: str
    view: ScalingView


ScalingInput.model_rebuild()
