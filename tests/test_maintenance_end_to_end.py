"""Maintenance windows end to end on the real local stack (dev server, AWS emulator, PagerDuty
emulator with the real `pagerduty` client, the demo service, a worker process, the sign-in
service and the CLI as a person types it): a window asked for seconds ahead runs its change
with the PagerDuty window open around it; and with the worker SIGKILLed after each activity,
the change is made once and the PagerDuty window opened and ended once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import Client

from devstack.stack import Stack
from tests.test_end_to_end import (
    cli,
    desired_count,
    fast_policy,
    history_of,
    launched,
    moto,
    pagerduty_state,
    recorded_ecs_updates,
    restart_worker,
    wait_for,
    worker,  # noqa: F401 - the fixture, on this module's stack
)

pytestmark = pytest.mark.e2e
SERVICE = "hybrid-router"


def maintenance_policy(path: Path) -> Path:
    """The tests' fast demo policy, with a post-check of a few seconds."""
    fast_policy(path)
    policy = yaml.safe_load(path.read_text())
    policy["maintenance"] = {
        "verify_window": "3s",
        "verify_interval": "1s",
        "verify_timeout": "60s",
        "pre_check_timeout": "20s",
    }
    path.write_text(yaml.safe_dump(policy))
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("maintenance-stack")
    with launched(data, maintenance_policy(data / "maintenance-policy.yaml")) as stack:
        yield stack


def schedule(stack: Stack, count: int, ahead: timedelta) -> str:
    start = (datetime.now(UTC) + ahead).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = cli(
        stack,
        *("maintenance", "schedule", "--service", SERVICE, "--start", start),
        *("--duration", "30m", "--action", "scale", "--count", str(count)),
        user="demo-oncall",
    )
    return done.stdout.strip()


def finished(view: dict[str, Any]) -> bool:
    timeline = view.get("timeline") or [{}]
    return view["status"] in ("done", "undone", "failed", "cancelled") and timeline[-1].get("event") == "closed"


def windows_of(stack: Stack, workflow_id: str) -> list[dict[str, Any]]:
    state = pagerduty_state(stack)
    return [w for w in state["maintenance_windows"] if f"ref: {workflow_id}@" in w["description"]]


def events(view: dict[str, Any]) -> list[str]:
    return [entry["event"] for entry in view["timeline"]]


def test_a_window_seconds_ahead_changes_the_service_inside_a_pagerduty_window(
    stack: Stack,
    worker: Callable[[], Any],  # noqa: F811 - the imported fixture
) -> None:
    baseline = desired_count(stack)
    moto(stack, "stop-recording")
    moto(stack, "reset-recording")
    moto(stack, "start-recording")
    workflow_id = schedule(stack, baseline + 1, timedelta(seconds=20))
    view = wait_for(stack, workflow_id, lambda v: v.get("pending_approval") is not None, 60)
    assert view["opened_by"] == "demo-oncall" and windows_of(stack, workflow_id) == []
    refused = cli(stack, "approve", workflow_id, user="demo-oncall", check=False)
    assert refused.returncode == 1 and "four eyes" in refused.stderr  # the asker cannot approve alone
    cli(stack, "approve", workflow_id, user="demo-lead")
    listed = [json.loads(line) for line in cli(stack, "maintenance", "--json").stdout.splitlines()]
    assert next(row for row in listed if row["workflow_id"] == workflow_id)["state"] in ("scheduled", "active")

    view = wait_for(stack, workflow_id, finished, 180)
    assert view["status"] == "done", view["outcome"]
    order = events(view)
    assert order.index("PagerDuty window open") < order.index("changed") < order.index("PagerDuty window closed")
    (window,) = windows_of(stack, workflow_id)
    assert pagerduty_state(stack)["windows_ended"].count(window["id"]) == 1
    opened_at = datetime.fromisoformat(window["start_time"].replace("Z", "+00:00"))
    ended_at = datetime.fromisoformat(window["end_time"].replace("Z", "+00:00"))
    assert ended_at - opened_at < timedelta(minutes=5)  # ended when the work was done, not after 30 minutes
    assert [u["desiredCount"] for u in recorded_ecs_updates(stack)] == [baseline + 1]
    assert desired_count(stack) == baseline + 1
    listed = [json.loads(line) for line in cli(stack, "maintenance", "--json").stdout.splitlines()]
    row = next(row for row in listed if row["workflow_id"] == workflow_id)
    assert row["state"] == "done" and row["status"] == "done" and "verified" in row["outcome"]
    assert "would call" not in cli(stack, "show", workflow_id).stdout


def test_the_worker_killed_after_each_activity_changes_once_and_ends_the_window_once(
    stack: Stack,
    worker: Callable[[], Any],  # noqa: F811 - the imported fixture
) -> None:
    """SIGKILL the worker whenever an activity of the window has completed (the next one may
    then be in flight: it is retried after its timeout) and start another. The change is made
    once, one PagerDuty window is opened and it is ended once, and the hold is released."""
    baseline = desired_count(stack)
    moto(stack, "stop-recording")
    moto(stack, "reset-recording")
    moto(stack, "start-recording")
    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(Client.connect(stack.config.temporal_address))
    killed_after: list[list[str]] = []
    try:
        workflow_id = schedule(stack, baseline + 1, timedelta(seconds=10))
        wait_for(stack, workflow_id, lambda v: v.get("pending_approval") is not None, 60)
        cli(stack, "approve", workflow_id, user="demo-lead")
        seen, deadline = 0, time.monotonic() + 600
        while time.monotonic() < deadline:
            completed, _, closed = history_of(loop, client, workflow_id)
            if closed:
                break
            if len(completed) > seen:
                restart_worker(stack, worker, loop, client, workflow_id)
                killed_after.append(completed[seen:])
                seen = len(completed)
            time.sleep(0.05)
        else:
            raise AssertionError(f"the window did not finish; killed after {killed_after}")
    finally:
        loop.run_until_complete(client.service_client.check_health())
        loop.close()
    after = {name for names in killed_after for name in names}
    wanted = {"verify_slo", "open_maintenance_window", "scale_ecs_service", "describe_deployment"}
    assert wanted <= after, killed_after
    view = wait_for(stack, workflow_id, finished, 60)
    assert view["status"] == "done", view["outcome"]
    assert not view["held"] and events(view).count("hold released") == 1
    (window,) = windows_of(stack, workflow_id)
    assert pagerduty_state(stack)["windows_ended"].count(window["id"]) == 1
    assert [u["desiredCount"] for u in recorded_ecs_updates(stack)] == [baseline + 1]
    moto(stack, "stop-recording")
