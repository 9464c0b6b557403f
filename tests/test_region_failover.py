"""The region failover runbook's rules, on the time-skipping server with the default policy
(5 minutes of failed probes, two leads approving, a one-hour hold-off), against fake regions:
the primary's health is a script of time, Route 53 and the backup's ECS service are state."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.runs import Runs
from contracts import (
    Approve,
    DnsChangePlan,
    EcsCapacity,
    EcsCapacityRequest,
    EcsRunningWait,
    EcsScalePlan,
    FailoverRecord,
    FailoverRecords,
    FailoverRecordsRequest,
    IncidentResult,
    IncidentStatus,
    Policy,
    Preflight,
    PreflightCheck,
    PreflightRequest,
    Route,
    ScalingRecord,
)
from contracts.failover import DnsChangeRecord, PreflightName
from contracts.maintenance import HoldRequest
from contracts.region_failover import (
    FailoverInput,
    FailoverResult,
    FailoverStatus,
    FailoverTrigger,
    FailoverView,
    failback_workflow_id,
    failover_workflow_id,
)
from contracts.systems import ProbeRequest, ProbeResult
from intake.app import IntakeConfig, create_app
from intake.handoff import Handoff
from signing import Signer
from starter import trigger_failover
from tests.conftest import serve_app
from tests.fakes import FakePlatform, incident_when, keep_history, open_acknowledged
from tests.identity import INTAKE, signing_client
from tests.policies import default_policy
from tests.test_intake import alertmanager, aws_health
from tests.test_signin import PASSWORDS, operator_app, refused, runbook, serving
from worker import ensure_search_attributes
from workflows.incident_response import IncidentResponseWorkflow
from workflows.region_failback import RegionFailbackWorkflow
from workflows.region_failover import RegionFailoverWorkflow

HISTORIES = Path(__file__).parent / "histories" / "failover"
PRIMARY, BACKUP = "eu-central-1", "us-west-2"
CHECKS: list[PreflightName] = [
    "backup service exists",
    "same task definition family",
    "same container images",
    "capacity reaches target",
    "hosted zone exists",
    "failover records exist",
]


def seeded_records() -> FailoverRecords:
    return FailoverRecords(
        hosted_zone_id="Z0HYBRID",
        zone_name="hybrid-routing.example.com.",
        record_name="api.hybrid-routing.example.com.",
        record_type="A",
        records=[
            FailoverRecord(
                set_identifier=PRIMARY, failover="PRIMARY", values=["192.0.2.10"], ttl=60, health_check_id="hc-eu"
            ),
            FailoverRecord(
                set_identifier=BACKUP, failover="SECONDARY", values=["198.51.100.10"], ttl=60, health_check_id="hc-us"
            ),
        ],
    )


class FakeRegions:
    """The primary's health by time since the trigger; Route 53's records; the backup's tasks."""

    def __init__(self) -> None:
        self.started: datetime | None = None
        self.primary_down: Callable[[timedelta], bool] = lambda since: True
        self.records = seeded_records()
        self.failed_checks: dict[PreflightName, str] = {}
        self.backup_desired = 0
        self.backup_stuck = False  # its tasks never start
        self.dns_calls: list[DnsChangePlan] = []
        self.scaled: list[EcsScalePlan] = []
        self.probed: list[str] = []
        self.held_by: list[str] = []  # the maintenance windows holding the service, one per ask, then none
        self.hold_asks = 0

    def since(self) -> timedelta:
        assert self.started is not None
        return activity.info().current_attempt_scheduled_time - self.started

    @activity.defn(name="probe_health")
    async def probe_health(self, request: ProbeRequest) -> ProbeResult:
        self.probed.append(request.region)
        serving = self.records.serving_region
        down = request.region == PRIMARY and self.primary_down(self.since())
        ok = not down and (request.region != BACKUP or self.backup_desired > 0 or serving != BACKUP)
        return ProbeResult(region=request.region, url=request.url, ok=ok, status_code=200 if ok else 503)

    @activity.defn(name="preflight")
    async def preflight(self, request: PreflightRequest) -> Preflight:
        checks = [
            PreflightCheck(name=name, ok=name not in self.failed_checks, detail=self.failed_checks.get(name, "ok"))
            for name in CHECKS
        ]
        return Preflight(checks=checks, records=self.records)

    @activity.defn(name="read_ecs_capacity")
    async def read_ecs_capacity(self, request: EcsCapacityRequest) -> EcsCapacity:
        return EcsCapacity(
            cluster=request.cluster,
            service=request.service,
            region=request.region,
            desired_count=self.backup_desired,
            running_count=self.backup_desired,
            pending_count=0,
            rolling_out=False,
            rollout_detail="",
            scalable_target=None,
        )

    @activity.defn(name="scale_ecs_service")
    async def scale_ecs_service(self, plan: EcsScalePlan) -> ScalingRecord:
        self.scaled.append(plan)
        before, self.backup_desired = self.backup_desired, plan.to_count
        return ScalingRecord(changed=before != plan.to_count, before=before, after=plan.to_count, detail="")

    @activity.defn(name="wait_for_ecs_running")
    async def wait_for_ecs_running(self, wait: EcsRunningWait) -> EcsCapacity:
        if self.backup_stuck:
            raise ApplicationError(f"0 of {wait.count} task(s) running at the deadline", non_retryable=True)
        return await self.read_ecs_capacity(
            EcsCapacityRequest(cluster=wait.cluster, service=wait.service, region=wait.region)
        )

    @activity.defn(name="change_failover_records")
    async def change_failover_records(self, plan: DnsChangePlan) -> DnsChangeRecord:
        if self.records.records == plan.to_records:
            return DnsChangeRecord(plan_id=plan.plan_id, changed=False, detail="already so", records=self.records)
        self.dns_calls.append(plan)
        self.records = plan.to_state()
        return DnsChangeRecord(plan_id=plan.plan_id, changed=True, detail="changed", records=self.records)

    @activity.defn(name="read_failover_records")
    async def read_failover_records(self, request: FailoverRecordsRequest) -> FailoverRecords:
        return self.records

    @activity.defn(name="maintenance_hold")
    async def maintenance_hold(self, request: HoldRequest) -> str | None:
        self.hold_asks += 1
        return f"maintenance window {self.held_by.pop(0)} holds {request.service}" if self.held_by else None

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.probe_health,
            self.preflight,
            self.read_ecs_capacity,
            self.scale_ecs_service,
            self.wait_for_ecs_running,
            self.change_failover_records,
            self.read_failover_records,
            self.maintenance_hold,
        ]


@dataclasses.dataclass
class Failover:
    env: WorkflowEnvironment
    client: Client
    task_queue: str
    policy: Policy
    regions: FakeRegions
    platform: FakePlatform

    async def trigger(self, by: str = "bob", plan: bool = False, service: str = "hybrid-router") -> WorkflowHandle:
        now = await self.env.get_current_time()
        if self.regions.started is None:
            self.regions.started = now
        signer: Signer = dataclasses.replace(INTAKE, clock=lambda: now.timestamp())
        trigger = FailoverTrigger(by=by, plan=plan, reason="region down")
        return await trigger_failover(self.client, service, trigger, self.task_queue, signer)

    async def until(self, handle: WorkflowHandle, check: Callable[[FailoverView], bool]) -> FailoverView:
        for _ in range(300):
            view: FailoverView = await handle.query(RegionFailoverWorkflow.view)
            if check(view):
                return view
            await self.env.sleep(timedelta(seconds=10))
        raise AssertionError(f"never reached: {view.status} {view.timeline[-3:]}")

    async def keep_history(self, handle: WorkflowHandle, name: str, runbook: str = "failover") -> None:
        await keep_history(handle, HISTORIES.parent / runbook / f"{name}.json")


@pytest.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server per test here: a run that failed over leaves its failback child
    soaking, and after terminating it the test server was seen to skip no more (the next test
    hung on its first timer)."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
    )
    await ensure_search_attributes(env.client, "default")
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
async def failover(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Failover]:
    policy = default_policy()
    assert policy.approvals is not None
    groups = {"oncall": ["alice"], "leads": ["bob", "carol"]}
    policy.approvals = policy.approvals.model_copy(update={"groups": groups})
    service = f"router-{uuid.uuid4().hex[:8]}"  # a fresh workflow id (failover/{service}) per test
    policy.services[service] = policy.services["hybrid-router"]
    assert policy.failover is not None
    policy.failover.services[service] = policy.failover.services["hybrid-router"]
    policy.failover.services.pop("hybrid-router")
    policy.routes = routes_without_hybrid_router(policy)
    regions, platform = FakeRegions(), FakePlatform(policy)
    task_queue = f"failover-{uuid.uuid4()}"
    client = signing_client(time_skipping_env.client, time_skipping_env.get_current_time)
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[RegionFailoverWorkflow, RegionFailbackWorkflow, IncidentResponseWorkflow],
        activities=[
            *platform.activities(),
            *regions.activities(),  # with a stand-in maintenance_hold: this server has no visibility
            *(read for read in Runs(time_skipping_env.client).all() if read.__name__ != "maintenance_hold"),
        ],
    ):
        yield Failover(time_skipping_env, client, task_queue, policy, regions, platform)


def routes_without_hybrid_router(policy: Policy) -> list[Route]:
    """The shipped routes that fail hybrid-router over name it: gone with its failover entry."""
    return [r for r in policy.routes if r.runbook != "failover" or r.service is None]


def service_of(failover: Failover) -> str:
    assert failover.policy.failover is not None
    return next(iter(failover.policy.failover.services))


async def test_a_four_minute_outage_fails_nothing_over(failover: Failover) -> None:
    failover.regions.primary_down = lambda since: since < timedelta(minutes=4)
    handle = await failover.trigger(service=service_of(failover))
    result: FailoverResult = await handle.result()
    assert result.view.status == FailoverStatus.NOT_CONFIRMED, result.outcome
    assert failover.regions.scaled == [] and failover.regions.dns_calls == []
    assert "primary answered" in [e.event for e in result.view.timeline]
    await failover.keep_history(handle, "not_confirmed")


async def test_two_leads_approve_and_the_traffic_moves_once_within_the_rto(failover: Failover) -> None:
    handle = await failover.trigger(by="bob", service=service_of(failover))
    view = await failover.until(handle, lambda v: v.pending_approval is not None)
    plan = view.pending_approval
    assert plan is not None and plan.to_region == BACKUP and plan.ecs.to_count == 3
    assert [e.event for e in view.timeline].count("ready") == len(CHECKS)
    assert failover.regions.scaled == []  # nothing before the approvals

    refusals = []
    for person in ("alice", "bob", "bob"):  # alice is no lead; bob opened it: not his alone, and once only
        try:
            await handle.execute_update(RegionFailoverWorkflow.approve, Approve(by=person, plan_id=plan.plan_id))
        except WorkflowUpdateFailedError as err:
            refusals.append((person, str(err.cause)))
    assert [person for person, _ in refusals] == ["alice", "bob"], refusals
    assert failover.regions.scaled == []  # one approval of two: nothing yet
    await handle.execute_update(RegionFailoverWorkflow.approve, Approve(by="carol", plan_id=plan.plan_id))

    view = await failover.until(handle, lambda v: v.refused_until is not None)
    again = await failover.trigger(by="carol", service=service_of(failover))  # flap protection: joins, refused
    assert again.id == handle.id
    view = await failover.until(handle, lambda v: "refused" in [e.event for e in v.timeline])

    result: FailoverResult = await handle.result()
    assert result.view.status == FailoverStatus.FAILED_OVER, result.outcome
    assert [p.to_count for p in failover.regions.scaled] == [3]
    assert len(failover.regions.dns_calls) == 1 and failover.regions.records.serving_region == BACKUP
    recovery = result.view.recovery
    assert recovery is not None and recovery.met and recovery.took >= timedelta(minutes=5)
    assert "within the RTO of 15 min" in result.outcome or "within the RTO" in result.outcome
    refused = next(e for e in result.view.timeline if e.event == "refused")
    assert "no other failover before" in refused.detail and refused.actor == "carol"
    assert [d.by for d in result.view.approvals] == ["bob", "carol"]
    await failover.keep_history(handle, "failed_over_two_leads")
    failback = failover.client.get_workflow_handle(failback_workflow_id(service_of(failover)))
    assert (await failback.query(RegionFailbackWorkflow.view)).status == "soaking"  # the way back, soaking
    await failback.terminate("test done")


async def test_an_approved_failover_waits_while_a_maintenance_window_holds_the_service(failover: Failover) -> None:
    """Approved, it changes nothing while a window holds the service (asked again every probe
    interval, said once per window), and goes on once the window has let go."""
    failover.regions.held_by = ["maintenance/x/1", "maintenance/x/1", "maintenance/x/1"]
    handle = await failover.trigger(by="bob", service=service_of(failover))
    view = await failover.until(handle, lambda v: v.pending_approval is not None)
    plan = view.pending_approval
    assert plan is not None
    for lead in ("bob", "carol"):
        await handle.execute_update(RegionFailoverWorkflow.approve, Approve(by=lead, plan_id=plan.plan_id))
    view = await failover.until(handle, lambda v: "holding" in [e.event for e in v.timeline])
    result: FailoverResult = await handle.result()
    assert result.view.status == FailoverStatus.FAILED_OVER, result.outcome
    events = [e.event for e in result.view.timeline]
    assert events.count("holding") == 1 and events.index("holding") < events.index("released")
    holding = next(e for e in result.view.timeline if e.event == "holding")
    assert "maintenance window maintenance/x/1 holds" in holding.detail
    released = next(e for e in result.view.timeline if e.event == "released")
    first_change = next(e for e in result.view.timeline if e.step == "scale_backup")
    assert failover.policy.failover is not None
    probe_every = failover.policy.failover.probe_every
    assert released.at <= first_change.at and released.at - holding.at >= 3 * probe_every
    assert failover.regions.hold_asks == 4 and [p.to_count for p in failover.regions.scaled] == [3]
    await failover.keep_history(handle, "failed_over_after_a_maintenance_hold")
    await failover.client.get_workflow_handle(failback_workflow_id(service_of(failover))).terminate("test done")


async def test_a_p0_incident_that_finds_the_region_down_hands_it_to_the_failover(failover: Failover) -> None:
    """The incident's diagnosis probes the region itself: down, so no rollback or switch is
    proposed; the failover run is its child, confirms, is approved by two leads, and its word
    wakes the incident, which resolves once the traffic is served from the backup."""
    service = service_of(failover)
    failover.platform.probe_region = failover.regions.probe_health
    failover.regions.started = await failover.env.get_current_time()
    incident = await open_acknowledged(failover.client, failover.env, failover.task_queue, service, PRIMARY)

    handle = failover.client.get_workflow_handle(failover_workflow_id(service), result_type=FailoverResult)
    seen = await incident_when(incident, lambda v: v.status == IncidentStatus.REMEDIATING)
    assert seen.failover == handle.id and seen.status == IncidentStatus.REMEDIATING
    assert seen.diagnosis is not None and seen.diagnosis.region_down
    assert seen.pending_approval is None  # no rollback, no switch: they cannot help a region that is down
    view = await failover.until(handle, lambda v: v.pending_approval is not None)
    trigger = view.timeline[0] if view.timeline[0].event == "triggered" else None
    assert trigger is not None and trigger.actor == f"incident {seen.id}" and PRIMARY in trigger.detail
    assert view.opened_by == "tester"
    plan = view.pending_approval
    assert plan is not None
    for person in ("bob", "carol"):
        await handle.execute_update(RegionFailoverWorkflow.approve, Approve(by=person, plan_id=plan.plan_id))

    result: IncidentResult = await incident.result()
    assert result.view.status == IncidentStatus.RESOLVED, result.outcome
    assert result.outcome == f"failed over to {BACKUP} by {handle.id}"
    assert [p.to_count for p in failover.regions.scaled] == [3] and len(failover.regions.dns_calls) == 1
    assert failover.platform.called("set_service_task_definition") == []  # nothing done inside the region
    # the failover's word woke the incident: not its fallback read FOLLOW_FAILOVER_EVERY later
    moved = await handle.query(RegionFailoverWorkflow.view)
    held = next(e.at for e in moved.timeline if e.event == "holding off")
    verified = next(e.at for e in result.view.timeline if e.event == "verified")
    assert timedelta(0) <= verified - held < timedelta(seconds=30), (held, verified)
    told = [str(arg) for name, arg in failover.platform.calls if name in ("add_pagerduty_note", "sync_pagerduty")]
    assert any(f"runbook approve {handle.id}" in text for text in told), told  # the on-call is told where to approve
    await failover.keep_history(incident, "incident_hands_the_region_down_to_the_failover", "incident")
    await failover.keep_history(handle, "started_by_an_incident")
    await handle.terminate("test done")
    await failover.client.get_workflow_handle(failback_workflow_id(service)).terminate("test done")


async def test_a_failed_readiness_check_blocks_the_plan(failover: Failover) -> None:
    failover.regions.failed_checks = {"same container images": "backup runs hybrid-router:1.0.0, primary :1.1.0"}
    result: FailoverResult = await (await failover.trigger(service=service_of(failover))).result()
    assert result.view.status == FailoverStatus.BLOCKED
    assert "same container images: backup runs hybrid-router:1.0.0" in result.outcome
    assert failover.regions.scaled == [] and failover.regions.dns_calls == []
    pages = failover.platform.called("trigger_page")
    assert len(pages) == 1 and pages[0].dedup_key.endswith("#blocked")


async def test_a_step_past_its_deadline_stops_leaving_what_is_done(failover: Failover) -> None:
    failover.regions.backup_stuck = True
    handle = await failover.trigger(by="alice", service=service_of(failover))
    view = await failover.until(handle, lambda v: v.pending_approval is not None)
    assert view.pending_approval is not None
    for person in ("bob", "carol"):
        await handle.execute_update(
            RegionFailoverWorkflow.approve, Approve(by=person, plan_id=view.pending_approval.plan_id)
        )
    result: FailoverResult = await handle.result()
    assert result.view.status == FailoverStatus.STOPPED
    assert "did not run 3 task(s)" in result.outcome and "backup scaled" in result.outcome
    assert failover.regions.dns_calls == [] and failover.regions.records.serving_region == PRIMARY
    assert failover.platform.called("trigger_page")[0].dedup_key.endswith("#stopped")
    await failover.keep_history(handle, "stopped_at_a_deadline")


async def test_plan_mode_prints_the_calls_and_makes_none(failover: Failover) -> None:
    handle = await failover.trigger(plan=True, service=service_of(failover))
    result: FailoverResult = await handle.result()
    assert result.view.status == FailoverStatus.PLANNED
    assert failover.regions.scaled == [] and failover.regions.dns_calls == []
    calls = result.view.planned_calls
    assert calls[0].startswith('ecs UpdateService {"cluster": "hybrid-routing-cluster-backup", "desiredCount": 3')
    assert calls[1].startswith("route53 ChangeResourceRecordSets {") and '"Action": "DELETE"' in calls[1]
    await failover.keep_history(handle, "plan_only")


async def test_a_start_without_a_signed_trigger_is_refused_and_probes_nothing(failover: Failover) -> None:
    service = service_of(failover)
    handle = await failover.env.client.start_workflow(
        RegionFailoverWorkflow.run,
        # it claims an incident, but no incident started it: no trigger either
        FailoverInput(service=service, opened_by="mallory", incident_id="INC-forged"),
        id=failover_workflow_id(service),
        task_queue=failover.task_queue,
        start_signal="trigger",
        start_signal_args=[FailoverTrigger(by="mallory", reason="forged")],
    )
    result: FailoverResult = await handle.result()
    assert result.view.status == FailoverStatus.REFUSED and result.view.refused_signals == 1
    assert failover.regions.probed == []


# --------------------------------------------------------------------------- operators (dev server)


@pytest.fixture
async def on_dev_server(
    dev_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Failover, str]]:
    """A worker with the fake regions, a policy whose windows are seconds (alice and bob the
    two leads), the operator listener (its URL), and the CLI pointed at both."""
    policy = default_policy()
    assert policy.approvals is not None and policy.failover is not None
    policy.approvals = policy.approvals.model_copy(update={"groups": {"oncall": [], "leads": ["alice", "bob"]}})
    service = f"router-{uuid.uuid4().hex[:8]}"
    policy.services[service] = policy.services["hybrid-router"]
    policy.failover = policy.failover.model_copy(
        update={
            "services": {service: policy.failover.services["hybrid-router"]},
            "confirm_for": timedelta(seconds=0),
            "probe_every": timedelta(seconds=1),
            "min_interval": timedelta(seconds=1),
        }
    )
    policy.routes = routes_without_hybrid_router(policy)
    regions, platform = FakeRegions(), FakePlatform(policy)
    regions.started = datetime.now(UTC)
    task_queue = f"failover-{uuid.uuid4()}"
    empty = tmp_path / "temporal.toml"
    empty.write_text("")
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(empty))
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("RUNBOOK_SESSION_FILE", str(tmp_path / "session.json"))
    async with Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[RegionFailoverWorkflow, RegionFailbackWorkflow],
        activities=[*platform.activities(), *regions.activities()],
    ):
        target = dev_env.client.service_client.config.target_host
        with serving(operator_app(target, task_queue, policy)) as url:
            monkeypatch.setenv("RUNBOOK_SIGNIN_URL", url)
            yield Failover(dev_env, dev_env.client, task_queue, policy, regions, platform), url


async def login(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, person: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORDS[person] + "\n"))
    await runbook(capsys, "login", "--as", person, "--password-stdin")


async def test_trigger_show_and_approve_by_two_from_the_cli_and_the_page(
    on_dev_server: tuple[Failover, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    failover, url = on_dev_server
    service = service_of(failover)
    await login(capsys, monkeypatch, "alice")
    wrong = await refused(capsys, "trigger", "failover", "--service", service, "--to", "ap-south-1")
    assert "to_region 'ap-south-1'" in str(wrong) and BACKUP in str(wrong)
    never = await refused(capsys, "trigger", "failover", "--service", "hybrid-router")
    assert "has no failover entry in the policy" in str(never)

    workflow_id = (await runbook(capsys, "trigger", "failover", "--service", service, "--reason", "eu down")).strip()
    assert workflow_id == failover_workflow_id(service)
    handle = failover.client.get_workflow_handle(workflow_id, result_type=FailoverResult)
    for _ in range(200):
        view: FailoverView = await handle.query(RegionFailoverWorkflow.view)
        if view.pending_approval is not None:
            break
        await asyncio.sleep(0.05)
    assert view.pending_approval is not None and view.opened_by == "alice"
    shown = await runbook(capsys, "show", workflow_id)
    assert f"{workflow_id}  [failover]  {service}" in shown
    assert "preflight     all 6 checks passed" in shown and f"regions       {PRIMARY} -> {BACKUP}" in shown
    assert f"AWAITING APPROVAL  {view.pending_approval.plan_id}" in shown

    # alice asked for it: her approval counts, but not alone (four eyes, two leads)
    assert "approval 1 of 2" in await runbook(capsys, "approve", workflow_id)
    assert failover.regions.scaled == []
    async with httpx.AsyncClient(base_url=url, follow_redirects=False, timeout=30) as http:
        signed_in = await http.post("/ui/login", data={"user": "bob", "password": PASSWORDS["bob"]})
        assert signed_in.status_code == 303
        link = f"/ui/incident?id={quote(workflow_id, safe='')}"
        assert link in (await http.get("/ui")).text
        detail = (await http.get(link)).text
        assert f"Awaiting approval: {view.pending_approval.plan_id}" in detail
        assert "preflight</th><td>all 6 checks passed" in detail
        csrf = detail.split('name="csrf" value="')[1].split('"')[0]
        plan_id = view.pending_approval.plan_id
        answer = await http.post("/ui/approve", data={"id": workflow_id, "plan_id": plan_id, "csrf": csrf})
        assert "approval 2 of 2" in (await http.get(answer.headers["location"])).text
    result = await handle.result()
    assert result.view.status == FailoverStatus.FAILED_OVER, result.outcome
    assert [p.to_count for p in failover.regions.scaled] == [3] and len(failover.regions.dns_calls) == 1
    assert "recovery" in await runbook(capsys, "show", workflow_id)
    await failover.client.get_workflow_handle(failback_workflow_id(service)).terminate("test done")


def test_the_policy_refuses_a_failover_section_that_cannot_work() -> None:
    data = default_policy().model_dump(mode="json")
    entry = data["failover"]["services"]["hybrid-router"]
    data["routes"] = [r for r in data["routes"] if r["runbook"] != "failover" or r["service"] is None]
    cases = {
        "failover.services.nope: not a service of services": {"nope": entry},
        "the backup region is the primary region": {"hybrid-router": {**entry, "backup_region": PRIMARY}},
        "health_urls: no URL for the backup region": {
            "hybrid-router": {**entry, "health_urls": {PRIMARY: "https://eu.example/health"}}
        },
    }
    for message, services in cases.items():
        broken = {**data, "failover": {**data["failover"], "services": services}}
        with pytest.raises(ValueError, match=message):
            Policy.model_validate(broken)
    assert Policy.model_validate(data).failover is not None


async def test_an_alert_routed_to_the_failover_opens_its_run(on_dev_server: tuple[Failover, str]) -> None:
    """Alertmanager's region-health rule, labelled runbook=failover: the intake hands it to the
    service's failover run, which probes before anything moves."""
    failover, _ = on_dev_server
    service = service_of(failover)
    target = failover.env.client.service_client.config.target_host
    handoff = Handoff(
        lambda: Client.connect(target, data_converter=pydantic_data_converter), failover.task_queue, INTAKE
    )
    app = create_app(IntakeConfig(policy=failover.policy, alertmanager_token="t"), handoff)
    payload = alertmanager(service)
    for alert in payload["alerts"]:
        alert["labels"] = {"alertname": "RegionUnavailable", "service": service, "runbook": "failover"}
    with serve_app(app) as url:
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                f"{url}/v1/alerts/alertmanager", json=payload, headers={"authorization": "Bearer t"}
            )
    assert answer.status_code == 202 and answer.json()["incidents"] == [failover_workflow_id(service)]
    handle = failover.client.get_workflow_handle(failover_workflow_id(service))
    for _ in range(200):
        view: FailoverView = await handle.query(RegionFailoverWorkflow.view)
        if view.pending_approval is not None:
            break
        await asyncio.sleep(0.05)
    assert view.opened_by == "intake/alertmanager" and view.pending_approval is not None
    assert failover.regions.probed and failover.regions.scaled == []  # probed, checked; nothing moved
    await handle.terminate("test done")


async def test_an_aws_health_issue_in_the_primary_region_opens_the_failover(
    on_dev_server: tuple[Failover, str],
) -> None:
    """EventBridge's "AWS Health Event" for an issue in the primary's region, through the
    shipped route: the run opens and probes; the issue's closing later is no trigger."""
    failover, _ = on_dev_server
    service = service_of(failover)
    shipped = next(r for r in default_policy().routes if r.name == "aws-health-issue-in-primary")
    policy = failover.policy.model_copy(update={"routes": [shipped.model_copy(update={"service": service})]})
    target = failover.env.client.service_client.config.target_host
    handoff = Handoff(
        lambda: Client.connect(target, data_converter=pydantic_data_converter), failover.task_queue, INTAKE
    )
    app = create_app(IntakeConfig(policy=policy, eventbridge_token="t"), handoff)
    headers = {"authorization": "Bearer t"}
    with serve_app(app) as url:
        async with httpx.AsyncClient() as http:
            elsewhere = await http.post(f"{url}/v1/alerts/eventbridge", json=aws_health("ap-south-1"), headers=headers)
            assert elsewhere.status_code == 422 and "no route" in elsewhere.text  # not the primary's region
            answer = await http.post(f"{url}/v1/alerts/eventbridge", json=aws_health(PRIMARY), headers=headers)
            assert answer.status_code == 202, answer.text
            assert answer.json()["incidents"] == [failover_workflow_id(service)]
            handle = failover.client.get_workflow_handle(failover_workflow_id(service))
            for _ in range(200):
                view: FailoverView = await handle.query(RegionFailoverWorkflow.view)
                if view.pending_approval is not None:
                    break
                await asyncio.sleep(0.05)
            closed = await http.post(
                f"{url}/v1/alerts/eventbridge", json=aws_health(PRIMARY, status="closed"), headers=headers
            )
            assert closed.status_code == 202, closed.text
    assert view.opened_by == "intake/eventbridge" and view.pending_approval is not None
    triggered = next(e for e in view.timeline if e.event == "triggered")
    assert "AWS Health ECS AWS_ECS_OPERATIONAL_ISSUE in eu-central-1" in triggered.detail
    assert failover.regions.probed and failover.regions.scaled == []
    view = await handle.query(RegionFailoverWorkflow.view)
    assert [e.event for e in view.timeline].count("joined") == 0  # a closed issue triggers nothing
    await handle.terminate("test done")
