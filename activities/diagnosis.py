"""Readings that span systems, each as one activity: the diagnosis, and the verification hold.

They compose the single-system readers of `platform_api`, `cloudwatch` and `ecs`. One activity
instead of four (or a loop of two activities and a timer per round) keeps an incident's
history short; a reader that fails becomes a reading that says so, as it did when each was
its own activity.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio import activity

from activities import cloudwatch, ecs, failover, platform_api
from contracts import (
    DeploymentState,
    DiagnoseRequest,
    Diagnosis,
    HealthReading,
    LogScan,
    MetricReading,
    MetricsRequest,
    ProbeResult,
    Verification,
    VerifyRequest,
)
from contracts.common import format_duration, innermost_message

HEARTBEAT_EVERY = timedelta(seconds=5)


async def _metrics(request: MetricsRequest) -> list[MetricReading]:
    try:
        return await asyncio.to_thread(cloudwatch.read_metrics, request)
    except Exception as err:  # a failed read is a reading: no data
        return [
            MetricReading(key=q.key, value=None, level="no-data", within_target=False, detail=innermost_message(err))
            for q in request.queries
        ]


@activity.defn
async def diagnose(request: DiagnoseRequest) -> Diagnosis:
    """Health endpoint, metrics against the SLOs, ERROR log lines and what ECS runs, at once."""

    async def logs() -> LogScan:
        try:
            return await asyncio.to_thread(cloudwatch.scan_error_logs, request.logs)
        except Exception as err:
            return LogScan(
                log_group=request.logs.log_group, error_count=0, detail=f"log scan failed: {innermost_message(err)}"
            )

    async def deployment() -> tuple[DeploymentState | None, str | None]:
        try:
            return await asyncio.to_thread(ecs.describe_deployment, request.deployment), None
        except Exception as err:
            return None, innermost_message(err)

    async def region() -> ProbeResult | None:
        return None if request.region is None else await failover.probe_health(request.region)

    health, metrics, scan, (state, error), probe = await asyncio.gather(
        platform_api.check_component_health(request.health), _metrics(request.metrics), logs(), deployment(), region()
    )
    return Diagnosis(health=health, metrics=metrics, logs=scan, deployment=state, deployment_error=error, region=probe)


async def _within_slo(request: VerifyRequest) -> tuple[bool, str]:
    if request.system_status:
        status = await platform_api.check_system_status()
        healthy, health_detail = status.healthy, status.detail
    else:
        health: HealthReading = await platform_api.check_component_health(request.health)
        healthy, health_detail = health.healthy, health.detail
    missed = [m for m in await _metrics(request.metrics) if not m.within_target]
    if not healthy:
        return False, f"health: {health_detail}"
    if missed:
        return False, "; ".join(f"{m.key}: {m.detail}" for m in missed)
    return True, "within SLO"


@activity.defn
async def verify_slo(request: VerifyRequest) -> Verification:
    """Returns once health and metrics held within SLO for the window, or when the deadline
    passed. Heartbeats carry when the good stretch began, so a retry on another worker
    resumes the window instead of starting it again."""
    details = activity.info().heartbeat_details
    good_since: datetime | None = datetime.fromisoformat(details[0]) if details and details[0] else None
    why = "not checked"
    while True:
        ok, why = await _within_slo(request)
        now = datetime.now(UTC)
        if ok:
            good_since = good_since or now
            if now - good_since >= request.window:
                return Verification(verified=True, detail=f"within SLO for {format_duration(request.window)}")
        else:
            good_since = None
        if now + request.interval > request.deadline:
            return Verification(verified=False, detail=f"not within SLO for {format_duration(request.window)}: {why}")
        wake = now + request.interval
        while (left := (wake - datetime.now(UTC)).total_seconds()) > 0:
            activity.heartbeat(good_since.isoformat() if good_since else "")
            await asyncio.sleep(min(left, HEARTBEAT_EVERY.total_seconds()))
        activity.heartbeat(good_since.isoformat() if good_since else "")
