"""Multi-region failover: Route 53 failover records, the backup region's readiness, its tasks running.

The DNS change is bound to the plan the workflow computed once: it finds its own finished work on
a retry and makes no second call, refuses a plan whose records have since changed in another way,
sends exactly the call the plan renders (`plan.aws_calls()`) and reads the records back. Scaling
the backup up is the scaling runbook's own `scale_ecs_service`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities._aws import aws_error, client
from activities.ecs import _service
from activities.scaling import _capacity, _rollout, _scalable_target
from contracts import (
    DnsChangePlan,
    DnsChangeRecord,
    EcsCapacity,
    EcsCapacityRequest,
    EcsRunningWait,
    FailoverRecord,
    FailoverRecords,
    FailoverRecordsRequest,
    Preflight,
    PreflightCheck,
    PreflightRequest,
)
from contracts.systems import ProbeRequest, ProbeResult

if TYPE_CHECKING:
    from types_boto3_ecs import ECSClient
    from types_boto3_ecs.type_defs import ServiceTypeDef
    from types_boto3_route53 import Route53Client
    from types_boto3_route53.type_defs import ResourceRecordSetOutputTypeDef

# Route 53 is global; its API lives in us-east-1.
ROUTE53_REGION = "us-east-1"
# A change's propagation: GetChange every INSYNC_POLL until INSYNC, at most INSYNC_WITHIN (within
# the activity's one-minute start-to-close).
INSYNC_POLL = timedelta(seconds=2)
INSYNC_WITHIN = timedelta(seconds=40)


def fqdn(name: str) -> str:
    """A DNS name as Route 53 lists it: lower case, with the final dot."""
    return name.lower().rstrip(".") + "."


# --- Route 53


@activity.defn
def read_failover_records(request: FailoverRecordsRequest) -> FailoverRecords:
    """The record's failover records (ListResourceRecordSets); a missing zone fails for good."""
    route53 = client("route53", ROUTE53_REGION)
    try:
        zone_id = _zone_id(route53, request.zone_name)
        if zone_id is None:
            raise ApplicationError(
                f"no public hosted zone {fqdn(request.zone_name)}", type="NoSuchHostedZone", non_retryable=True
            )
        return _records(route53, zone_id, request.zone_name, request.record_name, request.record_type)
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"read the failover records of {request.record_name}") from err


@activity.defn
def change_failover_records(plan: DnsChangePlan) -> DnsChangeRecord:
    """The failover records to exactly `plan.to_records`, in one ChangeResourceRecordSets call,
    then read back."""
    route53 = client("route53", ROUTE53_REGION)
    name = f"{plan.record_name} {plan.record_type}"
    try:
        current = _records(route53, plan.hosted_zone_id, plan.zone_name, plan.record_name, plan.record_type)
        if current.records == plan.to_records:
            detail = f"{name} already as plan {plan.plan_id} wants ({plan.to_region} PRIMARY); no call made"
            return DnsChangeRecord(plan_id=plan.plan_id, changed=False, detail=detail, records=current)
        if current.records != plan.from_records:
            raise ApplicationError(
                f"{name} is now {current.describe()}, neither as plan {plan.plan_id} found it "
                f"({plan.from_state().describe()}) nor as it wants it: someone else changed it; "
                "refusing to act on a stale plan",
                type="StalePlan",
                non_retryable=True,
            )
        calls = plan.aws_calls()
        answer: dict[str, Any] = {}
        for call in calls:
            params: dict[str, Any] = dict(call.params)
            answer = dict(route53.change_resource_record_sets(**params)["ChangeInfo"])
        after = _records(route53, plan.hosted_zone_id, plan.zone_name, plan.record_name, plan.record_type)
        if after.records == plan.to_records and answer.get("Id"):
            answer["Status"] = _until_insync(route53, str(answer["Id"]), str(answer.get("Status", "PENDING")))
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"change the failover records of {name}") from err
    if after.records != plan.to_records:
        raise ApplicationError(
            f"{name} read back after change {answer.get('Id', '?')} of plan {plan.plan_id} is {after.describe()}, "
            f"not {plan.to_state().describe()}",
            type="ReadBackMismatch",
            non_retryable=True,
        )
    status = answer.get("Status")
    activity.logger.info("%s: %s (%s, change %s %s)", name, plan.describe(), plan.plan_id, answer.get("Id"), status)
    propagated = "INSYNC" if status == "INSYNC" else f"still {status} after {INSYNC_WITHIN.total_seconds():g} s"
    return DnsChangeRecord(
        plan_id=plan.plan_id,
        changed=True,
        detail=f"{plan.describe()}; change {answer.get('Id', '?')} {propagated}",
        calls=calls,
        change_id=answer.get("Id"),
        change_status=answer.get("Status"),
        records=after,
    )


def _until_insync(route53: Route53Client, change_id: str, status: str) -> str:
    """Route 53 answers a change PENDING, then INSYNC once every authoritative server has it
    (usually within 60 s): GetChange until then, at most INSYNC_WITHIN. Still pending then is
    said in the record (the verification that follows reads what DNS serves anyway)."""
    deadline = time.monotonic() + INSYNC_WITHIN.total_seconds()
    while status != "INSYNC" and time.monotonic() < deadline:
        time.sleep(INSYNC_POLL.total_seconds())
        status = route53.get_change(Id=change_id)["ChangeInfo"]["Status"]
    return status


def _zone_id(route53: Route53Client, zone_name: str) -> str | None:
    """The public hosted zone's bare id (without "/hostedzone/"), or None."""
    wanted = fqdn(zone_name)
    # ListHostedZonesByName starts at the name but goes on with the zones after it.
    for zone in route53.list_hosted_zones_by_name(DNSName=wanted)["HostedZones"]:
        if fqdn(zone["Name"]) == wanted and not zone.get("Config", {}).get("PrivateZone"):
            return zone["Id"].rpartition("/")[2]
    return None


def _records(
    route53: Route53Client, zone_id: str, zone_name: str, record_name: str, record_type: str
) -> FailoverRecords:
    name = fqdn(record_name)
    found: list[FailoverRecord] = []
    start: dict[str, str] = {"StartRecordName": name, "StartRecordType": record_type}
    while start:
        page = route53.list_resource_record_sets(HostedZoneId=zone_id, **start)  # type: ignore[arg-type]
        ours = [r for r in page["ResourceRecordSets"] if fqdn(r["Name"]) == name and r["Type"] == record_type]
        found += [_failover_record(r) for r in ours if "Failover" in r]
        # The listing is sorted by name and type: past the first other record, none is ours.
        more = page.get("IsTruncated") and len(ours) == len(page["ResourceRecordSets"])
        start = {"StartRecordName": page["NextRecordName"], "StartRecordType": page["NextRecordType"]} if more else {}
        if more and "NextRecordIdentifier" in page:
            start["StartRecordIdentifier"] = page["NextRecordIdentifier"]
    return FailoverRecords(
        hosted_zone_id=zone_id,
        zone_name=fqdn(zone_name),
        record_name=name,
        record_type=record_type,
        records=sorted(found, key=lambda r: r.set_identifier),
    )


def _failover_record(record: ResourceRecordSetOutputTypeDef) -> FailoverRecord:
    if "AliasTarget" in record or "ResourceRecords" not in record:
        # An alias failover record would need its target rendered in the plan; none is used yet.
        raise ApplicationError(
            f"{record['Name']} {record['Type']} {record.get('SetIdentifier')}: alias failover records are not "
            "supported",
            type="UnsupportedRecord",
            non_retryable=True,
        )
    return FailoverRecord(
        set_identifier=record["SetIdentifier"],
        failover=record["Failover"],
        values=sorted(r["Value"] for r in record["ResourceRecords"]),
        ttl=record.get("TTL", 0),
        health_check_id=record.get("HealthCheckId"),
    )


# --- readiness


@activity.defn
def preflight(request: PreflightRequest) -> Preflight:
    """Can traffic move to the backup? Each check reads AWS; a check that finds the estate wanting
    fails with its reason. Only a failed read (throttled, unreachable) raises, to be retried."""
    primary, backup = request.primary, request.backup
    try:
        backup_service = _find_service(client("ecs", backup.region), backup)
        checks = [_exists(backup, backup_service)]
        try:
            primary_service = _find_service(client("ecs", primary.region), primary)
            checks += _same_task_definition(primary, primary_service, backup, backup_service)
        except (ClientError, BotoCoreError) as err:
            if not _region_unreachable(err):
                raise
            checks += _unverified_comparison(primary, err, backup, backup_service)
        checks.append(_capacity_check(request, backup_service))
        dns_checks, records = _dns_checks(request)
        checks += dns_checks
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"check whether {_name(backup)} can take over from {_name(primary)}") from err
    return Preflight(checks=checks, records=records)


def _name(ref: EcsCapacityRequest) -> str:
    return f"{ref.cluster}/{ref.service} ({ref.region})"


def _find_service(ecs: ECSClient, ref: EcsCapacityRequest) -> ServiceTypeDef | None:
    """The service if ECS has it ACTIVE; None if it, or its cluster, is missing or being deleted."""
    try:
        found = ecs.describe_services(cluster=ref.cluster, services=[ref.service]).get("services", [])
    except ecs.exceptions.ClusterNotFoundException:
        return None
    return next((s for s in found if s.get("status") == "ACTIVE"), None)


def _exists(ref: EcsCapacityRequest, service: ServiceTypeDef | None) -> PreflightCheck:
    if service is None:
        return PreflightCheck(name="backup service exists", ok=False, detail=f"no ACTIVE ECS service {_name(ref)}")
    detail = (
        f"{_name(ref)} is ACTIVE: desired {service.get('desiredCount', 0)}, "
        f"running {service.get('runningCount', 0)}, on {service.get('taskDefinition', '?')}"
    )
    return PreflightCheck(name="backup service exists", ok=True, detail=detail)


def _same_task_definition(
    primary: EcsCapacityRequest,
    primary_service: ServiceTypeDef | None,
    backup: EcsCapacityRequest,
    backup_service: ServiceTypeDef | None,
) -> list[PreflightCheck]:
    """The backup runs the primary's task definition family, with the same image in each container."""
    missing = [
        f"no ACTIVE ECS service {_name(r)}"
        for r, s in ((primary, primary_service), (backup, backup_service))
        if s is None
    ]
    if primary_service is None or backup_service is None:
        reason = "; ".join(missing)
        return [
            PreflightCheck(name="same task definition family", ok=False, detail=reason),
            PreflightCheck(name="same container images", ok=False, detail=reason),
        ]
    ours = _task_definition(client("ecs", primary.region), primary_service["taskDefinition"])
    theirs = _task_definition(client("ecs", backup.region), backup_service["taskDefinition"])
    same_family = ours["family"] == theirs["family"]
    family = PreflightCheck(
        name="same task definition family",
        ok=same_family,
        detail=f"backup {theirs['family']}:{theirs['revision']}, primary {ours['family']}:{ours['revision']}",
    )
    our_images, their_images = _images(ours), _images(theirs)
    if our_images == their_images:
        images_detail = "both run " + ", ".join(f"{c}={i}" for c, i in sorted(our_images.items()))
    else:
        differing = sorted(set(our_images) | set(their_images))
        images_detail = "; ".join(
            f"{c}: backup {their_images.get(c, 'none')}, primary {our_images.get(c, 'none')}"
            for c in differing
            if our_images.get(c) != their_images.get(c)
        )
    images = PreflightCheck(name="same container images", ok=our_images == their_images, detail=images_detail)
    return [family, images]


def _region_unreachable(err: Exception) -> bool:
    """The region's API does not answer (no connection, a timeout, a 5xx): what a regional
    outage looks like from outside, as opposed to an answer (missing, denied, throttled)."""
    if isinstance(err, ClientError):
        return int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) >= 500
    return isinstance(err, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError)


def _unverified_comparison(
    primary: EcsCapacityRequest, err: Exception, backup: EcsCapacityRequest, backup_service: ServiceTypeDef | None
) -> list[PreflightCheck]:
    """The primary's region cannot be read, which is what a regional outage looks like: the
    backup's family and images cannot be compared with it. Blocking on that would block every
    real failover, so both checks pass UNVERIFIED, saying what the backup runs, for the
    approvers to judge. (A backup without a service still fails.)"""
    if backup_service is None:
        reason = f"no ACTIVE ECS service {_name(backup)}"
        return [
            PreflightCheck(name="same task definition family", ok=False, detail=reason),
            PreflightCheck(name="same container images", ok=False, detail=reason),
        ]
    theirs = _task_definition(client("ecs", backup.region), backup_service["taskDefinition"])
    unread = f"the primary {_name(primary)} cannot be read ({type(err).__name__}: {str(err)[:160]})"
    images = ", ".join(f"{c}={i}" for c, i in sorted(_images(theirs).items()))
    return [
        PreflightCheck(
            name="same task definition family",
            ok=True,
            verified=False,
            detail=f"{unread}; the backup runs {theirs['family']}:{theirs['revision']}",
        ),
        PreflightCheck(
            name="same container images", ok=True, verified=False, detail=f"{unread}; the backup runs {images}"
        ),
    ]


def _task_definition(ecs: ECSClient, arn: str) -> dict[str, Any]:
    return dict(ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"])


def _images(task_definition: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["image"] for c in task_definition.get("containerDefinitions", [])}


def _capacity_check(request: PreflightRequest, service: ServiceTypeDef | None) -> PreflightCheck:
    backup, target = request.backup, request.target_count
    if service is None:
        return PreflightCheck(name="capacity reaches target", ok=False, detail=f"no ACTIVE ECS service {_name(backup)}")
    scalable = _scalable_target(client("application-autoscaling", backup.region), backup.cluster, backup.service)
    if scalable is None:
        detail = f"no autoscaler manages {_name(backup)}: its desired count can be set to {target}"
        return PreflightCheck(name="capacity reaches target", ok=True, detail=detail)
    bounds = f"Application Auto Scaling bounds {scalable.min_capacity}..{scalable.max_capacity}"
    if scalable.max_capacity < target:
        detail = f"{bounds}: the maximum is below the target {target}"
        return PreflightCheck(name="capacity reaches target", ok=False, detail=detail)
    return PreflightCheck(name="capacity reaches target", ok=True, detail=f"{bounds} admit the target {target}")


def _dns_checks(request: PreflightRequest) -> tuple[list[PreflightCheck], FailoverRecords | None]:
    route53 = client("route53", ROUTE53_REGION)
    dns = request.dns
    zone_id = _zone_id(route53, dns.zone_name)
    if zone_id is None:
        detail = f"no public hosted zone {fqdn(dns.zone_name)}"
        return [
            PreflightCheck(name="hosted zone exists", ok=False, detail=detail),
            PreflightCheck(name="failover records exist", ok=False, detail=detail),
        ], None
    zone = PreflightCheck(name="hosted zone exists", ok=True, detail=f"{fqdn(dns.zone_name)} is zone {zone_id}")
    try:
        records = _records(route53, zone_id, dns.zone_name, dns.record_name, dns.record_type)
    except ApplicationError as err:  # a record of a kind the plan cannot render
        return [zone, PreflightCheck(name="failover records exist", ok=False, detail=str(err))], None
    missing = [r.region for r in (request.primary, request.backup) if records.region(r.region) is None]
    problem = records.problem() or (f"no failover record for {', '.join(missing)}" if missing else None)
    if problem:
        return [zone, PreflightCheck(name="failover records exist", ok=False, detail=problem)], records
    detail = f"{records.describe()}; serving: {records.serving_region}"
    return [zone, PreflightCheck(name="failover records exist", ok=True, detail=detail)], records


# --- ECS: the backup running its tasks


@activity.defn
def wait_for_ecs_running(request: EcsRunningWait) -> EcsCapacity:
    """Returns once the service runs at least `request.count` tasks and no deployment rolls out;
    heartbeats each read. Past the deadline, or with a desired count that can never get there, it
    fails for good."""
    ref = EcsCapacityRequest(cluster=request.cluster, service=request.service, region=request.region)
    name, ecs = _name(ref), client("ecs", request.region)
    while True:
        try:
            service = _service(ecs, request.cluster, request.service)
        except (ClientError, BotoCoreError) as err:
            raise aws_error(err, f"read the tasks of {name}") from err
        desired, running = service.get("desiredCount", 0), service.get("runningCount", 0)
        rolling_out, rollout = _rollout(service)
        if running >= request.count and not rolling_out:
            try:
                target = _scalable_target(client("application-autoscaling", request.region), ref.cluster, ref.service)
            except (ClientError, BotoCoreError) as err:
                raise aws_error(err, f"read the autoscaler of {name}") from err
            return _capacity(ref, service, target)
        if desired < request.count:
            raise ApplicationError(
                f"{name} wants {desired} tasks, fewer than the {request.count} awaited: someone else changed it",
                type="StalePlan",
                non_retryable=True,
            )
        state = f"{running} of {request.count} tasks running, {rollout}"
        left = request.deadline - datetime.now(UTC)
        if left <= timedelta(0):
            raise ApplicationError(
                f"{name}: {state} at the deadline {request.deadline.isoformat()}",
                type="DeadlineExceeded",
                non_retryable=True,
            )
        activity.heartbeat(state)
        activity.wait_for_cancelled_sync(min(request.poll_interval, left))
        if activity.is_cancelled():
            raise CancelledError(f"stopped waiting for {name}")


PROBE_TIMEOUT = 5.0  # seconds: a region that takes longer to say it is healthy is not


@activity.defn
async def probe_health(request: ProbeRequest) -> ProbeResult:
    """The worker's own probe of a region's health endpoint: 200 is healthy; any other answer,
    a timeout or no connection is a failed probe (a reading, not an activity failure)."""
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as http:
            response = await http.get(request.url)
    except httpx.HTTPError as err:
        return ProbeResult(region=request.region, url=request.url, ok=False, detail=f"unreachable: {err!r}"[:200])
    return ProbeResult(
        region=request.region,
        url=request.url,
        ok=response.status_code == 200,
        status_code=response.status_code,
        detail=f"HTTP {response.status_code}: {response.text[:120]}",
    )
