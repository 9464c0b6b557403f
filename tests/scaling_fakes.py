"""The fake AWS of the scaling decisions runbook's time-skipping tests and its bench: a small
load model. The offered load (in task-percent) is a script of time, and the CPU CloudWatch
reports is that load over the tasks running at that moment, so a step up really brings the CPU
down and a step down brings it up."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity

from contracts import (
    Datapoint,
    EcsCapacity,
    EcsCapacityRequest,
    EcsScalePlan,
    LambdaConcurrencyPlan,
    LambdaConcurrencyRequest,
    ProvisionedConcurrency,
    ProvisionedConcurrencyStatus,
    ProvisionedConcurrencyWait,
    ScalingRecord,
    Series,
    SeriesRequest,
)
from contracts.maintenance import HoldRequest


class FakeAws:
    """ECS tasks, an optional autoscaler and provisioned concurrency, and CloudWatch series
    computed from an offered load."""

    def __init__(self, desired: int = 4) -> None:
        self.started: datetime | None = None  # the server's time at the trigger; loads are relative to it
        self.changes: list[tuple[datetime, int]] = []  # (when, desired) after each step
        self.desired = desired
        self.baseline = desired
        self.cpu_load: Callable[[timedelta], float] = lambda since: 100.0  # task-percent, by time since start
        self.p95: Callable[[timedelta], float] = lambda since: 500.0
        self.rolling_until: timedelta | None = None  # a rollout in progress until then (since start)
        self.applied: list[EcsScalePlan] = []
        self.provisioned = 100  # Lambda provisioned concurrency requested (and READY)
        self.concurrency_plans: list[LambdaConcurrencyPlan] = []
        self.waited: list[int] = []
        self.reads = 0
        self.held_by: str | None = None  # a maintenance window holding the service (the hold's reason)
        self.hold_asked = 0

    def tasks_at(self, at: datetime) -> int:
        tasks = self.baseline
        for when, desired in self.changes:
            if when <= at:
                tasks = desired
        return tasks

    def since(self, at: datetime) -> timedelta:
        assert self.started is not None
        return at - self.started

    def value(self, key: str, at: datetime) -> float:
        since = self.since(at)
        if key == "cpu_pct":
            return self.cpu_load(since) / self.tasks_at(at)
        if key == "p95_latency_ms":
            return self.p95(since)
        return 1.0  # memory, queue: quiet

    @activity.defn(name="read_series")
    async def read_series(self, request: SeriesRequest) -> list[Series]:
        assert request.end is not None
        self.reads += 1
        series = []
        for query in request.queries:
            period = query.period_seconds
            first = int((request.end - request.window).timestamp()) // period * period + period
            last = int(request.end.timestamp()) // period * period - period  # the last complete period
            points = [
                Datapoint(
                    at=datetime.fromtimestamp(t, request.end.tzinfo),
                    value=self.value(query.key, datetime.fromtimestamp(t, request.end.tzinfo)),
                )
                for t in range(first, last + 1, period)
            ]
            series.append(Series(key=query.key, period_seconds=period, points=points))
        return series

    @activity.defn(name="read_ecs_capacity")
    async def read_ecs_capacity(self, request: EcsCapacityRequest) -> EcsCapacity:
        now = activity.info().current_attempt_scheduled_time
        rolling = self.rolling_until is not None and self.started is not None and self.since(now) < self.rolling_until
        return EcsCapacity(
            cluster=request.cluster,
            service=request.service,
            region=request.region,
            desired_count=self.desired,
            running_count=self.desired,
            pending_count=0,
            rolling_out=rolling,
            rollout_detail="an ECS deployment is rolling out (2 deployments)" if rolling else "",
            scalable_target=None,
        )

    @activity.defn(name="scale_ecs_service")
    async def scale_ecs_service(self, plan: EcsScalePlan) -> ScalingRecord:
        self.applied.append(plan)
        before = self.desired
        if self.desired == plan.to_count:
            return ScalingRecord(changed=False, before=before, after=before, detail="already there")
        self.desired = plan.to_count
        self.changes.append((activity.info().current_attempt_scheduled_time, plan.to_count))
        return ScalingRecord(
            changed=True, before=before, after=plan.to_count, detail=f"desired count -> {plan.to_count}"
        )

    @activity.defn(name="read_provisioned_concurrency")
    async def read_provisioned_concurrency(self, request: LambdaConcurrencyRequest) -> ProvisionedConcurrency:
        return self.concurrency_of(request.function_name, request.qualifier, request.region)

    def concurrency_of(self, function: str, qualifier: str, region: str) -> ProvisionedConcurrency:
        n = self.provisioned
        status: ProvisionedConcurrencyStatus = "READY" if n else "NONE"
        return ProvisionedConcurrency(
            function_name=function,
            qualifier=qualifier,
            region=region,
            requested=n,
            allocated=n,
            available=n,
            status=status,
        )

    @activity.defn(name="set_provisioned_concurrency")
    async def set_provisioned_concurrency(self, plan: LambdaConcurrencyPlan) -> ScalingRecord:
        self.concurrency_plans.append(plan)
        before, self.provisioned = self.provisioned, plan.to_concurrency
        return ScalingRecord(changed=before != plan.to_concurrency, before=before, after=plan.to_concurrency, detail="")

    @activity.defn(name="wait_for_provisioned_concurrency")
    async def wait_for_provisioned_concurrency(self, wait: ProvisionedConcurrencyWait) -> ProvisionedConcurrency:
        self.waited.append(wait.expected)
        return self.concurrency_of(wait.function_name, wait.qualifier, wait.region)

    @activity.defn(name="maintenance_hold")
    async def maintenance_hold(self, request: HoldRequest) -> str | None:
        self.hold_asked += 1
        return self.held_by

    @activity.defn(name="remediation_in_progress")
    async def remediation_in_progress(self, workflow_id: str) -> str | None:
        return None

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.read_series,
            self.read_ecs_capacity,
            self.scale_ecs_service,
            self.read_provisioned_concurrency,
            self.set_provisioned_concurrency,
            self.wait_for_provisioned_concurrency,
            self.remediation_in_progress,
            self.maintenance_hold,
        ]


def breach(
    minutes_before: float, until: timedelta | None = None, high: float = 360.0, low: float = 100.0
) -> Callable[[timedelta], float]:
    """An offered load of `high` (90 % CPU on 4 tasks) from `minutes_before` the trigger, until
    `until` after it (then `low`)."""

    def load(since: timedelta) -> float:
        if since < -timedelta(minutes=minutes_before):
            return low
        if until is not None and since >= until:
            return low
        return high

    return load
