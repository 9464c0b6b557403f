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

    python -m devstack.demo_service --host 127.0.0.1 --port 8090 [--metrics-interval 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import logging
import math
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import boto3
import uvicorn
from botocore.config import Config
from botocore.exceptions import ClientError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from devstack.aws_seed import LOG_GROUP, LOG_STREAM, ensure_log_stream
from devstack.demo import ServiceNotFound, fault_of, task_definition_of_service

log = logging.getLogger("devstack.demo_service")  # not "__main__" under -m

COMPONENT = "hybrid-router"
METRICS_REGION = "eu-central-1"
METRICS_NAMESPACE = "HybridRouting"
METRICS_DIMENSIONS = [{"Name": "Service", "Value": COMPONENT}]
LATENCY_SAMPLES_PER_TICK = 20

# A health probe must answer well inside the runbook's HTTP timeout even when the
# emulator is down, so ECS gets one short attempt; publishing may take its time.
_ECS_CONFIG = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1, "mode": "standard"})
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
            task_definition, tasks = task_definition_of_service(self._ecs, self._cluster, self._service), None
            found = self._ecs.describe_services(cluster=self._cluster, services=[self._service])["services"]
            tasks = next((s.get("desiredCount") for s in found if s.get("status") == "ACTIVE"), None)
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
        )


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


def system_status(deployment: Deployment, hybrid_routing_enabled: bool) -> str:
    # With hybrid routing off nothing depends on the router, so its state is no outage.
    if hybrid_routing_enabled and not deployment.healthy:
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
    """The emergency switch: in the application's memory, as on the real platform."""

    hybrid_routing_enabled: bool = True
    load: OfferedLoad | None = None

    def set_hybrid_routing(self, enabled: bool) -> bool:
        changed = self.hybrid_routing_enabled != enabled
        self.hybrid_routing_enabled = enabled
        return changed


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
        while True:
            try:
                await self.publish_once(interval)
            except Exception:  # noqa: BLE001 - the demo must outlive a bad tick
                log.exception("publishing tick failed")
            await asyncio.sleep(interval)

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
) -> Starlette:
    """The demo service for one ECS service; `admin_token=None` leaves the admin API open."""
    # One session per app: boto3's default session is not safe to share across threads.
    session = boto3.session.Session()
    probe = DeploymentProbe(session.client("ecs", region_name=region, config=_ECS_CONFIG), cluster, service, cache_ttl)
    platform = PlatformState()
    publisher = Publisher(
        session.client("cloudwatch", region_name=METRICS_REGION, config=_PUBLISH_CONFIG),
        session.client("logs", region_name=METRICS_REGION, config=_PUBLISH_CONFIG),
        probe,
        platform,
    )

    async def component_health(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        if name != COMPONENT:
            return JSONResponse({"error": "unknown component", "component": name, "known": [COMPONENT]}, 404)
        deployment = await probe.observe()
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
        return JSONResponse(
            {
                "status": system_status(deployment, enabled),
                "hybrid_routing": _routing_label(enabled),
                "components": {COMPONENT: "healthy" if deployment.healthy else "unhealthy"},
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

    async def demo_state(request: Request) -> JSONResponse:
        deployment = await probe.observe()
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
                "publishing": publish,
                "tasks": deployment.tasks,
                "load": platform.load.values if platform.load else None,
                "last_publish": publisher.last,
            }
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(publisher.run_forever(metrics_interval)) if publish else None
        try:
            yield
        finally:
            if task is not None:
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
        ],
        lifespan=lifespan,
    )
    app.state.platform = platform
    app.state.probe = probe
    app.state.publisher = publisher
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--metrics-interval", type=float, default=5.0)
    parser.add_argument("--cluster", default="hybrid-routing-cluster")
    parser.add_argument("--service", default="hybrid-router-service")
    parser.add_argument("--region", default="eu-central-1")
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
