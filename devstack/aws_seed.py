"""The AWS estate of the hybrid-routing platform, created in the emulator.

`seed()` builds what the runbooks act on: the primary ECS service in eu-central-1, its
idle backup in us-west-2, the Lambda log group the P0 runbook searches, and the Route 53
failover records. The Lambda function itself lives in the Lambda emulator, seeded from
`lambda_functions()` when it starts. It only creates what is missing, so it is safe to run on every start
of the local stack: a second run must not undo what a runbook changed since (a rollback,
a failover, a scale-up) nor register another task definition revision.

boto3 reads AWS_ENDPOINT_URL itself, so the same code seeds moto or (deliberately) a
real sandbox account.
"""

from __future__ import annotations

import logging
import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

log = logging.getLogger(__name__)

PRIMARY_REGION = "eu-central-1"
SECONDARY_REGION = "us-west-2"
# Route 53 is global; its API lives in us-east-1.
ROUTE53_REGION = "us-east-1"

CLUSTER = "hybrid-routing-cluster"
BACKUP_CLUSTER = "hybrid-routing-cluster-backup"
SERVICE = "hybrid-router-service"
FAMILY = "hybrid-router"
CONTAINER = "hybrid-router"
# Revision 1 and 2 of the family, in that order; the service runs the last one.
GOOD_IMAGES = ("hybrid-router:1.0.0", "hybrid-router:1.1.0")
PRIMARY_DESIRED_COUNT = 2
# The backup stays cold until the failover runbook scales it up.
BACKUP_DESIRED_COUNT = 0

LOG_GROUP = "/aws/lambda/hybrid-router"
LOG_STREAM = "hybrid-router/demo"
# The Lambda function behind that log group, and the alias the scaling runbook gives
# provisioned concurrency (it cannot go on $LATEST). moto has no provisioned concurrency, so
# the local stack's Lambda emulator serves this function (devstack/lambda_emulator.py).
LAMBDA_FUNCTION = "hybrid-router"
LAMBDA_QUALIFIER = "live"

POSTMORTEM_BUCKET = "runbook-postmortems"  # the policies' postincident.bucket
REPORTS_BUCKET = "runbook-reports"  # the policies' reviews.bucket

# The demo service's metric history, so a review has a past to read on a fresh machine.
METRICS_NAMESPACE = "HybridRouting"  # devstack.demo_service publishes the present under it
METRICS_DIMENSIONS = [{"Name": "Service", "Value": "hybrid-router"}]
HISTORY_DAYS = 35
HISTORY_STEP = timedelta(minutes=5)  # the last RECENT_DAYS (what the daily review reads)
OLDER_STEP = timedelta(hours=1)  # before: hourly, enough for trends, and the seed stays quick
RECENT_DAYS = 3  # covers the bad night at full resolution
BAD_NIGHT = 2  # nights ago: the night that ended 2 mornings ago had a bad deploy

HOSTED_ZONE = "hybrid-routing.example.com."
API_RECORD = "api.hybrid-routing.example.com."
# Documentation address ranges (RFC 5737): never routable by accident.
REGION_ADDRESSES = {PRIMARY_REGION: "192.0.2.10", SECONDARY_REGION: "198.51.100.10"}
HEALTH_PATH = "/health/component/hybrid-router"


def seed() -> None:
    """Create whatever of the platform's AWS estate is missing; change nothing else."""
    _seed_region(PRIMARY_REGION, CLUSTER, PRIMARY_DESIRED_COUNT)
    _seed_region(SECONDARY_REGION, BACKUP_CLUSTER, BACKUP_DESIRED_COUNT)
    _seed_log_group(PRIMARY_REGION)
    _seed_dns()
    _seed_bucket(PRIMARY_REGION, POSTMORTEM_BUCKET)
    _seed_bucket(PRIMARY_REGION, REPORTS_BUCKET)
    seed_metric_history(PRIMARY_REGION, datetime.now(UTC))


# --- ECS -------------------------------------------------------------------------------


def container_definition(image: str) -> dict[str, Any]:
    version = image.rpartition(":")[2]
    return {
        "name": CONTAINER,
        "image": image,
        "cpu": 512,
        "memory": 1024,
        "essential": True,
        "portMappings": [{"containerPort": 8090, "hostPort": 8090, "protocol": "tcp"}],
        "environment": [
            {"name": "ROUTING_MODE", "value": "hybrid"},
            {"name": "APP_VERSION", "value": version},
        ],
    }


def _seed_region(region: str, cluster: str, desired_count: int) -> None:
    ecs = boto3.client("ecs", region_name=region)
    _ensure_cluster(ecs, cluster)
    revisions = _ensure_good_revisions(ecs)
    _ensure_service(ecs, cluster, f"{FAMILY}:{revisions}", desired_count)


def _ensure_cluster(ecs: Any, cluster: str) -> None:
    found = ecs.describe_clusters(clusters=[cluster])["clusters"]
    if any(c["status"] == "ACTIVE" for c in found):
        return
    ecs.create_cluster(clusterName=cluster)
    log.info("created ECS cluster %s", cluster)


def _family_revision_count(ecs: Any) -> int:
    # Deregistered revisions still hold their numbers, so count them too: otherwise a
    # cleaned-up bad deploy would make the next seed register a third "good" revision.
    count = 0
    for status in ("ACTIVE", "INACTIVE"):
        pages = ecs.get_paginator("list_task_definitions").paginate(familyPrefix=FAMILY, status=status)
        arns = (arn for page in pages for arn in page["taskDefinitionArns"])
        # familyPrefix is a prefix match: "hybrid-router-canary" is not ours.
        count += sum(1 for arn in arns if arn.rpartition("/")[2].rpartition(":")[0] == FAMILY)
    return count


def _ensure_good_revisions(ecs: Any) -> int:
    """Register the good revisions the family lacks; returns the last good revision number."""
    existing = _family_revision_count(ecs)
    for image in GOOD_IMAGES[existing:]:
        registered = ecs.register_task_definition(family=FAMILY, containerDefinitions=[container_definition(image)])
        log.info("registered %s", registered["taskDefinition"]["taskDefinitionArn"])
    return len(GOOD_IMAGES)


def _ensure_service(ecs: Any, cluster: str, task_definition: str, desired_count: int) -> None:
    found = ecs.describe_services(cluster=cluster, services=[SERVICE])["services"]
    if any(s["status"] == "ACTIVE" for s in found):
        return
    # Created empty, then sized: moto starts a service's tasks only on UpdateService, and marks
    # a service created with more tasks than run as rolling out (IN_PROGRESS) for good, which
    # would hold every scaling decision. So the seeded service reads as a settled deployment.
    ecs.create_service(cluster=cluster, serviceName=SERVICE, taskDefinition=task_definition, desiredCount=0)
    if desired_count:
        ecs.update_service(cluster=cluster, service=SERVICE, desiredCount=desired_count)
    log.info("created ECS service %s/%s on %s (desired %d)", cluster, SERVICE, task_definition, desired_count)


# --- Lambda ----------------------------------------------------------------------------


def lambda_functions() -> dict[str, Any]:
    """The Lambda emulator's seed file: the functions that exist, with their qualifiers."""
    return {"functions": [{"name": LAMBDA_FUNCTION, "qualifiers": [LAMBDA_QUALIFIER]}]}


# --- CloudWatch Logs -------------------------------------------------------------------


def _seed_log_group(region: str) -> None:
    ensure_log_stream(boto3.client("logs", region_name=region), LOG_GROUP, LOG_STREAM)


def _seed_bucket(region: str, bucket: str) -> None:
    """The post-mortems' bucket (versioned, as a production one should be)."""
    s3 = boto3.client("s3", region_name=region)
    try:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]
        log.info("created bucket %s", bucket)
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        return
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def ensure_log_stream(logs: Any, group: str, stream: str) -> None:
    """Create the group and stream if absent; the demo service reuses this on a fresh emulator."""
    try:
        logs.create_log_group(logGroupName=group)
        log.info("created log group %s", group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    try:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass


# --- CloudWatch metrics ----------------------------------------------------------------


def history_profile(at: datetime, now: datetime, rng: random.Random) -> dict[str, float]:
    """One datapoint of the demo router's past: traffic with a daily rhythm (busiest
    mid-afternoon UTC, quietest before dawn) growing about 1 % a day, latency and cache misses
    following the load, one bad night (a broken deploy from 01:00 to 03:30 UTC) and, last
    night, 20 minutes of errors over the warning line from 04:00."""
    days_ago = (now - at).total_seconds() / 86400
    growth = 1.01 ** (HISTORY_DAYS - days_ago)
    rhythm = 0.55 + 0.45 * math.sin((at.hour + at.minute / 60 - 8) / 24 * 2 * math.pi)
    rps = 25 * growth * rhythm * rng.uniform(0.93, 1.07)
    p95 = 700 + 9 * rps + rng.uniform(-40, 40)
    errors = 0.25 + rng.uniform(0, 0.15)
    cache = 86 - rps / 12 + rng.uniform(-1.5, 1.5)
    night_end = (now - timedelta(days=BAD_NIGHT)).replace(hour=9, minute=0, second=0, microsecond=0)
    if night_end - timedelta(hours=8) <= at < night_end - timedelta(hours=5, minutes=30):
        p95, errors, cache = 3200 + rng.uniform(-300, 300), 7 + rng.uniform(-1, 2), 62 + rng.uniform(-3, 3)
    last_night = now.replace(hour=9, minute=0, second=0, microsecond=0)
    if last_night > now:
        last_night -= timedelta(days=1)
    if last_night - timedelta(hours=5) <= at < last_night - timedelta(hours=4, minutes=40):
        errors = 2.5 + rng.uniform(0, 0.8)
    return {"rps": rps, "p95": p95, "errors": errors, "cache": cache, "cpu": 12 + rps * 0.9, "memory": 30 + rps * 0.2}


def _history_datum(name: str, at: datetime, value: float, unit: str) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": METRICS_DIMENSIONS,
        "Timestamp": at,
        "Value": round(value, 3),
        "Unit": unit,
    }


def history_data(at: datetime, profile: dict[str, float], step: timedelta) -> list[dict[str, Any]]:
    seconds = step.total_seconds()
    requests = max(1, round(profile["rps"] * seconds))
    average = profile["p95"] / 1.8  # a log-normal's median-ish against its 95th percentile
    return [
        _history_datum("LatencyP95", at, profile["p95"], "Milliseconds"),
        _history_datum("ErrorRate", at, profile["errors"], "Percent"),
        _history_datum("CacheHitRate", at, profile["cache"], "Percent"),
        _history_datum("CPUUtilization", at, profile["cpu"], "Percent"),
        _history_datum("MemoryUtilization", at, profile["memory"], "Percent"),
        _history_datum("RequestCount", at, requests, "Count"),
        {  # the requests' latencies, aggregated as CloudWatch keeps them
            "MetricName": "Latency",
            "Dimensions": METRICS_DIMENSIONS,
            "Timestamp": at,
            "StatisticValues": {
                "SampleCount": requests,
                "Sum": round(average * requests, 1),
                "Minimum": round(average / 4, 1),
                "Maximum": round(profile["p95"] * 1.6, 1),
            },
            "Unit": "Milliseconds",
        },
    ]


def history_points(now: datetime, days: int = HISTORY_DAYS) -> list[tuple[datetime, dict[str, float], timedelta]]:
    """The seeded past up to `now`: each datapoint's time, profile and step (5-minute for the
    last RECENT_DAYS, hourly before). The same on every machine: tests recompute from it what
    the reviews must find."""
    rng = random.Random(13)  # the same past on every fresh machine
    end = now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % 5)
    at = end - timedelta(days=days)
    recent = end - timedelta(days=RECENT_DAYS)
    points = []
    while at < end:
        step = HISTORY_STEP if at >= recent else OLDER_STEP
        points.append((at, history_profile(at, now, rng), step))
        at += step
    return points


def seed_metric_history(region: str, now: datetime, days: int = HISTORY_DAYS) -> int:
    """`days` of datapoints up to `now` (5-minute for the last RECENT_DAYS, hourly before),
    once: an emulator that has the oldest one already has the history. Returns how many
    datapoints were put."""
    cloudwatch: Any = boto3.client("cloudwatch", region_name=region)
    end = now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % 5)
    start = end - timedelta(days=days)
    oldest = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "seeded",
                "MetricStat": {
                    "Metric": {
                        "Namespace": METRICS_NAMESPACE,
                        "MetricName": "RequestCount",
                        "Dimensions": METRICS_DIMENSIONS,
                    },
                    "Period": int(OLDER_STEP.total_seconds()),
                    "Stat": "SampleCount",
                },
            }
        ],
        StartTime=start,
        EndTime=start + OLDER_STEP,
    )
    if oldest["MetricDataResults"][0]["Values"]:
        return 0
    data: list[dict[str, Any]] = []
    for at, profile, step in history_points(now, days):
        data += history_data(at, profile, step)
    for first in range(0, len(data), 1000):  # PutMetricData takes at most 1000 datapoints
        cloudwatch.put_metric_data(Namespace=METRICS_NAMESPACE, MetricData=data[first : first + 1000])
    log.info("seeded %d days of %s metrics (%d datapoints)", days, METRICS_NAMESPACE, len(data))
    return len(data)


# --- Route 53 --------------------------------------------------------------------------


def _seed_dns() -> None:
    route53 = boto3.client("route53", region_name=ROUTE53_REGION)
    zone_id = _ensure_hosted_zone(route53)
    health_checks = {region: _ensure_health_check(route53, region) for region in REGION_ADDRESSES}
    _ensure_failover_records(route53, zone_id, health_checks)


def find_hosted_zone_id(route53: Any, name: str = HOSTED_ZONE) -> str | None:
    # list_hosted_zones_by_name starts at `name` but may return later zones too.
    for zone in route53.list_hosted_zones_by_name(DNSName=name)["HostedZones"]:
        if zone["Name"] == name and not zone.get("Config", {}).get("PrivateZone"):
            return zone["Id"]
    return None


def _ensure_hosted_zone(route53: Any) -> str:
    zone_id = find_hosted_zone_id(route53)
    if zone_id:
        return zone_id
    created = route53.create_hosted_zone(Name=HOSTED_ZONE, CallerReference=f"seed-{HOSTED_ZONE}")
    log.info("created hosted zone %s", HOSTED_ZONE)
    return created["HostedZone"]["Id"]


def _health_check_reference(region: str) -> str:
    return f"hybrid-router-{region}"


def _ensure_health_check(route53: Any, region: str) -> str:
    reference = _health_check_reference(region)
    for page in route53.get_paginator("list_health_checks").paginate():
        for check in page["HealthChecks"]:
            if check["CallerReference"] == reference:
                return check["Id"]
    created = route53.create_health_check(
        CallerReference=reference,
        HealthCheckConfig={
            "Type": "HTTPS",
            "FullyQualifiedDomainName": f"{region}.{API_RECORD.rstrip('.')}",
            "Port": 443,
            "ResourcePath": HEALTH_PATH,
            "RequestInterval": 30,
            "FailureThreshold": 3,
        },
    )
    check_id = created["HealthCheck"]["Id"]
    route53.change_tags_for_resource(
        ResourceType="healthcheck", ResourceId=check_id, AddTags=[{"Key": "Name", "Value": reference}]
    )
    log.info("created Route 53 health check %s (%s)", reference, check_id)
    return check_id


def _existing_set_identifiers(route53: Any, zone_id: str) -> set[str]:
    listed = route53.list_resource_record_sets(HostedZoneId=zone_id, StartRecordName=API_RECORD, StartRecordType="A")
    return {
        record["SetIdentifier"]
        for record in listed["ResourceRecordSets"]
        if record["Name"] == API_RECORD and record["Type"] == "A" and "SetIdentifier" in record
    }


def _ensure_failover_records(route53: Any, zone_id: str, health_checks: dict[str, str]) -> None:
    roles = {PRIMARY_REGION: "PRIMARY", SECONDARY_REGION: "SECONDARY"}
    existing = _existing_set_identifiers(route53, zone_id)
    # Only absent records are created: a failover the runbook made must survive a re-seed. They
    # are created by UPSERT: moto 5.2.5 refuses a CREATE equal to one in its change journal while
    # the name has records, even those the same batch deletes first, so the failback's re-creation
    # of the seeded records (delete and create in one batch) would fail against plain moto (the
    # tests' emulator); the stack's (devstack/aws_emulator.py) also lets later cycles pass.
    changes = [
        {
            "Action": "UPSERT",
            "ResourceRecordSet": {
                "Name": API_RECORD,
                "Type": "A",
                "SetIdentifier": region,
                "Failover": role,
                "TTL": 60,
                "ResourceRecords": [{"Value": REGION_ADDRESSES[region]}],
                "HealthCheckId": health_checks[region],
            },
        }
        for region, role in roles.items()
        if region not in existing
    ]
    if changes:
        route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
        log.info("created %d failover record(s) for %s", len(changes), API_RECORD)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    seed()
