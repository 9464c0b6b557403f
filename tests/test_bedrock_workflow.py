"""The Bedrock connectivity runbook's rules, on the time-skipping server with the default policy,
against the outage schedules of tests/bedrock_fakes.py."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts import Approve, PageRequest, Policy, Reject
from contracts.bedrock_connectivity import (
    BedrockInput,
    BedrockResult,
    BedrockStatus,
    BedrockTrigger,
    BedrockView,
    SwitchPlan,
)
from signing import Signer
from starter import trigger_bedrock
from tests.bedrock_fakes import FakeBedrock, down_until
from tests.fakes import FakePlatform
from tests.identity import INTAKE, signing_client
from tests.policies import default_policy
from workflows.bedrock_connectivity import BedrockConnectivityWorkflow

HISTORIES = Path(__file__).parent / "histories" / "bedrock"
POLL = timedelta(seconds=20)  # how far the clock moves between two looks at the run


@dataclasses.dataclass
class Bedrock:
    env: WorkflowEnvironment
    client: Client
    task_queue: str
    policy: Policy
    fake: FakeBedrock
    platform: FakePlatform
    started: datetime | None = None

    async def trigger(self, plan: bool = False, by: str = "alice") -> WorkflowHandle:
        region = f"test-{uuid.uuid4().hex[:8]}"
        assert self.policy.bedrock is not None
        self.policy.bedrock.regions[region] = self.policy.bedrock.regions["eu-central-1"]
        now = await self.env.get_current_time()
        self.started = self.fake.started = now
        signer: Signer = dataclasses.replace(INTAKE, clock=lambda: now.timestamp())
        trigger = BedrockTrigger(by=by, plan=plan, reason="test")
        return await trigger_bedrock(self.client, region, trigger, self.task_queue, signer)

    async def proposal(self, handle: WorkflowHandle, enable: bool, within: timedelta) -> SwitchPlan:
        """The plan awaiting approval once the run proposes it (the clock moves meanwhile)."""
        for _ in range(int(within / POLL) + 1):
            view: BedrockView = await handle.query(BedrockConnectivityWorkflow.view)
            pending = view.pending_approval
            if pending is not None and pending.enable == enable:
                return pending
            assert view.status not in (BedrockStatus.RECOVERED, BedrockStatus.HANDED_OVER), view.outcome
            await self.env.sleep(POLL)
        raise AssertionError(f"no {'re-enable' if enable else 'switch'} proposed within {within}")

    async def approve(self, handle: WorkflowHandle, plan: SwitchPlan, by: str) -> None:
        await handle.execute_update(BedrockConnectivityWorkflow.approve, Approve(by=by, plan_id=plan.plan_id))

    async def elapsed(self) -> timedelta:
        assert self.started is not None
        return await self.env.get_current_time() - self.started

    async def result(self, handle: WorkflowHandle) -> BedrockResult:
        result: BedrockResult = await handle.result()
        return result

    async def keep_history(self, handle: WorkflowHandle, name: str) -> None:
        path = HISTORIES / f"{name}.json"
        if os.environ.get("RECORD_HISTORIES") and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text((await handle.fetch_history()).to_json())


@pytest.fixture
async def bedrock(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Bedrock]:
    policy = default_policy()
    fake = FakeBedrock()
    platform = FakePlatform(policy)
    task_queue = f"bedrock-{uuid.uuid4()}"
    client = signing_client(time_skipping_env.client, time_skipping_env.get_current_time)
    platform_side = [a for a in platform.activities() if getattr(a, "__name__", "") != "set_hybrid_routing"]
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[BedrockConnectivityWorkflow],
        activities=[*platform_side, *fake.activities()],
    ):
        yield Bedrock(time_skipping_env, client, task_queue, policy, fake, platform)


def pages(platform: FakePlatform) -> list[PageRequest]:
    return platform.called("trigger_page")


# --------------------------------------------------------------------------- decide


async def test_an_outage_proposes_the_switch_four_eyes_then_recovers_half_open(bedrock: Bedrock) -> None:
    bedrock.fake.down = down_until(20)
    handle = await bedrock.trigger(by="alice")
    switch = await bedrock.proposal(handle, enable=False, within=timedelta(minutes=2))
    assert switch.action_name == "emergency_switch" and bedrock.fake.switches == []
    assert pages(bedrock.platform)[0].summary.startswith("[P0] Bedrock client connection failed")
    # high risk, four eyes: whoever opened the run cannot approve alone; a refusal changes nothing
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await bedrock.approve(handle, switch, "alice")
    assert "four eyes: alice opened" in str(refused.value.cause)
    assert bedrock.fake.switches == []
    await bedrock.approve(handle, switch, "bob")
    enable = await bedrock.proposal(handle, enable=True, within=timedelta(minutes=40))
    # Bedrock came back at 20 minutes; every probe then had to hold for the 10-minute window
    assert await bedrock.elapsed() >= timedelta(minutes=30)
    assert bedrock.fake.switches == [False]
    await bedrock.approve(handle, enable, "alice")  # medium risk: one approver, the opener may
    result = await bedrock.result(handle)
    assert result.view.status == BedrockStatus.RECOVERED, result.outcome
    assert bedrock.fake.switches == [False, True]
    off = result.view.switches[0]
    assert off.verified and off.seconds_to_verified is not None and off.seconds_to_verified <= 300
    assert result.view.switches[1].verified and result.view.failed_reenables == 0
    assert ("resolve_page", pages(bedrock.platform)[0].dedup_key) in bedrock.platform.calls
    await bedrock.keep_history(handle, "outage_switched_and_recovered")


async def test_a_denied_permission_pages_the_owner_and_switches_nothing(bedrock: Bedrock) -> None:
    bedrock.fake.denied = True
    handle = await bedrock.trigger()
    result = await bedrock.result(handle)
    assert result.view.status == BedrockStatus.PERMISSION_DENIED, result.outcome
    assert bedrock.fake.switches == [] and result.view.pending_approval is None
    (page,) = pages(bedrock.platform)
    assert page.details["missing_permission"] == "bedrock:InvokeModel"
    assert page.details["role"] == "arn:aws:iam::123456789012:role/hybrid-router-bedrock-client"
    assert "lacks bedrock:InvokeModel" in page.summary and "platform-iam" in page.summary
    assert result.view.diagnosis is not None and result.view.diagnosis.verdict == "denied"
    await bedrock.keep_history(handle, "permission_denied")


async def test_a_denied_permission_during_an_outage_still_only_pages(bedrock: Bedrock) -> None:
    bedrock.fake.denied = True
    bedrock.fake.down = down_until(60)
    result = await bedrock.result(await bedrock.trigger())
    assert result.view.status == BedrockStatus.PERMISSION_DENIED and bedrock.fake.switches == []


async def test_a_healthy_bedrock_changes_nothing(bedrock: Bedrock) -> None:
    result = await bedrock.result(await bedrock.trigger())
    assert result.view.status == BedrockStatus.HEALTHY, result.outcome
    assert bedrock.fake.switches == [] and pages(bedrock.platform) == []


async def test_plan_mode_diagnoses_and_plans_only(bedrock: Bedrock) -> None:
    bedrock.fake.down = down_until(60)
    handle = await bedrock.trigger(plan=True)
    result = await bedrock.result(handle)
    assert result.view.status == BedrockStatus.PLANNED and result.view.plan_only
    assert bedrock.fake.switches == [] and pages(bedrock.platform) == []
    assert result.view.planned_calls[0] == "POST /admin/emergency/disable-hybrid-routing"
    await bedrock.keep_history(handle, "plan_only")


async def test_another_owner_of_the_switch_defers_the_run(bedrock: Bedrock) -> None:
    bedrock.fake.down = down_until(60)
    bedrock.fake.owner = "incident run incident/hybrid-router/eu-central-1 (remediating)"
    result = await bedrock.result(await bedrock.trigger())
    assert result.view.status == BedrockStatus.DEFERRED, result.outcome
    assert "incident/hybrid-router/eu-central-1" in result.outcome
    assert bedrock.fake.switches == [] and result.view.pending_approval is None


async def test_a_rejected_switch_leaves_hybrid_routing_on_and_hands_over(bedrock: Bedrock) -> None:
    bedrock.fake.down = down_until(60)
    handle = await bedrock.trigger()
    switch = await bedrock.proposal(handle, enable=False, within=timedelta(minutes=2))
    await handle.execute_update(
        BedrockConnectivityWorkflow.reject, Reject(by="bob", plan_id=switch.plan_id, reason="not now")
    )
    result = await bedrock.result(handle)
    assert result.view.status == BedrockStatus.HANDED_OVER and bedrock.fake.switches == []


# --------------------------------------------------------------------------- half-open


async def test_a_failed_probe_starts_the_healthy_window_again(bedrock: Bedrock) -> None:
    # back at 20 minutes, one more failure at 25: the window restarts after it
    bedrock.fake.down = lambda since: (
        since < timedelta(minutes=20) or (timedelta(minutes=25) <= since < timedelta(minutes=26))
    )
    handle = await bedrock.trigger()
    await bedrock.approve(handle, await bedrock.proposal(handle, False, timedelta(minutes=2)), "bob")
    enable = await bedrock.proposal(handle, enable=True, within=timedelta(minutes=50))
    assert await bedrock.elapsed() >= timedelta(minutes=36)  # 26 + the 10-minute window, not 20 + 10
    view: BedrockView = await handle.query(BedrockConnectivityWorkflow.view)
    events = [entry.event for entry in view.timeline]
    assert "probe failed" in events and events.count("probe healthy") == 2
    await bedrock.approve(handle, enable, "alice")
    result = await bedrock.result(handle)
    assert result.view.status == BedrockStatus.RECOVERED and bedrock.fake.switches == [False, True]
    await bedrock.keep_history(handle, "healthy_window_reset")


async def test_a_failed_re_enable_switches_off_again_and_backs_off(bedrock: Bedrock) -> None:
    bedrock.fake.down = down_until(20)
    bedrock.fake.reenables_that_fail = 1  # the first re-enable opens the breaker again
    handle = await bedrock.trigger()
    await bedrock.approve(handle, await bedrock.proposal(handle, False, timedelta(minutes=2)), "bob")
    first = await bedrock.proposal(handle, enable=True, within=timedelta(minutes=40))
    await bedrock.approve(handle, first, "alice")
    second = await bedrock.proposal(handle, enable=True, within=timedelta(minutes=40))
    assert second.plan_id != first.plan_id and second.attempt == 2
    assert bedrock.fake.switches == [False, True, False]  # off, on, off again
    on, off_again = bedrock.fake.switched_at[1], bedrock.fake.switched_at[2]
    assert off_again - on < timedelta(minutes=1)  # the breaker opened: switched off at once
    await bedrock.approve(handle, second, "alice")
    result = await bedrock.result(handle)
    assert result.view.status == BedrockStatus.RECOVERED, result.outcome
    assert bedrock.fake.switches == [False, True, False, True] and result.view.failed_reenables == 1
    # no flapping: after the failed re-enable, the back-off (10 minutes) and a whole window again
    assert bedrock.fake.switched_at[3] - off_again >= timedelta(minutes=20)
    assert any(entry.event == "backing off" for entry in result.view.timeline)
    await bedrock.keep_history(handle, "re_enable_failed_backed_off")


async def test_the_back_off_grows_and_people_take_over_at_the_limit(bedrock: Bedrock) -> None:
    assert bedrock.policy.bedrock is not None
    bedrock.policy.bedrock = bedrock.policy.bedrock.model_copy(update={"max_reenables": 2})
    bedrock.fake.down = down_until(20)
    bedrock.fake.reenables_that_fail = 99
    handle = await bedrock.trigger()
    await bedrock.approve(handle, await bedrock.proposal(handle, False, timedelta(minutes=2)), "bob")
    await bedrock.approve(handle, await bedrock.proposal(handle, True, timedelta(minutes=40)), "alice")
    await bedrock.approve(handle, await bedrock.proposal(handle, True, timedelta(minutes=40)), "alice")
    result = await bedrock.result(handle)
    assert result.view.status == BedrockStatus.HANDED_OVER, result.outcome
    assert bedrock.fake.switches == [False, True, False, True, False]  # it ends switched off
    assert not bedrock.fake.hybrid_routing and result.view.failed_reenables == 2


async def test_a_start_without_a_signed_trigger_is_refused_and_reads_nothing(bedrock: Bedrock) -> None:
    region = f"test-{uuid.uuid4().hex[:8]}"
    handle = await bedrock.env.client.start_workflow(  # the raw client: nothing signs it
        BedrockConnectivityWorkflow.run,
        BedrockInput(region=region, opened_by="mallory"),
        id=f"bedrock/{region}",
        task_queue=bedrock.task_queue,
        start_signal="trigger",
        start_signal_args=[BedrockTrigger(by="mallory", reason="forged")],
    )
    result = await bedrock.result(handle)
    assert result.view.status == BedrockStatus.REFUSED and result.view.refused_signals == 1
    assert bedrock.fake.probes == [] and bedrock.fake.switches == []
