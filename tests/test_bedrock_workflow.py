"""The Bedrock connectivity runbook's rules, on the time-skipping server with the default policy,
against the outage schedules of tests/bedrock_fakes.py."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.runs import Runs
from contracts import Approve, Cancel, EmergencySwitchRequest, PageRequest, Policy, Reject
from contracts.bedrock_connectivity import (
    BedrockCarry,
    BedrockInput,
    BedrockResult,
    BedrockStatus,
    BedrockTrigger,
    BedrockView,
    SwitchPlan,
)
from intake.app import IntakeConfig, create_app
from intake.handoff import Handoff
from signing import Signer
from starter import trigger_bedrock
from tests.bedrock_fakes import FakeBedrock, down_until
from tests.conftest import serve_app
from tests.fakes import FakePlatform
from tests.identity import INTAKE, signing_client
from tests.policies import default_policy
from tests.test_intake import alertmanager
from tests.test_signin import PASSWORDS, operator_app, refused, runbook, serving
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

    async def trigger_in(self, region: str, by: str = "alice") -> WorkflowHandle:
        """On the dev server: real time, the intake's own clock."""
        trigger = BedrockTrigger(by=by, reason="test")
        return await trigger_bedrock(self.client, region, trigger, self.task_queue, INTAKE)

    async def proposal(
        self, handle: WorkflowHandle, enable: bool, within: timedelta, real_time: bool = False
    ) -> SwitchPlan:
        """The plan awaiting approval once the run proposes it (the clock moves meanwhile)."""
        for _ in range(int(within / POLL) + 1 if not real_time else 200):
            view: BedrockView = await handle.query(BedrockConnectivityWorkflow.view)
            pending = view.pending_approval
            if pending is not None and pending.enable == enable:
                return pending
            assert view.status not in (BedrockStatus.RECOVERED, BedrockStatus.HANDED_OVER), view.outcome
            if real_time:
                await asyncio.sleep(0.1)
            else:
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
    platform.healthy = True  # the service levels CloudWatch shows (bad in a test that says so)
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


async def test_a_switch_no_person_asked_for_waits_for_two_people(bedrock: Bedrock) -> None:
    """Four eyes where an alert opened the run (no person among its requesters): one approval
    switches nothing; a second person's does."""
    bedrock.fake.down = down_until(20)
    handle = await bedrock.trigger(by="intake/alertmanager")
    switch = await bedrock.proposal(handle, enable=False, within=timedelta(minutes=2))
    await bedrock.approve(handle, switch, "bob")
    with pytest.raises(WorkflowUpdateFailedError) as twice:
        await bedrock.approve(handle, switch, "bob")
    assert "bob already approved" in str(twice.value.cause)
    await bedrock.env.sleep(POLL)
    view: BedrockView = await handle.query(BedrockConnectivityWorkflow.view)
    assert view.status == BedrockStatus.AWAITING_APPROVAL and view.pending_approval is not None
    assert bedrock.fake.switches == []
    assert [e.detail for e in view.timeline if e.event == "two approvers needed"] == [
        f"{switch.plan_id}: four eyes, and no person opened this run (intake/alertmanager)"
    ]
    await bedrock.approve(handle, switch, "alice")
    enable = await bedrock.proposal(handle, enable=True, within=timedelta(minutes=40))
    assert bedrock.fake.switches == [False]
    view = await handle.query(BedrockConnectivityWorkflow.view)
    approved = [e for e in view.timeline if e.event == "approved"]
    assert [(e.actor, "(approval 1 of 2)" in e.detail, "(approval 2 of 2)" in e.detail) for e in approved] == [
        ("bob", True, False),
        ("alice", False, True),
    ]
    assert enable.action_name == "re_enable_hybrid_routing"
    await bedrock.approve(handle, enable, "bob")
    assert (await bedrock.result(handle)).view.status == BedrockStatus.RECOVERED
    await bedrock.keep_history(handle, "alert-opened-two-approvers")


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


# --------------------------------------------------------------------------- on the dev server


@dataclasses.dataclass
class OnDevServer:
    bedrock: Bedrock
    region: str
    other: str  # a second region of the policy's bedrock section
    url: str  # the operator listener
    runs: Runs


@pytest.fixture
async def on_dev_server(
    dev_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[OnDevServer]:
    """A worker with the fake Bedrock and the real switch ownership (`Runs`, which lists the open
    runs through Temporal's visibility), two fresh regions, the operator listener; the CLI
    pointed at both."""
    policy = default_policy()
    assert policy.bedrock is not None
    region, other = (f"test-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for name in (region, other):
        policy.bedrock.regions[name] = policy.bedrock.regions["eu-central-1"]
    fake, platform = FakeBedrock(), FakePlatform(policy)
    fake.started = datetime.now(UTC)
    runs = Runs(dev_env.client, switch=fake.set_hybrid_routing)
    task_queue = f"bedrock-{uuid.uuid4()}"
    empty = tmp_path / "temporal.toml"
    empty.write_text("")
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(empty))
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("RUNBOOK_SESSION_FILE", str(tmp_path / "session.json"))
    platform_side = [a for a in platform.activities() if getattr(a, "__name__", "") != "set_hybrid_routing"]
    bedrock_side: list[Callable[..., Any]] = [
        fake.probe_bedrock,
        fake.simulate_invoke_permission,
        fake.read_bedrock_breaker,
    ]
    async with Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[BedrockConnectivityWorkflow],
        activities=[*platform_side, *bedrock_side, runs.switch_owner, runs.set_hybrid_routing],
    ):
        target = dev_env.client.service_client.config.target_host
        with serving(operator_app(target, task_queue, policy)) as url:
            monkeypatch.setenv("RUNBOOK_SIGNIN_URL", url)
            client = signing_client(dev_env.client)
            bedrock = Bedrock(dev_env, client, task_queue, policy, fake, platform, started=fake.started)
            yield OnDevServer(bedrock, region, other, url, runs)


async def test_runbook_trigger_bedrock_plan_and_show(
    on_dev_server: OnDevServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = on_dev_server
    dev.bedrock.fake.down = down_until(60)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORDS["alice"] + "\n"))
    await runbook(capsys, "login", "--as", "alice", "--password-stdin")
    refusal = await refused(capsys, "trigger", "bedrock", "--region", "mars-north-1")
    assert "region 'mars-north-1' is not in the policy's bedrock section" in str(refusal)
    out = await runbook(capsys, "trigger", "bedrock", "--region", dev.region, "--plan", "--reason", "a test")
    workflow_id = out.strip()
    assert workflow_id == f"bedrock/{dev.region}"
    handle = dev.bedrock.client.get_workflow_handle(workflow_id, result_type=BedrockResult)
    result: BedrockResult = await handle.result()
    assert result.view.status == BedrockStatus.PLANNED and result.view.opened_by == "alice"
    assert dev.bedrock.fake.switches == []
    shown = await runbook(capsys, "show", workflow_id)
    assert f"[bedrock]  Bedrock in {dev.region}  (plan only)" in shown
    assert "verdict       failing" in shown and "would call    POST /admin/emergency/disable-hybrid-routing" in shown
    assert "ServiceUnavailableException" in shown


async def test_a_breaker_open_alert_opens_the_regions_bedrock_run(on_dev_server: OnDevServer) -> None:
    dev = on_dev_server
    policy = dev.bedrock.policy
    policy.services["hybrid-router"] = policy.services["hybrid-router"].model_copy(update={"region": dev.region})
    target = dev.bedrock.env.client.service_client.config.target_host
    handoff = Handoff(
        lambda: Client.connect(target, data_converter=pydantic_data_converter), dev.bedrock.task_queue, INTAKE
    )
    app = create_app(IntakeConfig(policy=policy, alertmanager_token="t"), handoff)
    payload = alertmanager("hybrid-router")
    for alert in payload["alerts"]:
        alert["labels"] = {"alertname": "BedrockCircuitBreakerOpen", "severity": "critical"}
    with serve_app(app) as url:
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                f"{url}/v1/alerts/alertmanager", json=payload, headers={"authorization": "Bearer t"}
            )
    assert answer.status_code == 202 and answer.json()["incidents"] == [f"bedrock/{dev.region}"]
    handle = dev.bedrock.client.get_workflow_handle(f"bedrock/{dev.region}", result_type=BedrockResult)
    result: BedrockResult = await handle.result()  # Bedrock is fine: the diagnosis says so, nothing moves
    assert result.view.status == BedrockStatus.HEALTHY and result.view.opened_by == "intake/alertmanager"


async def test_one_owner_of_the_switch_at_a_time(on_dev_server: OnDevServer) -> None:
    """A run holding hybrid routing off owns the switch: another run (here another region's, as an
    incident run would be) is deferred before proposing, and its switch activity is refused."""
    dev = on_dev_server
    dev.bedrock.fake.down = down_until(60)
    first = await dev.bedrock.trigger_in(dev.region)
    switch = await dev.bedrock.proposal(first, enable=False, within=timedelta(minutes=2), real_time=True)
    await dev.bedrock.approve(first, switch, "bob")
    for _ in range(100):
        view: BedrockView = await first.query(BedrockConnectivityWorkflow.view)
        if view.status == BedrockStatus.HALF_OPEN:
            break
        await asyncio.sleep(0.1)
    assert view.status == BedrockStatus.HALF_OPEN and dev.bedrock.fake.switches == [False]
    second = await dev.bedrock.trigger_in(dev.other)
    result: BedrockResult = await second.result()
    assert result.view.status == BedrockStatus.DEFERRED, result.outcome
    assert f"Bedrock run bedrock/{dev.region} (half-open)" in result.outcome
    # the P0 incident runbook's switch goes through the same activity, which refuses it
    incident = ActivityEnvironment()
    incident.info = dataclasses.replace(incident.info, workflow_id="incident/hybrid-router/eu-central-1")
    with pytest.raises(ApplicationError) as refused_switch:
        await incident.run(
            dev.runs.set_hybrid_routing, EmergencySwitchRequest(hybrid_routing_enabled=True, reason="undo")
        )
    assert refused_switch.value.type == "SwitchOwned" and refused_switch.value.non_retryable
    assert f"owned by Bedrock run bedrock/{dev.region}" in str(refused_switch.value)
    assert dev.bedrock.fake.switches == [False]  # nothing switched twice, nothing switched back
    await first.execute_update(BedrockConnectivityWorkflow.cancel, Cancel(by="bob", reason="test over"))
    cancelled: BedrockResult = await first.result()
    assert cancelled.view.status == BedrockStatus.CANCELLED and "hybrid routing left off" in cancelled.outcome


async def test_the_approval_page_shows_the_bedrock_run_and_keeps_four_eyes(on_dev_server: OnDevServer) -> None:
    """The page lists the run awaiting approval with its diagnosis; the opener's approval of the
    high-risk switch is refused and changes nothing; another approver's is taken."""
    dev = on_dev_server
    dev.bedrock.fake.down = down_until(60)
    handle = await dev.bedrock.trigger_in(dev.region, by="alice")
    try:
        switch = await dev.bedrock.proposal(handle, enable=False, within=timedelta(minutes=1), real_time=True)
        link = f"/ui/incident?id={quote(handle.id, safe='')}"
        for user in ("alice", "bob"):
            async with httpx.AsyncClient(base_url=dev.url, follow_redirects=False, timeout=30) as http:
                signed_in = await http.post("/ui/login", data={"user": user, "password": PASSWORDS[user]})
                assert signed_in.status_code == 303
                assert link in (await http.get("/ui")).text  # listed as awaiting approval
                detail = (await http.get(link)).text
                assert "verdict</th><td>failing" in detail and "ServiceUnavailableException" in detail
                assert f"Awaiting approval: {switch.plan_id}" in detail
                assert "emergency switch: disable hybrid routing" in detail
                csrf = detail.split('name="csrf" value="')[1].split('"')[0]
                form = {"id": handle.id, "plan_id": switch.plan_id, "csrf": csrf}
                answer = await http.post("/ui/approve", data=form)
                shown = (await http.get(answer.headers["location"])).text
            if user == "alice":
                assert "four eyes" in shown and dev.bedrock.fake.switches == []
            else:
                assert "approved by bob" in shown
        for _ in range(200):
            if dev.bedrock.fake.switches:
                break
            await asyncio.sleep(0.05)
        assert dev.bedrock.fake.switches == [False]
    finally:
        await handle.terminate("test done")


async def test_a_long_half_open_wait_continues_as_new_and_recovers(bedrock: Bedrock) -> None:
    assert bedrock.policy.bedrock is not None
    bedrock.policy.bedrock = bedrock.policy.bedrock.model_copy(update={"continue_after_events": 60})
    bedrock.fake.down = down_until(30)  # 30 probes at one a minute: several continued runs
    handle = await bedrock.trigger()
    await bedrock.approve(handle, await bedrock.proposal(handle, False, timedelta(minutes=2)), "bob")
    enable = await bedrock.proposal(handle, enable=True, within=timedelta(minutes=60))
    assert await bedrock.elapsed() >= timedelta(minutes=40)
    await bedrock.approve(handle, enable, "alice")
    result = await bedrock.result(handle)
    assert result.view.status == BedrockStatus.RECOVERED, result.outcome
    assert bedrock.fake.switches == [False, True]  # the continued runs switched nothing again
    assert "continued" in [entry.event for entry in result.view.timeline]
    assert len(pages(bedrock.platform)) == 1  # the carried page: not paged again
    assert result.view.switches[0].verified  # the switch's record came along
    first = bedrock.client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
    await bedrock.keep_history(first, "half_open_continued_first_run")
    await bedrock.keep_history(bedrock.client.get_workflow_handle(handle.id), "half_open_continued_last_run")


async def test_a_start_carrying_state_of_its_own_is_refused(bedrock: Bedrock) -> None:
    """Only continue-as-new makes a run with a predecessor's state: a start that carries some
    (anyone who can start a workflow could write it) switches nothing and reads nothing."""
    region = f"test-{uuid.uuid4().hex[:8]}"
    assert bedrock.policy.bedrock is not None
    bedrock.policy.bedrock.regions[region] = bedrock.policy.bedrock.regions["eu-central-1"]
    now = await bedrock.env.get_current_time()
    bedrock.fake.started = now
    forged = BedrockCarry(
        switched_off_at=now,
        healthy_since=now - timedelta(hours=1),
        switches=[],
        failed_reenables=0,
        diagnosis=None,
        triggers=1,
        opened_by="mallory",
        pagerduty=None,
        timeline=[],
        deliveries=[],
    )
    signer: Signer = dataclasses.replace(INTAKE, clock=lambda: now.timestamp())
    signed = signer.sign(
        BedrockTrigger(by="mallory"), subject="mallory", action="trigger", workflow_id=f"bedrock/{region}"
    )
    handle = await bedrock.client.start_workflow(
        BedrockConnectivityWorkflow.run,
        BedrockInput(region=region, opened_by="mallory", carried=forged),
        id=f"bedrock/{region}",
        task_queue=bedrock.task_queue,
        start_signal="trigger",
        start_signal_args=[signed],
    )
    result = await bedrock.result(handle)
    assert result.view.status == BedrockStatus.REFUSED and "no run continued into it" in result.outcome
    assert bedrock.fake.probes == [] and bedrock.fake.switches == []


async def test_a_re_enable_missing_the_service_levels_is_not_verified(bedrock: Bedrock) -> None:
    assert bedrock.policy.bedrock is not None
    bedrock.policy.bedrock = bedrock.policy.bedrock.model_copy(update={"max_reenables": 1})
    bedrock.fake.down = down_until(20)
    handle = await bedrock.trigger()
    await bedrock.approve(handle, await bedrock.proposal(handle, False, timedelta(minutes=2)), "bob")
    enable = await bedrock.proposal(handle, enable=True, within=timedelta(minutes=40))
    bedrock.platform.healthy = False  # Bedrock answers, the breaker stays closed, but p95 and errors are bad
    await bedrock.approve(handle, enable, "alice")
    result = await bedrock.result(handle)
    assert result.view.status == BedrockStatus.HANDED_OVER, result.outcome
    assert bedrock.fake.switches == [False, True, False]  # switched off again, then people
    failed = [e for e in result.view.timeline if e.event == "not verified"]
    assert failed and "p95_latency_ms" in failed[-1].detail
