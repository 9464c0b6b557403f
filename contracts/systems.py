"""Activity inputs and outputs of the outside systems a runbook reads and changes: the platform's
health and switch API, CloudWatch metrics and logs, ECS deployments."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from contracts.common import Duration, Strict
from contracts.policy import MetricQuery


class HealthRequest(Strict):
    component: str


class HealthReading(Strict):
    component: str
    healthy: bool
    status_code: int | None = None
    detail: str = ""


class SystemStatus(Strict):
    healthy: bool
    hybrid_routing: str = "unknown"
    detail: str = ""


class MetricsRequest(Strict):
    region: str
    queries: list[MetricQuery]


class SeriesRequest(Strict):
    """The datapoints of each query over the last `window` (scaling rules judge every one)."""

    region: str
    queries: list[MetricQuery]
    window: Duration
    end: datetime | None = None  # the workflow's now, so it judges the window it asked for; None: now


MetricLevel = Literal["ok", "warning", "critical", "no-data"]


class MetricReading(Strict):
    key: str
    value: float | None
    level: MetricLevel
    within_target: bool
    detail: str = ""


class LogScanRequest(Strict):
    region: str
    log_group: str
    lookback: Duration
    pattern: str = "ERROR"


class LogScan(Strict):
    log_group: str
    error_count: int
    samples: list[str] = Field(default_factory=list)
    detail: str = ""


class DeploymentRequest(Strict):
    cluster: str
    service: str
    region: str


class DeploymentState(Strict):
    cluster: str
    service: str
    region: str
    task_definition: str
    previous_task_definition: str | None
    primary_deployment_id: str | None


class ProbeRequest(Strict):
    """The worker's own probe of a region's health endpoint."""

    region: str
    url: str


class ProbeResult(Strict):
    region: str
    url: str
    ok: bool
    status_code: int | None = None
    detail: str = ""


class EmergencySwitchRequest(Strict):
    hybrid_routing_enabled: bool
    reason: str


# Readings that span systems, each one activity (activities/diagnosis.py).


class DiagnoseRequest(Strict):
    health: HealthRequest
    metrics: MetricsRequest
    logs: LogScanRequest
    deployment: DeploymentRequest
    # the region's own health endpoint, for a service that can fail over out of that region
    region: ProbeRequest | None = None


class VerifyRequest(Strict):
    """Hold within SLO for `window` before `deadline`, checked every `interval`.

    `system_status`: judge the platform's status instead of one component's health (after the
    emergency switch the component stays broken by design).
    """

    health: HealthRequest
    system_status: bool = False
    metrics: MetricsRequest
    window: Duration
    interval: Duration
    deadline: datetime


class Verification(Strict):
    verified: bool
    detail: str
