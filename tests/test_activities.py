"""Activities against the real systems' stand-ins: moto over HTTP, the PagerDuty emulator
through the real client, the demo platform API; botocore's Stubber where moto cannot serve.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import cloudwatch, ecs, fallback, pagerduty, platform_api
from activities._aws import client
from contracts import (
    DeploymentRequest,
    EmergencySwitchRequest,
    EscalateRequest,
    FallbackNotice,
    HealthRequest,
    LogScanRequest,
    MetricQuery,
    MetricsRequest,
    NoteRequest,
    PageRequest,
    RemediationAction,
    RemediationPlan,
)
from devstack import aws_seed, demo
from devstack.pagerduty_emulator import create_app as pagerduty_app
from devstack.pagerduty_emulator import ensure_self_signed_cert
from settings import PROJECT_ROOT
from tests.conftest import serve_app
from tests.test_pagerduty_emulator import API_TOKEN, ROUTING_KEY, Emulator, Tls, serve

CLUSTER, SERVICE, REGION = aws_seed.CLUSTER, aws_seed.SERVICE, aws_seed.PRIMARY_REGION
run = ActivityEnvironment().run


def retryable(err: ApplicationError) -> bool:
    return not err.non_retryable


# --------------------------------------------------------------------------- ECS


@pytest.fixture
def broken(aws_env: Any) -> Iterator[str]:
    """The seeded service broken by a bad deploy; healed again afterwards."""
    aws_seed.seed()
    demo.heal_service(CLUSTER, SERVICE, REGION)
    good = demo.current_task_definition(CLUSTER, SERVICE, REGION)["taskDefinitionArn"]
    demo.break_service(CLUSTER, SERVICE, REGION)
    yield good
    demo.heal_service(CLUSTER, SERVICE, REGION)


def rollback_plan(state: Any) -> RemediationPlan:
    return RemediationPlan.build(
        action=RemediationAction.ROLLBACK,
        cluster=CLUSTER,
        service=SERVICE,
        region=REGION,
        reason="test",
        from_task_definition=state.task_definition,
        to_task_definition=state.previous_task_definition,
    )


def test_describe_deployment_finds_the_previous_revision(broken: str) -> None:
    state = run(ecs.describe_deployment, DeploymentRequest(cluster=CLUSTER, service=SERVICE, region=REGION))
    assert state.previous_task_definition == broken
    assert state.task_definition != broken and state.task_definition.startswith("arn:aws:ecs:")
    assert state.primary_deployment_id


def test_rollback_acts_once_and_a_retry_finds_it_done(broken: str) -> None:
    state = run(ecs.describe_deployment, DeploymentRequest(cluster=CLUSTER, service=SERVICE, region=REGION))
    plan = rollback_plan(state)
    first = run(ecs.set_service_task_definition, plan)
    again = run(ecs.set_service_task_definition, plan)
    assert first.changed and not again.changed
    assert demo.current_task_definition(CLUSTER, SERVICE, REGION)["taskDefinitionArn"] == broken


def test_rollback_refuses_a_stale_plan(broken: str) -> None:
    state = run(ecs.describe_deployment, DeploymentRequest(cluster=CLUSTER, service=SERVICE, region=REGION))
    plan = rollback_plan(state)
    demo.break_service(CLUSTER, SERVICE, REGION)  # someone deployed again since the plan was made
    with pytest.raises(ApplicationError) as err:
        run(ecs.set_service_task_definition, plan)
    assert err.value.type == "StalePlan" and err.value.non_retryable


def test_force_new_deployment_is_idempotent(broken: str) -> None:
    state = run(ecs.describe_deployment, DeploymentRequest(cluster=CLUSTER, service=SERVICE, region=REGION))
    plan = RemediationPlan.build(
        action=RemediationAction.FORCE_NEW_DEPLOYMENT,
        cluster=CLUSTER,
        service=SERVICE,
        region=REGION,
        reason="test",
        expected_deployment_id=state.primary_deployment_id,
    )
    assert run(ecs.force_new_deployment, plan).changed
    assert not run(ecs.force_new_deployment, plan).changed


def test_a_missing_cluster_is_not_retried(aws_env: Any) -> None:
    with pytest.raises(ApplicationError) as err:
        run(ecs.describe_deployment, DeploymentRequest(cluster="no-such-cluster", service=SERVICE, region=REGION))
    assert err.value.non_retryable


# --------------------------------------------------------------------------- CloudWatch


def test_metrics_are_graded_against_the_slo(aws_env: Any) -> None:
    service = f"svc-{uuid.uuid4().hex[:6]}"
    cw = boto3.client("cloudwatch", region_name=REGION)
    now = datetime.now(UTC)
    for seconds_ago, value in ((30, 900.0), (20, 2600.0), (10, 1200.0)):
        cw.put_metric_data(
            Namespace="Test",
            MetricData=[
                {
                    "MetricName": "LatencyP95",
                    "Dimensions": [{"Name": "Service", "Value": service}],
                    "Timestamp": now - timedelta(seconds=seconds_ago),
                    "Value": value,
                    "StorageResolution": 1,
                }
            ],
        )
    latency = MetricQuery(
        key="p95",
        namespace="Test",
        metric_name="LatencyP95",
        dimensions={"Service": service},
        stat="Maximum",
        period_seconds=1,
        lookback=timedelta(minutes=2),
        target=1500,
        warning=1500,
        critical=2000,
    )
    silent = latency.model_copy(update={"key": "silent", "metric_name": "Nothing"})
    readings = run(cloudwatch.read_metrics, MetricsRequest(region=REGION, queries=[latency, silent]))
    assert [(r.key, r.value, r.level, r.within_target) for r in readings] == [
        ("p95", 2600.0, "critical", False),
        ("silent", None, "no-data", False),
    ]


def test_percentile_statistics_are_asked_as_cloudwatch_expects() -> None:
    """moto has no percentiles; the request shape is checked against botocore's model instead."""
    cw = client("cloudwatch", "eu-west-3")
    query = MetricQuery(
        key="p95_latency_ms",
        namespace="HybridRouting",
        metric_name="Latency",
        dimensions={"Service": "hybrid-router"},
        stat="p95",
        period_seconds=60,
        lookback=timedelta(minutes=10),
        target=1500,
        critical=2000,
    )
    with Stubber(cw) as stub:
        stub.add_response(
            "get_metric_data",
            {
                "MetricDataResults": [
                    {"Id": "m0", "Timestamps": [datetime.now(UTC)], "Values": [1720.0], "StatusCode": "Complete"}
                ]
            },
            {
                "MetricDataQueries": [
                    {
                        "Id": "m0",
                        "MetricStat": {
                            "Metric": {
                                "Namespace": "HybridRouting",
                                "MetricName": "Latency",
                                "Dimensions": [{"Name": "Service", "Value": "hybrid-router"}],
                            },
                            "Period": 60,
                            "Stat": "p95",
                        },
                        "ReturnData": True,
                    }
                ],
                "StartTime": ANY,
                "EndTime": ANY,
            },
        )
        [reading] = run(cloudwatch.read_metrics, MetricsRequest(region="eu-west-3", queries=[query]))
        stub.assert_no_pending_responses()
    assert reading.value == 1720.0 and reading.level == "ok" and not reading.within_target


def test_error_log_lines_are_counted(aws_env: Any) -> None:
    logs = boto3.client("logs", region_name=REGION)
    group = f"/test/{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    logs.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[
            {"timestamp": now_ms - 3000, "message": "ERROR route failed"},
            {"timestamp": now_ms - 2000, "message": "INFO fine"},
            {"timestamp": now_ms - 1000, "message": "ERROR timeout"},
        ],
    )
    scan = run(
        cloudwatch.scan_error_logs, LogScanRequest(region=REGION, log_group=group, lookback=timedelta(minutes=5))
    )
    assert scan.error_count == 2 and scan.samples == ["ERROR route failed", "ERROR timeout"]


# --------------------------------------------------------------------------- PagerDuty


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    import ssl

    cert, key = ensure_self_signed_cert(tmp_path_factory.mktemp("pd-tls"))
    tls = Tls(cert=cert, key=key, context=ssl.create_default_context(cafile=str(cert)))
    with serve(pagerduty_app(api_token=API_TOKEN), tls) as url:
        yield Emulator(url=url, tls=tls)


@pytest.fixture
def pagerduty_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    for name, value in {
        "PAGERDUTY_EVENTS_URL": emulator.url,
        "PAGERDUTY_API_URL": emulator.url,
        "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "PAGERDUTY_API_TOKEN": API_TOKEN,
        "PAGERDUTY_CA_BUNDLE": str(emulator.tls.cert),
        "PAGERDUTY_FROM": "runbooks@example.com",
    }.items():
        monkeypatch.setenv(name, value)
    return emulator


def page(dedup_key: str) -> PageRequest:
    return PageRequest(
        dedup_key=dedup_key, summary="[P0] Hybrid Routing Incident - down", source="t", severity="critical"
    )


def test_a_repeated_trigger_pages_once_and_notes_are_idempotent(pagerduty_env: Emulator) -> None:
    key = f"incident/test/{uuid.uuid4().hex[:6]}"
    run(pagerduty.trigger_page, page(key))
    run(pagerduty.trigger_page, page(key))  # an activity retry
    ref = run(pagerduty.find_pagerduty_incident, key)
    assert ref.incident_id is not None
    note = NoteRequest(incident_id=ref.incident_id, note_key="INC-1/initial", content="hello")
    assert run(pagerduty.add_pagerduty_note, note) == run(pagerduty.add_pagerduty_note, note)
    run(pagerduty.escalate_pagerduty_incident, EscalateRequest(incident_id=ref.incident_id, level=2))
    run(pagerduty.resolve_page, key)

    state = pagerduty_env.state()
    [incident] = [i for i in state["incidents"] if i["incident_key"] == key]
    assert incident["status"] == "resolved" and len(incident["notes"]) == 1
    assert [p["level"] for p in state["pages"] if p["incident_id"] == incident["id"]] == [1, 2]


def test_a_page_of_any_size_goes_out_cut_to_pagerdutys_limits(pagerduty_env: Emulator) -> None:
    """An alert summary of 1024 characters made a page summary PagerDuty refuses: nobody was paged."""
    key = f"incident/test/{uuid.uuid4().hex[:6]}"
    long = PageRequest(
        dedup_key=key,
        summary="[P0] Hybrid Routing Incident - " + "x" * 1024,
        source="s" * 1000,
        severity="critical",
        details={"alert": "y" * 100_000, **{f"label-{n}": "z" * 5000 for n in range(40)}},
    )
    run(pagerduty.trigger_page, long)
    [incident] = [i for i in pagerduty_env.state()["incidents"] if i["incident_key"] == key]
    assert len(incident["title"]) == 1024 and incident["title"].endswith(" [...]")
    fitted = pagerduty.fit_page(long)
    assert len(fitted.source) == 255 and len(fitted.details["alert"]) == 8 * 1024
    assert "(truncated)" in fitted.details and sum(len(k) + len(v) for k, v in fitted.details.items()) < 70_000
    assert pagerduty.fit_page(page(key)) == page(key)  # within the limits: unchanged


def test_rate_limits_return_to_temporal_instead_of_sleeping_forever(pagerduty_env: Emulator) -> None:
    with pagerduty_env.http() as http:
        http.post("/_emulator/faults", json={"enqueue_status": 429, "count": 5}).raise_for_status()
    try:
        with pytest.raises(ApplicationError) as err:
            run(pagerduty.trigger_page, page("incident/test/limited"))
        assert retryable(err.value) and "429" in str(err.value)
    finally:
        with pagerduty_env.http() as http:
            http.post("/_emulator/faults", json={"enqueue_status": None, "count": 1}).raise_for_status()


def test_a_rejected_request_is_not_retried(pagerduty_env: Emulator) -> None:
    with pytest.raises(ApplicationError) as err:
        run(pagerduty.escalate_pagerduty_incident, EscalateRequest(incident_id="PNOSUCH", level=2))
    assert err.value.non_retryable and "404" in str(err.value)


def test_missing_credentials_are_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "")
    with pytest.raises(ApplicationError) as err:
        run(pagerduty.trigger_page, page("incident/test/x"))
    assert err.value.non_retryable and "PAGERDUTY_ROUTING_KEY" in str(err.value)


# --------------------------------------------------------------------------- platform API


async def test_an_unreachable_platform_reads_as_unhealthy(monkeypatch: pytest.MonkeyPatch) -> None:
    from devstack.net import free_port

    monkeypatch.setenv("PLATFORM_URL", f"http://127.0.0.1:{free_port()}")
    reading = await ActivityEnvironment().run(platform_api.check_component_health, HealthRequest(component="x"))
    assert not reading.healthy and "unreachable" in reading.detail
    status = await ActivityEnvironment().run(platform_api.check_system_status)
    assert not status.healthy


async def test_the_emergency_switch_with_a_wrong_token_is_not_retried(
    demo_platform: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_ADMIN_TOKEN", "wrong")
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(
            platform_api.set_hybrid_routing, EmergencySwitchRequest(hybrid_routing_enabled=False, reason="t")
        )
    assert err.value.non_retryable and "401" in str(err.value)


async def test_the_emergency_switch_masks_a_broken_router(demo_platform: str, broken: str) -> None:
    env = ActivityEnvironment()
    assert not (await env.run(platform_api.check_component_health, HealthRequest(component="hybrid-router"))).healthy
    assert not (await env.run(platform_api.check_system_status)).healthy
    off = EmergencySwitchRequest(hybrid_routing_enabled=False, reason="t")
    assert (await env.run(platform_api.set_hybrid_routing, off)).changed
    assert not (await env.run(platform_api.set_hybrid_routing, off)).changed  # a retry changes nothing
    status = await env.run(platform_api.check_system_status)
    assert status.healthy and status.hybrid_routing == "disabled"
    await env.run(platform_api.set_hybrid_routing, EmergencySwitchRequest(hybrid_routing_enabled=True, reason="t"))


@pytest.fixture
def demo_platform(aws_env: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from devstack.demo_service import create_app
    from tests.conftest import serve_app

    aws_seed.seed()
    with serve_app(create_app(publish=False, cache_ttl=0), lifespan="off") as url:
        monkeypatch.setenv("PLATFORM_URL", url)
        monkeypatch.setenv("PLATFORM_ADMIN_TOKEN", "demo-admin-token")
        yield url


# --------------------------------------------------------------------------- composite activities


def test_page_and_note_pages_once_and_a_retry_adds_no_second_note(pagerduty_env: Emulator) -> None:
    from contracts import PageAndNote, PagerDutyNote, PagerDutySync

    key = f"incident/test/{uuid.uuid4().hex[:6]}#INC-1"
    request = PageAndNote(page=page(key), note_key="INC-1/initial-notification", note="[P0] initial")
    ref = run(pagerduty.page_and_note, request)
    assert run(pagerduty.page_and_note, request) == ref  # an activity retry
    batch = PagerDutySync(
        dedup_key=key,
        incident_id=ref.incident_id,
        acknowledge=True,
        notes=[PagerDutyNote(note_key="INC-1/audit-3", content="acknowledged by alice")],
    )
    assert run(pagerduty.sync_pagerduty, batch).notes_added == 1
    run(pagerduty.sync_pagerduty, batch)  # retried: the note is found, the ack repeats harmlessly
    state = pagerduty_env.state()
    [incident] = [i for i in state["incidents"] if i["incident_key"] == key]
    assert incident["status"] == "acknowledged" and len(incident["notes"]) == 2
    assert len([p for p in state["pages"] if p["incident_id"] == incident["id"]]) == 1
    run(pagerduty.sync_pagerduty, PagerDutySync(dedup_key=key, incident_id=ref.incident_id, resolve=True))
    [incident] = [i for i in pagerduty_env.state()["incidents"] if i["incident_key"] == key]
    assert incident["status"] == "resolved"


def diagnose_request() -> Any:
    from contracts import DeploymentRequest, DiagnoseRequest, LogScanRequest, MetricsRequest
    from tests.policies import default_policy

    policy = default_policy()
    metrics = [q.model_copy(update={"stat": "Average"}) for q in policy.metrics]  # moto has no percentiles
    return DiagnoseRequest(
        health=HealthRequest(component="hybrid-router"),
        metrics=MetricsRequest(region=REGION, queries=metrics),
        logs=LogScanRequest(region=REGION, log_group="/aws/lambda/hybrid-router", lookback=timedelta(minutes=10)),
        deployment=DeploymentRequest(cluster=CLUSTER, service=SERVICE, region=REGION),
    )


async def test_diagnose_reads_all_four_systems_in_one_activity(demo_platform: str, broken: str) -> None:
    from activities import diagnosis

    found = await ActivityEnvironment().run(diagnosis.diagnose, diagnose_request())
    assert not found.health.healthy
    assert found.deployment is not None and found.deployment.previous_task_definition == broken
    assert {m.key for m in found.metrics} >= {"p95_latency_ms", "error_rate_pct"}


async def test_diagnose_turns_a_failing_reader_into_a_reading(
    demo_platform: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from activities import diagnosis
    from contracts import DeploymentRequest

    request = diagnose_request().model_copy(
        update={"deployment": DeploymentRequest(cluster="no-such-cluster", service=SERVICE, region=REGION)}
    )
    found = await ActivityEnvironment().run(diagnosis.diagnose, request)
    assert found.deployment is None and found.deployment_error and "ClusterNotFound" in found.deployment_error


async def test_verify_slo_holds_for_the_window_or_gives_up_at_the_deadline(demo_platform: str, broken: str) -> None:
    from activities import diagnosis
    from contracts import VerifyRequest

    base = diagnose_request()
    no_metrics = base.metrics.model_copy(update={"queries": []})
    failing = VerifyRequest(
        health=base.health,
        metrics=no_metrics,
        window=timedelta(seconds=1),
        interval=timedelta(seconds=0.2),
        deadline=datetime.now(UTC) + timedelta(seconds=1),
    )
    result = await ActivityEnvironment().run(diagnosis.verify_slo, failing)
    assert not result.verified and "health" in result.detail

    demo.heal_service(CLUSTER, SERVICE, REGION)
    holding = failing.model_copy(update={"deadline": datetime.now(UTC) + timedelta(seconds=10)})
    heartbeats: list[Any] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: heartbeats.append(details)
    result = await env.run(diagnosis.verify_slo, holding)
    assert result.verified and heartbeats  # it heartbeat while the window ran


# --------------------------------------------------------------------------- the policy (signed runs' trust anchor)


async def test_the_policy_activity_reads_the_workers_file_and_sees_it_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from activities import policy as policy_activity

    path = tmp_path / "policy.yaml"
    monkeypatch.setenv("RUNBOOK_POLICY", str(path))
    text = (PROJECT_ROOT / "policy" / "default.yaml").read_text()
    path.write_text(text)
    first = await run(policy_activity.load_policy)
    assert first.trust.operators == []
    again = await run(policy_activity.load_policy)
    assert again is first  # parsed once while the file stays as it is
    key = "xe/W6nxa/N17J8ysduMpp8ZjHreQVA904/W3YwocMTI="
    path.write_text(text + f"\ntrust:\n  operators: [{key}]\n")
    assert (await run(policy_activity.load_policy)).trust.operators == [key]

    path.write_text(text + "\ntrust:\n  operators: [not-a-key]\n")
    with pytest.raises(ApplicationError) as broken:
        await run(policy_activity.load_policy)
    assert broken.value.non_retryable and str(path) in str(broken.value) and "trust.operators" in str(broken.value)
    path.unlink()
    with pytest.raises(ApplicationError, match="does not exist"):
        await run(policy_activity.load_policy)


# --------------------------------------------------------------------------- the other path


def fallback_receiver(status: int) -> tuple[Starlette, list[dict]]:
    received: list[dict] = []

    async def hook(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"ok": status < 300}, status)

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])]), received


NOTICE = FallbackNotice(
    dedup_key="incident/hybrid-router/eu-west-1#INC-1",
    summary="hybrid router down",
    severity="critical",
    reason="trigger: HTTP 400: Event object is invalid",
    workflow_id="incident/hybrid-router/eu-west-1",
)


def test_the_other_path_is_told_over_http_and_says_where(monkeypatch: pytest.MonkeyPatch) -> None:
    app, received = fallback_receiver(200)
    with serve_app(app) as url:
        monkeypatch.setenv("PAGING_FALLBACK_URL", f"{url}/hook")
        told = run(fallback.notify_fallback, NOTICE)
    assert told.sent and told.detail == "told 127.0.0.1"
    (body,) = received
    assert "NOBODY WAS PAGED" in body["text"] and NOTICE.dedup_key in body["text"]
    assert body["reason"] == NOTICE.reason and body["workflow_id"] == NOTICE.workflow_id


def test_no_other_path_configured_is_said_not_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGING_FALLBACK_URL", "")
    told = run(fallback.notify_fallback, NOTICE)
    assert not told.sent and "PAGING_FALLBACK_URL" in told.detail


@pytest.mark.parametrize(("status", "retryable"), [(404, False), (403, False), (503, True)])
def test_a_refusing_or_failing_webhook_fails_the_activity(
    monkeypatch: pytest.MonkeyPatch, status: int, retryable: bool
) -> None:
    app, received = fallback_receiver(status)
    with serve_app(app) as url:
        monkeypatch.setenv("PAGING_FALLBACK_URL", f"{url}/hook")
        with pytest.raises(ApplicationError) as failed:
            run(fallback.notify_fallback, NOTICE)
    assert failed.value.non_retryable is not retryable and str(status) in str(failed.value)
    assert len(received) == 1
