"""The scaling decisions runbook's rules, on the time-skipping server with the default policy,
against the load model of tests/scaling_fakes.py; and how runs start, on the dev server."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts import Approve, Policy
from contracts.scaling_decision import (
    ScalingInput,
    ScalingResult,
    ScalingStatus,
    ScalingTrigger,
    ScalingView,
)
from intake.app import IntakeConfig, create_app
from intake.handoff import Handoff
from signing import Signer
from starter import trigger_scaling
from tests.conftest import serve_app
from tests.fakes import FakePlatform, keep_history
from tests.identity import INTAKE, signing_client
from tests.policies import default_policy
from tests.scaling_fakes import FakeAws, breach
from tests.test_intake import alertmanager
from tests.test_signin import PASSWORDS, operator_app, refused, runbook, serving
from workflows.scaling_decision import ScalingDecisionWorkflow

HISTORIES = Path(__file__).parent / "histories" / "scaling"


@dataclasses.dataclass
class Scaling:
    env: WorkflowEnvironment
    client: Client
    task_queue: str
    policy: Policy
    aws: FakeAws
    platform: FakePlatform

    async def trigger(self, plan: bool = False, by: str = "alice") -> WorkflowHandle:
        region = f"test-{uuid.uuid4().hex[:8]}"
        self.policy.services["hybrid-router"] = self.policy.services["hybrid-router"].model_copy(
            update={"region": region}
        )
        now = await self.env.get_current_time()
        self.aws.started = now
        signer: Signer = dataclasses.replace(INTAKE, clock=lambda: now.timestamp())
        trigger = ScalingTrigger(by=by, plan=plan, reason="test")
        return await trigger_scaling(self.client, "hybrid-router", region, trigger, self.task_queue, signer)

    async def result(self, handle: WorkflowHandle) -> ScalingResult:
        result: ScalingResult = await handle.result()
        return result

    def steps(self) -> list[int]:
        return [plan.to_count for plan in self.aws.applied]

    async def keep_history(self, handle: WorkflowHandle, name: str) -> None:
        await keep_history(handle, HISTORIES / f"{name}.json")


@pytest.fixture
async def scaling(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Scaling]:
    policy = default_policy()
    aws = FakeAws()
    platform = FakePlatform(policy)
    task_queue = f"scaling-{uuid.uuid4()}"
    client = signing_client(time_skipping_env.client, time_skipping_env.get_current_time)
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[ScalingDecisionWorkflow],
        activities=[*platform.activities(), *aws.activities()],
    ):
        yield Scaling(time_skipping_env, client, task_queue, policy, aws, platform)


# --------------------------------------------------------------------------- confirm


async def test_a_four_minute_cpu_breach_does_not_scale(scaling: Scaling) -> None:
    scaling.aws.cpu_load = breach(minutes_before=4)
    result = await scaling.result(await scaling.trigger())
    assert result.view.status == ScalingStatus.NOT_SUSTAINED
    assert scaling.aws.applied == []
    assert result.view.judgement is not None and not result.view.judgement.sustained
    assert "not > 70" in result.outcome


async def test_five_minutes_of_cpu_scales_up_once_then_back_to_the_baseline(scaling: Scaling) -> None:
    scaling.aws.cpu_load = breach(minutes_before=6, until=timedelta(minutes=20))
    handle = await scaling.trigger()
    result = await scaling.result(handle)
    assert result.view.status == ScalingStatus.AT_BASELINE, result.outcome
    assert scaling.steps() == [6, 4]  # +2 once (90 % over 6 tasks is 60 %: verified), then back, not below
    # provisioned concurrency +50 with the step, READY before it counts, and back to its baseline
    assert [plan.to_concurrency for plan in scaling.aws.concurrency_plans] == [150, 100]
    assert scaling.aws.waited == [150, 100]
    view = result.view
    assert view.judgement is not None and view.judgement.rule == "cpu"
    assert view.baseline is not None and view.baseline.ecs.desired_count == 4
    up, down = view.steps
    # back down only after 30 minutes under half the threshold (the load fell at +20 min)
    assert down.at - scaling.aws.started >= timedelta(minutes=50)  # type: ignore[operator]
    assert "rule fired" in [e.event for e in view.timeline]
    await scaling.keep_history(handle, "scaled_up_and_back")


async def test_p95_needs_ten_minutes(scaling: Scaling) -> None:
    scaling.aws.p95 = lambda since: 2500.0 if since >= -timedelta(minutes=8) else 500.0
    result = await scaling.result(await scaling.trigger())
    assert result.view.status == ScalingStatus.NOT_SUSTAINED and scaling.aws.applied == []

    scaling.aws.p95 = lambda since: 2500.0 if timedelta(minutes=-11) <= since < timedelta(minutes=5) else 500.0
    result = await scaling.result(await scaling.trigger())
    assert result.view.judgement is not None and result.view.judgement.rule == "p95"
    assert scaling.steps()[0] == 6


# --------------------------------------------------------------------------- decide


async def test_cooldown_and_steps_per_hour_hold_and_the_maximum_is_never_passed(scaling: Scaling) -> None:
    assert scaling.policy.scaling is not None
    limited = {"ecs_max": 12, "lambda_max": 300}  # both at their maximum after four steps
    limits = {"hybrid-router": scaling.policy.scaling.limits["hybrid-router"].model_copy(update=limited)}
    scaling.policy.scaling = scaling.policy.scaling.model_copy(
        update={"auto_steps": 20, "limits": limits, "check_every": timedelta(minutes=5), "continue_after_events": 60}
    )
    # a load no capacity within the maximum brings under 70 %: 1200 task-percent is 100 % on 12
    scaling.aws.cpu_load = breach(minutes_before=6, until=timedelta(hours=2), high=1200.0)
    handle = await scaling.trigger()
    result = await scaling.result(handle)
    times = [step.at for step in result.view.steps if step.direction == "up"]
    ups = [plan.to_count for plan in scaling.aws.applied if plan.to_count > plan.from_count]
    assert ups == [6, 8, 10, 12]  # +2 each time, up to ecs_max and never past it
    assert max(plan.to_count for plan in scaling.aws.applied) == 12
    assert all(later - earlier >= timedelta(seconds=300) for earlier, later in zip(times, times[1:], strict=False))
    for n in range(len(times) - 3):
        assert times[n + 3] - times[n] >= timedelta(hours=1)  # at most 3 steps in any hour
    assert "at the maximum" in [e.event for e in result.view.timeline]
    pages = scaling.platform.called("trigger_page")
    assert len(pages) == 1 and pages[0].dedup_key.endswith("#maximum") and pages[0].severity == "error"
    assert result.view.status == ScalingStatus.AT_BASELINE
    # hours of watching: the run continued as new (its history kept short), its steps carried
    description = await handle.describe()
    assert description.raw_description.workflow_execution_info.first_run_id != description.run_id
    assert "continued" in [e.event for e in result.view.timeline]
    assert len(pages) == 1  # the carried page: not paged again in the continued run
    await scaling.keep_history(handle, "at_the_maximum_paged_p1")


async def test_a_rollout_in_progress_holds_the_step(scaling: Scaling) -> None:
    scaling.aws.cpu_load = breach(minutes_before=6, until=timedelta(minutes=20))
    scaling.aws.rolling_until = timedelta(minutes=3)
    result = await scaling.result(await scaling.trigger())
    holding = [e for e in result.view.timeline if e.event == "holding"]
    assert holding and "rolling out" in holding[0].detail
    first = result.view.steps[0]
    assert first.at - scaling.aws.started >= timedelta(minutes=3)  # type: ignore[operator]
    assert scaling.steps() == [6, 4]


async def test_a_maintenance_window_holding_the_service_holds_the_step(scaling: Scaling) -> None:
    scaling.aws.cpu_load = breach(minutes_before=6, until=timedelta(hours=2))
    scaling.aws.held_by = "maintenance window maintenance/hybrid-router/2026-12-07T02:00Z holds hybrid-router"
    handle = await scaling.trigger()
    result = await scaling.result(handle)
    assert result.view.status == ScalingStatus.HELD and scaling.aws.applied == []
    holding = [e.detail for e in result.view.timeline if e.event == "holding"]
    assert holding and holding[0] == scaling.aws.held_by and scaling.aws.hold_asked >= 2
    await scaling.keep_history(handle, "held_by_a_maintenance_window")


async def test_plan_mode_prints_the_calls_and_makes_none(scaling: Scaling) -> None:
    scaling.aws.cpu_load = breach(minutes_before=6)
    handle = await scaling.trigger(plan=True)
    result = await scaling.result(handle)
    assert result.view.status == ScalingStatus.PLANNED and scaling.aws.applied == []
    assert result.view.planned_calls == [
        'ecs UpdateService {"cluster": "hybrid-routing-cluster", "desiredCount": 6, '
        '"service": "hybrid-router-service"}',
        'lambda PutProvisionedConcurrencyConfig {"FunctionName": "hybrid-router", '
        '"ProvisionedConcurrentExecutions": 150, "Qualifier": "live"}',
    ]
    assert scaling.aws.concurrency_plans == []
    await scaling.keep_history(handle, "plan_only")


async def test_above_the_budget_the_on_call_approves(scaling: Scaling) -> None:
    assert scaling.policy.scaling is not None
    scaling.policy.scaling = scaling.policy.scaling.model_copy(update={"auto_steps": 0})
    scaling.aws.cpu_load = breach(minutes_before=6, until=timedelta(minutes=20))
    handle = await scaling.trigger()
    for _ in range(200):
        view: ScalingView = await handle.query(ScalingDecisionWorkflow.view)
        if view.pending_approval is not None:
            break
        await scaling.env.sleep(timedelta(seconds=1))
    assert view.pending_approval is not None and scaling.aws.applied == []
    await handle.execute_update(
        ScalingDecisionWorkflow.approve, Approve(by="alice", plan_id=view.pending_approval.plan_id)
    )
    result = await scaling.result(handle)
    assert scaling.steps() == [6, 4] and result.view.status == ScalingStatus.AT_BASELINE
    await scaling.keep_history(handle, "approved_above_the_budget")


async def test_a_policy_wide_dry_run_plans_only(scaling: Scaling) -> None:
    assert scaling.policy.scaling is not None
    scaling.policy.scaling = scaling.policy.scaling.model_copy(update={"dry_run": True})
    scaling.aws.cpu_load = breach(minutes_before=6)
    result = await scaling.result(await scaling.trigger())
    assert result.view.status == ScalingStatus.PLANNED and result.view.plan_only
    assert scaling.aws.applied == [] and len(result.view.planned_calls) == 2


async def test_a_start_without_a_signed_trigger_is_refused_and_reads_nothing(scaling: Scaling) -> None:
    region = f"test-{uuid.uuid4().hex[:8]}"
    forged = ScalingTrigger(by="mallory", reason="forged straight into Temporal")
    handle = await scaling.env.client.start_workflow(  # the raw client: nothing signs it
        ScalingDecisionWorkflow.run,
        ScalingInput(service="hybrid-router", region=region, opened_by="mallory"),
        id=f"scaling/hybrid-router/{region}",
        task_queue=scaling.task_queue,
        start_signal="trigger",
        start_signal_args=[forged],
    )
    result = await scaling.result(handle)
    assert result.view.status == ScalingStatus.REFUSED and result.view.refused_signals == 1
    assert scaling.aws.reads == 0 and scaling.aws.applied == []
    await scaling.keep_history(handle, "forged_start_refused")


# --------------------------------------------------------------------------- how runs start (dev server)


@pytest.fixture
async def on_dev_server(
    dev_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Scaling, str, str]]:
    """A worker with the fake AWS, a fresh region for hybrid-router, and the operator listener
    (its URL); the CLI pointed at both."""
    policy = default_policy()
    region = f"test-{uuid.uuid4().hex[:8]}"
    policy.services["hybrid-router"] = policy.services["hybrid-router"].model_copy(update={"region": region})
    aws, platform = FakeAws(), FakePlatform(policy)
    aws.started = datetime.now(UTC)
    task_queue = f"scaling-{uuid.uuid4()}"
    empty = tmp_path / "temporal.toml"
    empty.write_text("")
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(empty))
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("RUNBOOK_SESSION_FILE", str(tmp_path / "session.json"))
    async with Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[ScalingDecisionWorkflow],
        activities=[*platform.activities(), *aws.activities()],
    ):
        target = dev_env.client.service_client.config.target_host
        with serving(operator_app(target, task_queue, policy)) as url:
            monkeypatch.setenv("RUNBOOK_SIGNIN_URL", url)
            scaling = Scaling(dev_env, dev_env.client, task_queue, policy, aws, platform)
            yield scaling, region, url


async def test_runbook_trigger_scaling_plan_shows_the_calls(
    on_dev_server: tuple[Scaling, str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scaling, region, _ = on_dev_server
    scaling.aws.cpu_load = breach(minutes_before=6)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORDS["alice"] + "\n"))
    await runbook(capsys, "login", "--as", "alice", "--password-stdin")
    refusal = await refused(capsys, "trigger", "scaling", "--service", "nope")
    assert "service 'nope' is not in the policy" in str(refusal)

    out = await runbook(capsys, "trigger", "scaling", "--service", "hybrid-router", "--plan", "--reason", "a test")
    workflow_id = out.strip()
    assert workflow_id == f"scaling/hybrid-router/{region}"
    result = await scaling.result(scaling.client.get_workflow_handle(workflow_id, result_type=ScalingResult))
    assert result.view.status == ScalingStatus.PLANNED and result.view.opened_by == "alice"
    assert scaling.aws.applied == []
    shown = await runbook(capsys, "show", workflow_id)
    assert "would call    ecs UpdateService {" in shown and '"desiredCount": 6' in shown
    assert "rule          cpu (cpu_pct > 70): held" in shown


async def test_an_alert_routed_to_scaling_opens_the_scaling_run(on_dev_server: tuple[Scaling, str, str]) -> None:
    scaling, region, _ = on_dev_server  # the load is quiet: the run reads CloudWatch and ends "not sustained"
    target = scaling.env.client.service_client.config.target_host
    handoff = Handoff(
        lambda: Client.connect(target, data_converter=pydantic_data_converter), scaling.task_queue, INTAKE
    )
    app = create_app(IntakeConfig(policy=scaling.policy, alertmanager_token="t"), handoff)
    payload = alertmanager("hybrid-router")
    for alert in payload["alerts"]:
        alert["labels"] = {"alertname": "HybridRouterCpuHigh", "service": "hybrid-router", "runbook": "scaling"}
    with serve_app(app) as url:
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                f"{url}/v1/alerts/alertmanager", json=payload, headers={"authorization": "Bearer t"}
            )
    assert answer.status_code == 202 and answer.json()["incidents"] == [f"scaling/hybrid-router/{region}"]
    result = await scaling.result(
        scaling.client.get_workflow_handle(f"scaling/hybrid-router/{region}", result_type=ScalingResult)
    )
    assert result.view.status == ScalingStatus.NOT_SUSTAINED and result.view.opened_by == "intake/alertmanager"
    assert scaling.aws.reads == 1 and scaling.aws.applied == []


async def test_the_approval_page_shows_the_scaling_run_and_approves_its_step(
    on_dev_server: tuple[Scaling, str, str],
) -> None:
    scaling, region, url = on_dev_server
    assert scaling.policy.scaling is not None
    scaling.policy.scaling = scaling.policy.scaling.model_copy(update={"auto_steps": 0})
    scaling.aws.cpu_load = breach(minutes_before=6)
    handle = await scaling.trigger()
    try:
        for _ in range(200):
            view: ScalingView = await handle.query(ScalingDecisionWorkflow.view)
            if view.pending_approval is not None:
                break
            await asyncio.sleep(0.05)
        assert view.pending_approval is not None
        link = f"/ui/incident?id={quote(handle.id, safe='')}"
        async with httpx.AsyncClient(base_url=url, follow_redirects=False, timeout=30) as http:
            signed_in = await http.post("/ui/login", data={"user": "alice", "password": PASSWORDS["alice"]})
            assert signed_in.status_code == 303
            assert link in (await http.get("/ui")).text  # listed as awaiting approval
            detail = (await http.get(link)).text
            assert '<table id="facts">' in detail
            assert "cpu (cpu_pct &gt; 70): held" in detail  # the rule, with its datapoints
            assert "datapoints" in detail and "90" in detail
            assert "baseline</th><td>ECS 4 desired" in detail
            assert f"Awaiting approval: {view.pending_approval.plan_id}" in detail
            assert (
                "proposed</th><td>up: set the desired count of hybrid-routing-cluster/hybrid-router-service" in detail
            )
            assert scaling.aws.applied == []
            csrf = detail.split('name="csrf" value="')[1].split('"')[0]
            plan_id = view.pending_approval.plan_id
            answer = await http.post("/ui/approve", data={"id": handle.id, "plan_id": plan_id, "csrf": csrf})
            shown = (await http.get(answer.headers["location"])).text
        assert "approved by alice" in shown
        for _ in range(200):
            if scaling.aws.applied:
                break
            await asyncio.sleep(0.05)
        assert scaling.steps() == [6]
    finally:
        await handle.terminate("test done")


async def test_runbook_approve_finds_the_pending_steps_plan_id(
    on_dev_server: tuple[Scaling, str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scaling plan's id is derived from the plan: `runbook approve` without --plan must still
    name it (read as plain data, the view has no plan_id field)."""
    scaling, _, _ = on_dev_server
    assert scaling.policy.scaling is not None
    scaling.policy.scaling = scaling.policy.scaling.model_copy(update={"auto_steps": 0})
    scaling.aws.cpu_load = breach(minutes_before=6)
    handle = await scaling.trigger()
    try:
        for _ in range(200):
            view: ScalingView = await handle.query(ScalingDecisionWorkflow.view)
            if view.pending_approval is not None:
                break
            await asyncio.sleep(0.05)
        assert view.pending_approval is not None
        monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORDS["alice"] + "\n"))
        await runbook(capsys, "login", "--as", "alice", "--password-stdin")
        assert "approved by alice" in await runbook(capsys, "approve", handle.id)
        for _ in range(200):
            if scaling.aws.applied:
                break
            await asyncio.sleep(0.05)
        assert scaling.steps() == [6]
    finally:
        await handle.terminate("test done")
