"""The policy's routine runs as Temporal Schedules on the dev server (`runbook schedules apply`
idempotent, others' Schedules left alone, a changed declaration updated, a removed one
removed), and the first of them, the weekly digest of open action items, started through its
Schedule over real follow-up runs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import ValidationError
from temporalio import activity, workflow
from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    WorkflowExecution,
    WorkflowExecutionStatus,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.runs import Runs
from contracts import Policy, Severity
from contracts.post_incident import AddActionItem, CloseActionItem, FollowupStatus
from contracts.schedules import (
    DigestItem,
    DigestResult,
    StoredReport,
    StoreReport,
    WatchdogInput,
    WatchdogResult,
    render_digest,
)
from contracts.schedules import ScheduleSpec as Declared
from runbook_cli import schedules
from tests.fakes import FakePlatform, eventually, keep_history
from tests.identity import signing_client
from tests.policies import default_policy
from tests.test_post_incident import FakeBucket, Followups, StandInIncident
from workflows.followup_digest import FollowupDigestWorkflow
from workflows.incident_response import IncidentResponseWorkflow
from workflows.post_incident import PostIncidentWorkflow
from workflows.schedule_watchdog import ScheduleWatchdogWorkflow

HISTORIES = Path(__file__).parent / "histories" / "digest"


def with_schedules(policy: Policy, *declared: dict[str, object]) -> Policy:
    return policy.model_copy(update={"schedules": [Declared.model_validate(d) for d in declared]})


async def managed(client: Client) -> list[str]:
    return await schedules.managed_ids(client)


@pytest.fixture
async def clean(dev_env: WorkflowEnvironment) -> AsyncIterator[Client]:
    """No `runbook-` Schedules before or after (the dev server is the session's)."""
    for schedule_id in await managed(dev_env.client):
        await dev_env.client.get_schedule_handle(schedule_id).delete()
    yield dev_env.client
    for schedule_id in await managed(dev_env.client):
        await dev_env.client.get_schedule_handle(schedule_id).delete()


async def listed_soon(client: Client, wanted: set[str]) -> None:
    """Schedules are listed through visibility, a moment after they change."""
    await eventually(
        lambda: managed(client), lambda listed: set(listed) == wanted, f"wanted {sorted(wanted)}", every=0.1
    )


async def test_apply_creates_then_changes_nothing_updates_removes_and_leaves_others_alone(
    clean: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = clean
    other = f"someone-else-{uuid.uuid4().hex[:6]}"
    await client.create_schedule(
        other,
        Schedule(
            action=ScheduleActionStartWorkflow("SomeoneElsesWorkflow", id="x", task_queue="elsewhere"),
            spec=ScheduleSpec(cron_expressions=["0 0 1 1 *"]),
        ),
    )
    try:
        policy = with_schedules(
            default_policy(),
            {"name": "followup-digest", "runbook": "followup-digest", "cron": "0 8 * * 1"},
            {"name": "digest-daily", "runbook": "followup-digest", "cron": "30 6 * * *", "paused": True},
        )
        first = await schedules.apply(client, policy, "q1")
        assert sorted((c.name, c.change) for c in first) == [
            ("digest-daily", "created"),
            ("followup-digest", "created"),
        ]
        await listed_soon(client, {"runbook-followup-digest", "runbook-digest-daily"})
        again = await schedules.apply(client, policy, "q1")
        assert sorted((c.name, c.change) for c in again) == [
            ("digest-daily", "unchanged"),
            ("followup-digest", "unchanged"),
        ]

        rows = {row.name: row for row in await schedules.rows(client)}
        assert rows["followup-digest"].cron == "0 8 * * 1" and not rows["followup-digest"].paused
        assert rows["digest-daily"].paused and rows["followup-digest"].workflow_type == "FollowupDigestWorkflow"
        next_runs = rows["followup-digest"].next_runs
        assert next_runs and all((t.weekday(), t.hour, t.minute) == (0, 8, 0) for t in next_runs)
        assert all(t.utcoffset() == timedelta(0) for t in next_runs)

        # an operator pauses one: `apply` with the same declaration leaves it paused
        await client.get_schedule_handle("runbook-followup-digest").pause(note="by hand")
        assert {c.change for c in await schedules.apply(client, policy, "q1")} == {"unchanged"}
        assert {row.name: row for row in await schedules.rows(client)}["followup-digest"].paused

        changed = with_schedules(
            default_policy(), {"name": "followup-digest", "runbook": "followup-digest", "cron": "0 9 * * 1"}
        )
        third = await schedules.apply(client, changed, "q1")
        assert sorted((c.name, c.change) for c in third) == [
            ("digest-daily", "removed"),
            ("followup-digest", "updated"),
        ]
        await listed_soon(client, {"runbook-followup-digest"})
        row = (await schedules.rows(client))[0]
        assert row.cron == "0 9 * * 1" and not row.paused  # the declaration says active
        assert all(t.hour == 9 for t in row.next_runs)
        # a new task queue is a change too (the runs must go where a worker polls)
        assert [c.change for c in await schedules.apply(client, changed, "q2")] == ["updated"]
        # and so is a new input for its runs (a new version of the code that makes it)
        made = schedules.input_for
        monkeypatch.setattr(schedules, "input_for", lambda spec: made(spec).model_copy(update={"started_by": "v2"}))
        assert [c.change for c in await schedules.apply(client, changed, "q2")] == ["updated"]
        assert [c.change for c in await schedules.apply(client, changed, "q2")] == ["unchanged"]
        # the other Schedule was never touched
        assert (await client.get_schedule_handle(other).describe()).id == other
    finally:
        await client.get_schedule_handle(other).delete()


async def test_trigger_says_which_run_it_started_or_that_the_overlap_policy_skipped_it(clean: Client) -> None:
    """No worker polls the queue, so the first run stays running: a second trigger is skipped
    (overlap `skip`), and the CLI must say so rather than "triggered"."""
    client = clean
    policy = with_schedules(default_policy(), {"name": "digest-now", "runbook": "followup-digest", "cron": "0 8 * * 1"})
    queue = f"nobody-{uuid.uuid4().hex[:6]}"
    await schedules.apply(client, policy, queue)
    started = await schedules.trigger(client, "digest-now")
    assert started is not None and started.startswith("digest-now-")
    assert (await client.get_workflow_handle(started).describe()).task_queue == queue
    with pytest.raises(schedules.ScheduleError, match=f"not started: {started} is still running"):
        await schedules.trigger(client, "digest-now")
    query = f"WorkflowType = 'FollowupDigestWorkflow' AND TaskQueue = '{queue}'"
    assert len([w async for w in client.list_workflows(query)]) == 1
    await client.get_workflow_handle(started).terminate("test done")


def test_a_declaration_that_cannot_be_kept_is_refused_naming_the_field() -> None:
    base = {"name": "d", "runbook": "followup-digest", "cron": "0 8 * * 1"}
    with pytest.raises(ValidationError, match="cron"):
        Declared.model_validate({**base, "cron": "every monday"})
    with pytest.raises(ValidationError, match="unknown runbook 'nightly'"):
        Declared.model_validate({**base, "runbook": "nightly"})
    with pytest.raises(ValidationError, match="catchup_window"):
        Declared.model_validate({**base, "catchup_window": "10s"})
    with pytest.raises(ValidationError, match="name"):
        Declared.model_validate({**base, "name": "Bad Name"})
    with pytest.raises(ValidationError, match="jitter: only 0s"):
        Declared.model_validate({**base, "jitter": "5m"})
    twice = {"schedules": [base, base]}
    with pytest.raises(ValidationError, match="used twice"):
        Policy.model_validate({**default_policy().model_dump(mode="json", exclude={"schedules"}), **twice})


def test_the_digest_lists_each_owner_most_overdue_first_overdue_items_first() -> None:
    due = datetime(2026, 12, 1, tzinfo=UTC)
    items = [
        DigestItem(incident_id="INC-1", item_id="A1", text="add a canary", owner="bob", due=due, overdue=False),
        DigestItem(incident_id="INC-1", item_id="A2", text="alert on it", owner="carol", due=due, overdue=True),
        DigestItem(incident_id="INC-2", item_id="A1", text="runbook link", owner="carol", due=due, overdue=False),
    ]
    text = render_digest(items, datetime(2026, 12, 7, 8, tzinfo=UTC), unread=["postincident/INC-3"])
    assert "3 open, 1 overdue, across 2 incident(s)." in text
    assert "Not read (their items are missing here): postincident/INC-3." in text
    assert text.index("## carol: 2 open, 1 overdue") < text.index("## bob: 1 open, 0 overdue")
    assert text.index("**OVERDUE** INC-1 A2") < text.index("open INC-2 A1: runbook link")
    assert "No open action items." in render_digest([], datetime(2026, 12, 7, tzinfo=UTC))


class FakeReports:
    def __init__(self) -> None:
        self.stored: list[StoreReport] = []

    @activity.defn(name="store_report")
    async def store_report(self, request: StoreReport) -> StoredReport:
        self.stored.append(request)
        return StoredReport(uri=f"s3://{request.bucket}/{request.key}", bytes=len(request.body.encode()))


async def test_the_digest_runs_from_its_schedule_over_the_running_followups(clean: Client) -> None:
    policy = with_schedules(
        default_policy(), {"name": "followup-digest", "runbook": "followup-digest", "cron": "0 8 * * 1"}
    )
    env_client = clean
    platform, bucket, reports = FakePlatform(policy), FakeBucket(), FakeReports()
    task_queue = f"digest-{uuid.uuid4()}"
    env = _env_of(env_client)
    async with Worker(
        env_client,
        task_queue=task_queue,
        workflows=[PostIncidentWorkflow, StandInIncident, IncidentResponseWorkflow, FollowupDigestWorkflow],
        activities=[*platform.activities(), bucket.store_postmortem, *Runs(env_client).all(), reports.store_report],
    ):
        followups = Followups(env, signing_client(env_client), task_queue, policy, platform, bucket)
        first, second = await followups.start(Severity.P1), await followups.start(Severity.P2)
        for handle in (first, second):
            await followups.until(handle, lambda v: v.status == FollowupStatus.REVIEW_PENDING)
        await first.execute_update(
            PostIncidentWorkflow.add_action_item, AddActionItem(by="alice", owner="carol", text="alert on rollouts")
        )
        await first.execute_update(
            PostIncidentWorkflow.add_action_item, AddActionItem(by="alice", owner="bob", text="a canary step")
        )
        await second.execute_update(
            PostIncidentWorkflow.add_action_item, AddActionItem(by="bob", owner="carol", text="runbook link")
        )
        await second.execute_update(
            PostIncidentWorkflow.close_action_item,
            CloseActionItem(by="carol", item_id="A1", how="done", why="https://git.example/pr/7"),
        )
        incidents = {(await followups.view(h)).incident_id for h in (first, second)}

        changes = await schedules.apply(env_client, policy, task_queue)
        assert [(c.name, c.change) for c in changes] == [("followup-digest", "created")]
        await schedules.trigger(env_client, "followup-digest")
        result = await _scheduled_result(env_client, task_queue)

        mine = [line for line in result.markdown.splitlines() if any(i in line for i in incidents)]
        assert len(mine) == 2, result.markdown  # the done item is not listed
        assert any("alert on rollouts" in line and "open" in line for line in mine)
        assert any("a canary step" in line for line in mine)
        assert result.owners["carol"].open >= 1 and result.owners["bob"].open >= 1
        assert result.unread == [] and result.overdue == 0
        assert [r.key for r in reports.stored] == [f"digests/action-items-{result.at:%Y-%m-%d}.md"]
        assert reports.stored[0].bucket == "runbook-postmortems" and reports.stored[0].body == result.markdown
        assert result.uri == f"s3://runbook-postmortems/{reports.stored[0].key}"
        rows = await schedules.rows(env_client)
        assert rows[0].last_workflow_id is not None and rows[0].last_workflow_id.startswith("followup-digest-")

        # paused, a backfill still runs what was missed: two Mondays 08:00 in the last 14 days
        await schedules.pause(env_client, "followup-digest", "paused by alice: the bucket moves")
        assert (await schedules.rows(env_client))[0].note == "paused by alice: the bucket moves"
        end = datetime.now(UTC) - timedelta(minutes=1)
        await schedules.backfill(env_client, "followup-digest", end - timedelta(days=14), end)
        query = f"WorkflowType = 'FollowupDigestWorkflow' AND TaskQueue = '{task_queue}'"
        runs = await eventually(
            lambda: listed_runs(env_client, query), lambda runs: len(runs) >= 3, "backfilled", every=0.1
        )
        backfilled = sorted(w.id for w in runs if w.id != rows[0].last_workflow_id)
        assert len(backfilled) == 2, backfilled
        mondays = [datetime.fromisoformat(i.removeprefix("followup-digest-")) for i in backfilled]
        assert all((day.weekday(), day.hour) == (0, 8) for day in mondays)
        for workflow_id in backfilled:
            await env_client.get_workflow_handle(workflow_id).result()
        # each backfilled digest is named for the Monday it was due, not for today
        stored = {r.key for r in reports.stored[1:]}
        assert stored == {f"digests/action-items-{day:%Y-%m-%d}.md" for day in mondays}, stored
        await schedules.unpause(env_client, "followup-digest", "unpaused by alice")
        assert not (await schedules.rows(env_client))[0].paused
        with pytest.raises(schedules.ScheduleError, match="in the future"):
            await schedules.backfill(env_client, "followup-digest", end, end + timedelta(days=2))
        with pytest.raises(schedules.ScheduleError, match="is not after"):
            await schedules.backfill(env_client, "followup-digest", end, end - timedelta(days=2))
        with pytest.raises(schedules.ScheduleError, match="no schedule 'nightly'"):
            await schedules.pause(env_client, "nightly", "x")
        await keep_history(env_client.get_workflow_handle(rows[0].last_workflow_id), HISTORIES / "digest.json")
        for handle in (first, second):
            await handle.terminate("test done")


def _env_of(client: Client) -> WorkflowEnvironment:
    return WorkflowEnvironment.from_client(client)


async def _scheduled_result(client: Client, task_queue: str) -> DigestResult:
    query = f"WorkflowType = 'FollowupDigestWorkflow' AND TaskQueue = '{task_queue}'"
    runs = await eventually(lambda: listed_runs(client, query), bool, "the schedule started no digest", every=0.1)
    result: DigestResult = await client.get_workflow_handle(runs[0].id, result_type=DigestResult).result()
    return result


async def listed_runs(client: Client, query: str) -> list[WorkflowExecution]:
    return [w async for w in client.list_workflows(query)]


# --------------------------------------------------------------------------- the watchdog


@workflow.defn(name="WatchdogTestSlow", sandboxed=False)  # trivial; this module imports too much for the sandbox
class SlowRun:
    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(timedelta(minutes=5))


@workflow.defn(name="WatchdogTestFailing", sandboxed=False)
class FailingRun:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("the report could not be written", non_retryable=True)


async def due_and_failed(client: Client, grace: timedelta) -> tuple[int, int]:
    """How many of the failing schedule's runs due before `grace` ago have failed, and how many
    times the slow one was due from its creation to `grace` ago."""
    end = datetime.now(UTC) - grace
    failing = (await client.get_schedule_handle("runbook-wd-failing").describe()).info
    failed = 0
    for recent in failing.recent_actions:
        run = recent.action
        if recent.scheduled_at < end and isinstance(run, ScheduleActionExecutionStartWorkflow):
            status = (await client.get_workflow_handle(run.workflow_id).describe()).status
            failed += status == WorkflowExecutionStatus.FAILED
    slow = (await client.get_schedule_handle("runbook-wd-slow").describe()).info
    request = ListScheduleMatchingTimesRequest(
        namespace=client.namespace,
        schedule_id="runbook-wd-slow",
        start_time=_stamp(slow.created_at),
        end_time=_stamp(end),
    )
    due = len((await client.workflow_service.list_schedule_matching_times(request)).start_time)
    return failed, due


def every_two_seconds(
    workflow_type: str, task_queue: str, overlap: ScheduleOverlapPolicy, paused: bool = False
) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            workflow_type, id=f"{workflow_type}-{uuid.uuid4().hex[:6]}", task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=2))]),
        policy=SchedulePolicy(overlap=overlap),
        state=ScheduleState(paused=paused),
    )


async def test_the_watchdog_pages_once_for_each_run_missing_or_failed(clean: Client) -> None:
    """A schedule whose run is still going when the next is due (overlap skip: the next ones
    never start), one whose runs fail, and a paused one (not checked)."""
    client = clean
    policy = default_policy()
    platform = FakePlatform(policy)
    task_queue = f"watchdog-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ScheduleWatchdogWorkflow, SlowRun, FailingRun],
        activities=[*platform.activities(), *Runs(client).all()],
    ):
        await client.create_schedule(
            "runbook-wd-slow", every_two_seconds("WatchdogTestSlow", task_queue, ScheduleOverlapPolicy.SKIP)
        )
        await client.create_schedule(
            "runbook-wd-failing", every_two_seconds("WatchdogTestFailing", task_queue, ScheduleOverlapPolicy.ALLOW_ALL)
        )
        await client.create_schedule(
            "runbook-wd-paused",
            every_two_seconds("WatchdogTestFailing", task_queue, ScheduleOverlapPolicy.ALLOW_ALL, True),
        )
        # until the watchdog has something to judge (not a fixed sleep: a busy machine starts and
        # fails runs late): two failing runs due before its window's end (`grace` ago) and
        # failed, and three times the slow one was due in it (its first run goes on: two misses);
        # a run due `grace` ago has started, however busy the machine, so none is "missing"
        grace = timedelta(seconds=5)
        await eventually(
            lambda: due_and_failed(client, grace),
            lambda counts: counts[0] >= 2 and counts[1] >= 3,
            "the schedules' runs (failing runs failed, times the slow one was due)",
            every=0.5,
        )
        watch = WatchdogInput(started_by="test", grace=grace)
        watchdog_id = f"watchdog-{uuid.uuid4()}"
        result: WatchdogResult = await client.execute_workflow(
            ScheduleWatchdogWorkflow.run, watch, id=watchdog_id, task_queue=task_queue
        )
        assert result.checked == ["wd-failing", "wd-slow"]  # the paused one starts nothing by design
        slow = [run for run in result.missed if run.schedule == "wd-slow"]
        failing = [run for run in result.missed if run.schedule == "wd-failing"]
        assert len(slow) >= 2 and {run.problem for run in slow} == {"missing"}, slow
        assert len(failing) >= 2 and {run.problem for run in failing} == {"failed"}, failing
        assert all("failed" in run.detail for run in failing)
        pages = platform.called("trigger_page")
        assert [page.dedup_key for page in pages] == result.paged == [run.dedup_key for run in result.missed]
        assert len(set(result.paged)) == len(result.paged)  # one page per missed run
        assert all(page.severity == "warning" and page.summary.startswith("[schedule] wd-") for page in pages)
        # the slow schedule's first run is still going: not a miss
        running = (await client.get_schedule_handle("runbook-wd-slow").describe()).info.running_actions
        started = [run.workflow_id for run in running if isinstance(run, ScheduleActionExecutionStartWorkflow)]
        assert started and all(run.workflow_id not in started for run in slow)
        await keep_history(client.get_workflow_handle(watchdog_id), HISTORIES.parent / "watchdog" / "missed.json")

        # that run, still going when the watchdog checked it, fails afterwards: the next watchdog
        # (its window after the first's) pages it, though it was due before its window
        slow_info = (await client.get_schedule_handle("runbook-wd-slow").describe()).info
        [first_due] = [
            recent.scheduled_at
            for recent in slow_info.recent_actions
            if isinstance(recent.action, ScheduleActionExecutionStartWorkflow)
            and recent.action.workflow_id == started[0]
        ]
        await client.get_schedule_handle("runbook-wd-failing").pause()
        before = time.monotonic()  # the run closes after this ...
        await client.get_workflow_handle(started[0]).terminate("it failed after the check")
        after = time.monotonic()  # ... and before this
        short_grace = timedelta(seconds=1)
        await asyncio.sleep(short_grace.total_seconds() + 0.5)  # closed more than `grace` before the window's end
        # The window (`look_back` before `grace` ago) must hold the close, however long the
        # terminate and the watchdog's start take on a busy machine: it reaches back past the
        # measured time since the terminate with a margin, but not back to the run's due time
        # (the run must be one due before the window).
        elapsed = timedelta(seconds=time.monotonic() - before)
        room = datetime.now(UTC) - short_grace - first_due - timedelta(seconds=1)
        look_back = min(elapsed + timedelta(seconds=30), room)
        assert look_back > elapsed + timedelta(seconds=1), (look_back, elapsed, after - before)
        later = WatchdogInput(started_by="test", look_back=look_back, grace=short_grace)
        second: WatchdogResult = await client.execute_workflow(
            ScheduleWatchdogWorkflow.run, later, id=f"watchdog-{uuid.uuid4()}", task_queue=task_queue
        )
        failed_later = [run for run in second.missed if run.workflow_id == started[0]]
        assert len(failed_later) == 1 and failed_later[0].problem == "failed", second.missed
        assert "terminated" in failed_later[0].detail and failed_later[0].dedup_key not in result.paged
        still_running = (await client.get_schedule_handle("runbook-wd-slow").describe()).info.running_actions
        for schedule_id in ("runbook-wd-slow", "runbook-wd-failing", "runbook-wd-paused"):
            await client.get_schedule_handle(schedule_id).delete()
        for running_run in still_running:
            assert isinstance(running_run, ScheduleActionExecutionStartWorkflow)
            await client.get_workflow_handle(running_run.workflow_id).terminate("test done")


async def test_the_next_400_daily_reviews_are_all_at_nine_utc_across_daylight_saving(clean: Client) -> None:
    """The schedule's times are UTC: 09:00Z every day for 400 days, while the wall clocks of
    zones with daylight saving move under them (the local hour takes two values in each)."""
    client = clean
    policy = default_policy()
    (daily,) = [spec for spec in policy.schedules if spec.name == "daily-performance-review"]
    assert daily.cron == "0 9 * * *"
    await schedules.apply(client, policy.model_copy(update={"schedules": [daily]}), "q-daily")
    start = datetime.now(UTC)
    request = ListScheduleMatchingTimesRequest(
        namespace=client.namespace,
        schedule_id=daily.schedule_id,
        start_time=_stamp(start),
        end_time=_stamp(start + timedelta(days=402)),
    )
    answer = await client.workflow_service.list_schedule_matching_times(request)
    times = [stamp.ToDatetime(tzinfo=UTC) for stamp in answer.start_time][:400]
    assert len(times) == 400
    assert {(t.hour, t.minute, t.second) for t in times} == {(9, 0, 0)}
    assert all(later - earlier == timedelta(days=1) for earlier, later in zip(times, times[1:], strict=False))
    for zone in ("Europe/Berlin", "America/New_York", "Australia/Sydney"):
        assert len({t.astimezone(ZoneInfo(zone)).hour for t in times}) == 2, zone


def _stamp(when: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp
