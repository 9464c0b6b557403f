"""The demo hybrid-router against the AWS emulator: seed, break, remediate, publish.

The emulator is shared by the whole session, so every test starts from the seeded
estate with a good revision deployed and puts it back that way: the service on its
original revision, and the faulty revisions it registered deregistered.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import pytest
from starlette.testclient import TestClient

from contracts import DnsChangePlan, FailoverRecordsRequest
from devstack import aws_seed
from devstack.aws_seed import seed
from devstack.demo import break_service, current_task_definition, fault_of, heal_service
from devstack.demo_service import HEALTHY, METRICS_NAMESPACE, create_app
from devstack.net import free_port, wait_for_http

if TYPE_CHECKING:
    from types_boto3_cloudwatch.type_defs import MetricDataQueryTypeDef

CLUSTER = aws_seed.CLUSTER
SERVICE = aws_seed.SERVICE
REGION = aws_seed.PRIMARY_REGION
HEALTH = "/health/component/hybrid-router"
STATUS = "/admin/health/system-status"
# The Bedrock client's breaker as the system status shows it while nothing has failed.
CLOSED_BREAKER = {
    "bedrock": {
        "state": "closed",
        "consecutive_failures": 0,
        "threshold": 5,
        "fallback_rate_pct": 0.0,
        "last_error": None,
    }
}
DISABLE = "/admin/emergency/disable-hybrid-routing"
ENABLE = "/admin/emergency/enable-hybrid-routing"
ADMIN = {"Authorization": "Bearer demo-admin-token"}
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _ecs(region: str = REGION) -> Any:
    return boto3.client("ecs", region_name=region)


def _family_arns(ecs: Any, status: str) -> list[str]:
    arns = ecs.list_task_definitions(familyPrefix=aws_seed.FAMILY, status=status)["taskDefinitionArns"]
    return sorted((a for a in arns if ":task-definition/hybrid-router:" in a), key=lambda a: int(a.rpartition(":")[2]))


def _describe(ecs: Any, arn: str) -> dict[str, Any]:
    return ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]


def _deployed_arn() -> str:
    return current_task_definition(CLUSTER, SERVICE, REGION)["taskDefinitionArn"]


def _wait_until(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def deployed(aws_env: Any) -> Iterator[str]:
    """The seeded estate with a good revision deployed; yields that revision's ARN."""
    seed()
    if fault_of(current_task_definition(CLUSTER, SERVICE, REGION)) is not None:
        heal_service(CLUSTER, SERVICE, REGION)
    original = _deployed_arn()
    yield original
    ecs = _ecs()
    ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=original)
    for arn in _family_arns(ecs, "ACTIVE"):
        if fault_of(_describe(ecs, arn)) is not None:
            ecs.deregister_task_definition(taskDefinition=arn)


@pytest.fixture
def client(deployed: str) -> Iterator[TestClient]:
    # No cache: each assertion must see the deployment the test just made.
    with TestClient(create_app(publish=False, cache_ttl=0)) as test_client:
        yield test_client


def _previous_active_revision(arn: str) -> str:
    """What the runbook's rollback picks: the newest ACTIVE revision older than `arn`."""
    revision = int(arn.rpartition(":")[2])
    older = [a for a in _family_arns(_ecs(), "ACTIVE") if int(a.rpartition(":")[2]) < revision]
    return older[-1]


# --- seeding ---------------------------------------------------------------------------


def _estate() -> dict[str, Any]:
    estate: dict[str, Any] = {}
    for region, cluster in ((REGION, CLUSTER), (aws_seed.SECONDARY_REGION, aws_seed.BACKUP_CLUSTER)):
        ecs = _ecs(region)
        service = ecs.describe_services(cluster=cluster, services=[SERVICE])["services"][0]
        estate[region] = {
            "revisions": _family_arns(ecs, "ACTIVE") + _family_arns(ecs, "INACTIVE"),
            "service": (service["status"], service["taskDefinition"], service["desiredCount"]),
        }
    route53 = boto3.client("route53", region_name=aws_seed.ROUTE53_REGION)
    zones = [z["Id"] for z in route53.list_hosted_zones_by_name()["HostedZones"] if z["Name"] == aws_seed.HOSTED_ZONE]
    estate["zones"] = zones
    estate["records"] = [
        (r["Name"], r["Type"], r.get("SetIdentifier"), r.get("Failover"), r.get("HealthCheckId"))
        for r in route53.list_resource_record_sets(HostedZoneId=zones[0])["ResourceRecordSets"]
    ]
    estate["health_checks"] = sorted(
        c["Id"]
        for c in route53.list_health_checks()["HealthChecks"]
        if c["CallerReference"].startswith("hybrid-router-")
    )
    logs = boto3.client("logs", region_name=REGION)
    estate["log_streams"] = [
        s["logStreamName"] for s in logs.describe_log_streams(logGroupName=aws_seed.LOG_GROUP)["logStreams"]
    ]
    return estate


def test_seed_twice_changes_nothing(aws_env: Any) -> None:
    seed()
    first = _estate()
    seed()
    assert _estate() == first

    for region in (REGION, aws_seed.SECONDARY_REGION):
        ecs = _ecs(region)
        good = [_describe(ecs, a) for a in first[region]["revisions"] if fault_of(_describe(ecs, a)) is None]
        assert [td["containerDefinitions"][0]["image"] for td in good] == list(aws_seed.GOOD_IMAGES)
    assert first[REGION]["service"][0] == "ACTIVE"
    assert first[aws_seed.SECONDARY_REGION]["service"][0] == "ACTIVE"
    assert len(first["zones"]) == 1
    failover = {r[3]: r for r in first["records"] if r[0] == aws_seed.API_RECORD}
    assert set(failover) == {"PRIMARY", "SECONDARY"}
    assert all(record[4] in first["health_checks"] for record in failover.values())
    assert aws_seed.LOG_STREAM in first["log_streams"]


def test_seed_deploys_revision_two_primary_and_cold_backup(deployed: str) -> None:
    # Other modules may scale these services; only check what seeding itself decided.
    assert deployed.endswith(":task-definition/hybrid-router:2")
    backup = _ecs(aws_seed.SECONDARY_REGION).describe_services(cluster=aws_seed.BACKUP_CLUSTER, services=[SERVICE])
    assert backup["services"][0]["taskDefinition"].endswith("hybrid-router:2")


# --- break, roll back, heal ---------------------------------------------------------------


def test_healthy_when_a_good_revision_runs(client: TestClient, deployed: str) -> None:
    response = client.get(HEALTH)
    assert response.status_code == 200
    assert response.json() == {
        "component": "hybrid-router",
        "status": "healthy",
        "task_definition": deployed,
        "image": "hybrid-router:1.1.0",
    }
    assert client.get(STATUS).json() == {
        "status": "healthy",
        "hybrid_routing": "enabled",
        "components": {"hybrid-router": "healthy", "bedrock-client": "healthy"},
        "circuit_breakers": CLOSED_BREAKER,
    }


def test_break_makes_the_component_unhealthy_and_the_platform_degraded(client: TestClient, deployed: str) -> None:
    bad = break_service(CLUSTER, SERVICE, REGION)

    assert bad != deployed
    running = current_task_definition(CLUSTER, SERVICE, REGION)
    assert running["taskDefinitionArn"] == bad
    assert fault_of(running) == "bad-deploy"
    assert running["containerDefinitions"][0]["image"] == "hybrid-router:bad"

    response = client.get(HEALTH)
    assert response.status_code == 503
    body = response.json()
    assert body["component"] == "hybrid-router"
    assert body["status"] == "unhealthy"
    assert body["task_definition"] == bad
    assert "DEMO_FAULT=bad-deploy" in body["reason"]
    # but not the region itself: a P0 incident rolls it back instead of failing over
    assert client.get(f"/region/{REGION}/canary").json() == {"region": REGION, "status": "up"}
    assert client.get(STATUS).json() == {
        "status": "degraded",
        "hybrid_routing": "enabled",
        "components": {"hybrid-router": "unhealthy", "bedrock-client": "healthy"},
        "circuit_breakers": CLOSED_BREAKER,
    }


def test_rolling_back_to_the_previous_revision_heals(client: TestClient, deployed: str) -> None:
    bad = break_service(CLUSTER, SERVICE, REGION)
    assert client.get(HEALTH).status_code == 503

    previous = _previous_active_revision(bad)
    _ecs().update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=previous)

    response = client.get(HEALTH)
    assert response.status_code == 200
    assert response.json()["task_definition"] == previous == deployed
    assert client.get(STATUS).json()["status"] == "healthy"


def test_heal_by_hand_skips_every_faulty_revision(client: TestClient, deployed: str) -> None:
    break_service(CLUSTER, SERVICE, REGION)
    break_service(CLUSTER, SERVICE, REGION)  # a bad deploy on top of a bad deploy

    healed = heal_service(CLUSTER, SERVICE, REGION)

    assert healed == deployed
    assert _deployed_arn() == deployed
    assert client.get(HEALTH).status_code == 200


def test_unknown_component_is_404(client: TestClient) -> None:
    response = client.get("/health/component/vector-store")
    assert response.status_code == 404
    assert response.json()["component"] == "vector-store"
    assert response.json()["known"] == ["hybrid-router", "bedrock-client"]


def test_unreachable_ecs_is_reported_as_unhealthy(aws_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(publish=False)) as client:
        response = client.get(HEALTH)
        assert response.status_code == 503
        assert "cannot reach ECS" in response.json()["reason"]
        assert response.json()["task_definition"] is None
        assert client.get(STATUS).json()["status"] == "degraded"


def test_a_missing_cluster_is_reported_as_unhealthy(aws_env: Any) -> None:
    with TestClient(create_app(cluster="no-such-cluster", publish=False)) as client:
        response = client.get(HEALTH)
        assert response.status_code == 503
        assert "ECS refused the lookup" in response.json()["reason"]


# --- emergency switch ------------------------------------------------------------------


def test_emergency_switch_requires_the_admin_token(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic demo-admin-token"}):
        response = client.post(DISABLE, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
    assert client.get(STATUS).json()["hybrid_routing"] == "enabled"


def test_emergency_switch_is_idempotent_and_masks_a_broken_router(client: TestClient) -> None:
    break_service(CLUSTER, SERVICE, REGION)
    assert client.get(STATUS).json()["status"] == "degraded"

    assert client.post(DISABLE, headers=ADMIN).json() == {"hybrid_routing": "disabled", "changed": True}
    assert client.post(DISABLE, headers=ADMIN).json() == {"hybrid_routing": "disabled", "changed": False}
    # Standard routing carries the traffic: the platform is fine, the router still is not.
    assert client.get(STATUS).json() == {
        "status": "healthy",
        "hybrid_routing": "disabled",
        "components": {"hybrid-router": "unhealthy", "bedrock-client": "healthy"},
        "circuit_breakers": CLOSED_BREAKER,
    }
    assert client.get(HEALTH).status_code == 503

    assert client.post(ENABLE, headers=ADMIN).json() == {"hybrid_routing": "enabled", "changed": True}
    assert client.post(ENABLE, headers=ADMIN).json() == {"hybrid_routing": "enabled", "changed": False}
    assert client.get(STATUS).json()["status"] == "degraded"


def test_emergency_switch_without_a_configured_token_is_open(deployed: str) -> None:
    with TestClient(create_app(admin_token=None, publish=False)) as client:
        assert client.post(DISABLE).json() == {"hybrid_routing": "disabled", "changed": True}


# --- metrics and logs --------------------------------------------------------------------


def _maxima(names: list[str], start: datetime) -> dict[str, list[float]]:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    queries: list[MetricDataQueryTypeDef] = [
        {
            "Id": f"m{i}",
            "Label": name,
            "MetricStat": {
                "Metric": {
                    "Namespace": METRICS_NAMESPACE,
                    "MetricName": name,
                    "Dimensions": [{"Name": "Service", "Value": "hybrid-router"}],
                },
                "Period": 1,
                "Stat": "Maximum",
            },
        }
        for i, name in enumerate(names)
    ]
    results = cloudwatch.get_metric_data(
        MetricDataQueries=queries, StartTime=start, EndTime=datetime.now(UTC) + timedelta(minutes=1)
    )["MetricDataResults"]
    return {names[int(r["Id"][1:])]: r["Values"] for r in results}


def _published_since(client: TestClient, since: datetime, **expected: Any) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        last = client.get("/demo/state").json()["last_publish"]
        if last and last["ok"] and datetime.fromisoformat(last["at"]) > since:
            if all(last[key] == value for key, value in expected.items()):
                return last
        return None

    return _wait_until(check)


GAUGES = ["LatencyP95", "ErrorRate", "CPUUtilization", "MemoryUtilization", "QueueDepth", "CacheHitRate"]


def test_a_broken_router_publishes_bad_metrics_and_error_logs(deployed: str) -> None:
    # Whole seconds: metrics are stored per second, so a window must not reach back
    # into the second in which the previous state was still being published.
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    _wait_until(lambda: datetime.now(UTC) >= start)
    bad = break_service(CLUSTER, SERVICE, REGION)

    with TestClient(create_app(metrics_interval=0.2, cache_ttl=0)) as client:
        _published_since(client, start, healthy=False)
        _published_since(client, datetime.now(UTC))  # a second tick: more than one sample

        maxima = _maxima([*GAUGES, "RequestCount", "Latency"], start)
        assert all(maxima.values()), maxima
        assert 3000 <= max(maxima["LatencyP95"]) <= 4000
        assert max(maxima["ErrorRate"]) > 10
        assert max(maxima["CPUUtilization"]) > 80
        assert max(maxima["QueueDepth"]) > 100
        assert max(maxima["Latency"]) > 2000

        logs = boto3.client("logs", region_name=REGION)
        events = logs.filter_log_events(
            logGroupName=aws_seed.LOG_GROUP, filterPattern="ERROR", startTime=int(start.timestamp() * 1000)
        )["events"]
        assert events
        assert all(e["message"].startswith("ERROR") for e in events)
        assert any(bad in e["message"] for e in events)

        # The emergency switch moves traffic to standard routing: near-normal numbers.
        client.post(DISABLE, headers=ADMIN)
        switched = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        _wait_until(lambda: datetime.now(UTC) >= switched)
        _published_since(client, switched, hybrid_routing="disabled")
        fallback = _maxima(["LatencyP95", "ErrorRate"], switched)
        assert 800 <= max(fallback["LatencyP95"]) <= 1000
        assert max(fallback["ErrorRate"]) < 1


def test_a_healthy_router_publishes_good_metrics_and_info_logs(deployed: str) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    _wait_until(lambda: datetime.now(UTC) >= start)

    with TestClient(create_app(metrics_interval=0.2, cache_ttl=0)) as client:
        _published_since(client, start, healthy=True)
        maxima = _maxima(GAUGES, start)
        assert max(maxima["LatencyP95"]) < 1000
        assert max(maxima["ErrorRate"]) < 1
        assert min(maxima["CacheHitRate"]) > 80

    logs = boto3.client("logs", region_name=REGION)
    since = int(start.timestamp() * 1000)
    info = logs.filter_log_events(logGroupName=aws_seed.LOG_GROUP, filterPattern="INFO", startTime=since)["events"]
    errors = logs.filter_log_events(logGroupName=aws_seed.LOG_GROUP, filterPattern="ERROR", startTime=since)["events"]
    assert info
    assert not errors


def test_a_failed_publish_is_retried_and_never_stops_the_service(aws_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(metrics_interval=0.1, cache_ttl=0)) as client:
        first = _wait_until(lambda: client.get("/demo/state").json()["last_publish"])
        assert first["ok"] is False

        def later_failure() -> bool:
            last = client.get("/demo/state").json()["last_publish"]
            return last["at"] != first["at"] and last["ok"] is False

        _wait_until(later_failure)
        assert client.get(HEALTH).status_code == 503


# --- the process ---------------------------------------------------------------------------


def test_the_module_serves_over_http(deployed: str, aws_env: Any) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.demo_service", "--host", "127.0.0.1", "--port", str(port)],
        env=dict(os.environ, PLATFORM_ADMIN_TOKEN="s3cret"),
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/demo/state", timeout=30)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            assert http.get(HEALTH).json()["task_definition"] == deployed
            assert http.post(DISABLE, headers=ADMIN).status_code == 401
            assert http.post(DISABLE, headers={"Authorization": "Bearer s3cret"}).json()["changed"] is True
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    assert f"listening on http://127.0.0.1:{port}" in output


def test_an_offered_load_spreads_over_the_tasks_ecs_runs(deployed: str) -> None:
    ecs = _ecs()
    tasks = ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]["desiredCount"]
    with TestClient(create_app(metrics_interval=0.2, cache_ttl=0)) as client:
        assert client.post("/demo/load", json={"cpu": 90}).status_code == 401  # the admin token
        refused = client.post("/demo/load", json={"cpu": 90, "disk": 3}, headers=ADMIN)
        assert refused.status_code == 422 and refused.json()["field"] == "disk"
        assert client.post("/demo/load", json={"cpu": -1}, headers=ADMIN).status_code == 422

        answer = client.post("/demo/load", json={"cpu": 90, "queue": 150}, headers=ADMIN).json()
        assert answer == {"load": {"cpu": 90.0, "queue": 150.0}, "on_tasks": tasks}
        published = _published_since(client, datetime.now(UTC), cpu_pct=90.0)
        assert published["queue_depth"] == 150.0 and published["tasks"] == tasks

        # Two more tasks (the scaling runbook's step): the same load over more tasks.
        ecs.update_service(cluster=CLUSTER, service=SERVICE, desiredCount=tasks + 2)
        try:
            spread = round(90.0 * tasks / (tasks + 2), 3)
            _published_since(client, datetime.now(UTC), cpu_pct=spread, tasks=tasks + 2)
            assert client.get("/demo/state").json()["load"] == {"cpu": 90.0, "queue": 150.0}
            assert client.delete("/demo/load", headers=ADMIN).json() == {"load": None}
            _published_since(client, datetime.now(UTC), cpu_pct=HEALTHY.cpu_pct)
        finally:
            ecs.update_service(cluster=CLUSTER, service=SERVICE, desiredCount=tasks)


# --- regions and the public name (the failover runbook's probes) ---------------------------------

BACKUP = aws_seed.SECONDARY_REGION
BACKUP_CLUSTER = aws_seed.BACKUP_CLUSTER


def _region_health(client: TestClient, region: str) -> tuple[int, dict[str, Any]]:
    response = client.get(f"/region/{region}/health")
    return response.status_code, response.json()


@pytest.fixture
def backup_tasks(deployed: str) -> Iterator[Callable[[int], None]]:
    """Sizes the seeded backup service (as the failover's scale step does); puts its count back."""
    ecs = _ecs(BACKUP)
    before = ecs.describe_services(cluster=BACKUP_CLUSTER, services=[SERVICE])["services"][0]["desiredCount"]

    def scale(count: int) -> None:
        ecs.update_service(cluster=BACKUP_CLUSTER, service=SERVICE, desiredCount=count)

    yield scale
    scale(before)


def test_a_region_is_down_from_break_region_until_heal_region(client: TestClient) -> None:
    assert _region_health(client, REGION)[0] == 200

    assert client.post(f"/demo/region/{REGION}/break").status_code == 401  # the admin token
    assert _region_health(client, REGION)[0] == 200
    broken = client.post(f"/demo/region/{REGION}/break", headers=ADMIN)
    assert broken.json() == {"region": REGION, "down": True, "changed": True}
    assert client.post(f"/demo/region/{REGION}/break", headers=ADMIN).json()["changed"] is False

    status, body = _region_health(client, REGION)
    assert status == 503
    assert body["status"] == "unhealthy" and body["region"] == REGION
    assert f"{REGION} is down" in body["reason"]
    state = client.get("/demo/state").json()
    assert state["regions_down"] == [REGION]
    assert state["regions"][REGION]["status"] == "unhealthy"
    # A region that is down takes its components with it: the P0 incident sees it too (and its
    # diagnosis, probing the region, hands the region to the failover).
    down = client.get(HEALTH)
    assert down.status_code == 503 and down.json()["reason"] == f"{REGION} is down"
    assert client.get(f"/region/{REGION}/canary").status_code == 503  # the region itself

    assert client.post(f"/demo/region/{REGION}/heal", headers=ADMIN).json() == {
        "region": REGION,
        "down": False,
        "changed": True,
    }
    status, body = _region_health(client, REGION)
    assert status == 200 and body["status"] == "healthy" and "reason" not in body
    assert body["running_tasks"] >= 1
    assert client.get("/demo/state").json()["regions_down"] == []
    assert client.get(HEALTH).status_code == 200
    assert client.get(f"/region/{REGION}/canary").json() == {"region": REGION, "status": "up"}


def test_a_bad_deploy_takes_the_primary_region_down_too(client: TestClient) -> None:
    bad = break_service(CLUSTER, SERVICE, REGION)
    status, body = _region_health(client, REGION)
    assert status == 503
    assert body["task_definition"] == bad
    assert "DEMO_FAULT=bad-deploy" in body["reason"]
    # but not the region itself: a P0 incident rolls it back instead of failing over
    assert client.get(f"/region/{REGION}/canary").json() == {"region": REGION, "status": "up"}


def test_the_backup_region_answers_once_its_ecs_service_runs_a_task(
    client: TestClient, backup_tasks: Callable[[int], None]
) -> None:
    backup_tasks(0)  # standby
    status, body = _region_health(client, BACKUP)
    assert status == 503
    assert body["cluster"] == BACKUP_CLUSTER and body["running_tasks"] == 0
    assert "runs no task" in body["reason"]

    backup_tasks(3)  # the failover's target count
    status, body = _region_health(client, BACKUP)
    assert status == 200, body
    assert body["running_tasks"] == 3 and body["desired_tasks"] == 3

    client.post(f"/demo/region/{BACKUP}/break", headers=ADMIN)
    assert _region_health(client, BACKUP)[0] == 503
    client.post(f"/demo/region/{BACKUP}/heal", headers=ADMIN)
    assert _region_health(client, BACKUP)[0] == 200

    backup_tasks(0)  # back to standby
    assert _region_health(client, BACKUP)[0] == 503


def test_an_unknown_region_is_404(client: TestClient) -> None:
    assert client.get("/region/ap-south-1/health").status_code == 404
    refused = client.post("/demo/region/ap-south-1/break", headers=ADMIN)
    assert refused.status_code == 404
    assert refused.json()["known"] == sorted([REGION, BACKUP])


def _zone_of_its_own() -> tuple[str, str, str]:
    """The seeded failover records copied into a zone of the test's own (zone, record, id), so the
    session's emulator keeps its seeded zone as seeded; UPSERTed as the seed does (moto's journal)."""
    route53 = boto3.client("route53", region_name=aws_seed.ROUTE53_REGION)
    zone = f"r{uuid.uuid4().hex[:8]}.example.com."
    record = f"api.{zone}"
    zone_id = route53.create_hosted_zone(Name=zone, CallerReference=zone)["HostedZone"]["Id"].rpartition("/")[2]
    changes: list[Any] = [
        {
            "Action": "UPSERT",
            "ResourceRecordSet": {
                "Name": record,
                "Type": "A",
                "SetIdentifier": region,
                "Failover": role,
                "TTL": 60,
                "ResourceRecords": [{"Value": aws_seed.REGION_ADDRESSES[region]}],
            },
        }
        for region, role in ((REGION, "PRIMARY"), (BACKUP, "SECONDARY"))
    ]
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
    return zone, record, zone_id


def _fail_over(zone: str, record: str, to_region: str) -> None:
    """The failover's DNS change, as its activity sends it: the plan's one change batch."""
    from activities.failover import read_failover_records

    records = read_failover_records(FailoverRecordsRequest(zone_name=zone, record_name=record))
    plan = DnsChangePlan.build(records, to_region)
    route53 = boto3.client("route53", region_name=aws_seed.ROUTE53_REGION)
    route53.change_resource_record_sets(HostedZoneId=plan.hosted_zone_id, ChangeBatch=plan.change_batch())  # type: ignore[arg-type]


def test_the_public_name_answers_from_the_region_its_primary_record_names(
    deployed: str, backup_tasks: Callable[[int], None]
) -> None:
    zone, record, _ = _zone_of_its_own()
    backup_tasks(0)
    with TestClient(create_app(publish=False, cache_ttl=0, zone_name=zone, record_name=record)) as client:
        answer = client.get("/public/health")
        assert answer.status_code == 200
        assert answer.json()["served_by"] == REGION and answer.json()["region"] == REGION
        assert answer.json()["failover_records"] == {REGION: "PRIMARY", BACKUP: "SECONDARY"}

        client.post(f"/demo/region/{REGION}/break", headers=ADMIN)
        down = client.get("/public/health")
        assert down.status_code == 503 and down.json()["served_by"] == REGION  # DNS still sends it there

        backup_tasks(3)
        _fail_over(zone, record, BACKUP)
        moved = client.get("/public/health")
        assert moved.status_code == 200, moved.json()
        assert moved.json()["served_by"] == BACKUP and moved.json()["running_tasks"] == 3
        assert moved.json()["failover_records"] == {REGION: "SECONDARY", BACKUP: "PRIMARY"}
        assert client.get("/demo/state").json()["public"]["served_by"] == BACKUP

        client.post(f"/demo/region/{REGION}/heal", headers=ADMIN)
        _fail_over(zone, record, REGION)  # the failback
        back = client.get("/public/health")
        assert back.status_code == 200 and back.json()["served_by"] == REGION


def test_the_public_name_without_its_records_is_unhealthy(deployed: str) -> None:
    with TestClient(create_app(publish=False, cache_ttl=0, zone_name="nowhere.example.com.")) as client:
        answer = client.get("/public/health")
        assert answer.status_code == 503
        assert answer.json()["served_by"] is None
        assert "no public hosted zone nowhere.example.com." in answer.json()["reason"]


def test_dns_and_ecs_reads_are_cached_between_probes(deployed: str, backup_tasks: Callable[[int], None]) -> None:
    backup_tasks(0)
    with TestClient(create_app(publish=False, cache_ttl=60)) as client:
        assert _region_health(client, BACKUP)[0] == 503
        backup_tasks(3)
        assert _region_health(client, BACKUP)[0] == 503  # still the read of a moment ago
        routing = client.app.state.routing  # type: ignore[attr-defined]
        client.get("/public/health")
        first = routing._last
        assert first is not None
        client.get("/public/health")
        assert routing._last is first


# --- runbook demo break-region / heal-region ------------------------------------------------------


def _runbook(*args: str, platform_url: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PLATFORM_URL=platform_url, RUNBOOK_POLICY=str(PROJECT_ROOT / "policy" / "demo.yaml"))
    runbook = Path(sys.executable).parent / "runbook"
    return subprocess.run([str(runbook), *args], env=env, capture_output=True, text=True, timeout=60)


def test_runbook_demo_break_region_and_heal_region(deployed: str) -> None:
    from tests.conftest import serve_app

    app = create_app(publish=False, cache_ttl=0)
    with serve_app(app) as url, httpx.Client(base_url=url) as http:
        assert http.get(f"/region/{REGION}/health").status_code == 200

        broken = _runbook("demo", "break-region", REGION, platform_url=url)
        assert broken.returncode == 0, broken.stderr
        assert f"{REGION}: down" in broken.stdout
        assert http.get(f"/region/{REGION}/health").status_code == 503
        assert http.get("/demo/state").json()["regions_down"] == [REGION]
        again = _runbook("demo", "break-region", REGION, platform_url=url)
        assert again.returncode == 0 and "(it already was)" in again.stdout

        healed = _runbook("demo", "heal-region", REGION, platform_url=url)
        assert healed.returncode == 0, healed.stderr
        assert f"{REGION}: back up" in healed.stdout
        assert http.get(f"/region/{REGION}/health").status_code == 200


def test_runbook_demo_break_region_names_a_region_the_policy_lacks() -> None:
    done = _runbook("demo", "break-region", "eu-west-9", platform_url=f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 2
    assert "REGION 'eu-west-9' is not a region of the policy's services (eu-central-1, us-west-2" in done.stderr
    # A service where a region belongs is refused the same way, before anything is asked.
    assert _runbook("demo", "heal-region", "hybrid-router", platform_url="http://127.0.0.1:1").returncode == 2


def test_runbook_demo_region_without_the_stack_exits_3() -> None:
    done = _runbook("demo", "heal-region", "us-west-2", platform_url=f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 3
    assert "did not answer" in done.stderr and "is `make run` running?" in done.stderr


def test_runbook_demo_keeps_its_service_actions_and_its_help() -> None:
    helped = _runbook("demo", "--help", platform_url="http://127.0.0.1:1")
    assert helped.returncode == 0, helped.stderr  # '%' in a help text once crashed argparse
    assert "break-region" in helped.stdout and "load: the cpu (%)" in helped.stdout
    refused = _runbook("demo", "break-region", REGION, "--cpu", "90", platform_url="http://127.0.0.1:1")
    assert refused.returncode == 2 and "are for `demo load`" in refused.stderr
    unknown = _runbook("demo", "load", "no-such-service", "--clear", platform_url="http://127.0.0.1:1")
    assert unknown.returncode == 2 and "unknown service 'no-such-service'" in unknown.stderr
