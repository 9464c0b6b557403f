"""The scaling activities: against botocore's Stubber with the answers AWS documents, and over HTTP
against moto (ECS, Application Auto Scaling) and the local stack's Lambda emulator (provisioned
concurrency, which moto lacks), whose recordings count the mutating calls a retry must not repeat.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment

from activities import _aws, scaling
from activities._aws import client
from contracts import (
    EcsCapacity,
    EcsCapacityRequest,
    EcsScalePlan,
    LambdaConcurrencyPlan,
    LambdaConcurrencyRequest,
    ProvisionedConcurrency,
    ProvisionedConcurrencyWait,
    ScalableTarget,
)
from devstack import aws_seed
from devstack.lambda_emulator import STATUS_PATH
from devstack.net import free_port, wait_for_http
from settings import PROJECT_ROOT
from tests.conftest import MotoServer, _stop

REGION = aws_seed.PRIMARY_REGION  # moto and the emulator
STUBBED = "eu-west-3"  # clients that only ever meet the Stubber
READY_AFTER = 0.5  # the emulator's allocation time in these tests
FAIL_REASON = "FUNCTION_ERROR_INIT_FAILURE: the function's initialisation failed"
FAST = timedelta(milliseconds=50)
run = ActivityEnvironment().run


def watched() -> tuple[ActivityEnvironment, list[tuple[Any, ...]]]:
    env, beats = ActivityEnvironment(), []
    env.on_heartbeat = lambda *details: beats.append(details)
    return env, beats


def fails_for_good(err: ApplicationError, kind: str) -> bool:
    return err.type == kind and err.non_retryable


# --------------------------------------------------------------------------- the emulators


@dataclass
class LambdaEmulator:
    url: str
    recording: Path

    def mutations(self, function: str, qualifier: str) -> list[dict[str, Any]]:
        if not self.recording.exists():
            return []
        entries = [json.loads(line) for line in self.recording.read_text().splitlines()]
        return [e for e in entries if f"/functions/{function}/" in e["path"] and e["qualifier"] == qualifier]


@pytest.fixture(scope="module")
def lambda_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaEmulator]:
    """`python -m devstack.lambda_emulator` as the stack runs it, on a free port."""
    folder = tmp_path_factory.mktemp("lambda")
    functions = folder / "functions.json"
    functions.write_text(
        json.dumps(
            {
                "functions": [
                    {"name": "router", "qualifiers": ["wire", "update", "exact", "stale", "errors"]},
                    {"name": "broken-init", "qualifiers": ["live"], "fail_reason": FAIL_REASON},
                ]
            }
        )
    )
    port, recording = free_port(), folder / "recording.jsonl"
    argv = [sys.executable, "-m", "devstack.lambda_emulator", "--port", str(port), "--functions", str(functions)]
    argv += ["--recording", str(recording), "--ready-after", str(READY_AFTER)]
    proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + STATUS_PATH, timeout=30)
        yield LambdaEmulator(url=url, recording=recording)
    finally:
        _stop(proc)


@pytest.fixture
def aws(aws_env: MotoServer, lambda_emulator: LambdaEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """boto3 in this process as the stack's worker has it: Lambda to the emulator, the rest to moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_emulator.url)
    _aws._client.cache_clear()  # cached clients keep the endpoint they were made with
    yield aws_env
    _aws._client.cache_clear()


@pytest.fixture
def moto_calls(aws: MotoServer) -> Iterator[Any]:
    """Returns the JSON-protocol calls (operation, body) moto received since the test began."""
    control = f"{aws.url}/moto-api/recorder"
    urllib.request.urlopen(urllib.request.Request(f"{control}/start-recording", method="POST"), timeout=10).close()
    start = aws.recording.stat().st_size if aws.recording.exists() else 0

    def calls(operation: str) -> list[dict[str, Any]]:
        with aws.recording.open() as recorded:
            recorded.seek(start)
            entries = [json.loads(line) for line in recorded.read().splitlines() if line]
        found = []
        for entry in entries:
            target = {k.lower(): v for k, v in entry["headers"].items()}.get("x-amz-target", "")
            if target.endswith(f".{operation}"):
                body = base64.b64decode(entry["body"]).decode() if entry.get("body_encoded") else entry["body"]
                found.append(json.loads(body))
        return found

    yield calls
    urllib.request.urlopen(urllib.request.Request(f"{control}/stop-recording", method="POST"), timeout=10).close()


def lambda_client(url: str, **config: Any) -> Any:
    return boto3.client(
        "lambda",
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, **config),
    )


def new_service(desired: int, settled: bool = True) -> tuple[str, str]:
    """A service of its own in moto. Settled: created empty, then sized (moto runs tasks only on
    UpdateService and leaves a service created bigger IN_PROGRESS)."""
    ecs = boto3.client("ecs", region_name=REGION)
    cluster, service = f"scaling-{uuid.uuid4().hex[:8]}", "web"
    ecs.create_cluster(clusterName=cluster)
    family = f"{cluster}-task"
    ecs.register_task_definition(
        family=family, containerDefinitions=[{"name": "web", "image": "web:1.0.0", "memory": 512}]
    )
    ecs.create_service(
        cluster=cluster, serviceName=service, taskDefinition=family, desiredCount=0 if settled else desired
    )
    if settled:
        ecs.update_service(cluster=cluster, service=service, desiredCount=desired)
    return cluster, service


def register_target(cluster: str, service: str, minimum: int, maximum: int) -> None:
    boto3.client("application-autoscaling", region_name=REGION).register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=f"service/{cluster}/{service}",
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=minimum,
        MaxCapacity=maximum,
    )


def read(cluster: str, service: str, region: str = REGION) -> EcsCapacity:
    return run(scaling.read_ecs_capacity, EcsCapacityRequest(cluster=cluster, service=service, region=region))


# --------------------------------------------------------------------------- the Lambda emulator's wire format


def test_the_lambda_emulator_answers_as_lambda_does(lambda_emulator: LambdaEmulator) -> None:
    """boto3 itself parses every answer: the model's shapes, the status codes, the error codes."""
    lam = lambda_client(lambda_emulator.url)
    with pytest.raises(ClientError) as err:
        lam.get_provisioned_concurrency_config(FunctionName="router", Qualifier="wire")
    assert err.value.response["Error"]["Code"] == "ProvisionedConcurrencyConfigNotFoundException"
    assert isinstance(err.value, lam.exceptions.ProvisionedConcurrencyConfigNotFoundException)

    put = lam.put_provisioned_concurrency_config(
        FunctionName="router", Qualifier="wire", ProvisionedConcurrentExecutions=7
    )
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert (put["Status"], put["RequestedProvisionedConcurrentExecutions"]) == ("IN_PROGRESS", 7)
    assert put["AllocatedProvisionedConcurrentExecutions"] == 0
    arn = f"arn:aws:lambda:{REGION}:123456789012:function:router"
    configuration = lam.get_function_configuration(FunctionName=arn, Qualifier="wire")
    assert (configuration["FunctionArn"], configuration["Version"]) == (f"{arn}:wire", "1")
    assert lam.get_function_configuration(FunctionName="router")["Version"] == "$LATEST"

    missing = [
        lambda: lam.get_provisioned_concurrency_config(FunctionName="nobody", Qualifier="live"),
        lambda: lam.put_provisioned_concurrency_config(
            FunctionName="router", Qualifier="nope", ProvisionedConcurrentExecutions=1
        ),
        lambda: lam.get_function_configuration(FunctionName="router:nope"),
    ]
    for call in missing:
        with pytest.raises(lam.exceptions.ResourceNotFoundException) as not_found:
            call()
        response = not_found.value.response
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert response["Error"]["Message"].startswith("Function not found: arn:aws:lambda:")

    unchecked = lambda_client(lambda_emulator.url, parameter_validation=False)  # botocore refuses 0 itself
    for bad in ({"ProvisionedConcurrentExecutions": 0}, {"ProvisionedConcurrentExecutions": -3}):
        with pytest.raises(lam.exceptions.InvalidParameterValueException) as invalid:
            unchecked.put_provisioned_concurrency_config(FunctionName="router", Qualifier="wire", **bad)
        assert invalid.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.put_provisioned_concurrency_config(
            FunctionName="router", Qualifier="$LATEST", ProvisionedConcurrentExecutions=1
        )

    deleted = lam.delete_provisioned_concurrency_config(FunctionName="router", Qualifier="wire")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        lam.get_provisioned_concurrency_config(FunctionName="router", Qualifier="wire")
    operations = [(e["operation"], e["status"]) for e in lambda_emulator.mutations("router", "wire")]
    assert operations == [
        ("PutProvisionedConcurrencyConfig", 202),
        ("PutProvisionedConcurrencyConfig", 400),
        ("PutProvisionedConcurrencyConfig", 400),
        ("DeleteProvisionedConcurrencyConfig", 204),
    ]
    assert [e["status"] for e in lambda_emulator.mutations("router", "nope")] == [404]


def test_the_lambda_emulators_errors_carry_lambdas_header_and_body(lambda_emulator: LambdaEmulator) -> None:
    request = urllib.request.Request(
        f"{lambda_emulator.url}/2019-09-30/functions/nobody/provisioned-concurrency?Qualifier=x"
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 404
    assert err.value.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    assert err.value.headers["x-amzn-RequestId"]
    body = json.loads(err.value.read())
    assert body["Type"] == "User" and body["Message"].startswith("Function not found")
    bad = urllib.request.Request(
        f"{lambda_emulator.url}/2019-09-30/functions/router/provisioned-concurrency?Qualifier=wire",
        data=b'{"ProvisionedConcurrentExecutions": 0}',
        method="PUT",
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(bad, timeout=10)
    assert (err.value.code, err.value.headers["x-amzn-ErrorType"]) == (400, "InvalidParameterValueException")
    assert json.loads(err.value.read())["Type"] == "User"


def test_an_update_keeps_the_old_allocation_until_the_new_one_is_ready(
    aws: MotoServer, lambda_emulator: LambdaEmulator
) -> None:
    lam = lambda_client(lambda_emulator.url)
    lam.put_provisioned_concurrency_config(
        FunctionName="router", Qualifier="update", ProvisionedConcurrentExecutions=10
    )
    wait = ProvisionedConcurrencyWait(
        function_name="router", qualifier="update", region=REGION, expected=10, poll_interval=FAST
    )
    assert run(scaling.wait_for_provisioned_concurrency, wait).allocated == 10
    updated = lam.put_provisioned_concurrency_config(
        FunctionName="router", Qualifier="update", ProvisionedConcurrentExecutions=25
    )
    assert (updated["Status"], updated["AllocatedProvisionedConcurrentExecutions"]) == ("IN_PROGRESS", 10)


# --------------------------------------------------------------------------- ECS over HTTP (moto)


def test_ecs_scaling_sets_the_exact_count_once_and_a_retry_makes_no_call(aws: MotoServer, moto_calls: Any) -> None:
    cluster, service = new_service(desired=2)
    before = read(cluster, service)
    assert (before.desired_count, before.running_count, before.rolling_out) == (2, 2, False)
    assert before.scalable_target is None and before.current == 2

    plan = EcsScalePlan.build(before, to_count=4, reason="cpu 91 % for 5 min")
    first = run(scaling.scale_ecs_service, plan)
    retry = run(scaling.scale_ecs_service, plan)

    assert first.changed and (first.before, first.after) == (2, 4)
    assert first.calls == plan.aws_calls()
    assert not retry.changed and retry.calls == [] and "already at 4" in retry.detail
    assert read(cluster, service).desired_count == 4
    sized = [call["desiredCount"] for call in moto_calls("UpdateService") if call["cluster"] == cluster]
    assert sized == [2, 4]  # the test's own sizing of the new service, then the plan's one call
    assert moto_calls("RegisterScalableTarget") == []


def test_a_stale_ecs_plan_is_refused_and_a_larger_count_is_not_lowered(aws: MotoServer, moto_calls: Any) -> None:
    cluster, service = new_service(desired=2)
    plan = EcsScalePlan.build(read(cluster, service), to_count=4)
    ecs = boto3.client("ecs", region_name=REGION)

    ecs.update_service(cluster=cluster, service=service, desiredCount=3)  # someone else moved it since
    with pytest.raises(ApplicationError) as err:
        run(scaling.scale_ecs_service, plan)
    assert fails_for_good(err.value, "StalePlan") and "is 3, not 2" in str(err.value)

    ecs.update_service(cluster=cluster, service=service, desiredCount=6)  # ... past the target
    record = run(scaling.scale_ecs_service, plan)
    assert not record.changed and "not lowered" in record.detail
    assert read(cluster, service).desired_count == 6
    assert [call["desiredCount"] for call in moto_calls("UpdateService")] == [2, 3, 6]  # only the test's own


def test_an_autoscaled_service_gets_its_minimum_raised_and_its_maximum_never_lowered(
    aws: MotoServer, moto_calls: Any
) -> None:
    cluster, service = new_service(desired=2)
    register_target(cluster, service, minimum=2, maximum=10)
    before = read(cluster, service)
    assert before.scalable_target == ScalableTarget(
        resource_id=f"service/{cluster}/{service}", min_capacity=2, max_capacity=10
    )
    assert before.current == 2

    up = EcsScalePlan.build(before, to_count=4)
    [call] = up.aws_calls()
    assert (call.service, call.operation) == ("application-autoscaling", "RegisterScalableTarget")
    assert "MaxCapacity" not in call.params
    assert run(scaling.scale_ecs_service, up).changed
    assert not run(scaling.scale_ecs_service, up).changed  # the retry
    after = read(cluster, service)
    assert (after.scalable_target.min_capacity, after.scalable_target.max_capacity) == (4, 10)
    assert after.desired_count == 2  # the autoscaler's to move, not ours: no UpdateService
    assert [call["desiredCount"] for call in moto_calls("UpdateService")] == [2]  # the test's own sizing

    past_max = EcsScalePlan.build(after, to_count=12)
    assert run(scaling.scale_ecs_service, past_max).changed
    back = EcsScalePlan.build(read(cluster, service), to_count=2)
    assert run(scaling.scale_ecs_service, back).changed
    final = read(cluster, service).scalable_target
    assert (final.min_capacity, final.max_capacity) == (2, 12)  # raised once, never lowered
    registered = [(c["MinCapacity"], c.get("MaxCapacity")) for c in moto_calls("RegisterScalableTarget")]
    assert registered == [(2, 10), (4, None), (12, 12), (2, None)]  # the test's own, then one per plan


def test_a_service_whose_autoscaler_appeared_since_the_plan_is_not_scaled_by_hand(aws: MotoServer) -> None:
    cluster, service = new_service(desired=2)
    plan = EcsScalePlan.build(read(cluster, service), to_count=4)
    register_target(cluster, service, minimum=1, maximum=8)
    with pytest.raises(ApplicationError) as err:
        run(scaling.scale_ecs_service, plan)
    assert fails_for_good(err.value, "StalePlan") and "now managed by Application Auto Scaling" in str(err.value)


def test_tasks_not_yet_running_read_as_a_rollout_in_progress(aws: MotoServer) -> None:
    cluster, service = new_service(desired=2, settled=False)  # moto: created with 2, none running
    capacity = read(cluster, service)
    assert capacity.rolling_out and "IN_PROGRESS" in capacity.rollout_detail


def test_the_seeded_service_reads_as_settled(aws: MotoServer) -> None:
    aws_seed.seed()
    capacity = read(aws_seed.CLUSTER, aws_seed.SERVICE)
    assert not capacity.rolling_out, capacity.rollout_detail
    assert capacity.running_count == capacity.desired_count > 0


def test_a_missing_service_is_not_retried(aws: MotoServer) -> None:
    with pytest.raises(ApplicationError) as err:
        read("no-such-cluster", "web")
    assert err.value.non_retryable


# --------------------------------------------------------------------------- Lambda over HTTP (the emulator)


def test_provisioned_concurrency_is_set_once_and_waited_for_until_ready(
    aws: MotoServer, lambda_emulator: LambdaEmulator
) -> None:
    request = LambdaConcurrencyRequest(function_name="router", qualifier="exact", region=REGION)
    none = run(scaling.read_provisioned_concurrency, request)
    assert (none.requested, none.status) == (0, "NONE")

    plan = LambdaConcurrencyPlan.build(none, to_concurrency=50, reason="p95 2300 ms for 10 min")
    first = run(scaling.set_provisioned_concurrency, plan)
    retry = run(scaling.set_provisioned_concurrency, plan)
    assert first.changed and first.calls == plan.aws_calls() and (first.before, first.after) == (0, 50)
    assert not retry.changed and "already at 50" in retry.detail

    env, beats = watched()
    ready = env.run(scaling.wait_for_provisioned_concurrency, ProvisionedConcurrencyWait.after(plan, FAST))
    assert (ready.status, ready.allocated, ready.available) == ("READY", 50, 50)
    assert beats and all("IN_PROGRESS" in str(beat) for beat in beats)
    puts = lambda_emulator.mutations("router", "exact")
    assert [(p["operation"], json.loads(p["body"])) for p in puts] == [
        ("PutProvisionedConcurrencyConfig", {"ProvisionedConcurrentExecutions": 50})
    ]

    back = LambdaConcurrencyPlan.build(ready, to_concurrency=0)  # the baseline: none configured
    assert [c.operation for c in back.aws_calls()] == ["DeleteProvisionedConcurrencyConfig"]
    assert run(scaling.set_provisioned_concurrency, back).changed
    assert not run(scaling.set_provisioned_concurrency, back).changed
    gone = run(scaling.wait_for_provisioned_concurrency, ProvisionedConcurrencyWait.after(back, FAST))
    assert (gone.requested, gone.status) == (0, "NONE")
    assert len(lambda_emulator.mutations("router", "exact")) == 2


def test_a_failed_allocation_fails_for_good_with_lambdas_reason(aws: MotoServer) -> None:
    request = LambdaConcurrencyRequest(function_name="broken-init", qualifier="live", region=REGION)
    plan = LambdaConcurrencyPlan.build(run(scaling.read_provisioned_concurrency, request), to_concurrency=10)
    assert run(scaling.set_provisioned_concurrency, plan).changed
    with pytest.raises(ApplicationError) as err:
        run(scaling.wait_for_provisioned_concurrency, ProvisionedConcurrencyWait.after(plan, FAST))
    assert fails_for_good(err.value, "ProvisionedConcurrencyFailed") and FAIL_REASON in str(err.value)


def test_a_changed_concurrency_is_a_stale_plan_for_the_setter_and_the_waiter(
    aws: MotoServer, lambda_emulator: LambdaEmulator
) -> None:
    request = LambdaConcurrencyRequest(function_name="router", qualifier="stale", region=REGION)
    plan = LambdaConcurrencyPlan.build(run(scaling.read_provisioned_concurrency, request), to_concurrency=20)
    lambda_client(lambda_emulator.url).put_provisioned_concurrency_config(
        FunctionName="router", Qualifier="stale", ProvisionedConcurrentExecutions=5
    )
    with pytest.raises(ApplicationError) as err:
        run(scaling.set_provisioned_concurrency, plan)
    assert fails_for_good(err.value, "StalePlan")
    with pytest.raises(ApplicationError) as err:
        run(scaling.wait_for_provisioned_concurrency, ProvisionedConcurrencyWait.after(plan, FAST))
    assert fails_for_good(err.value, "StalePlan") and "now requests 5" in str(err.value)


def test_a_function_that_does_not_exist_is_not_retried(aws: MotoServer) -> None:
    with pytest.raises(ApplicationError) as err:
        run(
            scaling.read_provisioned_concurrency,
            LambdaConcurrencyRequest(function_name="no-such-function", qualifier="live", region=REGION),
        )
    assert fails_for_good(err.value, "ResourceNotFoundException")


# ----------------------------------------------------- botocore's Stubber, AWS's documented answers


def ecs_service(deployments: list[dict[str, Any]], desired: int = 10, running: int = 4) -> dict[str, Any]:
    """DescribeServices as the ECS API reference shows it (trimmed to what the model requires)."""
    return {
        "services": [
            {
                "serviceArn": "arn:aws:ecs:eu-west-3:012345678910:service/default/web-app",
                "serviceName": "web-app",
                "clusterArn": "arn:aws:ecs:eu-west-3:012345678910:cluster/default",
                "status": "ACTIVE",
                "desiredCount": desired,
                "runningCount": running,
                "pendingCount": desired - running,
                "taskDefinition": "arn:aws:ecs:eu-west-3:012345678910:task-definition/web-app:2",
                "deployments": deployments,
                "createdAt": datetime(2026, 1, 1, tzinfo=UTC),
            }
        ],
        "failures": [],
    }


def deployment(status: str, rollout: str, id_: str) -> dict[str, Any]:
    return {
        "id": id_,
        "status": status,
        "taskDefinition": "arn:aws:ecs:eu-west-3:012345678910:task-definition/web-app:2",
        "desiredCount": 10,
        "runningCount": 4,
        "pendingCount": 6,
        "rolloutState": rollout,
        "rolloutStateReason": f"ECS deployment {id_} {rollout.lower().replace('_', ' ')}.",
        "createdAt": datetime(2026, 1, 1, tzinfo=UTC),
        "updatedAt": datetime(2026, 1, 1, tzinfo=UTC),
    }


def scalable_targets(minimum: int, maximum: int) -> dict[str, Any]:
    """DescribeScalableTargets as the Application Auto Scaling API reference shows it."""
    return {
        "ScalableTargets": [
            {
                "ServiceNamespace": "ecs",
                "ResourceId": "service/default/web-app",
                "ScalableDimension": "ecs:service:DesiredCount",
                "MinCapacity": minimum,
                "MaxCapacity": maximum,
                "RoleARN": "arn:aws:iam::012345678910:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/"
                "AWSServiceRoleForApplicationAutoScaling_ECSService",
                "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
            }
        ]
    }


TARGET_QUERY = {
    "ServiceNamespace": "ecs",
    "ResourceIds": ["service/default/web-app"],
    "ScalableDimension": "ecs:service:DesiredCount",
}
SERVICE_QUERY = {"cluster": "default", "services": ["web-app"]}
LAMBDA_TARGET = {"FunctionName": "my-function", "Qualifier": "BLUE"}


def provisioned(status: str, requested: int, allocated: int, reason: str | None = None) -> dict[str, Any]:
    """GetProvisionedConcurrencyConfig as the Lambda API reference shows it."""
    answer: dict[str, Any] = {
        "RequestedProvisionedConcurrentExecutions": requested,
        "AvailableProvisionedConcurrentExecutions": allocated,
        "AllocatedProvisionedConcurrentExecutions": allocated,
        "Status": status,
        "LastModified": "2019-12-31T20:28:49+0000",
    }
    if reason:
        answer["StatusReason"] = reason
    return answer


def test_a_rollout_and_an_autoscaler_are_read_from_awss_documented_answers() -> None:
    ecs, aas = client("ecs", STUBBED), client("application-autoscaling", STUBBED)
    rolling = [
        deployment("PRIMARY", "IN_PROGRESS", "ecs-svc/9223370564341623665"),
        deployment("ACTIVE", "COMPLETED", "ecs-svc/9223370564343611322"),
    ]
    with Stubber(ecs) as ecs_stub, Stubber(aas) as aas_stub:
        ecs_stub.add_response("describe_services", ecs_service(rolling), SERVICE_QUERY)
        aas_stub.add_response("describe_scalable_targets", scalable_targets(1, 10), TARGET_QUERY)
        ecs_stub.add_response("describe_services", ecs_service(rolling[:1]), SERVICE_QUERY)
        aas_stub.add_response("describe_scalable_targets", {"ScalableTargets": []}, TARGET_QUERY)
        ecs_stub.add_response(
            "describe_services", ecs_service([deployment("PRIMARY", "COMPLETED", "d")]), SERVICE_QUERY
        )
        aas_stub.add_response("describe_scalable_targets", {"ScalableTargets": []}, TARGET_QUERY)
        two, primary_only, settled = (read("default", "web-app", STUBBED) for _ in range(3))
        ecs_stub.assert_no_pending_responses()
        aas_stub.assert_no_pending_responses()
    assert two.rolling_out and two.rollout_detail.startswith("2 deployments")
    assert (two.desired_count, two.running_count, two.pending_count) == (10, 4, 6)
    assert two.scalable_target == ScalableTarget(resource_id="service/default/web-app", min_capacity=1, max_capacity=10)
    assert two.current == 1  # the autoscaler's minimum is what a step moves
    assert primary_only.rolling_out and "IN_PROGRESS" in primary_only.rollout_detail
    assert not settled.rolling_out and settled.scalable_target is None and settled.current == 10


def test_scaling_sends_exactly_the_calls_the_plan_renders() -> None:
    ecs, aas = client("ecs", STUBBED), client("application-autoscaling", STUBBED)
    capacity = EcsCapacity(
        cluster="default",
        service="web-app",
        region=STUBBED,
        desired_count=4,
        running_count=4,
        pending_count=0,
        rolling_out=False,
        rollout_detail="",
        scalable_target=ScalableTarget(resource_id="service/default/web-app", min_capacity=4, max_capacity=5),
    )
    plan = EcsScalePlan.build(capacity, to_count=6)
    [call] = plan.aws_calls()
    assert call.params == {
        "ServiceNamespace": "ecs",
        "ResourceId": "service/default/web-app",
        "ScalableDimension": "ecs:service:DesiredCount",
        "MinCapacity": 6,
        "MaxCapacity": 6,  # past the old maximum of 5: raised with it
    }
    plain = EcsScalePlan.build(capacity.model_copy(update={"scalable_target": None}), to_count=6)
    with Stubber(ecs) as ecs_stub, Stubber(aas) as aas_stub:
        aas_stub.add_response("describe_scalable_targets", scalable_targets(4, 5), TARGET_QUERY)
        aas_stub.add_response(
            "register_scalable_target",
            {
                "ScalableTargetARN": "arn:aws:application-autoscaling:"
                "eu-west-3:012345678910:scalable-target/1234abcd56ab78cda9012345678901234"
            },
            call.params,
        )
        aas_stub.add_response("describe_scalable_targets", {"ScalableTargets": []}, TARGET_QUERY)
        ecs_stub.add_response(
            "describe_services", ecs_service([deployment("PRIMARY", "COMPLETED", "d")], 4, 4), SERVICE_QUERY
        )
        ecs_stub.add_response(
            "update_service", {"service": ecs_service([])["services"][0]}, plain.aws_calls()[0].params
        )
        assert run(scaling.scale_ecs_service, plan).calls == [call]
        assert run(scaling.scale_ecs_service, plain).changed
        ecs_stub.assert_no_pending_responses()
        aas_stub.assert_no_pending_responses()
    assert plain.aws_calls()[0].params == {"cluster": "default", "service": "web-app", "desiredCount": 6}


def test_provisioned_concurrency_against_lambdas_documented_answers() -> None:
    lam = client("lambda", STUBBED)
    request = LambdaConcurrencyRequest(function_name="my-function", qualifier="BLUE", region=STUBBED)
    plan = LambdaConcurrencyPlan(
        plan_id="p",
        function_name="my-function",
        qualifier="BLUE",
        region=STUBBED,
        from_concurrency=0,
        to_concurrency=100,
    )
    env, beats = watched()
    with Stubber(lam) as stub:
        for _ in range(2):  # the read, then the setter's own read
            stub.add_client_error(
                "get_provisioned_concurrency_config",
                service_error_code="ProvisionedConcurrencyConfigNotFoundException",
                service_message="No Provisioned Concurrency Config found for this function",
                http_status_code=404,
                expected_params=LAMBDA_TARGET,
            )
        stub.add_response(
            "put_provisioned_concurrency_config",
            {
                "RequestedProvisionedConcurrentExecutions": 100,
                "AllocatedProvisionedConcurrentExecutions": 0,
                "Status": "IN_PROGRESS",
                "LastModified": "2019-11-21T19:32:12+0000",
            },
            {**LAMBDA_TARGET, "ProvisionedConcurrentExecutions": 100},
        )
        stub.add_response("get_provisioned_concurrency_config", provisioned("IN_PROGRESS", 100, 0), LAMBDA_TARGET)
        stub.add_response("get_provisioned_concurrency_config", provisioned("READY", 100, 100), LAMBDA_TARGET)
        assert run(scaling.read_provisioned_concurrency, request).status == "NONE"
        assert run(scaling.set_provisioned_concurrency, plan).changed
        ready = env.run(scaling.wait_for_provisioned_concurrency, ProvisionedConcurrencyWait.after(plan, FAST))
        stub.assert_no_pending_responses()
    assert ready == ProvisionedConcurrency(
        function_name="my-function",
        qualifier="BLUE",
        region=STUBBED,
        requested=100,
        allocated=100,
        available=100,
        status="READY",
    )
    assert beats == [("IN_PROGRESS: 0 of 100 allocated",)]


def test_a_failed_allocation_and_lambdas_errors_are_classified() -> None:
    lam = client("lambda", STUBBED)
    wait = ProvisionedConcurrencyWait(function_name="my-function", qualifier="BLUE", region=STUBBED, expected=100)
    plan = LambdaConcurrencyPlan(
        plan_id="p",
        function_name="my-function",
        qualifier="BLUE",
        region=STUBBED,
        from_concurrency=0,
        to_concurrency=100,
    )
    with Stubber(lam) as stub:
        stub.add_response(
            "get_provisioned_concurrency_config",
            provisioned("FAILED", 100, 0, "FUNCTION_ERROR_INIT_FAILURE"),
            LAMBDA_TARGET,
        )
        stub.add_client_error("get_provisioned_concurrency_config", "TooManyRequestsException", "Rate exceeded", 429)
        stub.add_client_error(
            "get_provisioned_concurrency_config", "ProvisionedConcurrencyConfigNotFoundException", "", 404
        )
        stub.add_client_error(
            "put_provisioned_concurrency_config", "InvalidParameterValueException", "too much concurrency", 400
        )
        with pytest.raises(ApplicationError) as failed:
            run(scaling.wait_for_provisioned_concurrency, wait)
        with pytest.raises(ApplicationError) as throttled:
            run(scaling.wait_for_provisioned_concurrency, wait)
        with pytest.raises(ApplicationError) as invalid:
            run(scaling.set_provisioned_concurrency, plan)
        stub.assert_no_pending_responses()
    assert fails_for_good(failed.value, "ProvisionedConcurrencyFailed")
    assert "FUNCTION_ERROR_INIT_FAILURE" in str(failed.value)
    assert throttled.value.type == "TooManyRequestsException" and not throttled.value.non_retryable
    assert fails_for_good(invalid.value, "InvalidParameterValueException")


def test_waiting_stops_when_the_activity_is_cancelled() -> None:
    lam = client("lambda", STUBBED)
    wait = ProvisionedConcurrencyWait(
        function_name="my-function", qualifier="BLUE", region=STUBBED, expected=100, poll_interval=timedelta(seconds=30)
    )
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *_: threading.Timer(0.2, env.cancel).start()
    with Stubber(lam) as stub:
        stub.add_response("get_provisioned_concurrency_config", provisioned("IN_PROGRESS", 100, 0), LAMBDA_TARGET)
        started = datetime.now(UTC)
        with pytest.raises(CancelledError):
            env.run(scaling.wait_for_provisioned_concurrency, wait)
    assert datetime.now(UTC) - started < timedelta(seconds=10)  # not the 30 s poll interval


def test_plans_render_their_calls_and_bind_their_id_to_what_they_do() -> None:
    none = ProvisionedConcurrency(
        function_name="f", qualifier="live", region=STUBBED, requested=0, allocated=0, available=0, status="NONE"
    )
    plan = LambdaConcurrencyPlan.build(none, to_concurrency=50, reason="queue depth 140")
    assert [c.render() for c in plan.aws_calls()] == [
        'lambda PutProvisionedConcurrencyConfig {"FunctionName": "f", "ProvisionedConcurrentExecutions": 50, '
        '"Qualifier": "live"}'
    ]
    assert LambdaConcurrencyPlan.build(none, to_concurrency=50, reason="another reason").plan_id == plan.plan_id
    assert LambdaConcurrencyPlan.build(none, to_concurrency=100).plan_id != plan.plan_id
    assert "from 0 to 50" in plan.describe()
