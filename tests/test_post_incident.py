"""The post-incident follow-up's rules on the time-skipping server with the default policy
(review within 2 h, reminders every 30 min, a P0's post-mortem due in 24 h, items reminded 2
days before their due date): reminders and escalations, four eyes on dropping, and the run
ending only when the last item is closed. The follow-up is started as the incident's child,
by a stand-in incident here, and by the real one in the last test."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.workflow import ParentClosePolicy

from activities.runs import Runs
from contracts import Approve, IncidentStatus, IncidentView, PagerDutyRef, Policy, Severity
from contracts.post_incident import (
    AddActionItem,
    CloseActionItem,
    CompletePostmortem,
    FollowupAsk,
    FollowupInput,
    FollowupResult,
    FollowupStatus,
    FollowupView,
    ItemStatus,
    Review,
    StoredPostmortem,
    StorePostmortem,
    followup_input_of,
    postincident_workflow_id,
)
from signing import Signer
from starter import start_followup
from tests.fakes import FakePlatform, incident_when, keep_history, open_acknowledged
from tests.identity import INTAKE, signing_client
from tests.policies import default_policy
from worker import ensure_search_attributes
from workflows.incident_response import IncidentResponseWorkflow
from workflows.post_incident import PostIncidentWorkflow

HISTORIES = Path(__file__).parent / "histories" / "postincident"


@workflow.defn(sandboxed=False)
class StandInIncident:
    """What the incident does as it closes: start the follow-up as its child and end."""

    @workflow.run
    async def run(self, followup: FollowupInput) -> None:
        await workflow.start_child_workflow(
            PostIncidentWorkflow.run,
            followup,
            id=postincident_workflow_id(followup.incident_id),
            parent_close_policy=ParentClosePolicy.ABANDON,
        )


class FakeBucket:
    def __init__(self) -> None:
        self.stored: list[StorePostmortem] = []

    @activity.defn(name="store_postmortem")
    async def store_postmortem(self, request: StorePostmortem) -> StoredPostmortem:
        self.stored.append(request)
        return StoredPostmortem(
            uri=f"s3://{request.bucket}/{request.key}", bytes=2048, time_to_acknowledge=timedelta(minutes=3)
        )


@dataclasses.dataclass
class Followups:
    env: WorkflowEnvironment
    client: Client
    task_queue: str
    policy: Policy
    platform: FakePlatform
    bucket: FakeBucket

    async def start(self, severity: Severity = Severity.P0) -> WorkflowHandle:
        incident_id = f"INC-20261204-120000-{uuid.uuid4().hex[:4]}"
        region = f"test-{uuid.uuid4().hex[:6]}"
        followup = FollowupInput(
            incident_id=incident_id,
            incident_workflow_id=f"incident/hybrid-router/{region}",
            service="hybrid-router",
            region=region,
            severity=severity,
            closed_status="resolved",
            closed_at=await self.env.get_current_time(),
            commander="alice",
            opened_by="tester",
            pagerduty=PagerDutyRef(dedup_key=f"incident/hybrid-router/{region}#{incident_id}", incident_id="PFAKE01"),
        )
        await self.env.client.execute_workflow(
            StandInIncident.run, followup, id=followup.incident_workflow_id, task_queue=self.task_queue
        )
        return self.client.get_workflow_handle(postincident_workflow_id(incident_id), result_type=FollowupResult)

    async def view(self, handle: WorkflowHandle) -> FollowupView:
        for _ in range(200):
            try:
                found: FollowupView = await handle.query(PostIncidentWorkflow.view)
            except Exception:  # noqa: BLE001 - not started yet
                await asyncio.sleep(0.05)
                continue
            return found
        raise AssertionError("the follow-up never answered")

    async def until(self, handle: WorkflowHandle, check: Callable[[FollowupView], bool]) -> FollowupView:
        for _ in range(200):
            view = await self.view(handle)
            if check(view):
                return view
            await asyncio.sleep(0.05)
        raise AssertionError(f"never reached: {view.status} {view.timeline[-3:]}")

    async def skip(self, handle: WorkflowHandle, duration: timedelta) -> FollowupView:
        await self.env.sleep(duration)
        return await self.view(handle)

    def escalations(self) -> list[str]:
        return [page.dedup_key.rpartition("#")[2] for page in self.platform.called("trigger_page")]

    async def keep_history(self, handle: WorkflowHandle, name: str) -> None:
        await keep_history(handle, HISTORIES / f"{name}.json")


@pytest.fixture
async def followups() -> AsyncIterator[Followups]:
    """A time-skipping server per test (runs here wait weeks on timers), a worker with the
    follow-up, the incident and its stand-in, the fake platform and a fake bucket."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
    )
    await ensure_search_attributes(env.client, "default")
    policy = default_policy()
    assert policy.approvals is not None
    policy.approvals = policy.approvals.model_copy(update={"groups": {"oncall": ["alice"], "leads": ["bob"]}})
    platform, bucket = FakePlatform(policy), FakeBucket()
    task_queue = f"followup-{uuid.uuid4()}"
    client = signing_client(env.client, env.get_current_time)
    try:
        async with Worker(
            env.client,
            task_queue=task_queue,
            workflows=[PostIncidentWorkflow, StandInIncident, IncidentResponseWorkflow],
            activities=[*platform.activities(), bucket.store_postmortem, *Runs(env.client).all()],
        ):
            yield Followups(env, client, task_queue, policy, platform, bucket)
    finally:
        await env.shutdown()


async def refused(handle: WorkflowHandle, update: Any, request: object) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update(update, request)
    return str(err.value.cause)


def events(view: FollowupView, event: str) -> list[str]:
    return [e.detail for e in view.timeline if e.event == event]


async def test_the_review_is_reminded_every_half_hour_and_escalated_at_two_hours(followups: Followups) -> None:
    handle = await followups.start()
    view = await followups.until(handle, lambda v: v.status == FollowupStatus.REVIEW_PENDING)
    assert view.postmortem_uri is not None and view.postmortem_uri.startswith("s3://runbook-postmortems/postmortems/")
    assert followups.bucket.stored[0].incident_workflow_id.startswith("incident/hybrid-router/")
    assert [e for e in events(view, "drafted") if "acknowledged in 3" in e], events(view, "drafted")

    view = await followups.skip(handle, timedelta(minutes=95))
    assert len(events(view, "reminded")) == 3  # at 30, 60 and 90 minutes
    assert followups.escalations() == []
    view = await followups.skip(handle, timedelta(minutes=30))
    assert events(view, "escalated") == [f"the review of {view.incident_id} is overdue"]
    assert followups.escalations() == ["review-overdue"]
    view = await followups.skip(handle, timedelta(hours=3))
    assert followups.escalations() == ["review-overdue"] and len(events(view, "reminded")) == 3  # none twice

    stranger = await refused(handle, PostIncidentWorkflow.review, Review(by="mallory", notes="x"))
    assert "not a responder or approver" in stranger
    await handle.execute_update(PostIncidentWorkflow.review, Review(by="alice", notes="rollback worked"))
    view = await followups.until(handle, lambda v: v.status == FollowupStatus.POSTMORTEM_PENDING)
    assert view.reviewed_by == "alice" and view.review_notes == "rollback worked"
    twice = await refused(handle, PostIncidentWorkflow.review, Review(by="bob", notes="again"))
    assert "recorded already, by alice" in twice
    notes = [n.content for n in followups.platform.called("add_pagerduty_note")]
    assert any("Post-mortem draft of" in n and "s3://runbook-postmortems/" in n for n in notes)
    await followups.keep_history(handle, "review_reminded_and_escalated")
    await handle.terminate("test done")


async def test_a_p0_post_mortem_is_reminded_before_and_escalated_at_24_hours(followups: Followups) -> None:
    handle = await followups.start()
    await followups.until(handle, lambda v: v.status == FollowupStatus.REVIEW_PENDING)
    early = await refused(handle, PostIncidentWorkflow.complete_postmortem, CompletePostmortem(by="alice"))
    assert "record the immediate review first" in early
    await handle.execute_update(PostIncidentWorkflow.review, Review(by="alice", notes="seen"))
    view = await followups.skip(handle, timedelta(hours=19))
    assert events(view, "reminded") == [] and followups.escalations() == []
    view = await followups.skip(handle, timedelta(hours=2))  # 21 h: within 4 h of the due time
    assert [e for e in events(view, "reminded") if "post-mortem" in e]
    view = await followups.skip(handle, timedelta(hours=4))  # 25 h
    assert followups.escalations() == ["postmortem-overdue"]
    assert "OVERDUE" in dict(view.facts())["post-mortem"] or any("OVERDUE" in t for _, t in view.facts())
    await handle.execute_update(PostIncidentWorkflow.complete_postmortem, CompletePostmortem(by="bob"))
    result: FollowupResult = await handle.result()  # no action items: complete
    assert result.view.status == FollowupStatus.COMPLETE
    assert result.outcome == "complete: reviewed by alice, post-mortem by bob, 0 action item(s) done, 0 dropped"


async def test_a_review_recorded_past_the_post_mortems_due_time_escalates_once_and_waits(followups: Followups) -> None:
    """Reviewed only after the post-mortem was due: it is escalated at once, and the run then
    waits for people (no timer left to run: its history stays short), not every second."""
    handle = await followups.start()
    await followups.until(handle, lambda v: v.status == FollowupStatus.REVIEW_PENDING)
    await followups.skip(handle, timedelta(hours=25))
    await handle.execute_update(PostIncidentWorkflow.review, Review(by="alice", notes="late"))
    view = await followups.until(handle, lambda v: "postmortem-overdue" in followups.escalations())
    assert followups.escalations() == ["review-overdue", "postmortem-overdue"]
    view = await followups.skip(handle, timedelta(minutes=5))
    timers = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for e in (await handle.fetch_history()).events
        if e.HasField("timer_started_event_attributes")
    ]
    assert timers and min(timers) >= timedelta(minutes=1), timers  # no timer that fires every second
    assert view.status == FollowupStatus.POSTMORTEM_PENDING and not [
        e for e in events(view, "reminded") if "post-mortem" in e
    ]
    await handle.terminate("test done")


async def test_an_action_item_is_reminded_before_its_due_date_and_escalated_after(followups: Followups) -> None:
    handle = await followups.start()
    await followups.until(handle, lambda v: v.status == FollowupStatus.REVIEW_PENDING)
    await handle.execute_update(PostIncidentWorkflow.review, Review(by="alice", notes="seen"))
    reply = await handle.execute_update(
        PostIncidentWorkflow.add_action_item,
        AddActionItem(by="alice", owner="carol", text="alert on the rollout", due_in=timedelta(days=3)),
    )
    assert reply.message.startswith("A1 added: owner carol, due ")
    await handle.execute_update(PostIncidentWorkflow.complete_postmortem, CompletePostmortem(by="alice"))
    view = await followups.until(handle, lambda v: v.status == FollowupStatus.TRACKING)
    view = await followups.skip(handle, timedelta(hours=23))
    assert events(view, "reminded") == []
    view = await followups.skip(handle, timedelta(hours=2))  # a day in: 2 days before it is due
    assert [e for e in events(view, "reminded") if e.startswith("carol: action item A1")]
    view = await followups.skip(handle, timedelta(days=2))
    assert followups.escalations() == ["item-A1-overdue"]
    assert "OVERDUE" in view.items[0].describe(view.now)
    not_theirs = await refused(
        handle, PostIncidentWorkflow.close_action_item, CloseActionItem(by="mallory", item_id="A1", how="done", why="x")
    )
    assert "only its owner carol or an approver" in not_theirs
    await handle.execute_update(
        PostIncidentWorkflow.close_action_item,
        CloseActionItem(by="carol", item_id="a1", how="done", why="https://git.example/pr/42"),
    )
    result: FollowupResult = await handle.result()
    assert (
        result.view.items[0].status == ItemStatus.DONE and result.view.items[0].evidence == "https://git.example/pr/42"
    )
    await followups.keep_history(handle, "item_reminded_escalated_done")


async def test_dropping_takes_two_people_and_the_run_ends_only_with_the_last_item(followups: Followups) -> None:
    handle = await followups.start(Severity.P1)
    await followups.until(handle, lambda v: v.status == FollowupStatus.REVIEW_PENDING)
    await handle.execute_update(PostIncidentWorkflow.review, Review(by="alice", notes="seen"))
    for text in ("fix the health check", "rewrite the router"):
        await handle.execute_update(
            PostIncidentWorkflow.add_action_item, AddActionItem(by="alice", owner="bob", text=text)
        )
    view = await followups.view(handle)
    assert [item.due - item.added_at for item in view.items] == [timedelta(days=30)] * 2  # the P1 default
    await handle.execute_update(PostIncidentWorkflow.complete_postmortem, CompletePostmortem(by="alice"))
    await handle.execute_update(
        PostIncidentWorkflow.close_action_item, CloseActionItem(by="bob", item_id="A1", how="done", why="PR 7")
    )
    view = await followups.until(handle, lambda v: v.items[0].status == ItemStatus.DONE)
    assert view.status == FollowupStatus.TRACKING  # one item still open: the run goes on

    drop = CloseActionItem(by="alice", item_id="A2", how="drop", why="superseded by the new router")
    asked = await handle.execute_update(PostIncidentWorkflow.close_action_item, drop)
    assert "another approver must confirm" in asked.message
    alone = await refused(handle, PostIncidentWorkflow.close_action_item, drop)
    assert "four eyes" in alone
    stranger = await refused(handle, PostIncidentWorkflow.close_action_item, drop.model_copy(update={"by": "mallory"}))
    assert "not an approver" in stranger
    view = await followups.view(handle)
    assert view.status == FollowupStatus.TRACKING and view.items[1].status == ItemStatus.OPEN  # refusals change nothing

    await handle.execute_update(
        PostIncidentWorkflow.close_action_item, drop.model_copy(update={"by": "bob", "why": "ok"})
    )
    result: FollowupResult = await handle.result()
    assert result.view.status == FollowupStatus.COMPLETE
    assert result.outcome.endswith("1 action item(s) done, 1 dropped")
    dropped = result.view.items[1]
    assert (dropped.drop_requested_by, dropped.closed_by) == ("alice", "bob")
    await followups.keep_history(handle, "two_items_done_and_dropped")


async def test_a_follow_up_not_started_by_its_incident_is_refused(followups: Followups) -> None:
    incident_id = "INC-20261204-120000-f0f0"
    forged = await followups.env.client.start_workflow(
        PostIncidentWorkflow.run,
        FollowupInput(
            incident_id=incident_id,
            incident_workflow_id="incident/hybrid-router/eu-central-1",
            service="hybrid-router",
            region="eu-central-1",
            severity=Severity.P0,
            closed_status="resolved",
            closed_at=await followups.env.get_current_time(),
            commander="mallory",
            opened_by="mallory",
        ),
        id=postincident_workflow_id(incident_id),
        task_queue=followups.task_queue,
    )
    result: FollowupResult = await forged.result()
    assert result.view.status == FollowupStatus.REFUSED and "not started by the incident run" in result.outcome
    assert followups.bucket.stored == [] and followups.platform.called("trigger_page") == []


async def test_an_incident_that_closes_starts_its_follow_up(followups: Followups) -> None:
    """The real incident runbook: resolved by the rollback, it starts the follow-up as its child."""
    region = f"test-{uuid.uuid4().hex[:8]}"
    followups.policy.services["hybrid-router"] = followups.policy.services["hybrid-router"].model_copy(
        update={"region": region}
    )
    incident = await open_acknowledged(followups.client, followups.env, followups.task_queue, "hybrid-router", region)
    seen = await incident_when(incident, lambda v: v.pending_approval is not None)
    assert seen.pending_approval is not None
    await incident.execute_update(
        IncidentResponseWorkflow.approve, Approve(by="bob", plan_id=seen.pending_approval.plan_id)
    )
    closed = await incident.result()
    assert closed.view.status == IncidentStatus.RESOLVED, closed.outcome
    handle = followups.client.get_workflow_handle(postincident_workflow_id(closed.view.id), result_type=FollowupResult)
    view = await followups.until(handle, lambda v: v.status == FollowupStatus.REVIEW_PENDING)
    assert view.commander == "alice" and view.severity == Severity.P0
    assert followups.bucket.stored[0].incident_workflow_id == incident.id
    await followups.keep_history(incident, "../incident/signed_resolved_starts_its_followup")
    await handle.terminate("test done")


async def test_an_operator_starts_the_follow_up_of_an_incident_closed_without_one(followups: Followups) -> None:
    """`runbook followup start`: the ask signed in the operator's name; the run checks what its
    start says of the incident against the incident's own record: a start that says otherwise
    is refused, and so is one nobody signed."""
    assert followups.policy.postincident is not None
    severities = followups.policy.postincident.severities
    followups.policy.postincident.severities = []  # as before this runbook: the incident starts none
    region = f"test-{uuid.uuid4().hex[:8]}"
    followups.policy.services["hybrid-router"] = followups.policy.services["hybrid-router"].model_copy(
        update={"region": region}
    )
    incident = await open_acknowledged(followups.client, followups.env, followups.task_queue, "hybrid-router", region)
    seen = await incident_when(incident, lambda v: v.pending_approval is not None)
    assert seen.pending_approval is not None
    await incident.execute_update(
        IncidentResponseWorkflow.approve, Approve(by="bob", plan_id=seen.pending_approval.plan_id)
    )
    closed: IncidentView = (await incident.result()).view
    followups.policy.postincident.severities = severities
    run_id = (await incident.describe()).run_id
    start = followup_input_of(closed, "alice", run_id)
    now = await followups.env.get_current_time()
    intake: Signer = dataclasses.replace(INTAKE, clock=lambda: now.timestamp())

    lying = start.model_copy(update={"severity": Severity.P3, "incident_id": closed.id})
    forged = await start_followup(followups.env.client, lying, FollowupAsk(by="alice"), followups.task_queue, intake)
    refused_start: FollowupResult = await forged.result()
    assert refused_start.view.status == FollowupStatus.REFUSED
    assert "does not say of" in refused_start.outcome and followups.bucket.stored == []

    now = await followups.env.get_current_time()  # an ask signed before this run began would be refused
    intake = dataclasses.replace(INTAKE, clock=lambda: now.timestamp())
    handle = await start_followup(followups.env.client, start, FollowupAsk(by="alice"), followups.task_queue, intake)
    view = await followups.until(handle, lambda v: v.status == FollowupStatus.REVIEW_PENDING)
    assert view.opened_by == "alice" and view.commander == "alice" and view.severity == Severity.P0
    assert [e.actor for e in view.timeline if e.event == "asked"] == ["alice"]
    assert followups.bucket.stored[0].incident_workflow_id == incident.id
    await handle.terminate("test done")
