"""Benchmark: what one scaling decision costs Temporal, per scenario, under the DEFAULT policy.

    .venv/bin/python bench/scaling_budget.py [--short] [--check]

Each scenario runs the real ScalingDecisionWorkflow against the load model of
tests/scaling_fakes.py (ECS, Lambda and CloudWatch as fakes; the CPU is the offered load over
the tasks running) on the time-skipping test server, so the policy's minutes and hours pass in
skipped time, and prints for the whole run (every run of it, when it continued as new) the
history events, activities and timers, the runs, and the largest single run's events:
- not sustained: 4 minutes of CPU over 70 %, the rule wants 5; nothing changes;
- up and back: 6 minutes over, one step up brings the CPU under, the load falls after 20 min,
  30 quiet minutes later one step back to the baseline;
- at the maximum for 2 hours: a load no capacity within the maximum carries, four steps to
  the maximum (cooldown and hourly budget between them), a P1 page, hours of watching (the
  run continues as new to keep each history short) until the load falls.
`--check` exits 1 when a single run's history is past the policy's `continue_after_events`
by more than one watch round's worth (the run continues as new only between rounds).
`--short` runs "up and back" only.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts import Policy  # noqa: E402
from contracts.scaling_decision import ScalingTrigger  # noqa: E402
from starter import trigger_scaling  # noqa: E402
from tests.fakes import FakePlatform  # noqa: E402
from tests.identity import INTAKE, signing_client  # noqa: E402
from tests.policies import default_policy  # noqa: E402
from tests.scaling_fakes import FakeAws, breach  # noqa: E402
from worker import ensure_search_attributes  # noqa: E402
from workflows.scaling_decision import ScalingDecisionWorkflow  # noqa: E402

VENV_BIN = Path(sys.executable).parent
ROUND_EVENTS = 30  # about what one watch round adds (a timer, a read, their workflow tasks), with margin

Setup = Callable[[Policy, FakeAws], None]


def not_sustained(policy: Policy, aws: FakeAws) -> None:
    aws.cpu_load = breach(minutes_before=4)


def up_and_back(policy: Policy, aws: FakeAws) -> None:
    aws.cpu_load = breach(minutes_before=6, until=timedelta(minutes=20))


def at_the_maximum(policy: Policy, aws: FakeAws) -> None:
    assert policy.scaling is not None
    limits = {"hybrid-router": policy.scaling.limits["hybrid-router"].model_copy(update={"ecs_max": 12})}
    policy.scaling = policy.scaling.model_copy(update={"auto_steps": 20, "limits": limits})
    aws.cpu_load = breach(minutes_before=6, until=timedelta(hours=2), high=1200.0)


SCENARIOS: dict[str, Setup] = {
    "not sustained": not_sustained,
    "up and back": up_and_back,
    "at the maximum for 2 hours": at_the_maximum,
}


async def chain_counts(client: Client, workflow_id: str, first_run_id: str) -> tuple[Counter[str], int]:
    """Counts over every run of the chain (following continue-as-new), and the largest run's events."""
    total: Counter[str] = Counter()
    largest, run_id = 0, first_run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        kinds = Counter(event.WhichOneof("attributes") or "" for event in history.events)
        total["runs"] += 1
        total["events"] += len(history.events)
        total["activities"] += kinds["activity_task_scheduled_event_attributes"]
        total["timers"] += kinds["timer_started_event_attributes"]
        largest = max(largest, len(history.events))
        last = history.events[-1]
        continued = last.HasField("workflow_execution_continued_as_new_event_attributes")
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id if continued else ""
    return total, largest


async def run_scenario(env: WorkflowEnvironment, setup: Setup) -> tuple[Counter[str], int, int, str]:
    policy = default_policy()
    region = f"bench-{uuid.uuid4().hex[:8]}"
    policy.services["hybrid-router"] = policy.services["hybrid-router"].model_copy(update={"region": region})
    aws, platform = FakeAws(), FakePlatform(policy)
    setup(policy, aws)
    assert policy.scaling is not None
    task_queue = f"scaling-budget-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[ScalingDecisionWorkflow],
        activities=[*platform.activities(), *aws.activities()],
    ):
        now = await env.get_current_time()
        aws.started = now
        client = signing_client(env.client, env.get_current_time)
        intake = dataclasses.replace(INTAKE, clock=lambda: now.timestamp())
        trigger = ScalingTrigger(by="bench", reason="bench")
        handle = await trigger_scaling(client, "hybrid-router", region, trigger, task_queue, intake)
        result = await handle.result()
    description = await env.client.get_workflow_handle(handle.id).describe()
    first_run_id = description.raw_description.workflow_execution_info.first_run_id or description.run_id
    counts, largest = await chain_counts(env.client, handle.id, first_run_id)
    return counts, largest, policy.scaling.continue_after_events, result.view.status.value


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help='the "up and back" scenario only')
    parser.add_argument("--check", action="store_true", help="exit 1 when a single run's history is over budget")
    args = parser.parse_args()
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=str(VENV_BIN / "temporal-test-server")
    )
    over, ends = False, []
    try:
        await ensure_search_attributes(env.client, "default")
        print("| scenario | events | activities | timers | runs | largest run's events |")
        print("|---|---|---|---|---|---|")
        for name, setup in SCENARIOS.items():
            if args.short and name != "up and back":
                continue
            counts, largest, limit, status = await run_scenario(env, setup)
            print(
                f"| {name} | {counts['events']} | {counts['activities']} | {counts['timers']} | {counts['runs']} "
                f"| {largest} |"
            )
            ends.append(f"{name}: {status}")
            over = over or largest > limit + ROUND_EVENTS
        print("ended: " + "; ".join(ends))
        print(f"budget: no single run past continue_after_events + {ROUND_EVENTS} ({'OVER' if over else 'within'})")
    finally:
        await env.shutdown()
    return 1 if (over and args.check) else 0


if __name__ == "__main__":
    code = asyncio.run(main())
    sys.stdout.flush()
    os._exit(code)  # sdk-python issue 300: the interpreter may crash at exit after a clean shutdown
