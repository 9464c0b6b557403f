"""The failover activities: over HTTP against moto (Route 53, ECS and Application Auto Scaling in two
regions), whose request recording counts the DNS changes a retry must not repeat, and against
botocore's Stubber with the answers the Route 53 API reference documents.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import _aws, failover, scaling
from activities._aws import client
from contracts import (
    DnsChangePlan,
    EcsCapacityRequest,
    EcsRunningWait,
    EcsScalePlan,
    FailoverRecord,
    FailoverRecords,
    FailoverRecordsRequest,
    PreflightRequest,
)
from devstack import aws_seed
from tests.conftest import MotoServer

PRIMARY, BACKUP = aws_seed.PRIMARY_REGION, aws_seed.SECONDARY_REGION
FAST = timedelta(milliseconds=50)
run = ActivityEnvironment().run


def fails_for_good(err: ApplicationError, kind: str) -> bool:
    return err.type == kind and err.non_retryable


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    """Route 53 has one region (us-east-1), so the moto and the Stubber tests would share its cached
    client: each test makes its own."""
    _aws._client.cache_clear()
    yield
    _aws._client.cache_clear()


@pytest.fixture
def rrset_posts(aws_env: MotoServer) -> Iterator[Any]:
    """Returns the ChangeResourceRecordSets bodies moto received for a zone since the test began."""
    control = f"{aws_env.url}/moto-api/recorder"
    urllib.request.urlopen(urllib.request.Request(f"{control}/start-recording", method="POST"), timeout=10).close()
    start = aws_env.recording.stat().st_size if aws_env.recording.exists() else 0

    def posts(zone_id: str) -> list[str]:
        with aws_env.recording.open() as recorded:
            recorded.seek(start)
            entries = [json.loads(line) for line in recorded.read().splitlines() if line]
        path = f"/hostedzone/{zone_id}/rrset"
        return [
            base64.b64decode(e["body"]).decode() if e.get("body_encoded") else e["body"]
            for e in entries
            if e["method"] == "POST" and urllib.parse.urlparse(e["url"]).path.rstrip("/").endswith(path)
        ]

    yield posts
    urllib.request.urlopen(urllib.request.Request(f"{control}/stop-recording", method="POST"), timeout=10).close()


# --------------------------------------------------------------------------- estates of the tests' own


@dataclass
class Zone:
    id: str
    request: FailoverRecordsRequest


def record(region: str, role: str, health_check: str | None = None, ttl: int = 60) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "Name": "api.{zone}",
        "Type": "A",
        "SetIdentifier": region,
        "Failover": role,
        "TTL": ttl,
        "ResourceRecords": [{"Value": aws_seed.REGION_ADDRESSES[region]}],
    }
    if health_check:
        answer["HealthCheckId"] = health_check
    return answer


def new_zone(*records: dict[str, Any]) -> Zone:
    """A hosted zone of its own with the given failover records of api.<zone>, and a plain record
    of another name beside them. UPSERTed, not CREATEd: moto 5.2.5 refuses a CREATE equal to one in
    its change journal whenever the name has records, even ones the same batch deletes first (open
    moto PR #9105), so a failback re-creating the records as first CREATEd would fail there alone."""
    route53 = boto3.client("route53", region_name=aws_seed.ROUTE53_REGION)
    name = f"f{uuid.uuid4().hex[:8]}.example.com."
    zone_id = route53.create_hosted_zone(Name=name, CallerReference=name)["HostedZone"]["Id"].rpartition("/")[2]
    other = {"Name": f"www.{name}", "Type": "A", "TTL": 300, "ResourceRecords": [{"Value": "203.0.113.7"}]}
    changes: list[Any] = [{"Action": "UPSERT", "ResourceRecordSet": {**r, "Name": f"api.{name}"}} for r in records]
    changes.append({"Action": "UPSERT", "ResourceRecordSet": other})
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
    return Zone(id=zone_id, request=FailoverRecordsRequest(zone_name=name, record_name=f"api.{name}"))


def health_check(region: str) -> str:
    route53 = boto3.client("route53", region_name=aws_seed.ROUTE53_REGION)
    created = route53.create_health_check(
        CallerReference=uuid.uuid4().hex,
        HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": f"{region}.example.com", "Port": 443},
    )
    return created["HealthCheck"]["Id"]


def two_region_zone() -> Zone:
    return new_zone(
        record(PRIMARY, "PRIMARY", health_check(PRIMARY)), record(BACKUP, "SECONDARY", health_check(BACKUP))
    )


def new_service(
    region: str, family: str, image: str, desired: int = 0, cluster: str | None = None
) -> EcsCapacityRequest:
    """A service of its own, settled at `desired` (created empty, then sized: moto runs tasks only
    on UpdateService)."""
    ecs = boto3.client("ecs", region_name=region)
    cluster = cluster or f"failover-{uuid.uuid4().hex[:8]}"
    ecs.create_cluster(clusterName=cluster)
    ecs.register_task_definition(family=family, containerDefinitions=[{"name": "web", "image": image, "memory": 512}])
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=family, desiredCount=0)
    if desired:
        ecs.update_service(cluster=cluster, service="web", desiredCount=desired)
    return EcsCapacityRequest(cluster=cluster, service="web", region=region)


def read(zone: Zone) -> FailoverRecords:
    return run(failover.read_failover_records, zone.request)


# --------------------------------------------------------------------------- pre-flight


def test_preflight_is_green_on_the_seeded_estate(aws_env: MotoServer) -> None:
    aws_seed.seed()
    request = PreflightRequest(
        primary=EcsCapacityRequest(cluster=aws_seed.CLUSTER, service=aws_seed.SERVICE, region=PRIMARY),
        backup=EcsCapacityRequest(cluster=aws_seed.BACKUP_CLUSTER, service=aws_seed.SERVICE, region=BACKUP),
        target_count=3,
        dns=FailoverRecordsRequest(zone_name=aws_seed.HOSTED_ZONE, record_name=aws_seed.API_RECORD),
    )
    result = run(failover.preflight, request)

    assert result.failures == [] and result.ok, result.failures
    assert [c.name for c in result.checks] == [
        "backup service exists",
        "same task definition family",
        "same container images",
        "capacity reaches target",
        "hosted zone exists",
        "failover records exist",
    ]
    assert result.check("same container images").detail == f"both run hybrid-router={aws_seed.GOOD_IMAGES[-1]}"
    assert result.check("same task definition family").detail.startswith(
        "backup hybrid-router:2, primary hybrid-router:"
    )
    assert result.records is not None
    assert {r.region: r.values for r in result.records.records} == {
        region: [address] for region, address in aws_seed.REGION_ADDRESSES.items()
    }
    assert all(r.health_check_id for r in result.records.records)


def failed(request: PreflightRequest) -> dict[str, str]:
    return {check.name: check.detail for check in run(failover.preflight, request).failures}


def test_each_preflight_check_fails_for_its_own_reason(aws_env: MotoServer) -> None:
    family = f"router-{uuid.uuid4().hex[:6]}"
    primary = new_service(PRIMARY, family, "router:2.0.0", desired=2)
    zone = two_region_zone()

    def request(backup: EcsCapacityRequest, zone: Zone = zone) -> PreflightRequest:
        return PreflightRequest(primary=primary, backup=backup, target_count=3, dns=zone.request)

    ready = new_service(BACKUP, family, "router:2.0.0")
    assert failed(request(ready)) == {}

    other_image = new_service(BACKUP, family, "router:1.9.9")
    assert failed(request(other_image)) == {"same container images": "web: backup router:1.9.9, primary router:2.0.0"}

    other_family = new_service(BACKUP, f"{family}-canary", "router:2.0.0")
    [(name, detail)] = failed(request(other_family)).items()
    assert name == "same task definition family" and detail.startswith(f"backup {family}-canary:1, primary {family}:")

    capped = new_service(BACKUP, family, "router:2.0.0")
    boto3.client("application-autoscaling", region_name=BACKUP).register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=f"service/{capped.cluster}/web",
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=0,
        MaxCapacity=2,
    )
    assert failed(request(capped)) == {
        "capacity reaches target": "Application Auto Scaling bounds 0..2: the maximum is below the target 3"
    }

    absent = EcsCapacityRequest(cluster=ready.cluster, service="nobody", region=BACKUP)
    no_cluster = EcsCapacityRequest(cluster=f"nowhere-{uuid.uuid4().hex[:6]}", service="web", region=BACKUP)
    for missing in (absent, no_cluster):
        reasons = failed(request(missing))
        assert set(reasons) == {
            "backup service exists",
            "same task definition family",
            "same container images",
            "capacity reaches target",
        }
        assert all(
            f"no ACTIVE ECS service {missing.cluster}/{missing.service} (us-west-2)" in r for r in reasons.values()
        )

    only_primary = new_zone(record(PRIMARY, "PRIMARY"))
    [(name, detail)] = failed(request(ready, only_primary)).items()
    assert name == "failover records exist"
    roles = "has ['eu-central-1=PRIMARY']"
    assert detail == f"{only_primary.request.record_name} A needs one PRIMARY and one SECONDARY record, {roles}"

    elsewhere = new_zone(record(PRIMARY, "PRIMARY"), {**record(BACKUP, "SECONDARY"), "SetIdentifier": "ap-south-1"})
    assert failed(request(ready, elsewhere)) == {"failover records exist": "no failover record for us-west-2"}

    no_zone = Zone(
        id="", request=FailoverRecordsRequest(zone_name="absent.example.com.", record_name="api.absent.example.com.")
    )
    assert failed(request(ready, no_zone)) == {
        "hosted zone exists": "no public hosted zone absent.example.com.",
        "failover records exist": "no public hosted zone absent.example.com.",
    }


def test_a_primary_region_that_cannot_be_read_leaves_the_comparison_unverified_not_blocking(
    aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a regional outage the primary's ECS API does not answer either: the backup's family
    and images pass UNVERIFIED, naming what the backup runs, instead of blocking every real
    failover (or failing the run after its retries). An answer (a missing service) still fails."""
    family = f"router-{uuid.uuid4().hex[:6]}"
    primary = new_service(PRIMARY, family, "router:2.0.0", desired=2)
    backup = new_service(BACKUP, family, "router:2.0.0")
    zone = two_region_zone()
    unreachable = boto3.client(
        "ecs",
        region_name=PRIMARY,
        endpoint_url="http://127.0.0.1:9",  # the discard port: nothing listens
        config=Config(connect_timeout=1, retries={"max_attempts": 1}),
    )
    monkeypatch.setattr(
        failover, "client", lambda service, region: unreachable if region == PRIMARY else client(service, region)
    )
    result = run(failover.preflight, PreflightRequest(primary=primary, backup=backup, target_count=3, dns=zone.request))
    assert result.ok and result.failures == []
    assert [c.name for c in result.unverified] == ["same task definition family", "same container images"]
    family_check = result.check("same task definition family")
    assert "cannot be read (EndpointConnectionError" in family_check.detail
    assert family_check.detail.endswith(f"the backup runs {family}:1")
    assert result.check("same container images").detail.endswith("the backup runs web=router:2.0.0")

    absent = EcsCapacityRequest(cluster=backup.cluster, service="nobody", region=BACKUP)
    missing = run(
        failover.preflight, PreflightRequest(primary=primary, backup=absent, target_count=3, dns=zone.request)
    )
    assert {c.name for c in missing.failures} >= {"backup service exists", "same task definition family"}


# --------------------------------------------------------------------------- the DNS plan


def seeded_like() -> FailoverRecords:
    return FailoverRecords(
        hosted_zone_id="Z1D633PJN98FT9",
        zone_name="example.com.",
        record_name="api.example.com.",
        record_type="A",
        records=[
            FailoverRecord(
                set_identifier=PRIMARY, failover="PRIMARY", values=["192.0.2.10"], ttl=60, health_check_id="hc-eu"
            ),
            FailoverRecord(
                set_identifier=BACKUP, failover="SECONDARY", values=["198.51.100.10"], ttl=60, health_check_id="hc-us"
            ),
        ],
    )


def test_the_plan_is_the_exact_change_batch_and_its_reverse_is_the_failback() -> None:
    records = seeded_like()
    plan = DnsChangePlan.build(records, to_region=BACKUP, reason="eu-central-1 down for 6 min")

    def rrset(region: str, role: str, value: str, check: str) -> dict[str, Any]:
        return {
            "Name": "api.example.com.",
            "Type": "A",
            "SetIdentifier": region,
            "Failover": role,
            "TTL": 60,
            "ResourceRecords": [{"Value": value}],
            "HealthCheckId": check,
        }

    [call] = plan.aws_calls()
    assert (call.service, call.operation) == ("route53", "ChangeResourceRecordSets")
    assert call.params == {
        "HostedZoneId": "Z1D633PJN98FT9",
        "ChangeBatch": {
            "Comment": f"temporal-runbooks {plan.plan_id}: us-west-2 PRIMARY",
            "Changes": [
                {"Action": "DELETE", "ResourceRecordSet": rrset(PRIMARY, "PRIMARY", "192.0.2.10", "hc-eu")},
                {"Action": "DELETE", "ResourceRecordSet": rrset(BACKUP, "SECONDARY", "198.51.100.10", "hc-us")},
                {"Action": "CREATE", "ResourceRecordSet": rrset(PRIMARY, "SECONDARY", "192.0.2.10", "hc-eu")},
                {"Action": "CREATE", "ResourceRecordSet": rrset(BACKUP, "PRIMARY", "198.51.100.10", "hc-us")},
            ],
        },
    }
    assert call.render().startswith('route53 ChangeResourceRecordSets {"ChangeBatch": {"Changes": [{"Action": "DELETE"')
    assert (plan.from_region, plan.to_region) == (PRIMARY, BACKUP)
    assert plan.describe().startswith("make us-west-2 the PRIMARY and eu-central-1 the SECONDARY failover record")
    assert plan.plan_id.startswith("dns-")
    assert DnsChangePlan.build(records, to_region=BACKUP, reason="another reason").plan_id == plan.plan_id

    back = plan.reversed(reason="primary healthy for 30 min")
    assert (back.from_region, back.to_region) == (BACKUP, PRIMARY)
    assert back.to_records == records.records and back.plan_id != plan.plan_id
    assert back == DnsChangePlan.build(plan.to_state(), to_region=PRIMARY, reason="primary healthy for 30 min")

    already = DnsChangePlan.build(records, to_region=PRIMARY)
    assert already.changes_nothing and already.aws_calls() == []
    with pytest.raises(ValueError, match="no failover record of api.example.com. in ap-south-1"):
        DnsChangePlan.build(records, to_region="ap-south-1")
    with pytest.raises(ValueError, match="one PRIMARY and one SECONDARY"):
        DnsChangePlan.build(records.model_copy(update={"records": records.records[:1]}), to_region=PRIMARY)


def test_applying_the_plan_swaps_the_roles_once_and_a_retry_makes_no_call(
    aws_env: MotoServer, rrset_posts: Any
) -> None:
    zone = two_region_zone()
    before = read(zone)
    assert before.serving_region == PRIMARY and before.hosted_zone_id == zone.id
    assert before.record_name == zone.request.record_name and len(before.records) == 2  # not www.
    plan = DnsChangePlan.build(before, to_region=BACKUP)
    [created] = rrset_posts(zone.id)  # the test's own records

    first = run(failover.change_failover_records, plan)
    retry = run(failover.change_failover_records, plan)

    assert first.changed and first.calls == plan.aws_calls() and first.change_id
    assert first.records.records == plan.to_records and first.records.serving_region == BACKUP
    assert not retry.changed and retry.calls == [] and "no call made" in retry.detail
    after = read(zone)
    assert after.serving_region == BACKUP
    by_region = {r.region: r for r in after.records}
    assert by_region[BACKUP] == before.region(BACKUP).model_copy(update={"failover": "PRIMARY"})
    assert by_region[PRIMARY] == before.region(PRIMARY).model_copy(update={"failover": "SECONDARY"})
    assert rrset_posts(zone.id)[0] == created
    [sent] = rrset_posts(zone.id)[1:]
    assert plan.plan_id in sent and sent.count("<Action>DELETE</Action>") == 2


def test_a_stale_plan_fails_for_good_and_changes_nothing(aws_env: MotoServer, rrset_posts: Any) -> None:
    zone = two_region_zone()
    plan = DnsChangePlan.build(read(zone), to_region=BACKUP)
    shorter: Any = {
        **record(BACKUP, "SECONDARY", plan.from_records[1].health_check_id, ttl=30),
        "Name": zone.request.record_name,
    }
    route53 = boto3.client("route53", region_name=aws_seed.ROUTE53_REGION)
    route53.change_resource_record_sets(
        HostedZoneId=zone.id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": shorter}]}
    )  # someone else changed the backup's TTL since the plan was made

    with pytest.raises(ApplicationError) as err:
        run(failover.change_failover_records, plan)

    assert fails_for_good(err.value, "StalePlan") and plan.plan_id in str(err.value)
    assert "refusing to act on a stale plan" in str(err.value)
    assert read(zone).serving_region == PRIMARY
    assert len(rrset_posts(zone.id)) == 2  # the test's own: the records, then the UPSERT


def test_the_failback_plan_restores_the_original_records_exactly(aws_env: MotoServer) -> None:
    zone = two_region_zone()
    original = read(zone)
    over = DnsChangePlan.build(original, to_region=BACKUP)
    run(failover.change_failover_records, over)

    back = DnsChangePlan.build(read(zone), to_region=PRIMARY, reason="primary healthy")
    assert back == over.reversed(reason="primary healthy")
    done = run(failover.change_failover_records, back)

    assert done.changed and done.records == original
    assert read(zone) == original


# --------------------------------------------------------------------------- the backup's tasks


def test_the_backup_runs_its_tasks_after_the_scaling_plan(aws_env: MotoServer) -> None:
    backup = new_service(BACKUP, f"router-{uuid.uuid4().hex[:6]}", "router:2.0.0")
    plan = EcsScalePlan.build(run(scaling.read_ecs_capacity, backup), to_count=3, reason="failover")
    assert run(scaling.scale_ecs_service, plan).changed
    wait = EcsRunningWait(
        **backup.model_dump(), count=3, deadline=datetime.now(UTC) + timedelta(seconds=30), poll_interval=FAST
    )

    running = run(failover.wait_for_ecs_running, wait)

    assert (running.desired_count, running.running_count, running.rolling_out) == (3, 3, False)
    assert running.scalable_target is None


def test_waiting_past_the_deadline_fails_for_good_and_heartbeats_each_read(aws_env: MotoServer) -> None:
    ecs = boto3.client("ecs", region_name=BACKUP)
    cluster, family = f"failover-{uuid.uuid4().hex[:8]}", f"router-{uuid.uuid4().hex[:6]}"
    ecs.create_cluster(clusterName=cluster)
    ecs.register_task_definition(family=family, containerDefinitions=[{"name": "web", "image": "r:1", "memory": 512}])
    # Created with 3 wanted: moto starts none and leaves the deployment IN_PROGRESS for good.
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=family, desiredCount=3)
    wait = EcsRunningWait(
        cluster=cluster,
        service="web",
        region=BACKUP,
        count=3,
        deadline=datetime.now(UTC) + timedelta(milliseconds=400),
        poll_interval=FAST,
    )
    env, beats = ActivityEnvironment(), []
    env.on_heartbeat = lambda *details: beats.append(details)

    with pytest.raises(ApplicationError) as err:
        env.run(failover.wait_for_ecs_running, wait)

    assert fails_for_good(err.value, "DeadlineExceeded")
    assert "0 of 3 tasks running" in str(err.value) and wait.deadline.isoformat() in str(err.value)
    assert len(beats) >= 2 and beats[0][0].startswith("0 of 3 tasks running, deployment")

    cold = new_service(BACKUP, family, "r:1", cluster=f"failover-{uuid.uuid4().hex[:8]}")
    with pytest.raises(ApplicationError) as never:
        run(failover.wait_for_ecs_running, EcsRunningWait(**cold.model_dump(), count=3, deadline=wait.deadline))
    assert fails_for_good(never.value, "StalePlan") and "wants 0 tasks" in str(never.value)


# --------------------------------------------------------------------------- Route 53's documented answers

ZONE_ID = "Z1D633PJN98FT9"


def zones_by_name() -> dict[str, Any]:
    """ListHostedZonesByName as the Route 53 API reference shows it: the zone asked for, then the
    next ones."""
    return {
        "HostedZones": [
            {
                "Id": f"/hostedzone/{ZONE_ID}",
                "Name": "example.com.",
                "CallerReference": "2014-04-01-18:47",
                "Config": {"Comment": "", "PrivateZone": False},
                "ResourceRecordSetCount": 5,
            },
            {
                "Id": "/hostedzone/Z3M3LMPEXAMPLE",
                "Name": "example.net.",
                "CallerReference": "2014-04-01-18:48",
                "Config": {"PrivateZone": False},
                "ResourceRecordSetCount": 2,
            },
        ],
        "DNSName": "example.com.",
        "IsTruncated": False,
        "MaxItems": "100",
    }


def listed(records: FailoverRecords, *, truncated: bool = False) -> dict[str, Any]:
    """ListResourceRecordSets as documented: the records from the start name on, then the next name."""
    sets = [r.as_route53(records.record_name, "A") for r in reversed(records.records)]  # Route 53's own order
    sets.append({"Name": "www.example.com.", "Type": "A", "TTL": 300, "ResourceRecords": [{"Value": "203.0.113.7"}]})
    answer: dict[str, Any] = {"ResourceRecordSets": sets, "IsTruncated": truncated, "MaxItems": "100"}
    if truncated:
        answer |= {"NextRecordName": "www2.example.com.", "NextRecordType": "A"}
    return answer


LIST = {"HostedZoneId": ZONE_ID, "StartRecordName": "api.example.com.", "StartRecordType": "A"}
CHANGE_INFO = {
    "ChangeInfo": {
        "Id": "/change/C2682N5HXP0BZ4",
        "Status": "PENDING",
        "SubmittedAt": datetime(2017, 3, 10, 1, 36, 41, tzinfo=UTC),
        "Comment": "failover",
    }
}


def test_reading_and_changing_against_route53s_documented_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failover, "INSYNC_POLL", timedelta(0))
    route53 = client("route53", failover.ROUTE53_REGION)
    records = seeded_like()
    plan = DnsChangePlan.build(records, to_region=BACKUP)
    request = FailoverRecordsRequest(zone_name="Example.COM", record_name="API.example.com")
    with Stubber(route53) as stub:
        stub.add_response("list_hosted_zones_by_name", zones_by_name(), {"DNSName": "example.com."})
        stub.add_response("list_resource_record_sets", listed(records, truncated=True), LIST)
        stub.add_response("list_resource_record_sets", listed(records), LIST)
        stub.add_response("change_resource_record_sets", CHANGE_INFO, plan.aws_calls()[0].params)
        stub.add_response("list_resource_record_sets", listed(plan.to_state()), LIST)
        change = {"Id": "/change/C2682N5HXP0BZ4"}
        stub.add_response("get_change", CHANGE_INFO, change)  # still PENDING once
        stub.add_response("get_change", {"ChangeInfo": {**CHANGE_INFO["ChangeInfo"], "Status": "INSYNC"}}, change)
        found = run(failover.read_failover_records, request)
        done = run(failover.change_failover_records, plan)
        stub.assert_no_pending_responses()
    assert found == records  # a truncated page whose records went past ours is not followed
    assert (done.changed, done.change_id, done.change_status) == (True, "/change/C2682N5HXP0BZ4", "INSYNC")
    assert done.detail.endswith("change /change/C2682N5HXP0BZ4 INSYNC")
    assert done.records.serving_region == BACKUP

    monkeypatch.setattr(failover, "INSYNC_WITHIN", timedelta(0))  # Route 53 slow to propagate: said, not failed
    with Stubber(route53) as stub:
        stub.add_response("list_resource_record_sets", listed(records), LIST)
        stub.add_response("change_resource_record_sets", CHANGE_INFO, plan.aws_calls()[0].params)
        stub.add_response("list_resource_record_sets", listed(plan.to_state()), LIST)
        slow = run(failover.change_failover_records, plan)
        stub.assert_no_pending_responses()
    assert slow.change_status == "PENDING" and slow.detail.endswith("still PENDING after 0 s")


def test_a_read_back_that_differs_and_route53s_errors_fail_for_good() -> None:
    route53 = client("route53", failover.ROUTE53_REGION)
    records = seeded_like()
    plan = DnsChangePlan.build(records, to_region=BACKUP)
    with Stubber(route53) as stub:
        stub.add_response("list_resource_record_sets", listed(records), LIST)
        stub.add_response("change_resource_record_sets", CHANGE_INFO, plan.aws_calls()[0].params)
        stub.add_response("list_resource_record_sets", listed(records), LIST)  # as if the change never took
        stub.add_response("list_resource_record_sets", listed(records), LIST)
        stub.add_client_error(
            "change_resource_record_sets",
            service_error_code="InvalidChangeBatch",
            service_message="[Tried to delete resource record set [name='api.example.com.', type='A', "
            "set-identifier='eu-central-1'] but the values provided do not match the current values]",
            http_status_code=400,
        )
        stub.add_client_error("list_resource_record_sets", "Throttling", "Rate exceeded", 400)
        with pytest.raises(ApplicationError) as mismatch:
            run(failover.change_failover_records, plan)
        with pytest.raises(ApplicationError) as invalid:
            run(failover.change_failover_records, plan)
        with pytest.raises(ApplicationError) as throttled:
            run(failover.change_failover_records, plan)
        stub.assert_no_pending_responses()
    assert fails_for_good(mismatch.value, "ReadBackMismatch") and "/change/C2682N5HXP0BZ4" in str(mismatch.value)
    assert "eu-central-1 PRIMARY" in str(mismatch.value)
    assert fails_for_good(invalid.value, "InvalidChangeBatch")
    assert throttled.value.type == "Throttling" and not throttled.value.non_retryable


def test_an_alias_failover_record_is_refused_not_misread() -> None:
    route53 = client("route53", failover.ROUTE53_REGION)
    alias = {
        "Name": "api.example.com.",
        "Type": "A",
        "SetIdentifier": PRIMARY,
        "Failover": "PRIMARY",
        "AliasTarget": {
            "HostedZoneId": "Z215JYRZR1TBD5",
            "DNSName": "dualstack.my-lb-1234567890.eu-central-1.elb.amazonaws.com.",
            "EvaluateTargetHealth": True,
        },
    }
    with Stubber(route53) as stub:
        stub.add_response("list_hosted_zones_by_name", zones_by_name(), {"DNSName": "example.com."})
        stub.add_response(
            "list_resource_record_sets", {"ResourceRecordSets": [alias], "IsTruncated": False, "MaxItems": "100"}, LIST
        )
        with pytest.raises(ApplicationError) as err:
            run(
                failover.read_failover_records,
                FailoverRecordsRequest(zone_name="example.com.", record_name="api.example.com."),
            )
    assert fails_for_good(err.value, "UnsupportedRecord")
