"""Fault injection for demos: `runbook demo break|heal SERVICE`, `runbook demo break|deny|heal bedrock`.

A "bad deploy" is a real ECS deployment: a new task definition revision marked with the
environment variable DEMO_FAULT, rolled out through the ECS API exactly as a CI pipeline
would. The demo service reads what ECS says is deployed, so the runbook's remediation
(rolling the service back to its previous revision) heals it without any back channel.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import boto3

FAULT_VARIABLE = "DEMO_FAULT"
BAD_DEPLOY = "bad-deploy"
BAD_IMAGE_TAG = "bad"

# The fields register_task_definition accepts; describe_task_definition returns more
# (arn, revision, status, registeredAt, ...) which registering again would reject.
_REGISTERABLE_FIELDS = (
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
)


class ServiceNotFound(LookupError):
    pass


def _ecs(region: str) -> Any:
    return boto3.client("ecs", region_name=region)


def current_task_definition(cluster: str, service: str, region: str) -> dict[str, Any]:
    """The task definition (describe_task_definition's `taskDefinition`) the service runs."""
    return task_definition_of_service(_ecs(region), cluster, service)


def task_definition_of_service(ecs: Any, cluster: str, service: str) -> dict[str, Any]:
    """As current_task_definition, on a caller's ECS client (its own timeouts, its own region)."""
    services = ecs.describe_services(cluster=cluster, services=[service])["services"]
    active = [s for s in services if s["status"] == "ACTIVE"]
    if not active:
        raise ServiceNotFound(f"ECS service {service} not found in cluster {cluster}")
    return ecs.describe_task_definition(taskDefinition=active[0]["taskDefinition"])["taskDefinition"]


def fault_of(task_definition: dict[str, Any]) -> str | None:
    """The DEMO_FAULT a task definition carries, or None for a good one."""
    for container in task_definition.get("containerDefinitions", []):
        for variable in container.get("environment", []):
            if variable.get("name") == FAULT_VARIABLE and variable.get("value"):
                return variable["value"]
    return None


def break_service(cluster: str, service: str, region: str) -> str:
    """Deploy a faulty copy of the current revision; returns the new task definition ARN."""
    ecs = _ecs(region)
    current = task_definition_of_service(ecs, cluster, service)
    # Earlier demo breaks are retired first, as a team marks a bad release INACTIVE: else
    # "the previous revision" of the next break would be the last bad one.
    _retire_faulty_revisions(ecs, current["family"], keep=current["taskDefinitionArn"])
    faulty = _with_fault(current, BAD_DEPLOY)
    arn = ecs.register_task_definition(**faulty)["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=cluster, service=service, taskDefinition=arn)
    return arn


def heal_service(cluster: str, service: str, region: str) -> str:
    """Deploy the newest ACTIVE revision without a fault, by hand; returns its ARN."""
    ecs = _ecs(region)
    family = task_definition_of_service(ecs, cluster, service)["family"]
    good = _newest_good_revision(ecs, family)
    ecs.update_service(cluster=cluster, service=service, taskDefinition=good)
    return good


def _with_fault(task_definition: dict[str, Any], fault: str) -> dict[str, Any]:
    registerable = {
        key: value for key, value in task_definition.items() if key in _REGISTERABLE_FIELDS and value is not None
    }
    registerable["containerDefinitions"] = [
        _faulty_container(container, fault) for container in task_definition["containerDefinitions"]
    ]
    return registerable


def _faulty_container(container: dict[str, Any], fault: str) -> dict[str, Any]:
    environment = [v for v in container.get("environment", []) if v.get("name") != FAULT_VARIABLE]
    environment.append({"name": FAULT_VARIABLE, "value": fault})
    return {**container, "image": _retag(container["image"], BAD_IMAGE_TAG), "environment": environment}


def _retag(image: str, tag: str) -> str:
    # A registry host may carry a port ("registry:5000/app:1.0"): only a colon after the
    # last slash starts the tag. A digest ("app@sha256:...") is replaced by the tag.
    repository = image.split("@", 1)[0]
    name_start = repository.rfind("/") + 1
    tag_colon = repository.find(":", name_start)
    if tag_colon != -1:
        repository = repository[:tag_colon]
    return f"{repository}:{tag}"


def _active_revisions(ecs: Any, family: str) -> list[str]:
    """ACTIVE revisions of exactly `family`, newest first."""
    arns: list[str] = []
    for page in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family, status="ACTIVE"):
        arns.extend(page["taskDefinitionArns"])
    # familyPrefix is a prefix match and the emulator ignores sort=DESC: filter and sort here.
    return sorted(
        (arn for arn in arns if arn.rpartition("/")[2].rpartition(":")[0] == family),
        key=lambda arn: int(arn.rpartition(":")[2]),
        reverse=True,
    )


def _retire_faulty_revisions(ecs: Any, family: str, keep: str) -> None:
    for arn in _active_revisions(ecs, family):
        if arn != keep and fault_of(ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]):
            ecs.deregister_task_definition(taskDefinition=arn)


def _newest_good_revision(ecs: Any, family: str) -> str:
    for arn in _active_revisions(ecs, family):
        if fault_of(ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]) is None:
            return arn
    raise LookupError(f"task definition family {family} has no ACTIVE revision without {FAULT_VARIABLE}")


# Bedrock (`runbook demo break|deny|heal bedrock`): faults of the stack's Bedrock and IAM emulator.
BEDROCK_TARGET = "bedrock"


def set_bedrock_faults(emulator_url: str, bedrock: str | None = None, deny: bool | None = None) -> dict[str, Any]:
    """`bedrock`: ok, down (every Bedrock call fails) or slow; `deny`: the platform's client role
    loses (True) or gets back (False) its bedrock:InvokeModel policy. Returns the emulator's state."""
    from devstack.bedrock_emulator import FAULTS_PATH

    wanted = {key: value for key, value in (("bedrock", bedrock), ("deny", deny)) if value is not None}
    request = urllib.request.Request(
        emulator_url.rstrip("/") + FAULTS_PATH,
        data=json.dumps(wanted).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        state: dict[str, Any] = json.loads(answer.read())
    return state
