"""The Bedrock connectivity activities: over HTTP against the stack's Bedrock and IAM emulator
(`python -m devstack.bedrock_emulator`, boto3 pointed at it by AWS_ENDPOINT_URL_BEDROCK and
AWS_ENDPOINT_URL_IAM), and against botocore's Stubber with the answers AWS documents."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import Stubber
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import _aws, bedrock, platform_api
from activities._aws import client
from activities.runs import incident_owns_switch
from contracts import IncidentStatus, IncidentView, RemediationAction, RemediationPlan, RemediationRecord, Severity
from contracts.bedrock import PermissionRequest, ReachabilityRequest
from devstack.bedrock_emulator import CLIENT_ROLE, FAULTS_PATH, STATUS_PATH
from devstack.net import free_port, wait_for_http
from settings import PROJECT_ROOT
from tests.conftest import _stop, serve_app

REGION = "eu-central-1"
STUBBED = "eu-west-3"  # clients that only ever meet the Stubber
SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0"
SONNET_ARN = f"arn:aws:bedrock:{REGION}::foundation-model/{SONNET}"
run = ActivityEnvironment().run


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "devstack.bedrock_emulator", "--port", str(port), "--slow-seconds", "1"]
    proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + STATUS_PATH, timeout=30)
        yield url
    finally:
        _stop(proc)


def faults(url: str, **wanted: Any) -> dict[str, Any]:
    request = urllib.request.Request(
        url + FAULTS_PATH, data=json.dumps(wanted).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        state: dict[str, Any] = json.loads(answer.read())
        return state


@pytest.fixture
def emulator(emulator_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """boto3 in this process as the stack's worker has it: Bedrock and IAM to the emulator."""
    for key, value in {
        "AWS_ENDPOINT_URL_BEDROCK": emulator_url,
        "AWS_ENDPOINT_URL_IAM": emulator_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    _aws._client.cache_clear()  # cached clients keep the endpoint they were made with
    yield emulator_url
    faults(emulator_url, bedrock="ok", deny=False)
    _aws._client.cache_clear()


def invoke(resource: str = SONNET_ARN, role: str = CLIENT_ROLE) -> PermissionRequest:
    return PermissionRequest(region=REGION, role_arn=role, action="bedrock:InvokeModel", resource_arn=resource)


# --------------------------------------------------------------------------- over HTTP


def test_bedrock_reached_with_the_model_listed_and_active(emulator: str) -> None:
    reach = run(bedrock.probe_bedrock, ReachabilityRequest(region=REGION, model_id=SONNET))
    assert reach.reachable and reach.model_listed and reach.model_status == "ACTIVE" and reach.model_active
    assert reach.model_arn == SONNET_ARN  # the region the client signed for
    assert reach.latency_ms is not None and reach.latency_ms > 0


def test_a_model_not_listed_or_legacy_is_not_active(emulator: str) -> None:
    missing = run(bedrock.probe_bedrock, ReachabilityRequest(region=REGION, model_id="meta.llama-nope"))
    assert missing.reachable and not missing.model_listed and not missing.model_active
    legacy = run(bedrock.probe_bedrock, ReachabilityRequest(region=REGION, model_id="anthropic.claude-v2"))
    assert legacy.model_listed and legacy.model_status == "LEGACY" and not legacy.model_active


def test_bedrock_down_is_a_reading_not_a_failure(emulator: str) -> None:
    faults(emulator, bedrock="down")
    reach = run(bedrock.probe_bedrock, ReachabilityRequest(region=REGION, model_id=SONNET))
    assert not reach.reachable and reach.error is not None and reach.error.startswith("InternalServerException")
    assert "not reachable" in reach.describe()


def test_a_slow_bedrock_is_timed(emulator: str) -> None:
    faults(emulator, bedrock="slow")
    reach = run(bedrock.probe_bedrock, ReachabilityRequest(region=REGION, model_id=SONNET))
    assert reach.reachable and reach.latency_ms is not None and reach.latency_ms >= 1000


def test_the_simulation_allows_and_names_the_deciding_statement(emulator: str) -> None:
    check = run(bedrock.simulate_invoke_permission, invoke())
    assert check.allowed and check.decision == "allowed"
    (statement,) = check.deciding_statements
    assert statement.startswith("bedrock-invoke (role) lines 4-")


def test_a_role_that_lost_the_permission_is_implicitly_denied(emulator: str) -> None:
    assert faults(emulator, deny=True)["denied"]
    check = run(bedrock.simulate_invoke_permission, invoke())
    assert not check.allowed and check.decision == "implicitDeny" and check.deciding_statements == []
    assert "no statement allows it" in check.describe()
    faults(emulator, deny=False)
    assert run(bedrock.simulate_invoke_permission, invoke()).allowed  # heal puts it back


def test_another_action_or_resource_is_not_allowed_by_the_invoke_policy(emulator: str) -> None:
    other = PermissionRequest(
        region=REGION, role_arn=CLIENT_ROLE, action="bedrock:CreateModelCustomizationJob", resource_arn="*"
    )
    assert run(bedrock.simulate_invoke_permission, other).decision == "implicitDeny"


def test_an_unknown_role_fails_for_good_naming_it(emulator: str) -> None:
    with pytest.raises(ApplicationError) as failed:
        run(bedrock.simulate_invoke_permission, invoke(role="arn:aws:iam::123456789012:role/nobody"))
    assert failed.value.type == "NoSuchEntity" and failed.value.non_retryable and "nobody" in str(failed.value)


# ----------------------------------------------------- botocore's Stubber, AWS's documented answers


def test_probe_against_bedrocks_documented_answer() -> None:
    stubbed = client("bedrock", STUBBED)
    summary = {
        "modelArn": f"arn:aws:bedrock:{STUBBED}::foundation-model/{SONNET}",
        "modelId": SONNET,
        "modelName": "Claude 3.5 Sonnet",
        "providerName": "Anthropic",
        "inputModalities": ["TEXT", "IMAGE"],
        "outputModalities": ["TEXT"],
        "responseStreamingSupported": True,
        "customizationsSupported": [],
        "inferenceTypesSupported": ["ON_DEMAND"],
        "modelLifecycle": {"status": "ACTIVE"},
    }
    with Stubber(stubbed) as stub:
        stub.add_response("list_foundation_models", {"modelSummaries": [summary]}, {})
        stub.add_client_error(
            "list_foundation_models",
            service_error_code="AccessDeniedException",
            service_message="You don't have access to the model with the specified model ID.",
            http_status_code=403,
        )
        reach = run(bedrock.probe_bedrock, ReachabilityRequest(region=STUBBED, model_id=SONNET))
        denied = run(bedrock.probe_bedrock, ReachabilityRequest(region=STUBBED, model_id=SONNET))
        stub.assert_no_pending_responses()
    assert reach.model_active and reach.model_arn == summary["modelArn"]
    assert not denied.reachable and denied.error is not None and denied.error.startswith("AccessDeniedException")


def test_simulation_against_iams_documented_answers() -> None:
    stubbed = client("iam", STUBBED)
    resource = f"arn:aws:bedrock:{STUBBED}::foundation-model/{SONNET}"
    params = {"PolicySourceArn": CLIENT_ROLE, "ActionNames": ["bedrock:InvokeModel"], "ResourceArns": [resource]}
    deny_statement = {
        "SourcePolicyId": "deny-bedrock",
        "SourcePolicyType": "role",
        "StartPosition": {"Line": 3, "Column": 17},
        "EndPosition": {"Line": 8, "Column": 6},
    }
    with Stubber(stubbed) as stub:
        stub.add_response(
            "simulate_principal_policy",
            {
                "EvaluationResults": [
                    {
                        "EvalActionName": "bedrock:InvokeModel",
                        "EvalResourceName": resource,
                        "EvalDecision": "explicitDeny",
                        "MatchedStatements": [deny_statement],
                        "MissingContextValues": [],
                    }
                ],
                "IsTruncated": False,
            },
            params,
        )
        stub.add_client_error(
            "simulate_principal_policy",
            service_error_code="InvalidInput",
            service_message="Invalid ARN",
            http_status_code=400,
            expected_params=params,
        )
        check = run(
            bedrock.simulate_invoke_permission, invoke(resource=resource).model_copy(update={"region": STUBBED})
        )
        with pytest.raises(ApplicationError) as failed:
            run(bedrock.simulate_invoke_permission, invoke(resource=resource).model_copy(update={"region": STUBBED}))
        stub.assert_no_pending_responses()
    assert check.decision == "explicitDeny" and check.deciding_statements == ["deny-bedrock (role) lines 3-8"]
    assert failed.value.type == "InvalidInput" and failed.value.non_retryable


# --------------------------------------------------------------------------- the platform's breaker


async def test_the_breaker_reading_from_the_platforms_status(monkeypatch: pytest.MonkeyPatch) -> None:
    async def status(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "degraded",
                "hybrid_routing": "enabled",
                "circuit_breakers": {
                    "bedrock": {"state": "open", "consecutive_failures": 7, "fallback_rate_pct": 92.5}
                },
            },
            status_code=503,
        )

    async def component(request: Request) -> JSONResponse:
        return JSONResponse({"status": "unhealthy", "reason": "circuit breaker open"}, status_code=503)

    app = Starlette(
        routes=[
            Route("/admin/health/system-status", status),
            Route("/health/component/bedrock-client", component),
        ]
    )
    with serve_app(app) as url:
        monkeypatch.setenv("PLATFORM_URL", url)
        reading = await ActivityEnvironment().run(platform_api.read_bedrock_breaker)
    assert reading.state == "open" and reading.consecutive_failures == 7 and reading.fallback_rate_pct == 92.5
    assert reading.hybrid_routing == "enabled" and not reading.platform_healthy and not reading.component_healthy
    assert not reading.serving_hybrid and not reading.serving_standard


async def test_an_unreachable_platform_is_an_unknown_breaker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_URL", f"http://127.0.0.1:{free_port()}")
    reading = await ActivityEnvironment().run(platform_api.read_bedrock_breaker)
    assert reading.state == "unknown" and "unreadable" in reading.detail


# --------------------------------------------------------------------------- who owns the switch


def incident_view(
    status: IncidentStatus, pending: RemediationAction | None, done: RemediationAction | None
) -> IncidentView:
    def plan(action: RemediationAction) -> RemediationPlan:
        return RemediationPlan.build(
            action=action, reason="t", cluster="hybrid-routing-cluster", service="hybrid-router-service", region=REGION
        )

    return IncidentView(
        id="INC-1",
        workflow_id="incident/hybrid-router/eu-central-1",
        service="hybrid-router",
        region=REGION,
        severity=Severity.P0,
        status=status,
        summary="down",
        opened_at=datetime(2026, 12, 4, tzinfo=UTC),
        opened_by="intake/alertmanager",
        alert_count=1,
        acknowledged_by="demo-oncall",
        pending_approval=plan(pending) if pending is not None else None,
        diagnosis=None,
        decision=None,
        remediation=RemediationRecord(action=done, changed=True, detail="d") if done is not None else None,
        pagerduty=None,
        outcome=None,
        timeline=[],
    )


@pytest.mark.parametrize(
    ("status", "pending", "done", "owns"),
    [
        (IncidentStatus.AWAITING_APPROVAL, RemediationAction.EMERGENCY_SWITCH, None, True),  # proposed it
        (IncidentStatus.AWAITING_APPROVAL, RemediationAction.ROLLBACK, None, False),
        (IncidentStatus.REMEDIATING, None, None, True),  # approved, the record not yet written: maybe the switch
        (IncidentStatus.VERIFYING, None, RemediationAction.EMERGENCY_SWITCH, True),
        (IncidentStatus.UNDOING, None, RemediationAction.EMERGENCY_SWITCH, True),
        (IncidentStatus.VERIFYING, None, RemediationAction.ROLLBACK, False),
        (IncidentStatus.RESOLVED, None, RemediationAction.EMERGENCY_SWITCH, False),  # done with it
    ],
)
def test_which_incident_runs_own_the_emergency_switch(
    status: IncidentStatus, pending: RemediationAction | None, done: RemediationAction | None, owns: bool
) -> None:
    assert incident_owns_switch(incident_view(status, pending, done)) is owns
