"""The reviews on the whole local stack, with the worker SIGKILLed each time one of a run's
activities completes and started again: the seeded bad night's daily review, backfilled through
its Schedule, finishes, its report stored as the run says, and its critical breach reaches the
intake once (one incident, opened by the intake, with one alert, that links the report); the
weekly and monthly reviews, triggered from theirs, complete each activity once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleDescription,
    WorkflowExecutionStatus,
)
from temporalio.contrib.pydantic import pydantic_data_converter

from contracts import IncidentView
from contracts.reviews import ReviewResult
from contracts.schedules import scheduled_workflow_id
from contracts.trend_reviews import CapacityResult, PeriodFigures, WeeklyResult
from devstack import aws_seed
from devstack.stack import Stack
from tests.fakes import eventually
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


def run_killing_the_worker(
    running: Stack, start_worker: Callable[[], Any], loop: asyncio.AbstractEventLoop, client: Client, run: str
) -> list[str]:
    """SIGKILL the worker each time another of the run's activities completes, start another,
    until the run ends; the activities it completed, in order."""
    handle = client.get_workflow_handle(run)
    seen: list[str] = []
    deadline = time.monotonic() + 330
    while time.monotonic() < deadline:
        try:
            status = loop.run_until_complete(handle.describe()).status
            done = completed_activities(loop, client, run)
        except Exception:  # noqa: BLE001 - the schedule has not started it yet
            time.sleep(0.05)
            continue
        if status != WorkflowExecutionStatus.RUNNING:
            return done
        if len(done) > len(seen):
            seen = done
            # the incident the review's alert opens may be on the killed worker's sticky queue too
            restart_worker(running, start_worker, loop, client, run, WORKFLOW_ID)
        time.sleep(0.02)
    raise AssertionError(f"{run} did not end; completed {seen}")


def connect(running: Stack) -> tuple[asyncio.AbstractEventLoop, Client]:
    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(
        Client.connect(running.config.temporal_address, data_converter=pydantic_data_converter)
    )
    return loop, client


def triggered_run(running: Stack, loop: asyncio.AbstractEventLoop, client: Client, schedule: str) -> str:
    """`runbook schedules trigger NAME`, and the id of the run it started."""
    cli(running, "schedules", "trigger", schedule)
    description = loop.run_until_complete(
        eventually(
            client.get_schedule_handle(f"runbook-{schedule}").describe,
            lambda described: started_run(described) is not None,
            f"{schedule} started nothing",
            shown=lambda described: described.info.recent_actions,
        )
    )
    run = started_run(description)
    assert run is not None
    return run


def started_run(description: ScheduleDescription) -> str | None:
    """The run the schedule's latest action started, if it started one."""
    recent = description.info.recent_actions
    if recent and isinstance(recent[-1].action, ScheduleActionExecutionStartWorkflow):
        return recent[-1].action.workflow_id
    return None


def test_the_bad_nights_review_with_the_worker_killed_after_each_activity_alerts_once(
    stack: Stack,  # noqa: F811
    worker: Callable[[], Any],  # noqa: F811
) -> None:
    loop, client = connect(stack)
    nominal = (datetime.now(UTC) - timedelta(days=aws_seed.BAD_NIGHT)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    span = (
        f"{nominal - timedelta(minutes=30):%Y-%m-%dT%H:%M:%SZ}",
        f"{nominal + timedelta(minutes=30):%Y-%m-%dT%H:%M:%SZ}",
    )
    cli(stack, "schedules", "backfill", SCHEDULE, "--from", span[0], "--to", span[1])
    run = scheduled_workflow_id(SCHEDULE, nominal)
    done = run_killing_the_worker(stack, worker, loop, client, run)
    result = loop.run_until_complete(client.get_workflow_handle(run, result_type=ReviewResult).result())
    # each activity completed once, in the runbook's order, whatever was killed when
    assert done == ["read_series", "incidents_started", "chart_review", "store_report", "raise_review_alert"], done

    assert result.level == "critical" and result.uri == f"s3://runbook-reports/reports/daily/{nominal:%Y-%m-%d}.md"
    stored = s3(stack).get_object(Bucket="runbook-reports", Key=f"reports/daily/{nominal:%Y-%m-%d}.md")
    assert stored["Body"].read().decode() == result.markdown

    # the intake took the alert once: one incident, one alert, the report in its summary
    incident = client.get_workflow_handle(WORKFLOW_ID)
    # the restarted worker takes the incident's first signal a moment later (meanwhile a query
    # may fail or time out: not yet)
    loop.run_until_complete(
        eventually(
            lambda: incident.query("view", result_type=IncidentView),
            lambda view: bool(view.alert_count and view.timeline),
            "the review's alert never reached the incident",
            shown=lambda view: (view.status, view.alert_count, view.timeline[-3:]),
        )
    )
    time.sleep(1)  # a second delivery would be in by now
    view = loop.run_until_complete(incident.query("view", result_type=IncidentView))
    assert view.opened_by == "intake/generic" and view.alert_count == 1, (view.opened_by, view.alert_count)
    assert result.uri in view.summary and f"[review daily/{nominal:%Y-%m-%d}]" in view.summary
    assert result.escalated is not None and result.escalated.status == 202
    loop.run_until_complete(incident.terminate("test over"))


def test_the_weekly_and_monthly_reviews_with_the_worker_killed_after_each_activity(
    stack: Stack,  # noqa: F811
    worker: Callable[[], Any],  # noqa: F811
) -> None:
    loop, client = connect(stack)
    run = triggered_run(stack, loop, client, "weekly-performance-review")
    done = run_killing_the_worker(stack, worker, loop, client, run)
    week = loop.run_until_complete(client.get_workflow_handle(run, result_type=WeeklyResult).result())
    alert = ["raise_review_alert"] if week.level == "critical" else []  # the seeded bad night in the week
    expected = ["read_days", "read_figures", "read_days", "incidents_started", "chart_week", "store_report"]
    assert done == [*expected, "store_report", *alert], done
    stored = s3(stack).get_object(Bucket="runbook-reports", Key=week.window.figures_key)["Body"].read()
    assert PeriodFigures.model_validate_json(stored) == week.this

    run = triggered_run(stack, loop, client, "monthly-capacity-review")
    done = run_killing_the_worker(stack, worker, loop, client, run)
    month = loop.run_until_complete(client.get_workflow_handle(run, result_type=CapacityResult).result())
    assert done == [
        "read_utilisation",
        "read_ecs_capacity",
        "read_provisioned_concurrency",
        "scaling_runs_started",
        "chart_capacity",
        "store_report",
    ], done
    report = s3(stack).get_object(Bucket="runbook-reports", Key=month.window.key)["Body"].read().decode()
    assert report == month.markdown and "```yaml" in report
