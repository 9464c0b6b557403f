"""The scaling decisions runbook's rules, on the time-skipping server with the default policy.

The fake AWS behind it is a small load model: the offered load (in task-percent) is a script
of time, and the CPU CloudWatch reports is that load over the tasks running at that moment,
so a step up really brings the CPU down and a step down brings it up."""

from __future__ import annotations

import dataclasses
import io
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts import (
    Approve,
    Datapoint,
    EcsCapacity,
    EcsCapacityRequest,
    EcsScalePlan,
    LambdaConcurrencyPlan,
    LambdaConcurrencyRequest,
    Policy,
    ProvisionedConcurrency,
    ProvisionedConcurrencyStatus,
    ProvisionedConcurrencyWait,
    ScalingRecord,
    Series,
    SeriesRequest,
)
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
from tests.fakes import FakePlatform
from tests.identity import INTAKE, signing_client
from tests.policies import default_policy
from tests.test_intake import alertmanager
from tests.test_signin import PASSWORDS, operator_app, refused, runbook, serving
from workflows.scaling_decision import ScalingDecisionWorkflow

HISTORIES = Path(__file__).parent / "histories" / "scaling"
Load = Callable[[datetime], float]


class FakeAws:
    """ECS tasks, an optional autoscaler and provisioned concurrency, and CloudWatch series
    computed from an offered load."""

    def __init__(self, desired: int = 4) -> None:
        self.started: datetime | None = None  # the server's time at the trigger; loads are relative to it
        self.changes: list[tuple[datetime, int]] = []  # (when, desired) after each step
        self.desired = desired
        self.baseline = desired
        self.cpu_load: Callable[[timedelta], float] = lambda since: 100.0  # task-percent, by time since start
        self.p95: Callable[[timedelta], float] = lambda since: 500.0
        self.rolling_until: timedelta | None = None  # a rollout in progress until then (since start)
        self.applied: list[EcsScalePlan] = []
        self.provisioned = 100  # Lambda provisioned concurrency requested (and READY)
        self.concurrency_plans: list[LambdaConcurrencyPlan] = []
        self.waited: list[int] = []
        self.reads = 0

    def tasks_at(self, at: datetime) -> int:
        tasks = self.baseline
        for when, desired in self.changes:
            if when <= at:
                tasks = desired
        return tasks

    def since(self, at: datetime) -> timedelta:
        assert self.started is not None
        return at - self.started

    def value(self, key: str, at: datetime) -> float:
        since = self.since(at)
        if key == "cpu_pct":
            return self.cpu_load(since) / self.tasks_at(at)
        if key == "p95_latency_ms":
            return self.p95(since)
        return 1.0  # memory, queue: quiet

    @activity.defn(name="read_series")
    async def read_series(self, request: SeriesRequest) -> list[Series]:
        assert request.end is not None
        self.reads += 1
        series = []
        for query in request.queries:
            period = query.period_seconds
            first = int((request.end - request.window).timestamp()) // period * period + period
            last = int(request.end.timestamp()) // period * period - period  # the last complete period
            points = [
                Datapoint(
                    at=datetime.fromtimestamp(t, request.end.tzinfo),
                    value=self.value(query.key, datetime.fromtimestamp(t, request.end.tzinfo)),
                )
                for t in range(first, last + 1, period)
            ]
            series.append(Series(key=query.key, period_seconds=period, points=points))
        return series

    @activity.defn(name="read_ecs_capacity")
    async def read_ecs_capacity(self, request: EcsCapacityRequest) -> EcsCapacity:
        now = activity.info().current_attempt_scheduled_time
        rolling = self.rolling_until is not None and self.started is not None and self.since(now) < self.rolling_until
        return EcsCapacity(
            cluster=request.cluster,
            service=request.service,
            region=request.region,
            desired_count=self.desired,
            running_count=self.desired,
            pending_count=0,
            rolling_out=rolling,
            rollout_detail="an ECS deployment is rolling out (2 deployments)" if rolling else "",
            scalable_target=None,
        )

    @activity.defn(name="scale_ecs_service")
    async def scale_ecs_service(self, plan: EcsScalePlan) -> ScalingRecord:
        self.applied.append(plan)
        before = self.desired
        if self.desired == plan.to_count:
            return ScalingRecord(changed=False, before=before, after=before, detail="already there")
        self.desired = plan.to_count
        self.changes.append((activity.info().current_attempt_scheduled_time, plan.to_count))
        return ScalingRecord(
            changed=True, before=before, after=plan.to_count, detail=f"desired count -> {plan.to_count}"
        )

    @activity.defn(name="read_provisioned_concurrency")
    async def read_provisioned_concurrency(self, request: LambdaConcurrencyRequest) -> ProvisionedConcurrency:
        return self.concurrency_of(request.function_name, request.qualifier, request.region)

    def concurrency_of(self, function: str, qualifier: str, region: str) -> ProvisionedConcurrency:
        n = self.provisioned
        status: ProvisionedConcurrencyStatus = "READY" if n else "NONE"
        return ProvisionedConcurrency(
            function_name=function,
            qualifier=qualifier,
            region=region,
            requested=n,
            allocated=n,
            available=n,
            status=status,
        )

    @activity.defn(name="set_provisioned_concurrency")
    async def set_provisioned_concurrency(self, plan: LambdaConcurrencyPlan) -> ScalingRecord:
        self.concurrency_plans.append(plan)
        before, self.provisioned = self.provisioned, plan.to_concurrency
        return ScalingRecord(changed=before != plan.to_concurrency, before=before, after=plan.to_concurrency, detail="")

    @activity.defn(name="wait_for_provisioned_concurrency")
    async def wait_for_provisioned_concurrency(self, wait: ProvisionedConcurrencyWait) -> ProvisionedConcurrency:
        self.waited.append(wait.expected)
        return self.concurrency_of(wait.function_name, wait.qualifier, wait.region)

    @activity.defn(name="remediation_in_progress")
    async def remediation_in_progress(self, workflow_id: str) -> str | None:
        return None

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.read_series,
            self.read_ecs_capacity,
            self.scale_ecs_service,
            self.read_provisioned_concurrency,
            self.set_provisioned_concurrency,
            self.wait_for_provisioned_concurrency,
            self.remediation_in_progress,
        ]


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
        path = HISTORIES / f"{name}.json"
        if os.environ.get("RECORD_HISTORIES") and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text((await handle.fetch_history()).to_json())


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


def breach(
    minutes_before: float, until: timedelta | None = None, high: float = 360.0, low: float = 100.0
) -> Callable[[timedelta], float]:
    """An offered load of `high` (90 % CPU on 4 tasks) from `minutes_before` the trigger, until
    `until` after it (then `low`)."""

    def load(since: timedelta) -> float:
        if since < -timedelta(minutes=minutes_before):
            return low
        if until is not None and since >= until:
            return low
        return high

    return load


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
) -> AsyncIterator[tuple[Scaling, str]]:
    """A worker with the fake AWS, a fresh region for hybrid-router, and the operator listener;
    the CLI pointed at both."""
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
            yield scaling, region


async def test_runbook_trigger_scaling_plan_shows_the_calls(
    on_dev_server: tuple[Scaling, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scaling, region = on_dev_server
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


async def test_an_alert_routed_to_scaling_opens_the_scaling_run(on_dev_server: tuple[Scaling, str]) -> None:
    scaling, region = on_dev_server  # the load is quiet: the run reads CloudWatch and ends "not sustained"
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
