"""Activity inputs and outputs of the outside systems a runbook reads and changes: the platform's
health and switch API, CloudWatch metrics and logs, ECS deployments."""

from __future__ import annotations

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


class EmergencySwitchRequest(Strict):
    hybrid_routing_enabled: bool
    reason: str
