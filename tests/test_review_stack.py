"""The reviews on the whole local stack: the seeded bad night's daily review, backfilled through
its Schedule, with the worker SIGKILLed each time one of its activities completes and started
again. The run finishes, its report is stored as the run says, and its critical breach reaches
the intake once: one incident, opened by the intake, with one alert, that links the report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter

from contracts import IncidentView
from contracts.reviews import ReviewResult
from contracts.schedules import scheduled_workflow_id
from devstack import aws_seed
from devstack.stack import Stack
from tests.test_end_to_end import WORKFLOW_ID, cli, restart_worker, s3, stack, worker  # noqa: F401

SCHEDULE = "daily-performance-review"


def completed_activities(loop: asyncio.AbstractEventLoop, client: Client, workflow_id: str) -> list[str]:
    events = loop.run_until_complete(client.get_workflow_handle(workflow_id).fetch_history()).events
    names = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    return [
        names[e.activity_task_completed_event_attributes.scheduled_event_id]
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    ]


def test_the_bad_nights_review_with_the_worker_killed_after_each_activity_alerts_once(
    stack: Stack,  # noqa: F811
    worker: Callable[[], Any],  # noqa: F811
) -> None:
    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(
        Client.connect(stack.config.temporal_address, data_converter=pydantic_data_converter)
    )
    nominal = (datetime.now(UTC) - timedelta(days=aws_seed.BAD_NIGHT)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    span = (
        f"{nominal - timedelta(minutes=30):%Y-%m-%dT%H:%M:%SZ}",
        f"{nominal + timedelta(minutes=30):%Y-%m-%dT%H:%M:%SZ}",
    )
    cli(stack, "schedules", "backfill", SCHEDULE, "--from", span[0], "--to", span[1])
    run = scheduled_workflow_id(SCHEDULE, nominal)
    handle = client.get_workflow_handle(run, result_type=ReviewResult)
    seen: list[str] = []
    kills: list[str] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            status = loop.run_until_complete(handle.describe()).status
            done = completed_activities(loop, client, run)
        except Exception:  # noqa: BLE001 - the backfill has not started it yet
            time.sleep(0.05)
            continue
        if status != WorkflowExecutionStatus.RUNNING:
            break
        if len(done) > len(seen):
            seen = done
            kills.append(done[-1])
            restart_worker(stack, worker, loop, client, run)
        time.sleep(0.02)
    result = loop.run_until_complete(handle.result())
    # killed after the read, the incidents, the chart, the store (and the alert, if the run had not ended)
    assert len(kills) >= 4, kills
    done = completed_activities(loop, client, run)
    assert sorted(set(done)) == sorted(done), done  # every activity completed once
    assert done[-1] == "raise_review_alert" and "store_report" in done

    assert result.level == "critical" and result.uri == f"s3://runbook-reports/reports/daily/{nominal:%Y-%m-%d}.md"
    stored = s3(stack).get_object(Bucket="runbook-reports", Key=f"reports/daily/{nominal:%Y-%m-%d}.md")
    assert stored["Body"].read().decode() == result.markdown

    # the intake took the alert once: one incident, one alert, the report in its summary
    incident = client.get_workflow_handle(WORKFLOW_ID)
    for _ in range(600):  # the restarted worker takes the incident's first signal a moment later
        view = loop.run_until_complete(incident.query("view", result_type=IncidentView))
        if view.alert_count and view.timeline:
            break
        time.sleep(0.05)
    time.sleep(1)  # a second delivery would be in by now
    view = loop.run_until_complete(incident.query("view", result_type=IncidentView))
    assert view.opened_by == "intake/generic" and view.alert_count == 1, (view.opened_by, view.alert_count)
    assert result.uri in view.summary and f"[review daily/{nominal:%Y-%m-%d}]" in view.summary
    assert result.escalated is not None and result.escalated.status == 202
    loop.run_until_complete(incident.terminate("test over"))
