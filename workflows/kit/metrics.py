"""The runbooks' own Prometheus metrics, beside the SDK's on the worker's endpoint
(`WORKER_METRICS_ADDRESS`, README "Worker metrics"). The workflow's meter drops what a replay
would record again, so a restarted worker counts nothing twice."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow


def count(name: str, description: str, **labels: str) -> None:
    workflow.metric_meter().create_counter(name, description).add(1, labels)


def observe(name: str, description: str, value: timedelta, **labels: str) -> None:
    """A duration (seconds, as the runtime exports durations) into a histogram."""
    workflow.metric_meter().create_histogram_timedelta(name, description, "s").record(value, labels)
