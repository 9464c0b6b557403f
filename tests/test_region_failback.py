"""The failback runbook on the time-skipping server with the default policy (a 30-minute soak,
two leads, a 4-hour wait before proposing again): started by a failover, against the fake
regions of tests/test_region_failover.py."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import WorkflowHandle

from contracts import Approve, Reject
from contracts.region_failover import (
    FailbackInput,
    FailbackResult,
    FailbackStatus,
    FailbackView,
    FailoverStatus,
    failback_workflow_id,
)
from tests.test_region_failover import (  # noqa: F401 - fixtures
    BACKUP,
    PRIMARY,
    Failover,
    failover,
    seeded_records,
    service_of,
    time_skipping_env,
)
from workflows.region_failback import RegionFailbackWorkflow
from workflows.region_failover import RegionFailoverWorkflow


async def failed_over(failover: Failover) -> WorkflowHandle:  # noqa: F811
    """Trigger, two leads approve, the traffic on the backup: the failback handle."""
    handle = await failover.trigger(by="alice", service=service_of(failover))
    view = await failover.until(handle, lambda v: v.pending_approval is not None)
    assert view.pending_approval is not None
    for person in ("bob", "carol"):
        await handle.execute_update(
            RegionFailoverWorkflow.approve, Approve(by=person, plan_id=view.pending_approval.plan_id)
        )
    await failover.until(handle, lambda v: v.status == FailoverStatus.FAILED_OVER)
    assert failover.regions.records.serving_region == BACKUP
    return failover.client.get_workflow_handle(failback_workflow_id(service_of(failover)), result_type=FailbackResult)


async def pending(failover: Failover, failback: WorkflowHandle) -> FailbackView:  # noqa: F811
    for _ in range(600):
        view: FailbackView = await failback.query(RegionFailbackWorkflow.view)
        if view.pending_approval is not None:
            return view
        await failover.env.sleep(timedelta(minutes=1))
    raise AssertionError(f"no failback proposed: {view.timeline[-3:]}")


async def test_the_soak_resets_on_a_failure_and_failback_waits_for_two_approvals(failover: Failover) -> None:  # noqa: F811
    down = [(timedelta(0), timedelta(minutes=10)), (timedelta(minutes=25), timedelta(minutes=26))]
    failover.regions.primary_down = lambda since: any(start <= since < end for start, end in down)
    failback = await failed_over(failover)

    view = await pending(failover, failback)
    assert view.healthy_since is not None and failover.regions.started is not None
    assert view.healthy_since - failover.regions.started >= timedelta(minutes=26)
    events = [e.event for e in view.timeline]
    assert "soak reset" in events and events.index("healthy") < events.index("soak reset")
    assert failover.regions.records.serving_region == BACKUP  # nothing fails back unattended
    plan = view.pending_approval
    assert plan is not None and plan.to_region == PRIMARY and plan.ecs.to_count == 0

    # rejected: proposed again after failback_retry_after, with a fresh soak
    await failback.execute_update(
        RegionFailbackWorkflow.reject, Reject(by="bob", plan_id=plan.plan_id, reason="not tonight")
    )
    again = await pending(failover, failback)
    assert again.proposals == 2 and again.healthy_since is not None
    assert again.healthy_since - view.healthy_since >= timedelta(hours=4)
    assert again.pending_approval is not None
    for person in ("bob", "carol"):
        await failback.execute_update(
            RegionFailbackWorkflow.approve, Approve(by=person, plan_id=again.pending_approval.plan_id)
        )
    result: FailbackResult = await failback.result()
    assert result.view.status == FailbackStatus.FAILED_BACK, result.outcome
    assert failover.regions.records == seeded_records()  # exactly as the failover found them
    assert [p.to_count for p in failover.regions.scaled] == [3, 0]  # up for the failover, standby after
    assert len(failover.regions.dns_calls) == 2
    pages = [p.dedup_key for p in failover.platform.called("trigger_page")]
    assert pages == [f"{failback_workflow_id(service_of(failover))}#proposal"]  # told once; noted after
    await failover.keep_history(failback, "../failback/failed_back_after_a_reset_and_a_rejection")


async def test_a_failback_not_started_by_a_failover_is_refused(failover: Failover) -> None:  # noqa: F811
    service = service_of(failover)
    handle = await failed_over(failover)
    await handle.terminate("the real one is not needed here")
    failover_plan = (
        await failover.client.get_workflow_handle(f"failover/{service}").query(RegionFailoverWorkflow.view)
    ).plan
    assert failover_plan is not None and failover.regions.started is not None
    forged = await failover.env.client.start_workflow(
        RegionFailbackWorkflow.run,  # the raw client, as anyone who can reach Temporal
        FailbackInput(
            service=service,
            failover=failover_plan,
            failed_over_at=failover.regions.started,
            opened_by="mallory",
        ),
        id=failback_workflow_id(service),
        task_queue=failover.task_queue,
    )
    result: FailbackResult = await forged.result()
    assert result.view.status == FailbackStatus.REFUSED and "not started by the service's failover" in result.outcome


async def test_a_failback_soaking_for_hours_continues_as_new_and_keeps_its_state(failover: Failover) -> None:  # noqa: F811
    """A primary down for hours: the soaking run continues as new (here every 50 history
    events) carrying its state, and the last run still proposes, is approved and fails back."""
    assert failover.policy.failover is not None
    failover.policy.failover.continue_after_events = 50
    failover.regions.primary_down = lambda since: since < timedelta(hours=2)
    failback = await failed_over(failover)
    first = (await failback.describe()).run_id

    view = await pending(failover, failback)
    assert view.healthy_since is not None and failover.regions.started is not None
    assert view.healthy_since - failover.regions.started >= timedelta(hours=2)
    latest = await failback.describe()
    assert latest.run_id != first  # continued as new, under the same workflow id
    history = await failover.client.get_workflow_handle(failback.id, run_id=latest.run_id).fetch_history()
    assert len(history.events) < 120  # each run stays short however long the soak
    events = [e.event for e in view.timeline]
    assert "continued" in events  # the carried timeline says so
    assert view.pending_approval is not None and view.proposals == 1
    for person in ("bob", "carol"):
        await failback.execute_update(
            RegionFailbackWorkflow.approve, Approve(by=person, plan_id=view.pending_approval.plan_id)
        )
    result: FailbackResult = await failback.result()
    assert result.view.status == FailbackStatus.FAILED_BACK, result.outcome
    assert failover.regions.records == seeded_records()
    assert [p.to_count for p in failover.regions.scaled] == [3, 0]
