"""The incident workflow's logic, with fake activities, on both test servers.

Every test runs on the time-skipping test server with the shipped default policy (15-minute
escalations really elapse in skipped time) and on the dev server with the same policy scaled
down, because the time-skipping server has gaps around updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts import (
    SEARCH_STATUS,
    Acknowledge,
    Alert,
    Approvals,
    Approve,
    Cancel,
    Comment,
    IncidentResult,
    IncidentStatus,
    IncidentView,
    PagerDutyEvent,
    PagerDutyEventType,
    Policy,
    Reject,
    RemediationAction,
    Severity,
)
from contracts.post_incident import postincident_workflow_id
from signing import Signer
from starter import open_or_join_incident
from tests.fakes import CURRENT, PREVIOUS, FakePlatform, skip_time
from tests.identity import INTAKE, SIGNIN, signing_client
from tests.policies import default_policy, scaled
from workflows.incident_response import IncidentResponseWorkflow

HISTORIES = Path(__file__).parent / "histories" / "incident"


@dataclass
class Harness:
    env: WorkflowEnvironment
    client: Client
    task_queue: str
    policy: Policy
    fake: FakePlatform
    scale: float
    opened: list[WorkflowHandle] = dataclasses.field(default_factory=list)

    def after(self, duration: timedelta, extra: float = 1.05) -> timedelta:
        """A policy duration, a little past it."""
        return duration * extra

    async def intake(self) -> Signer:
        """The intake's signer, on the server's clock (the time-skipping server's runs ahead)."""
        if self.scale != 1.0:
            return INTAKE
        at = (await self.env.get_current_time()).timestamp()
        return dataclasses.replace(INTAKE, clock=lambda: at)

    async def sleep(self, duration: timedelta) -> None:
        """The server's clock moves on by `duration` (see `tests.fakes.skip_time`)."""
        if self.scale != 1.0:
            await self.env.sleep(duration)
        else:
            await skip_time(self.env, duration)

    async def open(self, service: str = "hybrid-router", severity: Severity | None = Severity.P0) -> WorkflowHandle:
        region = f"test-{uuid.uuid4().hex[:8]}"  # a fresh target per test: a fresh workflow id
        self.policy.services[service] = self.policy.services["hybrid-router"].model_copy(update={"region": region})
        alert = Alert(
            source="test",
            service=service,
            region=region,
            summary="hybrid router down",
            severity=severity,
            received_at=datetime.now(UTC),
        )
        handle = await open_or_join_incident(self.client, alert, "tester", self.task_queue, await self.intake())
        self.opened.append(handle)
        return handle

    async def close_leftovers(self) -> None:
        """Ends the follow-ups that closed incidents started: abandoned children on this test's
        queue, whose workflow task no worker here can run (it fails, and is retried for ever)."""
        for handle in self.opened:
            with contextlib.suppress(RPCError):
                incident_id = await (await handle.describe()).memo_value("incident_id", default=None)
                if incident_id is not None:
                    await self.client.get_workflow_handle(postincident_workflow_id(str(incident_id))).terminate(
                        "the test is over"
                    )

    async def until(self, handle: WorkflowHandle, check: Callable[[IncidentView], bool]) -> IncidentView:
        last: IncidentView | None = None
        for _ in range(400):
            last = await handle.query(IncidentResponseWorkflow.view)
            if check(last):
                return last
            await asyncio.sleep(0.05)
        raise AssertionError(f"state never reached; last: {last.status if last else None}, {last}")

    async def keep_history(self, handle: WorkflowHandle, name: str) -> None:
        """With RECORD_HISTORIES=1, the dev-server run's history becomes a replay fixture.

        An existing fixture is kept: it stands for runs of an older version still in flight.
        """
        path = HISTORIES / f"{name}.json"
        if os.environ.get("RECORD_HISTORIES") and self.scale != 1.0 and not path.exists():
            history = await handle.fetch_history()
            path.write_text(history.to_json())

    async def awaiting_approval(self, handle: WorkflowHandle) -> IncidentView:
        await self.until(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
        await handle.execute_update(IncidentResponseWorkflow.acknowledge, Acknowledge(by="alice"))
        return await self.until(handle, lambda v: v.pending_approval is not None)


@pytest.fixture(params=["time-skipping", "dev-server"])
def server(request: pytest.FixtureRequest) -> tuple[WorkflowEnvironment, float]:
    """Which server, and how much of the policy's time to spend on it."""
    if request.param == "time-skipping":
        return request.getfixturevalue("own_time_skipping_env"), 1.0
    return request.getfixturevalue("dev_env"), 1 / 300


@pytest.fixture
async def harness(server: tuple[WorkflowEnvironment, float]) -> AsyncIterator[Harness]:
    async with _harness(*server) as harness:
        yield harness


@pytest.fixture
async def dev_harness(dev_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    async with _harness(dev_env, 1 / 300) as harness:
        yield harness


@contextlib.asynccontextmanager
async def _harness(env: WorkflowEnvironment, scale: float) -> AsyncIterator[Harness]:
    policy = scaled(default_policy(), scale)
    fake = FakePlatform(policy)
    task_queue = f"wf-{uuid.uuid4()}"
    async with Worker(
        env.client, task_queue=task_queue, workflows=[IncidentResponseWorkflow], activities=fake.activities()
    ):
        harness = Harness(
            env=env,
            client=signing_client(env.client, env.get_current_time if scale == 1.0 else None),
            task_queue=task_queue,
            policy=policy,
            fake=fake,
            scale=scale,
        )
        try:
            yield harness
        finally:
            await harness.close_leftovers()


async def test_happy_path_rolls_back_verifies_and_resolves(harness: Harness) -> None:
    handle = await harness.open()
    view = await harness.awaiting_approval(handle)
    plan = view.pending_approval
    assert plan is not None and plan.action == RemediationAction.ROLLBACK
    assert (plan.from_task_definition, plan.to_task_definition) == (CURRENT, PREVIOUS)

    await handle.execute_update(IncidentResponseWorkflow.approve, Approve(by="bob", plan_id=plan.plan_id))
    result: IncidentResult = await handle.result()
    await harness.keep_history(handle, "signed_resolved_by_rollback")

    assert result.view.status == IncidentStatus.RESOLVED
    assert harness.fake.called("set_service_task_definition") == [PREVIOUS]
    assert len(harness.fake.called("trigger_page")) == 1
    dedup_key = f"{handle.id}#{result.view.id}"  # one PagerDuty incident per runbook incident
    assert [page.dedup_key for page in harness.fake.called("trigger_page")] == [dedup_key]
    assert harness.fake.called("resolve_page") == [dedup_key]
    steps = [e.step for e in result.view.timeline]
    assert steps.index("classify") < steps.index("page") < steps.index("diagnose") < steps.index("verify")
    note = harness.fake.called("add_pagerduty_note")[0].content
    assert note.startswith("[P0] Hybrid Routing Incident - hybrid router down")
    assert "Incident ID: INC-" in note and "Severity: P0" in note


async def test_escalates_one_level_per_timer_without_ack(harness: Harness) -> None:
    handle = await harness.open()
    await harness.until(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
    p0 = harness.policy.severities[Severity.P0]
    assert p0.escalate_after is not None

    await harness.sleep(harness.after(p0.escalate_after))
    view = await harness.until(handle, lambda v: any(e.event == "escalated" for e in v.timeline))
    assert harness.fake.called("escalate_pagerduty_incident") == [2]
    assert any(e.event == "response target missed" for e in view.timeline)

    await harness.sleep(p0.escalate_after)
    await harness.until(handle, lambda v: sum(e.event == "escalated" for e in v.timeline) == 2)
    await harness.sleep(p0.escalate_after * 2)  # past the ladder's end: no level 4
    view = await handle.query(IncidentResponseWorkflow.view)
    assert harness.fake.called("escalate_pagerduty_incident") == [2, 3]
    assert view.status == IncidentStatus.AWAITING_ACK and view.pagerduty.escalation_level == 3

    await handle.execute_update(IncidentResponseWorkflow.acknowledge, Acknowledge(by="alice"))
    view = await harness.until(
        handle,
        lambda v: v.pending_approval is not None and any(e.event == "PagerDuty acknowledged" for e in v.timeline),
    )
    assert view.acknowledged_by == "alice"
    assert harness.fake.called("acknowledge_page") == [view.pagerduty.dedup_key]
    await harness.keep_history(handle, "signed_escalated_awaiting_approval")
    await handle.terminate("test done")


async def test_a_page_that_fails_for_good_is_marked_and_paged_again_on_the_ladder(harness: Harness) -> None:
    harness.fake.page_fails = 1  # PagerDuty refuses the first page for good
    handle = await harness.open()
    view = await harness.until(handle, lambda v: v.status == IncidentStatus.UNPAGED)
    view = await harness.until(handle, lambda v: any(e.event == "other path told" for e in v.timeline))
    assert [e.event for e in view.timeline if e.event in ("page failed", "nobody paged", "other path told")] == [
        "page failed",
        "nobody paged",
        "other path told",
    ]
    (notice,) = harness.fake.called("notify_fallback")  # the other path, told once
    assert notice.dedup_key.startswith(handle.id) and "Event object is invalid" in notice.reason
    if harness.scale != 1.0:  # `runbook incidents --status unpaged` finds it (the dev server's visibility)
        description = await handle.describe()
        assert description.typed_search_attributes.get(SEARCH_STATUS) == "unpaged"
    p0 = harness.policy.severities[Severity.P0]
    assert p0.escalate_after is not None
    await harness.sleep(harness.after(p0.escalate_after))
    view = await harness.until(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
    assert len(harness.fake.called("trigger_page")) == 2  # paged again at the ladder's first rung
    assert harness.fake.called("escalate_pagerduty_incident") == []  # not escalated: nobody had been paged
    assert view.pagerduty is not None and view.pagerduty.incident_id == "PFAKE01"
    assert len(harness.fake.called("notify_fallback")) == 1  # not again once paged
    await harness.keep_history(handle, "fallback_unpaged_then_paged_on_the_ladder")
    await handle.terminate("test done")


async def test_approval_timeout_escalates_without_acting(harness: Harness) -> None:
    handle = await harness.open()
    await harness.awaiting_approval(handle)
    await harness.sleep(harness.after(harness.policy.timers.approval_timeout))
    result: IncidentResult = await handle.result()

    assert result.view.status == IncidentStatus.ESCALATED
    assert "no decision within" in result.outcome
    assert harness.fake.called("set_service_task_definition") == []
    # the default ladder re-paged level 2 while waiting; the timeout escalates to level 3
    assert harness.fake.called("escalate_pagerduty_incident") == [2, 3]
    assert any(e.event == "reminder" for e in result.view.timeline)
    assert harness.fake.called("resolve_page") == []


async def test_rejection_escalates_without_acting(harness: Harness) -> None:
    handle = await harness.open()
    view = await harness.awaiting_approval(handle)
    rejected: list[RemediationAction] = []
    while view.pending_approval is not None:  # every option of the runbook, in its order
        plan = view.pending_approval
        rejected.append(plan.action)
        await handle.execute_update(
            IncidentResponseWorkflow.reject, Reject(by="bob", plan_id=plan.plan_id, reason="rollback loses the hotfix")
        )
        view = await harness.until(
            handle,
            moved_past(plan.plan_id),
        )
    assert rejected == [
        RemediationAction.ROLLBACK,
        RemediationAction.FORCE_NEW_DEPLOYMENT,
        RemediationAction.EMERGENCY_SWITCH,
    ]
    result: IncidentResult = await handle.result()
    await harness.keep_history(handle, "signed_rejected")
    assert result.view.status == IncidentStatus.ESCALATED
    assert "rollback loses the hotfix" in result.outcome
    assert result.view.decision.by == "bob" and not result.view.decision.approved
    assert harness.fake.called("set_service_task_definition") == []
    assert harness.fake.called("escalate_pagerduty_incident") == [2]


async def test_refused_commands_change_nothing(dev_harness: Harness) -> None:
    """Validators refuse; the time-skipping server loses rejected updates, so dev server only."""
    harness = dev_harness
    handle = await harness.open()
    await harness.until(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update(IncidentResponseWorkflow.approve, Approve(by="bob", plan_id="plan-x"))
    assert "nothing awaits approval" in str(err.value.cause)
    view = await harness.awaiting_approval(handle)
    plan_id = view.pending_approval.plan_id
    refusals: dict[str, Approve | Reject] = {
        "unknown plan plan-000000000000": Approve(by="bob", plan_id="plan-000000000000"),
        "mallory may not approve": Approve(by="mallory", plan_id=plan_id),
        "mallory may not approve or reject": Reject(by="mallory", plan_id=plan_id, reason="no"),
    }
    for expected, request in refusals.items():
        with pytest.raises(WorkflowUpdateFailedError) as err:
            if isinstance(request, Approve):
                await handle.execute_update(IncidentResponseWorkflow.approve, request)
            else:
                await handle.execute_update(IncidentResponseWorkflow.reject, request)
        assert expected in str(err.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update(IncidentResponseWorkflow.acknowledge, Acknowledge(by="mallory"))
    assert "mallory may not acknowledge" in str(err.value.cause)

    still = await handle.query(IncidentResponseWorkflow.view)
    assert still.status == IncidentStatus.AWAITING_APPROVAL and still.decision is None
    assert still.pending_approval.plan_id == plan_id
    history = await handle.fetch_history()
    accepted = [e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")]
    assert len(accepted) == 1  # the one acknowledgement; refusals leave no trace in history

    await handle.execute_update(IncidentResponseWorkflow.approve, Approve(by="bob", plan_id=plan_id))
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update(IncidentResponseWorkflow.approve, Approve(by="alice", plan_id=plan_id))
    await handle.result()


async def test_failed_verification_is_undone_and_escalated(harness: Harness) -> None:
    harness.fake.heals = set()  # the rollback will not help
    handle = await harness.open()
    view = await harness.awaiting_approval(handle)
    await handle.execute_update(
        IncidentResponseWorkflow.approve, Approve(by="alice", plan_id=view.pending_approval.plan_id)
    )
    result: IncidentResult = await handle.result()
    await harness.keep_history(handle, "signed_undone_after_failed_verification")

    assert result.view.status == IncidentStatus.ESCALATED
    assert harness.fake.called("set_service_task_definition") == [PREVIOUS, CURRENT]  # done, then undone
    events = [e.event for e in result.view.timeline]
    assert events.index("verification failed") < events.index("undone") < events.index("closed")
    assert harness.fake.called("resolve_page") == []


@pytest.mark.parametrize("switch_helps", [True, False], ids=["switch-heals", "switch-fails-undone"])
async def test_emergency_switch_when_only_metrics_are_critical(harness: Harness, switch_helps: bool) -> None:
    harness.fake.healthy = True  # the component answers, but latency and errors are critical
    harness.fake.metrics_critical = True
    harness.fake.switch_helps = switch_helps
    handle = await harness.open()
    view = await harness.awaiting_approval(handle)
    assert view.pending_approval.action == RemediationAction.EMERGENCY_SWITCH
    plan_id = view.pending_approval.plan_id
    # high risk, four eyes, and an alert opened it (no person did): two people approve
    first = await handle.execute_update(IncidentResponseWorkflow.approve, Approve(by="alice", plan_id=plan_id))
    assert "another approver is needed" in first.message
    assert harness.fake.called("set_hybrid_routing") == []
    await handle.execute_update(IncidentResponseWorkflow.approve, Approve(by="bob", plan_id=plan_id))
    result: IncidentResult = await handle.result()

    if switch_helps:
        assert result.view.status == IncidentStatus.RESOLVED
        assert harness.fake.called("set_hybrid_routing") == [False]
    else:
        assert result.view.status == IncidentStatus.ESCALATED
        assert harness.fake.called("set_hybrid_routing") == [False, True]  # switched, then undone


async def test_alert_storm_is_one_incident_and_a_cleared_alert_stops_the_remediation(harness: Harness) -> None:
    handle = await harness.open()
    view = await harness.awaiting_approval(handle)
    target = view.service, view.region
    for n in range(5):
        alert = Alert(
            source="test", service=target[0], region=target[1], summary=f"again {n}", received_at=datetime.now(UTC)
        )
        again = await open_or_join_incident(harness.client, alert, "tester", harness.task_queue, await harness.intake())
        assert again.id == handle.id
    await harness.until(handle, lambda v: v.alert_count == 6)

    resolved = Alert(
        source="test",
        service=target[0],
        region=target[1],
        summary="cleared",
        status="resolved",
        received_at=datetime.now(UTC),
    )
    await open_or_join_incident(harness.client, resolved, "tester", harness.task_queue, await harness.intake())
    harness.fake.healthy = True
    result: IncidentResult = await handle.result()

    assert result.view.alert_count == 7
    assert result.view.status == IncidentStatus.RESOLVED
    assert harness.fake.called("set_service_task_definition") == []
    assert len(harness.fake.called("trigger_page")) == 1


async def test_unknown_service_fails_the_run_naming_the_cause(harness: Harness) -> None:
    alert = Alert(
        source="test",
        service="no-such-service",
        region="eu-central-1",
        summary="x",
        severity=Severity.P1,
        received_at=datetime.now(UTC),
    )
    handle = await open_or_join_incident(harness.client, alert, "tester", harness.task_queue, await harness.intake())
    with pytest.raises(WorkflowFailureError) as err:
        await handle.result()
    assert "no-such-service" in str(err.value.cause)
    assert harness.fake.called("trigger_page") == []


async def test_a_redelivered_alert_changes_nothing(harness: Harness) -> None:
    handle = await harness.open()
    view = await harness.until(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
    for delivery in ("sns-1", "sns-1", "sns-2", "sns-1"):
        alert = Alert(
            source="sns",
            service=view.service,
            region=view.region,
            summary="again",
            delivery_id=delivery,
            received_at=datetime.now(UTC),
        )
        await open_or_join_incident(harness.client, alert, "intake", harness.task_queue, await harness.intake())
    view = await harness.until(handle, lambda v: v.alert_count >= 3)
    await asyncio.sleep(0.3)
    assert (await handle.query(IncidentResponseWorkflow.view)).alert_count == 3  # the first, sns-1, sns-2
    await harness.keep_history(handle, "signed_redelivered_alerts")
    await handle.terminate("test done")


def moved_past(plan_id: str) -> Callable[[IncidentView], bool]:
    """Escalated, or another plan awaits approval."""
    return lambda v: (
        v.status == IncidentStatus.ESCALATED
        or (v.pending_approval is not None and v.pending_approval.plan_id != plan_id)
    )


def pagerduty_event(event_type: PagerDutyEventType, event_id: str, at: datetime) -> PagerDutyEvent:
    """`at`: the server's time (a run ignores an event from before it started)."""
    return PagerDutyEvent(
        event_id=event_id, event_type=event_type, incident_id="PFAKE01", agent="Jane Doe", occurred_at=at
    )


async def test_an_acknowledgement_in_pagerduty_counts_like_runbook_ack(harness: Harness) -> None:
    handle = await harness.open()
    await harness.until(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
    now = await harness.env.get_current_time()
    await handle.signal(IncidentResponseWorkflow.pagerduty_event, pagerduty_event("incident.acknowledged", "e1", now))
    await handle.signal(IncidentResponseWorkflow.pagerduty_event, pagerduty_event("incident.acknowledged", "e1", now))
    view = await harness.until(handle, lambda v: v.pending_approval is not None)
    assert view.acknowledged_by == "Jane Doe (PagerDuty)"
    assert [e.event for e in view.timeline].count("PagerDuty: acknowledged") == 1  # the retry changed nothing
    await harness.keep_history(handle, "signed_acknowledged_in_pagerduty")
    await handle.terminate("test done")


async def test_resolved_in_pagerduty_ends_the_runbook_without_acting(harness: Harness) -> None:
    handle = await harness.open()
    await harness.awaiting_approval(handle)
    await handle.signal(
        IncidentResponseWorkflow.pagerduty_event,
        pagerduty_event("incident.resolved", "e2", await harness.env.get_current_time()),
    )
    result: IncidentResult = await handle.result()
    await harness.keep_history(handle, "signed_resolved_in_pagerduty")
    assert result.view.status == IncidentStatus.RESOLVED
    assert result.outcome == "resolved in PagerDuty by Jane Doe"
    assert harness.fake.called("set_service_task_definition") == []
    assert harness.fake.called("resolve_page") == []  # already resolved there


async def test_a_first_alert_that_is_already_resolved_pages_nobody(harness: Harness) -> None:
    region = f"test-{uuid.uuid4().hex[:8]}"
    harness.policy.services["late"] = harness.policy.services["hybrid-router"]
    alert = Alert(
        source="test",
        service="late",
        region=region,
        summary="cleared",
        status="resolved",
        received_at=datetime.now(UTC),
    )
    handle = await open_or_join_incident(harness.client, alert, "intake", harness.task_queue, await harness.intake())
    result: IncidentResult = await handle.result()
    assert result.view.status == IncidentStatus.RESOLVED and "nothing to do" in result.outcome
    assert harness.fake.called("trigger_page") == []


# --------------------------------------------------------------------------- approval rules


def with_approvals(harness: Harness, **approvals: Any) -> None:
    """The harness's policy with approval rules per risk level."""
    policy = harness.policy.model_copy(update={"approvals": Approvals.model_validate(approvals)})
    harness.policy = harness.fake.policy = policy


async def open_by(harness: Harness, person: str) -> WorkflowHandle:
    region = f"test-{uuid.uuid4().hex[:8]}"
    harness.policy.services["hybrid-router"] = harness.policy.services["hybrid-router"].model_copy(
        update={"region": region}
    )
    alert = Alert(
        source="cli",
        service="hybrid-router",
        region=region,
        summary="down",
        severity=Severity.P0,
        raised_by=person,
        received_at=datetime.now(UTC),
    )
    return await open_or_join_incident(harness.client, alert, person, harness.task_queue, await harness.intake())


async def refused(handle: WorkflowHandle, update: Any, request: Any) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update(update, request)
    return str(err.value.cause)


async def test_high_risk_needs_four_eyes(dev_harness: Harness) -> None:
    harness = dev_harness
    with_approvals(harness, rules={"high": {"approvers": ["alice", "bob"], "four_eyes": True}})
    harness.fake.healthy, harness.fake.metrics_critical = True, True  # -> the emergency switch, high risk
    handle = await open_by(harness, "alice")
    view = await harness.awaiting_approval(handle)
    plan_id = view.pending_approval.plan_id
    assert "four eyes: alice opened this incident" in await refused(
        handle, IncidentResponseWorkflow.approve, Approve(by="alice", plan_id=plan_id)
    )
    still = await handle.query(IncidentResponseWorkflow.view)
    assert still.pending_approval is not None and still.decision is None
    reply = await handle.execute_update(IncidentResponseWorkflow.approve, Approve(by="bob", plan_id=plan_id))
    assert "approved by bob" in reply.message
    result: IncidentResult = await handle.result()
    assert result.view.status == IncidentStatus.RESOLVED and harness.fake.called("set_hybrid_routing") == [False]


async def test_critical_risk_needs_distinct_approvers_and_groups_count(dev_harness: Harness) -> None:
    harness = dev_harness
    with_approvals(
        harness,
        risk={"emergency_switch": "critical"},
        groups={"leads": ["bob", "carol"]},
        rules={"critical": {"approvers": ["alice", "group:leads"], "required": 2, "four_eyes": True}},
    )
    harness.fake.healthy, harness.fake.metrics_critical = True, True
    handle = await open_by(harness, "alice")
    view = await harness.awaiting_approval(handle)
    plan_id = view.pending_approval.plan_id
    first = await handle.execute_update(IncidentResponseWorkflow.approve, Approve(by="alice", plan_id=plan_id))
    assert "approval 1 of 2" in first.message
    assert "already approved" in await refused(
        handle, IncidentResponseWorkflow.approve, Approve(by="alice", plan_id=plan_id)
    )
    assert "may not approve or reject emergency_switch (critical risk)" in await refused(
        handle, IncidentResponseWorkflow.approve, Approve(by="mallory", plan_id=plan_id)
    )
    assert (await handle.query(IncidentResponseWorkflow.view)).pending_approval is not None
    second = await handle.execute_update(IncidentResponseWorkflow.approve, Approve(by="carol", plan_id=plan_id))
    assert "approved by alice, carol" in second.message
    result: IncidentResult = await handle.result()
    await harness.keep_history(handle, "signed_two_approvers_audited")
    assert result.view.status == IncidentStatus.RESOLVED


async def test_a_rejection_gives_way_to_the_next_option(harness: Harness) -> None:
    harness.fake.heals = {RemediationAction.FORCE_NEW_DEPLOYMENT}
    handle = await harness.open()
    view = await harness.awaiting_approval(handle)
    rollback = view.pending_approval
    await handle.execute_update(
        IncidentResponseWorkflow.reject, Reject(by="bob", plan_id=rollback.plan_id, reason="the hotfix is in :3")
    )
    view = await harness.until(
        handle, lambda v: v.pending_approval is not None and v.pending_approval.plan_id != rollback.plan_id
    )
    assert view.pending_approval.action == RemediationAction.FORCE_NEW_DEPLOYMENT
    await handle.execute_update(
        IncidentResponseWorkflow.approve, Approve(by="bob", plan_id=view.pending_approval.plan_id)
    )
    result: IncidentResult = await handle.result()
    await harness.keep_history(handle, "signed_next_option_after_rejection")
    assert result.view.status == IncidentStatus.RESOLVED
    assert (
        harness.fake.called("set_service_task_definition") == []
        and len(harness.fake.called("force_new_deployment")) == 1
    )


async def test_the_approval_ladder_reminds_repages_then_denies(dev_harness: Harness) -> None:
    # Dev server only: on the time-skipping server this test twice hung a loaded full run (its
    # skips over the ladder's rungs; it passes alone there). The rungs are scaled time here.
    harness = dev_harness
    timeout = harness.policy.timers.approval_timeout
    with_approvals(
        harness, ladder=[{"after": timeout / 6, "action": "remind"}, {"after": timeout / 3, "action": "repage"}]
    )
    handle = await harness.open()
    await harness.awaiting_approval(handle)
    await harness.sleep(timeout * 0.2)
    await harness.until(handle, lambda v: any(e.event == "reminder" for e in v.timeline))
    assert harness.fake.called("escalate_pagerduty_incident") == []
    await harness.sleep(timeout * 0.2)
    await harness.until(handle, lambda v: any(e.event == "escalated" for e in v.timeline))
    assert harness.fake.called("escalate_pagerduty_incident") == [2]
    result: IncidentResult = await handle.result()
    await harness.keep_history(handle, "signed_approval_ladder_timed_out")
    events = [e.event for e in result.view.timeline]
    assert events.index("reminder") < events.index("escalated") < events.index("approval timed out")
    assert harness.fake.called("set_service_task_definition") == []
    notes = [n.content for n in harness.fake.called("add_pagerduty_note")]
    assert any(n.startswith("Reminder:") for n in notes)


async def test_low_risk_may_be_approved_by_the_policy_at_the_timeout(dev_harness: Harness) -> None:
    harness = dev_harness  # dev server only, as the ladder test above (its h2 failures under load)
    with_approvals(harness, risk={"rollback": "low"}, rules={"low": {"approvers": ["alice"], "on_timeout": "approve"}})
    handle = await harness.open()
    await harness.awaiting_approval(handle)
    await harness.sleep(harness.after(harness.policy.timers.approval_timeout))
    result: IncidentResult = await handle.result()
    assert result.view.decision.by == "policy" and result.view.status == IncidentStatus.RESOLVED
    assert harness.fake.called("set_service_task_definition") == [PREVIOUS]


async def test_every_operator_action_is_audited_in_pagerduty(harness: Harness) -> None:
    handle = await harness.open()
    await harness.until(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
    await handle.execute_update(IncidentResponseWorkflow.comment, Comment(by="alice", text="looking at the deploy"))
    await harness.awaiting_approval(handle)
    view = await handle.query(IncidentResponseWorkflow.view)
    await handle.execute_update(
        IncidentResponseWorkflow.reject, Reject(by="bob", plan_id=view.pending_approval.plan_id, reason="not this one")
    )
    await harness.until(
        handle, lambda v: v.pending_approval is not None and v.pending_approval.plan_id != view.pending_approval.plan_id
    )
    await harness.keep_history(handle, "signed_audited_with_search_attributes")
    await handle.terminate("test done")
    notes = [n.content for n in harness.fake.called("add_pagerduty_note")]
    key = f"(verified, key {SIGNIN.key_id})"  # the identity the sign-in service's key proved
    assert f"comment by alice {key}: looking at the deploy" in notes
    assert f"acknowledged by alice {key}" in notes
    assert any(n.startswith(f"rejected by bob {key}: ") and n.endswith("not this one") for n in notes)
    audited = [e for e in (await handle.query(IncidentResponseWorkflow.view)).timeline if e.actor in ("alice", "bob")]
    assert audited and all(e.key_id == SIGNIN.key_id for e in audited)


async def test_cancel_while_awaiting_approval_acts_on_nothing(harness: Harness) -> None:
    handle = await harness.open()
    await harness.awaiting_approval(handle)
    await handle.execute_update(IncidentResponseWorkflow.cancel, Cancel(by="bob", reason="handled by hand"))
    result: IncidentResult = await handle.result()
    assert result.view.status == IncidentStatus.CANCELLED and result.outcome == "cancelled by bob: handled by hand"
    assert harness.fake.called("set_service_task_definition") == [] and harness.fake.called("resolve_page") == []


async def test_cancel_during_verification_undoes_the_remediation(harness: Harness) -> None:
    harness.fake.heals = set()  # the rollback does not help: verification keeps checking
    handle = await harness.open()
    view = await harness.awaiting_approval(handle)
    await handle.execute_update(
        IncidentResponseWorkflow.approve, Approve(by="bob", plan_id=view.pending_approval.plan_id)
    )
    await harness.until(handle, lambda v: v.status == IncidentStatus.VERIFYING)
    await handle.execute_update(IncidentResponseWorkflow.cancel, Cancel(by="bob", reason="we take it from here"))
    result: IncidentResult = await handle.result()
    await harness.keep_history(handle, "signed_cancelled_and_undone")
    assert result.view.status == IncidentStatus.CANCELLED
    assert harness.fake.called("set_service_task_definition") == [PREVIOUS, CURRENT]  # done, then undone
    events = [e.event for e in result.view.timeline]
    assert events.index("cancel requested") < events.index("undone") < events.index("closed")


# --------------------------------------------------------------------------- approval race


async def test_an_approval_while_the_proposal_note_is_slow_is_judged_by_the_rules(dev_harness: Harness) -> None:
    """A slow PagerDuty must not open a window where one approver decides a two-approver plan."""
    harness = dev_harness
    with_approvals(harness, rules={"high": {"approvers": ["alice", "bob"], "required": 2, "four_eyes": True}})
    harness.fake.healthy, harness.fake.metrics_critical = True, True  # -> the emergency switch, high risk
    harness.fake.note_delay = 3.0
    handle = await open_by(harness, "alice")
    await harness.until(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
    await handle.execute_update(IncidentResponseWorkflow.acknowledge, Acknowledge(by="alice"))
    view = await harness.until(handle, lambda v: v.status == IncidentStatus.AWAITING_APPROVAL)
    proposed = next(e for e in view.timeline if e.event == "proposed")
    plan_id = proposed.detail.split(":")[0]

    try:  # while the proposal note is still on its way to PagerDuty
        first = await handle.execute_update(IncidentResponseWorkflow.approve, Approve(by="alice", plan_id=plan_id))
    except WorkflowUpdateFailedError:
        first = None
    assert first is None or "another approver is needed" in first.message
    await asyncio.sleep(0.5)
    assert harness.fake.called("set_hybrid_routing") == []
    assert (await handle.query(IncidentResponseWorkflow.view)).decision is None

    await harness.until(handle, lambda v: v.pending_approval is not None)
    if first is None:
        await handle.execute_update(IncidentResponseWorkflow.approve, Approve(by="alice", plan_id=plan_id))
    second = await handle.execute_update(IncidentResponseWorkflow.approve, Approve(by="bob", plan_id=plan_id))
    assert "approved by alice, bob" in second.message
    result: IncidentResult = await handle.result()
    assert result.view.status == IncidentStatus.RESOLVED and harness.fake.called("set_hybrid_routing") == [False]


# --------------------------------------------------------------------------- a condition that clears


async def clear_every_alert(harness: Harness, handle: WorkflowHandle) -> None:
    view = await handle.query(IncidentResponseWorkflow.view)
    resolved = Alert(
        source="test",
        service=view.service,
        region=view.region,
        summary="cleared",
        status="resolved",
        received_at=datetime.now(UTC),
    )
    await open_or_join_incident(harness.client, resolved, "tester", harness.task_queue, await harness.intake())


async def test_a_p2_that_clears_before_anyone_acknowledges_is_resolved_with_its_page(harness: Harness) -> None:
    handle = await harness.open(severity=Severity.P2)
    await harness.until(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
    await clear_every_alert(harness, handle)
    result: IncidentResult = await handle.result()
    await harness.keep_history(handle, "signed_cleared_before_ack_resolved")

    assert result.view.status == IncidentStatus.RESOLVED and "cleared before anyone acknowledged" in result.outcome
    assert harness.fake.called("resolve_page") == [result.view.pagerduty.dedup_key]
    assert harness.fake.called("escalate_pagerduty_incident") == [] and harness.fake.called("acknowledge_page") == []
    cleared = [e for e in result.view.timeline if e.event == "condition cleared"]
    assert len(cleared) == 1 and "on_clear: resolve" in cleared[0].detail


async def test_a_p0_that_clears_before_anyone_acknowledges_keeps_paging(dev_harness: Harness) -> None:
    """Dev server only: on the time-skipping server the long sleep that follows a signal into a
    run waiting on timers times out now and then (RPC 'Timeout expired')."""
    harness = dev_harness
    handle = await harness.open(severity=Severity.P0)
    await harness.until(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
    await clear_every_alert(harness, handle)
    await harness.until(handle, lambda v: any(e.event == "condition cleared" for e in v.timeline))
    p0 = harness.policy.severities[Severity.P0]
    assert p0.escalate_after is not None
    await harness.sleep(harness.after(p0.escalate_after))
    view = await harness.until(handle, lambda v: any(e.event == "escalated" for e in v.timeline))
    assert view.status == IncidentStatus.AWAITING_ACK and harness.fake.called("resolve_page") == []
    assert "on_clear: keep_paging" in next(e.detail for e in view.timeline if e.event == "condition cleared")
    await handle.terminate("test done")


async def test_the_policy_may_resolve_a_cleared_p0(harness: Harness) -> None:
    p0 = harness.policy.severities[Severity.P0]
    harness.policy.severities[Severity.P0] = p0.model_copy(update={"on_clear": "resolve"})
    handle = await harness.open(severity=Severity.P0)
    await harness.until(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
    await clear_every_alert(harness, handle)
    result: IncidentResult = await handle.result()
    assert result.view.status == IncidentStatus.RESOLVED and len(harness.fake.called("resolve_page")) == 1
