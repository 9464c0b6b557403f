"""Benchmark: what one incident costs Temporal, per scenario, under the DEFAULT policy.

    .venv/bin/python bench/incident_budget.py [--short] [--check]

Temporal bills and scales by history events and actions, and cuts a run off near 50 000
events. Each scenario runs the real IncidentResponseWorkflow against fake outside systems
(tests/fakes.py) on the time-skipping test server, so the default policy's minutes pass in
skipped time, and prints history events, activities and timers of the finished run:
- resolved by rollback: acknowledged after 1 min, approved after 2 min, verified;
- rejected: every option the runbook proposes is rejected, people take over;
- escalated: nobody acknowledges for 45 min (the ladder climbs to level 3), then nobody
  approves within the approval timeout.
`--check` exits 1 when the rollback scenario is over its budget (80 events, 12 activities).
`--short` runs the rollback scenario only. `BUDGET_DUMP=1` also lists each run's events.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts import Acknowledge, Alert, Approve, IncidentStatus, IncidentView, Reject, Severity  # noqa: E402
from starter import open_or_join_incident  # noqa: E402
from tests.fakes import FakePlatform, skip_time  # noqa: E402
from tests.identity import INTAKE, signing_client  # noqa: E402
from tests.policies import default_policy  # noqa: E402
from worker import ensure_search_attributes  # noqa: E402
from workflows.incident_response import IncidentResponseWorkflow  # noqa: E402

BUDGET_EVENTS, BUDGET_ACTIVITIES = 80, 12
VENV_BIN = Path(sys.executable).parent

Scenario = Callable[[WorkflowEnvironment, WorkflowHandle], Awaitable[None]]


async def until(handle: WorkflowHandle, check: Callable[[IncidentView], bool]) -> None:
    for _ in range(600):
        if check(await handle.query(IncidentResponseWorkflow.view)):
            return
        await asyncio.sleep(0.3)
    raise RuntimeError("the incident never reached the state")


def status_is(status: IncidentStatus) -> Callable[[IncidentView], bool]:
    return lambda view: view.status == status


def pending(view: IncidentView) -> bool:
    return view.pending_approval is not None


async def resolved_by_rollback(env: WorkflowEnvironment, handle: WorkflowHandle) -> None:
    await until(handle, status_is(IncidentStatus.AWAITING_ACK))
    await skip_time(env, timedelta(minutes=1))
    await handle.execute_update(IncidentResponseWorkflow.acknowledge, Acknowledge(by="alice"))
    await until(handle, pending)
    await skip_time(env, timedelta(minutes=2))
    view = await handle.query(IncidentResponseWorkflow.view)
    assert view.pending_approval is not None
    await handle.execute_update(
        IncidentResponseWorkflow.approve, Approve(by="bob", plan_id=view.pending_approval.plan_id)
    )


async def rejected(env: WorkflowEnvironment, handle: WorkflowHandle) -> None:
    await until(handle, status_is(IncidentStatus.AWAITING_ACK))
    await handle.execute_update(IncidentResponseWorkflow.acknowledge, Acknowledge(by="alice"))
    seen: set[str] = set()
    while True:
        await until(
            handle,
            lambda v: (
                v.status == IncidentStatus.ESCALATED
                or (v.pending_approval is not None and v.pending_approval.plan_id not in seen)
            ),
        )
        view = await handle.query(IncidentResponseWorkflow.view)
        if view.pending_approval is None:
            return
        seen.add(view.pending_approval.plan_id)
        await skip_time(env, timedelta(minutes=1))
        await handle.execute_update(
            IncidentResponseWorkflow.reject, Reject(by="bob", plan_id=view.pending_approval.plan_id, reason="not now")
        )


async def escalated(env: WorkflowEnvironment, handle: WorkflowHandle) -> None:
    await until(handle, status_is(IncidentStatus.AWAITING_ACK))
    await skip_time(env, timedelta(minutes=45))
    await handle.execute_update(IncidentResponseWorkflow.acknowledge, Acknowledge(by="alice"))
    await until(handle, pending)
    await skip_time(env, timedelta(minutes=31))


SCENARIOS: dict[str, Scenario] = {
    "resolved by rollback": resolved_by_rollback,
    "rejected": rejected,
    "escalated": escalated,
}


async def run_scenario(env: WorkflowEnvironment, name: str, scenario: Scenario) -> Counter[str]:
    policy = default_policy()
    fake = FakePlatform(policy)
    fake.verify_for = 0.5
    task_queue = f"budget-{uuid.uuid4()}"
    region = f"bench-{uuid.uuid4().hex[:8]}"
    policy.services["hybrid-router"] = policy.services["hybrid-router"].model_copy(update={"region": region})
    async with Worker(
        env.client, task_queue=task_queue, workflows=[IncidentResponseWorkflow], activities=fake.activities()
    ):
        alert = Alert(
            source="bench",
            service="hybrid-router",
            region=region,
            summary="hybrid router down",
            severity=Severity.P0,
            received_at=datetime.now(UTC),
        )
        # signed as the intake and the sign-in service sign, on the test server's clock
        client = signing_client(env.client, env.get_current_time)
        at = (await env.get_current_time()).timestamp()
        intake = dataclasses.replace(INTAKE, clock=lambda: at)
        handle = await open_or_join_incident(client, alert, "bench", task_queue, intake)
        await scenario(env, handle)
        await handle.result()
    history = await handle.fetch_history()
    if os.environ.get("BUDGET_DUMP"):
        for event in history.events:
            kind = event.WhichOneof("attributes") or ""
            detail = getattr(getattr(event, kind), "activity_type", None)
            print("   ", event.event_id, kind.removesuffix("_event_attributes"), detail.name if detail else "")
    kinds = Counter(event.WhichOneof("attributes") or "" for event in history.events)
    return Counter(
        {
            "events": len(history.events),
            "activities": kinds["activity_task_scheduled_event_attributes"],
            "timers": kinds["timer_started_event_attributes"],
            "workflow tasks": kinds["workflow_task_completed_event_attributes"],
        }
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="the rollback scenario only")
    parser.add_argument("--check", action="store_true", help="exit 1 when the rollback scenario is over budget")
    args = parser.parse_args()
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=str(VENV_BIN / "temporal-test-server")
    )
    over = False
    try:
        await ensure_search_attributes(env.client, "default")
        print(f"{'scenario':<22} {'events':>7} {'activities':>11} {'timers':>7} {'workflow tasks':>15}")
        for name, scenario in SCENARIOS.items():
            if args.short and name != "resolved by rollback":
                continue
            counts = await run_scenario(env, name, scenario)
            print(
                f"{name:<22} {counts['events']:>7} {counts['activities']:>11} {counts['timers']:>7} "
                f"{counts['workflow tasks']:>15}"
            )
            if name == "resolved by rollback":
                over = counts["events"] > BUDGET_EVENTS or counts["activities"] > BUDGET_ACTIVITIES
        print(
            f"budget for a rollback: <= {BUDGET_EVENTS} events, <= {BUDGET_ACTIVITIES} activities"
            f" ({'OVER' if over else 'within'})"
        )
    finally:
        await env.shutdown()
    return 1 if (over and args.check) else 0


if __name__ == "__main__":
    code = asyncio.run(main())
    sys.stdout.flush()
    os._exit(code)  # sdk-python issue 300: the interpreter may crash at exit after a clean shutdown
