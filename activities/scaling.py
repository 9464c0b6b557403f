"""Capacity: ECS desired counts, Application Auto Scaling minimums, Lambda provisioned concurrency.

The changes are bound to the plan the workflow computed once: each finds its own finished work
on a retry and makes no second call, refuses a plan the capacity has moved away from, and makes
exactly the calls the plan renders (`plan.aws_calls()`, what plan mode prints).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities._aws import aws_error, client
from activities.ecs import _service
from contracts import (
    ECS_DIMENSION,
    ECS_NAMESPACE,
    AwsCall,
    EcsCapacity,
    EcsCapacityRequest,
    EcsScalePlan,
    LambdaConcurrencyPlan,
    LambdaConcurrencyRequest,
    ProvisionedConcurrency,
    ProvisionedConcurrencyWait,
    ScalableTarget,
    ScalingRecord,
    ecs_resource_id,
)

if TYPE_CHECKING:
    from types_boto3_application_autoscaling import ApplicationAutoScalingClient
    from types_boto3_ecs.type_defs import ServiceTypeDef


# --- ECS


@activity.defn
def read_ecs_capacity(request: EcsCapacityRequest) -> EcsCapacity:
    """Desired and running tasks, whether a deployment is still rolling out, and the autoscaler's
    bounds where Application Auto Scaling manages the desired count."""
    name = f"{request.cluster}/{request.service}"
    try:
        service = _service(client("ecs", request.region), request.cluster, request.service)
        target = _scalable_target(client("application-autoscaling", request.region), request.cluster, request.service)
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"read the capacity of {name}") from err
    return _capacity(request, service, target)


def _capacity(request: EcsCapacityRequest, service: ServiceTypeDef, target: ScalableTarget | None) -> EcsCapacity:
    rolling_out, rollout_detail = _rollout(service)
    return EcsCapacity(
        cluster=request.cluster,
        service=request.service,
        region=request.region,
        desired_count=service.get("desiredCount", 0),
        running_count=service.get("runningCount", 0),
        pending_count=service.get("pendingCount", 0),
        rolling_out=rolling_out,
        rollout_detail=rollout_detail,
        scalable_target=target,
    )


@activity.defn
def scale_ecs_service(plan: EcsScalePlan) -> ScalingRecord:
    """The desired count, or where a scalable target is registered its minimum capacity, to
    exactly `plan.to_count`."""
    name = f"{plan.cluster}/{plan.service}"
    try:
        target = _scalable_target(client("application-autoscaling", plan.region), plan.cluster, plan.service)
        if (target is None) != (plan.scalable_target is None):
            raise ApplicationError(
                f"{name} is {'now' if target else 'no longer'} managed by Application Auto Scaling, unlike when "
                f"plan {plan.plan_id} was made: refusing to act on a stale plan",
                type="StalePlan",
                non_retryable=True,
            )
        if target is not None:
            current, what = target.min_capacity, "minimum capacity"
        else:
            current = _service(client("ecs", plan.region), plan.cluster, plan.service).get("desiredCount", 0)
            what = "desired count"
        return _apply(
            f"{name} {what}", plan.plan_id, plan.region, plan.from_count, plan.to_count, current, plan.aws_calls()
        )
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"scale {name}") from err


def _scalable_target(aas: ApplicationAutoScalingClient, cluster: str, service: str) -> ScalableTarget | None:
    resource_id = ecs_resource_id(cluster, service)
    found = aas.describe_scalable_targets(
        ServiceNamespace=ECS_NAMESPACE, ResourceIds=[resource_id], ScalableDimension=ECS_DIMENSION
    )["ScalableTargets"]
    if not found:
        return None
    return ScalableTarget(
        resource_id=resource_id, min_capacity=found[0]["MinCapacity"], max_capacity=found[0]["MaxCapacity"]
    )


def _rollout(service: ServiceTypeDef) -> tuple[bool, str]:
    """Rolling out: a deployment besides the primary one (tasks being replaced), or the primary
    one not yet COMPLETED. Scaling then would fight the deploy."""
    deployments = service.get("deployments", [])
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    if len(deployments) > 1:
        listed = ", ".join(f"{d.get('status', '?')} {d.get('id', '?')}" for d in deployments)
        return True, f"{len(deployments)} deployments ({listed})"
    if primary is None:
        return False, "no deployment"
    state = primary.get("rolloutState", "COMPLETED")  # services without a circuit breaker may omit it
    reason = primary.get("rolloutStateReason", "")
    detail = f"deployment {primary.get('id', '?')} {state}" + (f": {reason}" if reason else "")
    return state == "IN_PROGRESS", detail


# --- Lambda provisioned concurrency


@activity.defn
def read_provisioned_concurrency(request: LambdaConcurrencyRequest) -> ProvisionedConcurrency:
    """The qualifier's provisioned concurrency; none configured reads as 0."""
    try:
        return _provisioned(request.function_name, request.qualifier, request.region)
    except (ClientError, BotoCoreError) as err:
        raise aws_error(
            err, f"read the provisioned concurrency of {request.function_name}:{request.qualifier}"
        ) from err


@activity.defn
def set_provisioned_concurrency(plan: LambdaConcurrencyPlan) -> ScalingRecord:
    """The qualifier's provisioned concurrency to exactly `plan.to_concurrency`; the allocation
    then takes minutes (`wait_for_provisioned_concurrency`)."""
    name = f"{plan.function_name}:{plan.qualifier}"
    try:
        current = _provisioned(plan.function_name, plan.qualifier, plan.region).requested
        return _apply(
            f"{name} provisioned concurrency",
            plan.plan_id,
            plan.region,
            plan.from_concurrency,
            plan.to_concurrency,
            current,
            plan.aws_calls(),
        )
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"set the provisioned concurrency of {name}") from err


@activity.defn
def wait_for_provisioned_concurrency(request: ProvisionedConcurrencyWait) -> ProvisionedConcurrency:
    """Returns once the allocation of `request.expected` is READY (at once for 0: nothing to
    allocate); heartbeats between reads. A FAILED allocation fails for good with Lambda's reason."""
    name = f"{request.function_name}:{request.qualifier}"
    while True:
        try:
            reading = _provisioned(request.function_name, request.qualifier, request.region)
        except (ClientError, BotoCoreError) as err:
            raise aws_error(err, f"read the provisioned concurrency of {name}") from err
        if reading.requested != request.expected:
            raise ApplicationError(
                f"{name} now requests {reading.requested} provisioned concurrency, not {request.expected}: "
                "someone else changed it",
                type="StalePlan",
                non_retryable=True,
            )
        if reading.status in ("READY", "NONE"):
            return reading
        if reading.status == "FAILED":
            raise ApplicationError(
                f"{name}: the allocation of {request.expected} provisioned concurrency FAILED: "
                f"{reading.status_reason or 'Lambda gave no reason'}",
                type="ProvisionedConcurrencyFailed",
                non_retryable=True,
            )
        activity.heartbeat(f"{reading.status}: {reading.allocated} of {reading.requested} allocated")
        activity.wait_for_cancelled_sync(request.poll_interval)
        if activity.is_cancelled():
            raise CancelledError(f"stopped waiting for {name}")


def _provisioned(function_name: str, qualifier: str, region: str) -> ProvisionedConcurrency:
    lambda_ = client("lambda", region)
    try:
        found = lambda_.get_provisioned_concurrency_config(FunctionName=function_name, Qualifier=qualifier)
    except lambda_.exceptions.ProvisionedConcurrencyConfigNotFoundException:
        return ProvisionedConcurrency(
            function_name=function_name,
            qualifier=qualifier,
            region=region,
            requested=0,
            allocated=0,
            available=0,
            status="NONE",
        )
    return ProvisionedConcurrency(
        function_name=function_name,
        qualifier=qualifier,
        region=region,
        requested=found.get("RequestedProvisionedConcurrentExecutions", 0),
        allocated=found.get("AllocatedProvisionedConcurrentExecutions", 0),
        available=found.get("AvailableProvisionedConcurrentExecutions", 0),
        status=found.get("Status", "IN_PROGRESS"),
        status_reason=found.get("StatusReason", ""),
    )


# --- shared


def _apply(
    what: str, plan_id: str, region: str, from_: int, to: int, current: int, calls: list[AwsCall]
) -> ScalingRecord:
    """Make `calls` if the capacity is still where the plan found it; a retry after they were
    made finds the target reached and makes none."""
    settled = _settled(from_, to, current)
    if settled is not None:
        return ScalingRecord(changed=False, before=current, after=current, detail=f"{what} {settled}; no call made")
    if current != from_:
        raise ApplicationError(
            f"{what} is {current}, not {from_} as in plan {plan_id}: someone else changed it; "
            "refusing to act on a stale plan",
            type="StalePlan",
            non_retryable=True,
        )
    for call in calls:
        _execute(call, region)
    activity.logger.info("%s: %d -> %d (%s)", what, from_, to, plan_id)
    return ScalingRecord(changed=True, before=from_, after=to, detail=f"{what} from {from_} to {to}", calls=calls)


def _settled(from_: int, to: int, current: int) -> str | None:
    """Why no call is needed: the target is reached, or passed in the plan's own direction (a
    scale-up never lowers what someone else raised further, nor a scale-in raise it)."""
    if current == to:
        return f"already at {to}"
    if from_ < to < current:
        return f"already at {current}, above the target {to}: not lowered"
    if current < to < from_:
        return f"already at {current}, below the target {to}: not raised"
    return None


def _execute(call: AwsCall, region: str) -> None:
    params: dict[str, Any] = dict(call.params)
    match call.service, call.operation:
        case "ecs", "UpdateService":
            client("ecs", region).update_service(**params)
        case "application-autoscaling", "RegisterScalableTarget":
            client("application-autoscaling", region).register_scalable_target(**params)
        case "lambda", "PutProvisionedConcurrencyConfig":
            client("lambda", region).put_provisioned_concurrency_config(**params)
        case "lambda", "DeleteProvisionedConcurrencyConfig":
            client("lambda", region).delete_provisioned_concurrency_config(**params)
        case _:  # a plan only renders the calls above
            raise ApplicationError(f"no such scaling call: {call.render()}", type="InvalidPlan", non_retryable=True)
