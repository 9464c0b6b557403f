"""Capacity of the scaling runbook's targets: what ECS and Lambda run now, and the plans that change it.

A plan carries the exact target the workflow computed once (never "+2" to be applied again by a
retry), and renders itself to the AWS calls it makes (`aws_calls`), so plan mode prints exactly
what the activity would send. The activities execute those same calls.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Final, Literal

from pydantic import Field, JsonValue

from contracts.common import Duration, Strict

AwsService = Literal["ecs", "application-autoscaling", "lambda", "route53"]
# Application Auto Scaling's names for an ECS service's desired count.
ECS_NAMESPACE: Final = "ecs"
ECS_DIMENSION: Final = "ecs:service:DesiredCount"


def ecs_resource_id(cluster: str, service: str) -> str:
    return f"service/{cluster}/{service}"


class AwsCall(Strict):
    """One AWS API call as AWS names it: `ecs UpdateService {"cluster": ..., "desiredCount": 6}`.
    Parameters are JSON as boto3 takes them (Route 53's change batch nests)."""

    service: AwsService
    operation: str
    params: Mapping[str, JsonValue]

    def render(self) -> str:
        return f"{self.service} {self.operation} {json.dumps(self.params, sort_keys=True)}"


class ScalingRecord(Strict):
    """What a scaling activity did; `changed=False` means it found the target already reached and
    made no call (`calls` lists the calls it made)."""

    changed: bool
    before: int
    after: int
    detail: str
    calls: list[AwsCall] = Field(default_factory=list)


# --- ECS


class EcsCapacityRequest(Strict):
    cluster: str
    service: str
    region: str


class ScalableTarget(Strict):
    """An Application Auto Scaling target registered for the service's desired count."""

    resource_id: str
    min_capacity: int
    max_capacity: int


class EcsCapacity(Strict):
    cluster: str
    service: str
    region: str
    desired_count: int
    running_count: int
    pending_count: int
    rolling_out: bool  # more than one deployment, or the primary one's rollout still IN_PROGRESS
    rollout_detail: str
    scalable_target: ScalableTarget | None  # None: no autoscaler manages the desired count

    @property
    def autoscaled(self) -> bool:
        return self.scalable_target is not None

    @property
    def current(self) -> int:
        """The number a scaling step moves: the autoscaler's minimum where one manages the
        service (a desired count written by hand would be undone), else the desired count."""
        return self.scalable_target.min_capacity if self.scalable_target else self.desired_count


class EcsScalePlan(Strict):
    """Move the service's desired count (or, autoscaled, its scalable target's minimum) from
    `from_count` to exactly `to_count`."""

    plan_id: str
    cluster: str
    service: str
    region: str
    from_count: int = Field(ge=0)
    to_count: int = Field(ge=0)
    scalable_target: ScalableTarget | None
    reason: str = ""

    @classmethod
    def build(cls, capacity: EcsCapacity, to_count: int, reason: str = "") -> EcsScalePlan:
        plan = cls(
            plan_id="",
            cluster=capacity.cluster,
            service=capacity.service,
            region=capacity.region,
            from_count=capacity.current,
            to_count=to_count,
            scalable_target=capacity.scalable_target,
            reason=reason,
        )
        return plan.model_copy(update={"plan_id": _plan_id("ecs", plan)})

    def aws_calls(self) -> list[AwsCall]:
        if self.scalable_target is None:
            params: dict[str, str | int] = {
                "cluster": self.cluster,
                "service": self.service,
                "desiredCount": self.to_count,
            }
            return [AwsCall(service="ecs", operation="UpdateService", params=params)]
        params = {
            "ServiceNamespace": ECS_NAMESPACE,
            "ResourceId": self.scalable_target.resource_id,
            "ScalableDimension": ECS_DIMENSION,
            "MinCapacity": self.to_count,
        }
        # The maximum is left alone unless the new minimum would pass it: never lowered.
        if self.to_count > self.scalable_target.max_capacity:
            params["MaxCapacity"] = self.to_count
        return [AwsCall(service="application-autoscaling", operation="RegisterScalableTarget", params=params)]

    def describe(self) -> str:
        what = "minimum capacity (Application Auto Scaling)" if self.scalable_target else "desired count"
        return (
            f"set the {what} of {self.cluster}/{self.service} ({self.region}) from {self.from_count} to {self.to_count}"
        )


# --- Lambda provisioned concurrency

ProvisionedConcurrencyStatus = Literal["NONE", "IN_PROGRESS", "READY", "FAILED"]


class LambdaConcurrencyRequest(Strict):
    function_name: str
    qualifier: str  # an alias or version: provisioned concurrency never applies to $LATEST
    region: str


class ProvisionedConcurrency(Strict):
    """A qualifier's provisioned concurrency; none configured reads as `requested=0`, status NONE."""

    function_name: str
    qualifier: str
    region: str
    requested: int
    allocated: int
    available: int
    status: ProvisionedConcurrencyStatus
    status_reason: str = ""


class LambdaConcurrencyPlan(Strict):
    """Set the qualifier's provisioned concurrency from `from_concurrency` to exactly `to_concurrency`
    (0 removes the configuration: Lambda accepts no zero)."""

    plan_id: str
    function_name: str
    qualifier: str
    region: str
    from_concurrency: int = Field(ge=0)
    to_concurrency: int = Field(ge=0)
    reason: str = ""

    @classmethod
    def build(cls, current: ProvisionedConcurrency, to_concurrency: int, reason: str = "") -> LambdaConcurrencyPlan:
        plan = cls(
            plan_id="",
            function_name=current.function_name,
            qualifier=current.qualifier,
            region=current.region,
            from_concurrency=current.requested,
            to_concurrency=to_concurrency,
            reason=reason,
        )
        return plan.model_copy(update={"plan_id": _plan_id("lambda", plan)})

    def aws_calls(self) -> list[AwsCall]:
        target: dict[str, str | int] = {"FunctionName": self.function_name, "Qualifier": self.qualifier}
        if self.to_concurrency == 0:
            return [AwsCall(service="lambda", operation="DeleteProvisionedConcurrencyConfig", params=target)]
        params = {**target, "ProvisionedConcurrentExecutions": self.to_concurrency}
        return [AwsCall(service="lambda", operation="PutProvisionedConcurrencyConfig", params=params)]

    def describe(self) -> str:
        return (
            f"set the provisioned concurrency of {self.function_name}:{self.qualifier} ({self.region}) "
            f"from {self.from_concurrency} to {self.to_concurrency}"
        )


class ProvisionedConcurrencyWait(Strict):
    """Wait until the qualifier's allocation of `expected` is READY, reading every `poll_interval`."""

    function_name: str
    qualifier: str
    region: str
    expected: int = Field(ge=0)
    poll_interval: Duration = timedelta(seconds=2)

    @classmethod
    def after(cls, plan: LambdaConcurrencyPlan, poll_interval: timedelta | None = None) -> ProvisionedConcurrencyWait:
        return cls(
            function_name=plan.function_name,
            qualifier=plan.qualifier,
            region=plan.region,
            expected=plan.to_concurrency,
            poll_interval=poll_interval or timedelta(seconds=2),
        )


def _plan_id(kind: str, plan: Strict) -> str:
    """A hash of what the plan does (not why), so an approval binds to exactly it."""
    body = plan.model_dump(mode="json", exclude={"plan_id", "reason"})
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return f"scale-{kind}-{digest[:12]}"
