"""The demo hybrid-router: a stand-in for the platform whose health the runbooks check.

Its health is not a flag in this process: it follows what the AWS emulator says is
deployed. `runbook demo break` rolls out a task definition revision carrying DEMO_FAULT;
from then on this service answers unhealthy and publishes the metrics and log lines of a
bad deploy, until something (the runbook's rollback, or `runbook demo heal`) puts a good
revision back. The only state kept here is the emergency switch, which on the real
platform also lives in the application, not in AWS, and the offered load.

The offered load (`runbook demo load hybrid-router --cpu 90`): the CPU (memory, p95, queue
depth) the service would show on the task count it runs when the load is set. What it
publishes is that load spread over the tasks ECS says it runs now, so scaling up really
brings the CPU down and scaling back in brings it up.

Regions (the failover runbook's probes): `GET /region/{region}/health` answers 200 while that
region is not taken down (`runbook demo break-region eu-central-1`, in this process's memory
like the emergency switch) and its ECS service (the primary, or the backup in us-west-2) runs
at least one task of a good revision. `GET /region/{region}/canary` is the region itself
(the P0 incident's check of it): 503 only while the region is taken down, whatever the service
does. `GET /public/health` is the public name
api.hybrid-routing.example.com as a client meets it: the region its PRIMARY Route 53 failover
record names answers (the emulator never evaluates health checks, so PRIMARY always wins), so
the failover's DNS change really moves the traffic.

The Bedrock client (health component `bedrock-client`): while hybrid routing is on, the platform
sends a request through Bedrock every `--bedrock-interval` seconds (InvokeModel, to the stack's
Bedrock emulator). Its circuit breaker opens after 5 consecutive failed calls and serves the
fallback (cached, template, simplified, then an error response) instead of calling Bedrock; after
`--breaker-reset` seconds one trial call (half-open) closes it again or keeps it open. The system
status shows the breaker and the fallback rate; `runbook demo break|deny|heal bedrock` sets the
emulator's faults. Re-enabling hybrid routing starts the breaker afresh.

    python -m devstack.demo_service --host 127.0.0.1 --port 8090 [--metrics-interval 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import logging
import math
import os
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import boto3
import uvicorn
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from devstack import aws_seed
from devstack.aws_seed import LOG_GROUP, LOG_STREAM, ensure_log_stream, find_hosted_zone_id
from devstack.demo import ServiceNotFound, fault_of, task_definition_of_service

log = logging.getLogger("devstack.demo_service")  # not "__main__" under -m

COMPONENT = "hybrid-router"
METRICS_REGION = "eu-central-1"
METRICS_NAMESPACE = "HybridRouting"
METRICS_DIMENSIONS = [{"Name": "Service", "Value": COMPONENT}]
LATENCY_SAMPLES_PER_TICK = 20

# A health probe must answer well inside the runbook's HTTP timeout even when the
# emulator is down, so ECS and Route 53 get one short attempt; publishing may take its time.
_PROBE_CONFIG = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1, "mode": "standard"})
_PUBLISH_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"})


# --- What is deployed ------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    """One look at ECS: the task definition the service runs, or why we could not tell."""

    task_definition: str | None
    image: str | None
    fault: str | None
    error: str | None
    observed_at: float
    tasks: int | None = None  # the desired count: the emulator runs no tasks, it stands for them
    running: int | None = None  # ECS's runningCount (moto sets it to the desired count on UpdateService)

    @property
    def healthy(self) -> bool:
        return self.error is None and self.fault is None

    @property
    def reason(self) -> str | None:
        if self.error is not None:
            return self.error
        if self.fault is not None:
            return f"task definition {self.task_definition} carries DEMO_FAULT={self.fault}"
        return None


class DeploymentProbe:
    """Describes the ECS service at most once per `ttl` seconds, however many ask."""

    def __init__(self, ecs: Any, cluster: str, service: str, ttl: float) -> None:
        self._ecs = ecs
        self._cluster = cluster
        self._service = service
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self._last: Deployment | None = None

    async def observe(self) -> Deployment:
        async with self._lock:
            if self._last is None or time.monotonic() - self._last.observed_at >= self._ttl:
                self._last = await run_in_threadpool(self._describe)
            return self._last

    def _describe(self) -> Deployment:
        now = time.monotonic()
        try:
            task_definition = task_definition_of_service(self._ecs, self._cluster, self._service)
            found = self._ecs.describe_services(cluster=self._cluster, services=[self._service])["services"]
            active: dict[str, Any] = next((s for s in found if s.get("status") == "ACTIVE"), {})
            tasks, running = active.get("desiredCount"), active.get("runningCount")
        except ServiceNotFound as exc:
            return Deployment(None, None, None, str(exc), now)
        except ClientError as exc:
            # ECS answered, so "unreachable" would send the operator to the wrong place.
            return Deployment(None, None, None, f"ECS refused the lookup: {exc}", now)
        except Exception as exc:  # noqa: BLE001 - any failure to ask ECS means "cannot tell"
            return Deployment(None, None, None, f"cannot reach ECS: {type(exc).__name__}: {exc}", now)
        containers = task_definition.get("containerDefinitions", [])
        return Deployment(
            task_definition=task_definition["taskDefinitionArn"],
            image=containers[0]["image"] if containers else None,
            fault=fault_of(task_definition),
            error=None,
            observed_at=now,
            tasks=tasks,
            running=running,
        )


# --- Regions and the public name --------------------------------------------------------


@dataclass(frozen=True)
class RegionService:
    """The ECS service that serves the platform in one region."""

    region: str
    cluster: str
    service: str


def region_problem(where: RegionService, deployment: Deployment, down: bool) -> str | None:
    """Why the region cannot serve, or None: taken down, a bad or unknown deployment, no task."""
    if down:
        return f"{where.region} is down (runbook demo break-region {where.region}; heal-region brings it back)"
    if not deployment.healthy:
        return deployment.reason
    if not deployment.running:
        return (
            f"ECS {where.cluster}/{where.service} in {where.region} runs no task "
            f"(running {deployment.running}, desired {deployment.tasks})"
        )
    return None


def region_health_body(where: RegionService, deployment: Deployment, down: bool) -> tuple[dict[str, Any], int]:
    problem = region_problem(where, deployment, down)
    body: dict[str, Any] = {
        "region": where.region,
        "status": "healthy" if problem is None else "unhealthy",
        "cluster": where.cluster,
        "service": where.service,
        "running_tasks": deployment.running,
        "desired_tasks": deployment.tasks,
        "task_definition": deployment.task_definition,
    }
    if problem is not None:
        body["reason"] = problem
    return body, 200 if problem is None else 503


@dataclass(frozen=True)
class Routing:
    """One look at the public name's failover records: the region its PRIMARY record names."""

    serving: str | None
    roles: dict[str, str]  # set identifier (a region) -> PRIMARY or SECONDARY
    error: str | None
    observed_at: float


class RoutingProbe:
    """Reads the failover records at most once per `ttl` seconds, however many ask."""

    def __init__(self, route53: Any, zone_name: str, record_name: str, ttl: float) -> None:
        self._route53 = route53
        self._zone_name = zone_name
        self._record_name = record_name
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self._last: Routing | None = None

    async def observe(self) -> Routing:
        async with self._lock:
            if self._last is None or time.monotonic() - self._last.observed_at >= self._ttl:
                self._last = await run_in_threadpool(self._read)
            return self._last

    def _read(self) -> Routing:
        now = time.monotonic()
        try:
            zone_id = find_hosted_zone_id(self._route53, self._zone_name)
            if zone_id is None:
                return Routing(None, {}, f"no public hosted zone {self._zone_name}", now)
            listed = self._route53.list_resource_record_sets(
                HostedZoneId=zone_id, StartRecordName=self._record_name, StartRecordType="A"
            )["ResourceRecordSets"]
        except ClientError as exc:
            return Routing(None, {}, f"Route 53 refused the lookup: {exc}", now)
        except Exception as exc:  # noqa: BLE001 - any failure to ask Route 53 means "cannot tell"
            return Routing(None, {}, f"cannot reach Route 53: {type(exc).__name__}: {exc}", now)
        roles = {
            record["SetIdentifier"]: record["Failover"]
            for record in listed
            if record["Name"] == self._record_name and record["Type"] == "A" and "Failover" in record
        }
        primary = [region for region, role in roles.items() if role == "PRIMARY"]
        if len(primary) != 1:
            return Routing(None, roles, f"{self._record_name} has {len(primary)} PRIMARY failover records", now)
        return Routing(primary[0], roles, None, now)


# --- What the platform would report -----------------------------------------------------


@dataclass(frozen=True)
class Profile:
    latency_p95_ms: float
    error_rate_pct: float
    cpu_pct: float
    memory_pct: float
    queue_depth: float
    cache_hit_pct: float
    requests_per_second: float


# A healthy router sits under half of every scaling threshold (CPU 70 %, memory 80 %), so a
# scaling run scales back in once an offered load is cleared.
HEALTHY = Profile(800, 0.3, 25, 35, 5, 85, 40)
BROKEN = Profile(3500, 12.0, 85, 72, 150, 65, 40)
# Standard routing carries the traffic while hybrid routing is switched off: a little
# slower than a healthy hybrid router, nowhere near a broken one.
FALLBACK = Profile(900, 0.5, 30, 38, 8, 80, 40)


LOADS = {"cpu": "cpu_pct", "memory": "memory_pct", "p95": "latency_p95_ms", "queue": "queue_depth"}


@dataclass
class OfferedLoad:
    """Gauges as they would read on `tasks` tasks (`demo load`); spread over the tasks running."""

    values: dict[str, float]
    tasks: int

    def on(self, profile: Profile, running: int | None) -> Profile:
        spread = self.tasks / max(1, running or self.tasks)
        return replace(profile, **{LOADS[name]: round(value * spread, 3) for name, value in self.values.items()})


def profile_for(deployment: Deployment, hybrid_routing_enabled: bool, load: OfferedLoad | None = None) -> Profile:
    if not hybrid_routing_enabled:
        profile = FALLBACK
    else:
        profile = HEALTHY if deployment.healthy else BROKEN
    return load.on(profile, deployment.tasks) if load is not None else profile


def system_status(deployment: Deployment, hybrid_routing_enabled: bool, breaker_state: str = "closed") -> str:
    # With hybrid routing off nothing depends on the router or on Bedrock, so their state is no outage.
    if hybrid_routing_enabled and (not deployment.healthy or breaker_state != "closed"):
        return "degraded"
    return "healthy"


def metric_data(profile: Profile, interval: float, rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    def jitter(value: float) -> float:
        return round(value * rng.uniform(0.96, 1.04), 3)

    gauges = [
        ("LatencyP95", jitter(profile.latency_p95_ms), "Milliseconds"),
        ("ErrorRate", jitter(profile.error_rate_pct), "Percent"),
        ("CPUUtilization", jitter(profile.cpu_pct), "Percent"),
        ("MemoryUtilization", jitter(profile.memory_pct), "Percent"),
        ("QueueDepth", round(jitter(profile.queue_depth)), "Count"),
        ("CacheHitRate", jitter(profile.cache_hit_pct), "Percent"),
        ("RequestCount", max(1, round(jitter(profile.requests_per_second * interval))), "Count"),
    ]
    data = [
        {
            "MetricName": name,
            "Dimensions": METRICS_DIMENSIONS,
            "Timestamp": now,
            "Value": value,
            "Unit": unit,
            "StorageResolution": 1,
        }
        for name, value, unit in gauges
    ]
    data.append(
        {
            "MetricName": "Latency",
            "Dimensions": METRICS_DIMENSIONS,
            "Timestamp": now,
            "Values": latency_samples(profile.latency_p95_ms, LATENCY_SAMPLES_PER_TICK, rng),
            "Unit": "Milliseconds",
            "StorageResolution": 1,
        }
    )
    return data


def latency_samples(p95_ms: float, count: int, rng: random.Random) -> list[float]:
    # Request latencies are roughly log-normal; pick the median so that the 95th
    # percentile lands on the profile's p95, which real CloudWatch then reports back.
    sigma = 0.35
    median = p95_ms / math.exp(1.645 * sigma)
    return [round(rng.lognormvariate(math.log(median), sigma), 1) for _ in range(count)]


def log_messages(deployment: Deployment, profile: Profile, hybrid_routing_enabled: bool) -> list[str]:
    if not deployment.healthy:
        where = deployment.task_definition or "unknown task definition"
        return [
            f"ERROR hybrid-router: model route resolution failed ({deployment.reason})",
            f"ERROR hybrid-router: upstream request timed out after {profile.latency_p95_ms:.0f} ms on {where}",
            f"ERROR hybrid-router: error rate {profile.error_rate_pct:.1f}% "
            f"(hybrid routing {'enabled' if hybrid_routing_enabled else 'disabled'})",
        ]
    mode = "hybrid" if hybrid_routing_enabled else "standard (hybrid routing disabled)"
    return [
        f"INFO hybrid-router: serving on {deployment.task_definition} via {mode} routing, "
        f"p95 {profile.latency_p95_ms:.0f} ms, error rate {profile.error_rate_pct:.1f}%"
    ]


# --- The emergency switch -----------------------------------------------------------------


@dataclass
class PlatformState:
    """The emergency switch: in the application's memory, as on the real platform. The regions
    taken down are here too: a demo stand-in for a regional outage."""

    hybrid_routing_enabled: bool = True
    load: OfferedLoad | None = None
    regions_down: set[str] = field(default_factory=set)  # `runbook demo break-region`
    # every call of the switch, as the demo shows it (`/demo/state`): a runbook that switched twice shows here
    switch_calls: list[dict[str, Any]] = field(default_factory=list)

    def set_hybrid_routing(self, enabled: bool) -> bool:
        changed = self.hybrid_routing_enabled != enabled
        self.hybrid_routing_enabled = enabled
        self.switch_calls.append({"at": datetime.now(UTC).isoformat(), "enabled": enabled, "changed": changed})
        return changed

    def set_region_down(self, region: str, down: bool) -> bool:
        changed = (region in self.regions_down) != down
        if down:
            self.regions_down.add(region)
        else:
            self.regions_down.discard(region)
        return changed


# --- The Bedrock client and its circuit breaker -----------------------------------------

BEDROCK_COMPONENT = "bedrock-client"
BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"  # policy/demo.yaml's bedrock model
BREAKER_THRESHOLD = 5  # consecutive failed Bedrock calls that open the breaker (the runbook's number)
FALLBACKS = ("cached response", "template response", "simplified response", "error response")
_BEDROCK_CONFIG = Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 1, "mode": "standard"})


@dataclass
class CircuitBreaker:
    """Closed: calls go to Bedrock. Open (after `threshold` consecutive failures): the fallback
    answers without calling. Half-open (`reset_after` seconds later): one trial call decides."""

    threshold: int = BREAKER_THRESHOLD
    reset_after: float = 10.0
    clock: Callable[[], float] = time.monotonic
    state: str = "closed"
    consecutive_failures: int = 0
    opened_at: float | None = None
    last_error: str | None = None
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=50))  # True: the fallback answered

    def allow(self) -> bool:
        if self.state == "open" and self.opened_at is not None and self.clock() - self.opened_at >= self.reset_after:
            self.state = "half-open"
        return self.state != "open"

    def succeeded(self) -> None:
        self.state, self.consecutive_failures, self.opened_at, self.last_error = "closed", 0, None, None
        self.recent.append(False)

    def failed(self, error: str) -> None:
        self.consecutive_failures += 1
        self.last_error = error
        self.recent.append(True)
        if self.state == "half-open" or self.consecutive_failures >= self.threshold:
            if self.state != "open":
                log.warning("bedrock circuit breaker open after %d failures: %s", self.consecutive_failures, error)
            self.state, self.opened_at = "open", self.clock()

    def short_circuited(self) -> None:
        self.recent.append(True)

    def reset(self) -> None:
        self.state, self.consecutive_failures, self.opened_at, self.last_error = "closed", 0, None, None
        self.recent.clear()

    @property
    def fallback_rate_pct(self) -> float:
        return round(100.0 * sum(self.recent) / len(self.recent), 1) if self.recent else 0.0

    def view(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "consecutive_failures": self.consecutive_failures,
            "threshold": self.threshold,
            "fallback_rate_pct": self.fallback_rate_pct,
            "last_error": self.last_error,
        }


class BedrockTraffic:
    """The platform's requests that hybrid routing sends through Bedrock, behind the breaker."""

    def __init__(self, runtime: Any, breaker: CircuitBreaker, platform: PlatformState) -> None:
        self._runtime = runtime
        self.breaker = breaker
        self._platform = platform
        self.served = 0
        self.last_answer: str | None = None

    async def run_forever(self, interval: float) -> None:
        while True:
            try:
                await self.request_once()
            except Exception:  # noqa: BLE001 - the demo must outlive a bad request
                log.exception("bedrock request failed unexpectedly")
            await asyncio.sleep(interval)

    async def request_once(self) -> str:
        """Who answered one request: standard routing, Bedrock, or a fallback."""
        if not self._platform.hybrid_routing_enabled:
            answer = "standard routing"
        elif not self.breaker.allow():
            self.breaker.short_circuited()
            answer = FALLBACKS[self.served % len(FALLBACKS)]
        else:
            try:
                await run_in_threadpool(self._invoke)
            except (ClientError, BotoCoreError) as err:
                code = err.response.get("Error", {}).get("Code", "Unknown") if isinstance(err, ClientError) else ""
                self.breaker.failed(f"{code}: {err}" if code else str(err))
                answer = FALLBACKS[self.served % len(FALLBACKS)]
            else:
                self.breaker.succeeded()
                answer = "bedrock"
        self.served += 1
        self.last_answer = answer
        return answer

    def _invoke(self) -> None:
        body = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "ping"}],
        }
        self._runtime.invoke_model(
            modelId=BEDROCK_MODEL, body=json.dumps(body), contentType="application/json", accept="application/json"
        )

    def health(self) -> tuple[dict[str, Any], int]:
        breaker = self.breaker
        body: dict[str, Any] = {"component": BEDROCK_COMPONENT, "circuit_breaker": breaker.view()}
        if breaker.state != "closed":
            reason = f"circuit breaker {breaker.state} after {breaker.consecutive_failures} consecutive failed calls"
            reason += f" ({breaker.last_error})" if breaker.last_error else ""
            return {**body, "status": "unhealthy", "reason": reason}, 503
        idle = "" if self._platform.hybrid_routing_enabled else " (idle: hybrid routing disabled)"
        return {**body, "status": "healthy", "detail": f"serving through Bedrock{idle}"}, 200


# --- Publishing --------------------------------------------------------------------------


class Publisher:
    """Sends CloudWatch metrics and log lines reflecting the current state, once per tick."""

    def __init__(self, cloudwatch: Any, logs: Any, probe: DeploymentProbe, platform: PlatformState) -> None:
        self._cloudwatch = cloudwatch
        self._logs = logs
        self._probe = probe
        self._platform = platform
        self._rng = random.Random()
        self.last: dict[str, Any] | None = None

    async def run_forever(self, interval: float) -> None:
        """One tick every `interval` on a fixed cadence (a slow tick does not push the next
        ones back), so every period of a metric gets its datapoint as an agent's would; a tick
        that overran its slot skips the slots it missed rather than bunching up."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            try:
                await self.publish_once(interval)
            except Exception:  # noqa: BLE001 - the demo must outlive a bad tick
                log.exception("publishing tick failed")
            next_tick += interval
            now = loop.time()
            if next_tick <= now:
                next_tick += (math.floor((now - next_tick) / interval) + 1) * interval
            await asyncio.sleep(next_tick - now)

    async def publish_once(self, interval: float) -> None:
        deployment = await self._probe.observe()
        enabled = self._platform.hybrid_routing_enabled
        profile = profile_for(deployment, enabled, self._platform.load)
        now = datetime.now(UTC)
        try:
            await run_in_threadpool(self._put_metrics, metric_data(profile, interval, self._rng, now))
            await run_in_threadpool(self._put_logs, log_messages(deployment, profile, enabled), now)
        except Exception as exc:  # noqa: BLE001 - a lost tick is retried by the next one
            log.warning("publishing metrics failed, retrying next tick: %s", exc)
            self.last = {"at": now.isoformat(), "ok": False, "error": str(exc)}
            return
        self.last = {
            "at": now.isoformat(),
            "ok": True,
            "task_definition": deployment.task_definition,
            "healthy": deployment.healthy,
            "hybrid_routing": _routing_label(enabled),
            "latency_p95_ms": profile.latency_p95_ms,
            "error_rate_pct": profile.error_rate_pct,
            "cpu_pct": profile.cpu_pct,
            "memory_pct": profile.memory_pct,
            "queue_depth": profile.queue_depth,
            "tasks": deployment.tasks,
        }

    def _put_metrics(self, data: list[dict[str, Any]]) -> None:
        self._cloudwatch.put_metric_data(Namespace=METRICS_NAMESPACE, MetricData=data)

    def _put_logs(self, messages: list[str], now: datetime) -> None:
        timestamp = int(now.timestamp() * 1000)
        events = [{"timestamp": timestamp, "message": message} for message in messages]
        try:
            self._logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=LOG_STREAM, logEvents=events)
        except self._logs.exceptions.ResourceNotFoundException:
            # A freshly restarted emulator has lost the seeded group: recreate and resend.
            ensure_log_stream(self._logs, LOG_GROUP, LOG_STREAM)
            self._logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=LOG_STREAM, logEvents=events)


# --- The app ---------------------------------------------------------------------------


def _routing_label(enabled: bool) -> str:
    return "enabled" if enabled else "disabled"


def _authorized(request: Request, admin_token: str | None) -> bool:
    if admin_token is None:
        return True
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), admin_token.encode())


def create_app(
    cluster: str = "hybrid-routing-cluster",
    service: str = "hybrid-router-service",
    region: str = "eu-central-1",
    admin_token: str | None = "demo-admin-token",
    metrics_interval: float = 5.0,
    publish: bool = True,
    cache_ttl: float = 1.0,
    backup_region: str = aws_seed.SECONDARY_REGION,
    backup_cluster: str = aws_seed.BACKUP_CLUSTER,
    zone_name: str = aws_seed.HOSTED_ZONE,
    record_name: str = aws_seed.API_RECORD,
    bedrock_interval: float = 0.0,
    breaker_reset: float = 10.0,
) -> Starlette:
    """The demo service for one ECS service and its backup in another region; `admin_token=None`
    leaves the admin API open. `bedrock_interval` > 0 sends a request through Bedrock that often
    while hybrid routing is on (the stack's service does; tests drive `app.state.bedrock`)."""
    # One session per app: boto3's default session is not safe to share across threads.
    session = boto3.session.Session()

    def deployment_probe(where: RegionService) -> DeploymentProbe:
        ecs = session.client("ecs", region_name=where.region, config=_PROBE_CONFIG)
        return DeploymentProbe(ecs, where.cluster, where.service, cache_ttl)

    regions = {
        where.region: where
        for where in (RegionService(region, cluster, service), RegionService(backup_region, backup_cluster, service))
    }
    region_probes = {name: deployment_probe(where) for name, where in regions.items()}
    probe = region_probes[region]
    routing = RoutingProbe(
        session.client("route53", region_name=aws_seed.ROUTE53_REGION, config=_PROBE_CONFIG),
        zone_name,
        record_name,
        cache_ttl,
    )
    platform = PlatformState()
    bedrock = BedrockTraffic(
        session.client("bedrock-runtime", region_name=region, config=_BEDROCK_CONFIG),
        CircuitBreaker(reset_after=breaker_reset),
        platform,
    )
    publisher = Publisher(
        session.client("cloudwatch", region_name=METRICS_REGION, config=_PUBLISH_CONFIG),
        session.client("logs", region_name=METRICS_REGION, config=_PUBLISH_CONFIG),
        probe,
        platform,
    )

    async def component_health(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        if name == BEDROCK_COMPONENT:
            body, status = bedrock.health()
            return JSONResponse(body, status)
        if name != COMPONENT:
            known = [COMPONENT, BEDROCK_COMPONENT]
            return JSONResponse({"error": "unknown component", "component": name, "known": known}, 404)
        deployment = await probe.observe()
        if region in platform.regions_down:  # the whole region is out: its components with it
            return JSONResponse({"component": COMPONENT, "status": "unhealthy", "reason": f"{region} is down"}, 503)
        if deployment.healthy:
            body = {
                "component": COMPONENT,
                "status": "healthy",
                "task_definition": deployment.task_definition,
                "image": deployment.image,
            }
            return JSONResponse(body)
        body = {
            "component": COMPONENT,
            "status": "unhealthy",
            "reason": deployment.reason,
            "task_definition": deployment.task_definition,
        }
        return JSONResponse(body, 503)

    async def system_status_endpoint(request: Request) -> JSONResponse:
        deployment = await probe.observe()
        enabled = platform.hybrid_routing_enabled
        breaker = bedrock.breaker
        return JSONResponse(
            {
                "status": system_status(deployment, enabled, breaker.state),
                "hybrid_routing": _routing_label(enabled),
                "components": {
                    COMPONENT: "healthy" if deployment.healthy else "unhealthy",
                    BEDROCK_COMPONENT: "healthy" if breaker.state == "closed" else "unhealthy",
                },
                "circuit_breakers": {"bedrock": breaker.view()},
            }
        )

    def unauthorized() -> JSONResponse:
        return JSONResponse(
            {"error": "unauthorized", "detail": "send Authorization: Bearer <admin token>"},
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    def switch(enabled: bool) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def endpoint(request: Request) -> JSONResponse:
            if not _authorized(request, admin_token):
                return unauthorized()
            changed = platform.set_hybrid_routing(enabled)
            if changed:
                log.warning("emergency switch: hybrid routing %s", _routing_label(enabled))
                if enabled:
                    bedrock.breaker.reset()  # hybrid routing starts afresh: its breaker too
            return JSONResponse({"hybrid_routing": _routing_label(enabled), "changed": changed})

        return endpoint

    async def set_load(request: Request) -> JSONResponse:
        """`{"cpu": 90, ...}`: the gauges on the tasks running now; DELETE ends the load."""
        if not _authorized(request, admin_token):
            return unauthorized()
        if request.method == "DELETE":
            platform.load = None
            log.warning("demo load cleared")
            return JSONResponse({"load": None})
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, 400)
        if not isinstance(body, dict) or not body:
            return JSONResponse({"error": f"give one or more of {', '.join(LOADS)}"}, 422)
        values: dict[str, float] = {}
        for name, value in body.items():
            if name not in LOADS:
                return JSONResponse({"error": f"{name}: not a load (one of {', '.join(LOADS)})", "field": name}, 422)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                return JSONResponse({"error": f"{name}: a number of at least 0", "field": name}, 422)
            values[name] = float(value)
        deployment = await probe.observe()
        platform.load = OfferedLoad(values=values, tasks=deployment.tasks or 1)
        log.warning("demo load %s on %s task(s)", values, platform.load.tasks)
        return JSONResponse({"load": values, "on_tasks": platform.load.tasks})

    async def region_health(name: str) -> tuple[dict[str, Any], int]:
        deployment = await region_probes[name].observe()
        return region_health_body(regions[name], deployment, name in platform.regions_down)

    def unknown_region(name: str) -> JSONResponse:
        return JSONResponse({"error": "unknown region", "region": name, "known": sorted(regions)}, 404)

    async def region_health_endpoint(request: Request) -> JSONResponse:
        name = request.path_params["region"]
        if name not in regions:
            return unknown_region(name)
        body, status = await region_health(name)
        return JSONResponse(body, status)

    async def public_health(request: Request) -> JSONResponse:
        """The public name as a client meets it: whatever region DNS sends it to answers."""
        seen = await routing.observe()
        if seen.serving is None or seen.serving not in regions:
            reason = seen.error or f"DNS sends {record_name} to {seen.serving}, where the demo runs no service"
            body = {"name": record_name, "served_by": seen.serving, "failover_records": seen.roles}
            return JSONResponse({**body, "status": "unhealthy", "reason": reason}, 503)
        answer, status = await region_health(seen.serving)
        return JSONResponse(
            {"name": record_name, "served_by": seen.serving, "failover_records": seen.roles, **answer}, status
        )

    async def region_canary(request: Request) -> JSONResponse:
        """The region itself, whatever the service does: down only when the region is (a bad
        deploy fails the service's health, not this)."""
        name = request.path_params["region"]
        if name not in regions:
            return unknown_region(name)
        if name in platform.regions_down:
            return JSONResponse({"region": name, "status": "down"}, 503)
        return JSONResponse({"region": name, "status": "up"})

    def region_switch(down: bool) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def endpoint(request: Request) -> JSONResponse:
            if not _authorized(request, admin_token):
                return unauthorized()
            name = request.path_params["region"]
            if name not in regions:
                return unknown_region(name)
            changed = platform.set_region_down(name, down)
            if changed:
                log.warning("demo: region %s %s", name, "down" if down else "back up")
            return JSONResponse({"region": name, "down": down, "changed": changed})

        return endpoint

    async def demo_state(request: Request) -> JSONResponse:
        deployment = await probe.observe()
        seen = await routing.observe()
        region_states = {name: (await region_health(name))[0] for name in sorted(regions)}
        return JSONResponse(
            {
                "cluster": cluster,
                "service": service,
                "region": region,
                "task_definition": deployment.task_definition,
                "image": deployment.image,
                "fault": deployment.fault,
                "ecs_error": deployment.error,
                "healthy": deployment.healthy,
                "hybrid_routing": _routing_label(platform.hybrid_routing_enabled),
                "bedrock": {"circuit_breaker": bedrock.breaker.view(), "last_answer": bedrock.last_answer},
                "switch_calls": platform.switch_calls[-50:],
                "publishing": publish,
                "tasks": deployment.tasks,
                "load": platform.load.values if platform.load else None,
                "last_publish": publisher.last,
                "regions_down": sorted(platform.regions_down),
                "regions": region_states,
                "public": {"name": record_name, "served_by": seen.serving, "dns_error": seen.error},
            }
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(publisher.run_forever(metrics_interval))] if publish else []
        if bedrock_interval > 0:
            tasks.append(asyncio.create_task(bedrock.run_forever(bedrock_interval)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = Starlette(
        routes=[
            Route("/health/component/{name}", component_health, methods=["GET"]),
            Route("/admin/health/system-status", system_status_endpoint, methods=["GET"]),
            Route("/admin/emergency/disable-hybrid-routing", switch(False), methods=["POST"]),
            Route("/admin/emergency/enable-hybrid-routing", switch(True), methods=["POST"]),
            Route("/demo/state", demo_state, methods=["GET"]),
            Route("/demo/load", set_load, methods=["POST", "DELETE"]),
            Route("/region/{region}/health", region_health_endpoint, methods=["GET"]),
            Route("/region/{region}/canary", region_canary, methods=["GET"]),
            Route("/public/health", public_health, methods=["GET"]),
            Route("/demo/region/{region}/break", region_switch(True), methods=["POST"]),
            Route("/demo/region/{region}/heal", region_switch(False), methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.platform = platform
    app.state.probe = probe
    app.state.routing = routing
    app.state.publisher = publisher
    app.state.bedrock = bedrock
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--metrics-interval", type=float, default=5.0)
    parser.add_argument("--cluster", default="hybrid-routing-cluster")
    parser.add_argument("--service", default="hybrid-router-service")
    parser.add_argument("--region", default="eu-central-1")
    parser.add_argument("--backup-cluster", default=aws_seed.BACKUP_CLUSTER)
    parser.add_argument("--backup-region", default=aws_seed.SECONDARY_REGION)
    parser.add_argument("--bedrock-interval", type=float, default=1.0, help="seconds between Bedrock requests; 0: none")
    parser.add_argument("--breaker-reset", type=float, default=10.0, help="seconds the breaker stays open")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # botocore announces its credential and endpoint lookups at INFO on every client.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    app = create_app(
        cluster=args.cluster,
        service=args.service,
        region=args.region,
        admin_token=os.environ.get("PLATFORM_ADMIN_TOKEN") or "demo-admin-token",
        metrics_interval=args.metrics_interval,
        backup_region=args.backup_region,
        backup_cluster=args.backup_cluster,
        bedrock_interval=args.bedrock_interval,
        breaker_reset=args.breaker_reset,
    )
    log.info(
        "demo hybrid-router listening on http://%s:%d (follows ECS %s/%s in %s)",
        args.host,
        args.port,
        args.cluster,
        args.service,
        args.region,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
