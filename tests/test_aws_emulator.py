"""The local stack's AWS emulator (devstack/aws_emulator.py): moto with its Route 53 change journal
fixed, so failover, failback and failover again all pass on one emulator, as on Route 53; and the
check that tells when moto's own fix makes the workaround unnecessary."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from temporalio.testing import ActivityEnvironment

from activities import _aws, failover
from contracts import DnsChangePlan, FailoverRecordsRequest
from devstack import aws_seed
from devstack.net import free_port, wait_for_http
from settings import PROJECT_ROOT
from tests.conftest import MotoServer, _stop

PRIMARY, BACKUP = aws_seed.PRIMARY_REGION, aws_seed.SECONDARY_REGION
run = ActivityEnvironment().run


@pytest.fixture(scope="module")
def stack_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """The emulator as the stack starts it (`python -m devstack.aws_emulator`), recording requests."""
    port = free_port()
    recording = tmp_path_factory.mktemp("aws-emulator") / "recording.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.aws_emulator", "-H", "127.0.0.1", "-p", str(port)],
        env=dict(os.environ, MOTO_RECORDER_FILEPATH=str(recording)),
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/moto-api/", timeout=60)
        yield MotoServer(url=f"http://127.0.0.1:{port}", recording=recording)
    finally:
        _stop(proc)


def _point_boto3_at(server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in server.aws_env().items():
        monkeypatch.setenv(key, value)
    _aws._client.cache_clear()  # the activities' cached clients know another emulator's address


@pytest.fixture
def on_stack_emulator(stack_emulator: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    _point_boto3_at(stack_emulator, monkeypatch)
    yield stack_emulator
    _aws._client.cache_clear()


def _seeded_request() -> FailoverRecordsRequest:
    return FailoverRecordsRequest(zone_name=aws_seed.HOSTED_ZONE, record_name=aws_seed.API_RECORD)


def _switch(request: FailoverRecordsRequest, to_region: str) -> str | None:
    """One DNS step of the failover (or failback) runbook, through its activity; the serving region."""
    plan = DnsChangePlan.build(run(failover.read_failover_records, request), to_region)
    done = run(failover.change_failover_records, plan)
    assert done.changed
    return done.records.serving_region


def test_failover_failback_and_failover_again_on_the_seeded_records(on_stack_emulator: MotoServer) -> None:
    aws_seed.seed()
    request = _seeded_request()
    assert run(failover.read_failover_records, request).serving_region == PRIMARY
    for cycle in range(2):
        assert _switch(request, BACKUP) == BACKUP, f"failover {cycle + 1}"
        assert _switch(request, PRIMARY) == PRIMARY, f"failback {cycle + 1}"
    records = run(failover.read_failover_records, request)
    assert {r.region: r.failover for r in records.records} == {PRIMARY: "PRIMARY", BACKUP: "SECONDARY"}
    assert all(r.health_check_id for r in records.records)  # the health checks stay with their records


def _zone_with_a_record() -> tuple[Any, str, Any]:
    """A zone of its own with one record, CREATEd (the seed UPSERTs, which moto journals apart)."""
    route53 = boto3.client("route53", region_name=aws_seed.ROUTE53_REGION)
    name = f"e{uuid.uuid4().hex[:8]}.example.com."
    zone_id = route53.create_hosted_zone(Name=name, CallerReference=name)["HostedZone"]["Id"]
    record: Any = {"Name": f"api.{name}", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.1"}]}
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [_change("CREATE", record)]})
    return route53, zone_id, record


def _change(action: str, record: Any) -> Any:
    return {"Action": action, "ResourceRecordSet": record}


def _there_and_back(route53: Any, zone_id: str, record: Any) -> None:
    """The failover's shape: replace the record by another in one batch, then put it back as first
    created (the failback), in one batch again; the last CREATE equals the first."""
    moved = {**record, "TTL": 30}
    route53.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [_change("DELETE", record), _change("CREATE", moved)]}
    )
    route53.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [_change("DELETE", moved), _change("CREATE", record)]}
    )


def test_a_record_deleted_can_be_created_again_and_an_existing_one_cannot(on_stack_emulator: MotoServer) -> None:
    route53, zone_id, record = _zone_with_a_record()
    _there_and_back(route53, zone_id, record)
    _there_and_back(route53, zone_id, record)
    listed = route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    assert [r["TTL"] for r in listed if r["Type"] == "A"] == [60]

    with pytest.raises(ClientError) as refused:  # moto's duplicate check stays for a record that exists
        route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [_change("CREATE", record)]})
    assert refused.value.response["Error"]["Code"] == "InvalidChangeBatch"


def test_plain_moto_still_refuses_what_the_stack_emulator_fixes(aws_env: MotoServer) -> None:
    """When this fails, moto fixed its journal check: devstack/aws_emulator.py can retire."""
    route53, zone_id, record = _zone_with_a_record()
    with pytest.raises(ClientError) as refused:
        _there_and_back(route53, zone_id, record)
    assert "but it already exists" in refused.value.response["Error"]["Message"]
