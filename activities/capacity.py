"""A service's capacity: ECS desired count (or Application Auto Scaling's minimum, where an
autoscaler manages the service), Lambda provisioned concurrency; and whether the incident
runbook is acting on the same target.

Every change is to an exact target the workflow computed once (`ScalePlan`), so a retry that
finds the target reached changes nothing, and says so.
"""

from __future__ import annotations

import time
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._aws import CONFIG, CREATING, aws_error, client
from contracts.scaling_decision import Capacity, CapacityRequest, ScaleDone, ScalePlan

DIMENSION = "ecs:service:DesiredCount"
READY_POLL = 2.0  # seconds between reads while provisioned concurrency is allocated


def _other(service: str, region: str) -> Any:
    """Application Auto Scaling and Lambda clients (shared like `_aws.client`'s)."""
    with CREATING:
        return _cached(service, region)


_CLIENTS: dict[tuple[str, str], Any] = {}


def _cached(service: str, region: str) -> Any:
    key = (service, region)
    if key not in _CLIENTS:
        _CLIENTS[key] = boto3.client(service, region_name=region, config=CONFIG)  # type: ignore[call-overload]
    return _CLIENTS[key]


def _resource(request: CapacityRequest) -> str:
    return f"service/{request.ecs_cluster}/{request.ecs_service}"


@activity.defn
def read_capacity(request: CapacityRequest) -> Capacity:
    """Desired and running counts, a rollout still under way, the autoscaler's bounds, and the
    provisioned concurrency requested (and whether it is allocated)."""
    try:
        found = client("ecs", request.region).describe_services(
            cluster=request.ecs_cluster, services=[request.ecs_service]
        )["services"]
        if not found or found[0].get("status") != "ACTIVE":
            raise ApplicationError(
                f"ECS service {request.ecs_service} in {request.ecs_cluster} not found or not active",
                type="ServiceNotFoundException",
                non_retryable=True,
            )
        service = found[0]
        deployments = service.get("deployments", [])
        rolling = None
        if len(deployments) > 1:
            rolling = f"an ECS deployment is rolling out ({len(deployments)} deployments of {request.ecs_service})"
        elif deployments and deployments[0].get("rolloutState") == "IN_PROGRESS":
            rolling = f"the ECS deployment of {request.ecs_service} is still in progress"
        targets = _other("application-autoscaling", request.region).describe_scalable_targets(
            ServiceNamespace="ecs", ResourceIds=[_resource(request)], ScalableDimension=DIMENSION
        )["ScalableTargets"]
        provisioned, ready = None, True
        if request.lambda_function is not None:
            provisioned, ready = _provisioned(request)
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"reading the capacity of {request.ecs_service}") from err
    return Capacity(
        desired=service.get("desiredCount", 0),
        running=service.get("runningCount", 0),
        rolling_out=rolling,
        autoscaled=bool(targets),
        min_capacity=targets[0]["MinCapacity"] if targets else None,
        max_capacity=targets[0]["MaxCapacity"] if targets else None,
        provisioned=provisioned,
        provisioned_ready=ready,
    )


def _provisioned(request: CapacityRequest) -> tuple[int, bool]:
    try:
        config = _other("lambda", request.region).get_provisioned_concurrency_config(
            FunctionName=request.lambda_function, Qualifier=request.lambda_qualifier
        )
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ProvisionedConcurrencyConfigNotFoundException":
            return 0, True  # none configured: nothing provisioned
        raise
    if config.get("Status") == "FAILED":
        raise ApplicationError(
            f"provisioned concurrency of {request.lambda_function}:{request.lambda_qualifier} failed: "
            f"{config.get('StatusReason', 'no reason given')}",
            type="ProvisionedConcurrencyFailed",
            non_retryable=True,
        )
    return int(config.get("RequestedProvisionedConcurrentExecutions", 0)), config.get("Status") == "READY"


@activity.defn
def apply_scale_plan(plan: ScalePlan) -> ScaleDone:
    """The plan's exact targets: the ECS desired count (or the autoscaler's minimum, never
    lowering its maximum below it), then Lambda's provisioned concurrency."""
    now = read_capacity(plan.request)
    done: list[str] = []
    request = plan.request
    try:
        if now.ecs_level != plan.ecs_to:
            if plan.autoscaled:
                bounds: dict[str, Any] = {"MinCapacity": plan.ecs_to}
                if now.max_capacity is not None and now.max_capacity < plan.ecs_to:
                    bounds["MaxCapacity"] = plan.ecs_to
                _other("application-autoscaling", request.region).register_scalable_target(
                    ServiceNamespace="ecs", ResourceId=_resource(request), ScalableDimension=DIMENSION, **bounds
                )
                done.append(f"autoscaler minimum {now.ecs_level} -> {plan.ecs_to}")
            else:
                client("ecs", request.region).update_service(
                    cluster=request.ecs_cluster, service=request.ecs_service, desiredCount=plan.ecs_to
                )
                done.append(f"desired count {now.ecs_level} -> {plan.ecs_to}")
        if plan.lambda_to is not None and now.provisioned != plan.lambda_to:
            _other("lambda", request.region).put_provisioned_concurrency_config(
                FunctionName=request.lambda_function,
                Qualifier=request.lambda_qualifier,
                ProvisionedConcurrentExecutions=plan.lambda_to,
            )
            done.append(f"provisioned concurrency {now.provisioned} -> {plan.lambda_to}")
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"scaling {request.ecs_service}") from err
    if not done:
        return ScaleDone(plan_id=plan.plan_id, changed=False, detail="already at the plan's targets: nothing changed")
    return ScaleDone(plan_id=plan.plan_id, changed=True, detail="; ".join(done))


@activity.defn
def wait_provisioned_ready(plan: ScalePlan) -> None:
    """Until Lambda reports the provisioned concurrency READY (heartbeating); FAILED fails the
    activity for good, naming AWS's reason."""
    while True:
        try:
            _, ready = _provisioned(plan.request)
        except (ClientError, BotoCoreError) as err:
            raise aws_error(err, "reading provisioned concurrency") from err
        if ready:
            return
        activity.heartbeat()
        time.sleep(READY_POLL)
