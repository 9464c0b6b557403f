"""ECS: what the service runs, and the two remediations that change it.

Both remediations are bound to the plan that was approved: they act only if the service is
still where the plan found it, and they recognise their own finished work on a retry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._aws import aws_error, client
from contracts import DeploymentRequest, DeploymentState, RemediationAction, RemediationPlan, RemediationRecord

if TYPE_CHECKING:
    from types_boto3_ecs import ECSClient
    from types_boto3_ecs.type_defs import ServiceTypeDef, TaskDefinitionTypeDef


def _service(ecs: ECSClient, cluster: str, service: str) -> ServiceTypeDef:
    found = ecs.describe_services(cluster=cluster, services=[service])
    if not found.get("services"):
        reasons = "; ".join(f.get("reason", "?") for f in found.get("failures", []))
        raise ApplicationError(
            f"ECS service {cluster}/{service} not found ({reasons or 'no such service'})",
            type="ServiceNotFoundException",
            non_retryable=True,
        )
    return found["services"][0]


def _primary_deployment_id(service: ServiceTypeDef) -> str | None:
    for deployment in service.get("deployments", []):
        if deployment.get("status") == "PRIMARY":
            return deployment.get("id")
    return None


def _canonical(ecs: ECSClient, task_definition: str) -> TaskDefinitionTypeDef:
    """The task definition as ECS describes it: services may name it as family:revision."""
    return ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]


def _previous_revision(ecs: ECSClient, current: TaskDefinitionTypeDef) -> str | None:
    """The highest ACTIVE revision of the same family below the one running."""
    family, revision = current["family"], current["revision"]
    paginator = ecs.get_paginator("list_task_definitions")
    best: tuple[int, str] | None = None
    for page in paginator.paginate(familyPrefix=family, status="ACTIVE"):
        for arn in page["taskDefinitionArns"]:
            arn_family, _, arn_revision = arn.rsplit("/", 1)[-1].rpartition(":")
            # familyPrefix also matches longer family names; keep the exact family only.
            if arn_family == family and int(arn_revision) < revision:
                if best is None or int(arn_revision) > best[0]:
                    best = (int(arn_revision), arn)
    return best[1] if best else None


@activity.defn
def describe_deployment(request: DeploymentRequest) -> DeploymentState:
    ecs = client("ecs", request.region)
    try:
        service = _service(ecs, request.cluster, request.service)
        current = _canonical(ecs, service["taskDefinition"])
        return DeploymentState(
            cluster=request.cluster,
            service=request.service,
            region=request.region,
            task_definition=current["taskDefinitionArn"],
            previous_task_definition=_previous_revision(ecs, current),
            primary_deployment_id=_primary_deployment_id(service),
        )
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"describe {request.cluster}/{request.service}") from err


@activity.defn
def set_service_task_definition(plan: RemediationPlan) -> RemediationRecord:
    """Roll the service to `plan.to_task_definition`, only from `plan.from_task_definition`."""
    ecs = client("ecs", plan.region)
    name = f"{plan.cluster}/{plan.service}"
    if plan.to_task_definition is None:  # the workflow never builds such a plan
        raise ApplicationError(
            f"plan {plan.plan_id} names no task definition for {name}", type="InvalidPlan", non_retryable=True
        )
    try:
        running = _canonical(ecs, _service(ecs, plan.cluster, plan.service)["taskDefinition"])["taskDefinitionArn"]
        if running == plan.to_task_definition:
            return RemediationRecord(action=plan.action, changed=False, detail=f"{name} already runs {_short(running)}")
        if running != plan.from_task_definition:
            raise ApplicationError(
                f"{name} runs {_short(running)}, not {_short(plan.from_task_definition)} as in the approved "
                f"plan {plan.plan_id}: someone else changed it; refusing to act on a stale plan",
                type="StalePlan",
                non_retryable=True,
            )
        ecs.update_service(cluster=plan.cluster, service=plan.service, taskDefinition=plan.to_task_definition)
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"update {name}") from err
    activity.logger.info("%s: %s -> %s", name, running, plan.to_task_definition)
    return RemediationRecord(
        action=plan.action,
        changed=True,
        detail=f"{name} moved from {_short(running)} to {_short(plan.to_task_definition)}",
    )


@activity.defn
def force_new_deployment(plan: RemediationPlan) -> RemediationRecord:
    """A new deployment unless one already replaced the deployment the plan saw."""
    ecs = client("ecs", plan.region)
    name = f"{plan.cluster}/{plan.service}"
    try:
        service = _service(ecs, plan.cluster, plan.service)
        current = _primary_deployment_id(service)
        if plan.expected_deployment_id is not None and current != plan.expected_deployment_id:
            return RemediationRecord(
                action=RemediationAction.FORCE_NEW_DEPLOYMENT,
                changed=False,
                detail=f"{name} already has a newer deployment ({current})",
            )
        ecs.update_service(cluster=plan.cluster, service=plan.service, forceNewDeployment=True)
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"force new deployment of {name}") from err
    return RemediationRecord(
        action=RemediationAction.FORCE_NEW_DEPLOYMENT, changed=True, detail=f"{name}: new deployment started"
    )


def _short(arn: str | None) -> str:
    return (arn or "?").rsplit("/", 1)[-1]
