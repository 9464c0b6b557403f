"""The maintenance window's rules on the time-skipping server, with the default policy and the
fakes of tests/maintenance_fakes.py: what a failed pre-check, a failed change, a failed
post-check and a cancellation leave behind (the PagerDuty window and the hold released, once)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts import SEARCH_SERVICE, Alert, AlertBatch, Approve, Cancel, Policy, Severity
from contracts.maintenance import (
    MaintenanceInput,
    MaintenanceRequest,
    MaintenanceResult,
    MaintenanceSpec,
    MaintenanceStatus,
    MaintenanceView,
    maintenance_workflow_id,
)
from contracts.schedules import ScheduleSpec
from intake.app import create_app
from intake.handoff import Handoff
from intake.holds import MaintenanceHolds
from runbook_cli import schedules
from signing import Signer
from starter import schedule_maintenance
from tests.conftest import serve_app
from tests.fakes import CURRENT, keep_history, skip_time
from tests.identity import INTAKE, signing_client
from tests.maintenance_fakes import REVISION_4, MaintenanceFakes
from tests.policies import default_policy
from tests.test_intake import TOKEN, config_for, intake_policy
from tests.test_signin import connecting, operator_app, refused, runbook, serving, sign_in
from workflows.maintenance_window import MaintenanceWindowWorkflow

HISTORIES = Path(__file__).parent / "histories" / "maintenance"
SERVICE = "hybrid-router"


@dataclasses.dataclass
class Windows:
    env: WorkflowEnvironment
    client: Client
    task_queue: str
    policy: Policy
    fakes: MaintenanceFakes

    async def ask(
        self, spec: MaintenanceSpec, in_: timedelta = timedelta(minutes=30), plan: bool = False, by: str = "alice"
    ) -> WorkflowHandle:
        now = await self.env.get_current_time()
        # a fresh start per test: one window per service and start time
        start = now.replace(microsecond=0) + in_ + timedelta(seconds=uuid.uuid4().int % 3000)
        signer: Signer = dataclasses.replace(INTAKE, clock=lambda: now.timestamp())
        request = MaintenanceRequest(by=by, spec=spec, start=start, plan=plan, reason="test")
        return await schedule_maintenance(self.client, request, self.task_queue, signer)

    async def view(self, handle: WorkflowHandle) -> MaintenanceView:
        view: MaintenanceView = await handle.query(MaintenanceWindowWorkflow.view)
        return view

    async def until(self, handle: WorkflowHandle, check: str) -> MaintenanceView:
        """Skips time a second at a time until the view's status or step is `check`."""
        for _ in range(600):
            view = await self.view(handle)
            step = view.step
            if check in (view.status.value, step):
                return view
            now = await self.env.get_current_time()
            waiting = step == "wait" and view.start is not None and view.start > now
            await skip_time(self.env, view.start - now if waiting and view.start else timedelta(seconds=1))
        raise AssertionError(f"never reached {check}: {view.status} {view.timeline[-3:]}")

    async def approve(self, handle: WorkflowHandle, by: str = "bob") -> None:
        view = await self.until(handle, MaintenanceStatus.AWAITING_APPROVAL.value)
        assert view.pending_approval is not None
        await handle.execute_update(
            MaintenanceWindowWorkflow.approve, Approve(by=by, plan_id=view.pending_approval.plan_id)
        )

    async def result(self, handle: WorkflowHandle) -> MaintenanceResult:
        result: MaintenanceResult = await handle.result()
        return result

    async def keep_history(self, handle: WorkflowHandle, name: str) -> None:
        await keep_history(handle, HISTORIES / f"{name}.json")


@pytest.fixture
async def windows(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Windows]:
    policy = default_policy()
    fakes = MaintenanceFakes(policy)
    task_queue = f"maintenance-{uuid.uuid4()}"
    client = signing_client(time_skipping_env.client, time_skipping_env.get_current_time)
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[MaintenanceWindowWorkflow],
        activities=fakes.activities(),
    ):
        yield Windows(time_skipping_env, client, task_queue, policy, fakes)


DEPLOY_4 = MaintenanceSpec(service=SERVICE, action="deploy", revision=4, duration=timedelta(hours=1))
SCALE_6 = MaintenanceSpec(service=SERVICE, action="scale", count=6, duration=timedelta(minutes=30))


async def test_a_window_opens_pagerduty_acts_once_verifies_and_closes_at_its_start(windows: Windows) -> None:
    handle = await windows.ask(SCALE_6)
    await windows.approve(handle)
    assert windows.fakes.opened == [] and windows.fakes.aws.applied == []  # approved, not yet started
    result = await windows.result(handle)
    view = result.view
    assert view.status == MaintenanceStatus.DONE, result.outcome
    assert windows.fakes.events == ["window opened", "desired count 6", "window closed"]
    assert [plan.to_count for plan in windows.fakes.aws.applied] == [6]
    assert view.start is not None
    opened = windows.fakes.opened[0]
    assert opened.start >= view.start and opened.end == opened.start + SCALE_6.duration
    assert opened.key.startswith(f"{handle.id}@") and windows.fakes.closed == [view.pagerduty_window.id]
    assert not view.held and view.pagerduty is None  # nobody paged
    events = [entry.event for entry in view.timeline]
    assert events.index("holding") < events.index("changed") < events.index("hold released")
    await windows.keep_history(handle, "scaled_and_verified")


async def test_a_failed_pre_check_cancels_the_window_and_does_nothing(windows: Windows) -> None:
    handle = await windows.ask(DEPLOY_4)
    await windows.approve(handle)
    await windows.until(handle, "wait")
    windows.fakes.platform.healthy = False  # the service is in trouble at the start
    result = await windows.result(handle)
    assert result.view.status == MaintenanceStatus.CANCELLED
    assert result.outcome.startswith("pre-check failed: ") and "nothing done" in result.outcome
    assert windows.fakes.events == [] and windows.fakes.opened == []
    assert windows.fakes.platform.called("set_service_task_definition") == []
    assert windows.fakes.platform.called("trigger_page") == []
    assert windows.fakes.platform.task_definition == CURRENT
    await windows.keep_history(handle, "pre_check_failed")


async def test_a_failed_post_check_undoes_the_deploy_then_pages_and_closes_the_window(windows: Windows) -> None:
    windows.fakes.healthy_after = False  # revision 4 is bad
    handle = await windows.ask(DEPLOY_4)
    await windows.approve(handle)
    result = await windows.result(handle)
    view = result.view
    assert view.status == MaintenanceStatus.UNDONE, result.outcome
    assert windows.fakes.platform.called("set_service_task_definition") == [REVISION_4, CURRENT]
    assert windows.fakes.platform.task_definition == CURRENT
    pages = windows.fakes.platform.called("trigger_page")
    assert len(pages) == 1 and pages[0].dedup_key == f"{handle.id}#failed" and pages[0].severity == "error"
    assert windows.fakes.events == [
        "window opened",
        "task definition hybrid-router:4",
        "task definition hybrid-router:3",
        "window closed",
    ]
    events = [entry.event for entry in view.timeline]
    assert events.index("undone") < events.index("paged") < events.index("PagerDuty window closed")
    assert not view.held
    await windows.keep_history(handle, "post_check_failed_undone")


async def test_a_failed_change_pages_and_still_releases_the_window_and_the_hold(windows: Windows) -> None:
    windows.fakes.act_fails = True
    handle = await windows.ask(DEPLOY_4)
    await windows.approve(handle)
    result = await windows.result(handle)
    assert result.view.status == MaintenanceStatus.FAILED, result.outcome
    assert "revision 4 does not exist" in result.outcome
    assert windows.fakes.events == ["window opened", "window closed"]
    assert len(windows.fakes.platform.called("trigger_page")) == 1
    assert not result.view.held and "hold released" in [e.event for e in result.view.timeline]


async def test_a_temporal_cancel_mid_window_still_closes_the_window_and_releases_the_hold(windows: Windows) -> None:
    windows.fakes.healthy_after = False
    windows.fakes.platform.verify_for = 30.0  # the post-check goes on until the cancel
    handle = await windows.ask(DEPLOY_4)
    await windows.approve(handle)
    view = await windows.until(handle, "post_check")
    assert view.held and windows.fakes.events[0] == "window opened"
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert windows.fakes.events[-1] == "window closed" and len(windows.fakes.closed) == 1
    view = await windows.view(handle)
    assert not view.held and view.status == MaintenanceStatus.CANCELLED
    await windows.keep_history(handle, "cancelled_through_temporal")


async def test_an_operator_cancel_during_the_post_check_undoes_and_releases(windows: Windows) -> None:
    windows.fakes.healthy_after = False
    windows.fakes.platform.verify_for = 30.0
    handle = await windows.ask(DEPLOY_4)
    await windows.approve(handle)
    await windows.until(handle, "post_check")
    await handle.execute_update(MaintenanceWindowWorkflow.cancel, Cancel(by="bob", reason="looks wrong"))
    result = await windows.result(handle)
    assert result.view.status == MaintenanceStatus.CANCELLED and "undone" in result.outcome
    assert windows.fakes.events[-1] == "window closed" and len(windows.fakes.closed) == 1
    assert windows.fakes.platform.task_definition == CURRENT


async def test_a_cancel_before_the_start_does_nothing(windows: Windows) -> None:
    handle = await windows.ask(DEPLOY_4, in_=timedelta(hours=3))
    await windows.approve(handle)
    await windows.until(handle, "wait")
    await handle.execute_update(MaintenanceWindowWorkflow.cancel, Cancel(by="bob", reason="not tonight"))
    result = await windows.result(handle)
    assert result.view.status == MaintenanceStatus.CANCELLED and "nothing changed" in result.outcome
    assert windows.fakes.events == [] and windows.fakes.opened == []


async def test_alerts_during_the_window_are_recorded_on_it(windows: Windows) -> None:
    windows.fakes.platform.verify_for = 5.0
    windows.fakes.healthy_after = False
    handle = await windows.ask(DEPLOY_4)
    await windows.approve(handle)
    await windows.until(handle, "post_check")
    now = await windows.env.get_current_time()
    alert = Alert(
        source="alertmanager",
        service=SERVICE,
        region="eu-central-1",
        summary="latency high during the deploy",
        severity=Severity.P2,
        received_at=now,
        delivery_id="d-1",
    )
    await windows.client.get_workflow_handle(handle.id).signal("alert_batch", AlertBatch(alerts=[alert]))
    await windows.client.get_workflow_handle(handle.id).signal("alert_batch", AlertBatch(alerts=[alert]))  # a retry
    for _ in range(50):
        view = await windows.view(handle)
        if view.held_alerts:
            break
        await skip_time(windows.env, timedelta(seconds=1))
    assert [a.summary for a in view.held_alerts] == ["latency high during the deploy"]
    await windows.result(handle)


async def test_plan_mode_shows_the_calls_and_changes_nothing(windows: Windows) -> None:
    handle = await windows.ask(DEPLOY_4, plan=True)
    result = await windows.result(handle)
    view = result.view
    assert view.status == MaintenanceStatus.PLANNED and view.plan_only
    assert view.planned_calls[0].startswith("pagerduty POST /maintenance_windows ")
    assert view.planned_calls[1] == (
        "ecs UpdateService hybrid-routing-cluster/hybrid-router-service "
        "taskDefinition hybrid-router:3 -> hybrid-router:4"
    )
    assert windows.fakes.events == [] and windows.fakes.opened == [] and view.pending_approval is None
    await windows.keep_history(handle, "plan_only")


async def test_a_start_without_a_signed_request_is_refused(windows: Windows) -> None:
    start = (await windows.env.get_current_time()).replace(second=0, microsecond=0) + timedelta(hours=2)
    forged = MaintenanceRequest(by="mallory", spec=DEPLOY_4, start=start)
    handle = await windows.env.client.start_workflow(  # the raw client: nothing signs it
        MaintenanceWindowWorkflow.run,
        MaintenanceInput(service=SERVICE, opened_by="mallory"),
        id=maintenance_workflow_id(SERVICE, start),
        task_queue=windows.task_queue,
        start_signal="request_window",
        start_signal_args=[forged],
    )
    result = await windows.result(handle)
    assert result.view.status == MaintenanceStatus.REFUSED and windows.fakes.events == []
    assert result.view.plan is None  # nothing read


# --------------------------------------------------------------------------- the CLI and the intake (dev server)


@pytest.fixture
async def on_dev_server(
    dev_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Windows, str]]:
    """A worker with the fakes on the dev server, a fresh service, the operator listener and the
    CLI pointed at both; yields the windows and the service's name."""
    service = f"maint-{uuid.uuid4().hex[:6]}"
    policy = intake_policy(service)
    policy = policy.model_copy(
        update={"maintenance": policy.maintenance.model_copy(update={"verify_window": timedelta(seconds=1)})}
    )
    fakes = MaintenanceFakes(policy)
    task_queue = f"maintenance-{uuid.uuid4()}"
    empty = tmp_path / "temporal.toml"
    empty.write_text("")
    target = dev_env.client.service_client.config.target_host
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(empty))
    monkeypatch.setenv("TEMPORAL_ADDRESS", target)
    monkeypatch.setenv("RUNBOOK_SESSION_FILE", str(tmp_path / "session.json"))
    async with Worker(
        dev_env.client, task_queue=task_queue, workflows=[MaintenanceWindowWorkflow], activities=fakes.activities()
    ):
        with serving(operator_app(target, task_queue, policy)) as url:
            monkeypatch.setenv("RUNBOOK_SIGNIN_URL", url)
            client = signing_client(dev_env.client)
            yield Windows(dev_env, client, task_queue, policy, fakes), service


async def test_runbook_maintenance_schedule_plan_list_and_bad_flags(
    on_dev_server: tuple[Windows, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    windows, service = on_dev_server
    await sign_in(capsys, monkeypatch, "alice")
    soon = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%MZ")
    asked = ["maintenance", "schedule", "--service", service, "--start", soon]
    missing = await refused(capsys, *asked, "--action", "deploy")
    assert str(missing).startswith("--revision: the deploy action needs")
    extra = await refused(capsys, *asked, "--action", "restart", "--count", "3")
    assert str(extra).startswith("--count: only the scale action takes one")
    unknown = await refused(
        capsys, "maintenance", "schedule", "--service", "nope", "--start", soon, "--action", "restart"
    )
    assert str(unknown).startswith("--service: service 'nope' is not in the policy")
    with pytest.raises(SystemExit):
        await runbook(capsys, *asked, "--action", "reboot")
    assert "--action: invalid choice: 'reboot'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        await runbook(
            capsys, "maintenance", "schedule", "--service", service, "--start", "tomorrow", "--action", "restart"
        )
    assert "--start: 'tomorrow' is not a time" in capsys.readouterr().err
    past = await refused(
        capsys, "maintenance", "schedule", "--service", service, "--start", "2020-01-01T00:00Z", "--action", "restart"
    )
    assert str(past).startswith("--start: 2020-01-01 00:00 UTC is in the past")

    planned = await runbook(capsys, *asked, "--action", "deploy", "--revision", "4", "--plan")
    assert "would call    pagerduty POST /maintenance_windows" in planned
    assert "taskDefinition hybrid-router:3 -> hybrid-router:4" in planned and "nothing changed" in planned
    assert windows.fakes.events == []

    start = (datetime.now(UTC) + timedelta(minutes=7)).strftime("%Y-%m-%dT%H:%MZ")
    out = await runbook(
        capsys, "maintenance", "schedule", "--service", service, "--start", start, "--action", "scale", "--count", "6"
    )
    workflow_id = out.strip()
    assert workflow_id == f"maintenance/{service}/{start[:-1]}:00Z"
    handle = windows.client.get_workflow_handle(workflow_id)
    view = await windows.until(handle, MaintenanceStatus.AWAITING_APPROVAL.value)
    assert view.opened_by == "alice" and view.pending_approval is not None
    listed = [json.loads(line) for line in (await runbook(capsys, "maintenance", "--json")).splitlines()]
    mine = next(row for row in listed if row["workflow_id"] == workflow_id)
    assert mine["state"] == "scheduled" and mine["action"] == f"scale to 6 tasks on {service}"
    assert "scheduled" in await runbook(capsys, "maintenance")
    await handle.execute_update(MaintenanceWindowWorkflow.cancel, Cancel(by="alice", reason="test over"))
    listed = [json.loads(line) for line in (await runbook(capsys, "maintenance", "--json")).splitlines()]
    mine = next(row for row in listed if row["workflow_id"] == workflow_id)
    assert mine["state"] == "done" and mine["status"] == "cancelled" and "nothing changed" in mine["outcome"]


async def test_alerts_for_a_held_service_open_no_incident_but_p0_still_does(on_dev_server: tuple[Windows, str]) -> None:
    windows, service = on_dev_server
    windows.fakes.healthy_after = False
    windows.fakes.platform.verify_for = 20.0  # the post-check, holding the service, lasts 20 s
    target = windows.env.client.service_client.config.target_host
    handoff = Handoff(connecting(target), windows.task_queue, INTAKE)
    app = create_app(config_for(windows.policy), handoff)
    start = datetime.now(UTC) + timedelta(seconds=3)
    request = MaintenanceRequest(by="alice", spec=SCALE_6.model_copy(update={"service": service}), start=start)
    handle = await schedule_maintenance(windows.client, request, windows.task_queue, INTAKE)
    await windows.approve(handle)
    view = await windows.view(handle)
    deadline = datetime.now(UTC) + timedelta(seconds=90)
    while not view.held:
        assert datetime.now(UTC) < deadline, view.timeline[-3:]
        await asyncio.sleep(0.2)
        view = await windows.view(handle)
    headers = {"authorization": f"Bearer {TOKEN}"}
    with serve_app(app) as url:
        async with httpx.AsyncClient(timeout=30) as http:
            body = {
                "id": f"held-{uuid.uuid4().hex[:6]}",
                "service": service,
                "summary": "slow during the deploy",
                "severity": "P2",
            }
            held = (await http.post(f"{url}/v1/alerts", json=body, headers=headers)).json()
            p0 = {"id": f"p0-{uuid.uuid4().hex[:6]}", "service": service, "summary": "router down", "severity": "P0"}
            opened = (await http.post(f"{url}/v1/alerts", json=p0, headers=headers)).json()
    assert held["incidents"] == [] and held["held_by_maintenance"] == [handle.id]
    assert opened["incidents"] == [f"incident/{service}/{windows.policy.services[service].region}"]
    await windows.client.get_workflow_handle(opened["incidents"][0]).terminate("test over")
    view = await windows.view(handle)
    assert [a.summary for a in view.held_alerts] == ["slow during the deploy"]
    result = await windows.result(handle)
    assert result.view.status == MaintenanceStatus.UNDONE and not result.view.held


# --------------------------------------------------------------------------- recurring windows (dev server)


def test_a_maintenance_schedule_must_say_what_the_window_does_to_a_known_service() -> None:
    base = {"name": "nightly-restart", "runbook": "maintenance", "cron": "0 3 * * *"}
    with pytest.raises(ValidationError, match="maintenance: required with runbook maintenance"):
        ScheduleSpec.model_validate(base)
    with pytest.raises(ValidationError, match="maintenance: required with runbook maintenance"):
        ScheduleSpec.model_validate(
            {**base, "runbook": "followup-digest", "maintenance": {"service": "x", "action": "restart"}}
        )
    with pytest.raises(ValidationError, match="count: the scale action needs"):
        ScheduleSpec.model_validate({**base, "maintenance": {"service": SERVICE, "action": "scale"}})
    declared = {**base, "maintenance": {"service": "nope", "action": "restart"}}
    data = {**default_policy().model_dump(mode="json", exclude={"schedules"}), "schedules": [declared]}
    with pytest.raises(
        ValidationError, match="schedules.nightly-restart.maintenance.service: 'nope' is not in services"
    ):
        Policy.model_validate(data)


async def test_a_recurring_window_runs_what_the_policy_declares_and_a_forged_one_is_refused(
    dev_env: WorkflowEnvironment,
) -> None:
    policy = default_policy()
    name = f"restart-{uuid.uuid4().hex[:6]}"
    declared = ScheduleSpec.model_validate(
        {
            "name": name,
            "runbook": "maintenance",
            "cron": "0 3 * * *",
            "maintenance": {"service": SERVICE, "action": "restart", "duration": "30m"},
        }
    )
    policy = policy.model_copy(update={"schedules": [declared]})
    fakes = MaintenanceFakes(policy)
    task_queue = f"maintenance-{uuid.uuid4()}"
    client = signing_client(dev_env.client)
    async with Worker(
        dev_env.client, task_queue=task_queue, workflows=[MaintenanceWindowWorkflow], activities=fakes.activities()
    ):
        handle = dev_env.client.get_schedule_handle(declared.schedule_id)
        try:
            await dev_env.client.create_schedule(
                declared.schedule_id, schedules.temporal_schedule(declared, task_queue)
            )
            await handle.trigger()
            run_id = None
            for _ in range(100):
                async for execution in dev_env.client.list_workflows(f"WorkflowId STARTS_WITH '{name}-'"):
                    run_id = execution.id
                if run_id:
                    break
                await asyncio.sleep(0.2)
            assert run_id is not None
            windows = Windows(dev_env, client, task_queue, policy, fakes)
            run = client.get_workflow_handle(run_id, result_type=MaintenanceResult)
            view = await windows.until(run, MaintenanceStatus.AWAITING_APPROVAL.value)
            assert view.spec == declared.maintenance and view.schedule == name
            assert view.opened_by == f"schedule {name}"
            await run.execute_update(MaintenanceWindowWorkflow.cancel, Cancel(by="bob", reason="test over"))
            assert (await windows.result(run)).view.status == MaintenanceStatus.CANCELLED
        finally:
            await handle.delete()
        forged = await dev_env.client.start_workflow(  # the input names the schedule; no Schedule started it
            MaintenanceWindowWorkflow.run,
            MaintenanceInput(service=SERVICE, opened_by="mallory", schedule=name),
            id=f"{name}-forged",
            task_queue=task_queue,
        )
        result = await forged.result()
        assert (
            result.view.status == MaintenanceStatus.REFUSED and f"not started by the schedule {name}" in result.outcome
        )
        assert fakes.events == [] and result.view.plan is None


# --------------------------------------------------------------------------- the intake's view of holds


class _Listing:
    def __init__(self, found: list[tuple[str, str]], fail: bool) -> None:
        self.found, self.fail = found, fail

    def __aiter__(self) -> _Listing:
        return self

    async def __anext__(self) -> Any:
        if self.fail:
            raise RuntimeError("visibility is down")
        if not self.found:
            raise StopAsyncIteration
        service, workflow_id = self.found.pop(0)

        class Execution:
            id = workflow_id
            typed_search_attributes = TypedSearchAttributes([SearchAttributePair(SEARCH_SERVICE, service)])

        return Execution()


class _Visibility:
    """A Temporal client's listing, as MaintenanceHolds reads it, counting the reads."""

    def __init__(self) -> None:
        self.held: list[tuple[str, str]] = []
        self.fail = False
        self.reads = 0

    def list_workflows(self, query: str, **_: Any) -> _Listing:
        assert "IncidentStatus = 'holding'" in query and "ExecutionStatus = 'Running'" in query
        self.reads += 1
        return _Listing(list(self.held), self.fail)

    async def client(self) -> _Visibility:
        return self


async def test_the_intake_reads_holds_once_per_ttl_and_never_holds_an_exempt_or_unknown_alert() -> None:
    visibility, now = _Visibility(), [100.0]
    visibility.held = [(SERVICE, "maintenance/hybrid-router/2026-12-07T02:00:00Z")]
    holds = MaintenanceHolds(visibility, default_policy(), ttl=2.0, clock=lambda: now[0])  # type: ignore[arg-type]
    received = datetime.now(UTC)

    def alert(service: str, severity: Severity) -> Alert:
        return Alert(source="t", service=service, region="r", summary="s", severity=severity, received_at=received)

    found = await asyncio.gather(*(holds.holder(alert(SERVICE, Severity.P2)) for _ in range(20)))
    assert set(found) == {"maintenance/hybrid-router/2026-12-07T02:00:00Z"} and visibility.reads == 1
    assert await holds.holder(alert("other", Severity.P2)) is None and visibility.reads == 1
    assert await holds.holder(alert(SERVICE, Severity.P0)) is None  # the policy exempts P0
    now[0] += 2.5
    visibility.fail = True
    # past the ttl: read again in the background, the alert goes on with the last answer
    assert await holds.holder(alert(SERVICE, Severity.P2)) == "maintenance/hybrid-router/2026-12-07T02:00:00Z"
    for _ in range(100):
        if holds._reading is None:
            break
        await asyncio.sleep(0.01)
    assert visibility.reads == 2
    assert await holds.holder(alert(SERVICE, Severity.P2)) is None  # not known: the alert opens its incident
    assert (
        await holds.holder(alert(SERVICE, Severity.P2)) is None and visibility.reads == 2
    )  # not asked again within ttl
