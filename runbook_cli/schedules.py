"""The policy's `schedules:` kept as Temporal Schedules: `runbook schedules apply` creates,
updates and removes them to match, and changes nothing when they already do; `runbook
schedules` lists them; `runbook schedules trigger NAME` runs one now.

Only Schedules whose id starts with `runbook-` are this project's: others on the same server
are never touched. Each one carries the fingerprint of its declaration (and task queue) in its
action's memo, so `apply` compares what was declared, not how the server rewrote it, and leaves
a Schedule an operator paused alone unless its declaration changed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import to_jsonable_python
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.client import ScheduleSpec as TemporalSpec
from temporalio.service import RPCError, RPCStatusCode

from contracts.common import Strict
from contracts.maintenance import MaintenanceInput
from contracts.policy import Policy
from contracts.reviews import ReviewInput
from contracts.schedules import (
    MANAGED_BY,
    SCHEDULE_PREFIX,
    DigestInput,
    ScheduleChange,
    ScheduleSpec,
    WatchdogInput,
)
from contracts.trend_reviews import TrendInput

MAX_BACKFILL = timedelta(days=31)
OVERLAP = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "buffer_all": ScheduleOverlapPolicy.BUFFER_ALL,
    "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
    "terminate_other": ScheduleOverlapPolicy.TERMINATE_OTHER,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
}


class ScheduleError(ValueError):
    """A schedule command that cannot be done; the message names the schedule."""


def input_for(spec: ScheduleSpec) -> Any:
    if spec.runbook == "followup-digest":
        return DigestInput(started_by=f"schedule {spec.name}")
    if spec.runbook == "performance-review":
        return ReviewInput(cadence="daily", started_by=f"schedule {spec.name}")
    if spec.runbook == "schedule-watchdog":
        return WatchdogInput(started_by=f"schedule {spec.name}")
    if spec.runbook == "maintenance" and spec.maintenance is not None:
        # what the window does is read by the run from the worker's policy, not from here
        return MaintenanceInput(service=spec.maintenance.service, opened_by=f"schedule {spec.name}", schedule=spec.name)
    if spec.runbook in ("weekly-review", "capacity-review"):
        return TrendInput(started_by=f"schedule {spec.name}")
    raise ScheduleError(f"schedule {spec.name}: no input known for runbook {spec.runbook}")  # pragma: no cover


def fingerprint(spec: ScheduleSpec, task_queue: str) -> str:
    """The declaration's fingerprint with the input its runs start with, as JSON."""
    return spec.fingerprint(task_queue, to_jsonable_python(input_for(spec)))


def temporal_schedule(spec: ScheduleSpec, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            spec.workflow_type,
            input_for(spec),
            id=spec.name,  # Temporal appends the nominal start time: one id per run
            task_queue=task_queue,
            memo={"managed_by": MANAGED_BY, "fingerprint": fingerprint(spec, task_queue), "cron": spec.cron},
        ),
        spec=TemporalSpec(cron_expressions=[spec.cron], jitter=spec.jitter, time_zone_name="UTC"),
        policy=SchedulePolicy(overlap=OVERLAP[spec.overlap], catchup_window=spec.catchup_window),
        state=ScheduleState(paused=spec.paused, note=spec.note or f"declared in the policy ({spec.runbook})"),
    )


def _memo(client: Client, action: object) -> dict[str, str]:
    """The action's memo (what `apply` wrote: the fingerprint, the cron line as declared)."""
    if not isinstance(action, ScheduleActionStartWorkflow) or not action.memo:
        return {}
    memo: dict[str, str] = {}
    for key, raw in action.memo.items():
        value = raw if isinstance(raw, str) else client.data_converter.payload_converter.from_payload(raw, str)
        if isinstance(value, str):
            memo[key] = value
    return memo


async def _fingerprint(client: Client, schedule_id: str) -> str | None:
    description = await client.get_schedule_handle(schedule_id).describe()
    return _memo(client, description.schedule.action).get("fingerprint")


async def managed_ids(client: Client) -> list[str]:
    found: list[str] = []
    async for listed in await client.list_schedules():
        if listed.id.startswith(SCHEDULE_PREFIX):
            found.append(listed.id)
    return sorted(found)


async def apply(client: Client, policy: Policy, task_queue: str) -> list[ScheduleChange]:
    """Make the server's `runbook-` Schedules what the policy declares; idempotent."""
    declared = {spec.schedule_id: spec for spec in policy.schedules}
    existing = set(await managed_ids(client))
    changes: list[ScheduleChange] = []
    for schedule_id, spec in declared.items():
        wanted = temporal_schedule(spec, task_queue)
        if schedule_id not in existing:
            try:
                await client.create_schedule(schedule_id, wanted, memo={"managed_by": MANAGED_BY})
            except ScheduleAlreadyRunningError:  # created meanwhile (listing is eventually consistent)
                existing.add(schedule_id)
            else:
                changes.append(ScheduleChange(name=spec.name, change="created", detail=spec.cron))
                continue
        if await _fingerprint(client, schedule_id) == fingerprint(spec, task_queue):
            changes.append(ScheduleChange(name=spec.name, change="unchanged", detail=spec.cron))
            continue

        def replace(_: ScheduleUpdateInput, new: Schedule = wanted) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=new)

        await client.get_schedule_handle(schedule_id).update(replace)
        changes.append(ScheduleChange(name=spec.name, change="updated", detail=spec.cron))
    for schedule_id in sorted(existing - set(declared)):
        try:
            await client.get_schedule_handle(schedule_id).delete()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        changes.append(
            ScheduleChange(name=schedule_id.removeprefix(SCHEDULE_PREFIX), change="removed", detail="not in the policy")
        )
    return changes


class ScheduleRow(Strict):
    name: str
    workflow_type: str | None
    cron: str | None
    paused: bool
    note: str
    next_runs: list[datetime]
    last_run: datetime | None
    last_workflow_id: str | None
    last_outcome: str | None


async def rows(client: Client) -> list[ScheduleRow]:
    """Every `runbook-` Schedule: next runs, the last run and how it ended."""
    found: list[ScheduleRow] = []
    for schedule_id in await managed_ids(client):
        handle = client.get_schedule_handle(schedule_id)
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                continue  # removed since it was listed
            raise
        action = description.schedule.action
        recent = description.info.recent_actions[-1] if description.info.recent_actions else None
        started = recent.action if recent is not None else None
        last_id = started.workflow_id if isinstance(started, ScheduleActionExecutionStartWorkflow) else None
        outcome: str | None = None
        if last_id is not None:
            try:
                status = (await client.get_workflow_handle(last_id).describe()).status
                outcome = status.name.lower() if status is not None else None
            except RPCError:
                outcome = "unknown"
        found.append(
            ScheduleRow(
                name=schedule_id.removeprefix(SCHEDULE_PREFIX),
                workflow_type=action.workflow if isinstance(action, ScheduleActionStartWorkflow) else None,
                cron=_memo(client, action).get("cron"),
                paused=description.schedule.state.paused,
                note=description.schedule.state.note or "",
                next_runs=list(description.info.next_action_times[:3]),
                last_run=recent.scheduled_at if recent is not None else None,
                last_workflow_id=last_id,
                last_outcome=outcome,
            )
        )
    return found


TRIGGER_WAIT = 10.0  # seconds `trigger` waits to see what the schedule made of it


async def trigger(client: Client, name: str) -> str | None:
    """The schedule's action now (its overlap policy applies). Returns the workflow id of the
    run it started; raises ScheduleError when the overlap policy skipped it (a run still
    running); None when it is neither (buffered behind the running one, or not seen yet).

    Temporal takes a trigger and decides later: the counts the schedule keeps say which way."""
    handle = await _known(client, name)
    before = (await handle.describe()).info
    await handle.trigger()
    deadline = asyncio.get_running_loop().time() + TRIGGER_WAIT
    while asyncio.get_running_loop().time() < deadline:
        info = (await handle.describe()).info
        if info.num_actions > before.num_actions:
            started = info.recent_actions[-1].action if info.recent_actions else None
            return started.workflow_id if isinstance(started, ScheduleActionExecutionStartWorkflow) else None
        if info.num_actions_skipped_overlap > before.num_actions_skipped_overlap:
            running = ", ".join(r.workflow_id for r in info.running_actions) or "a run"
            raise ScheduleError(
                f"{name}: not started: {running} is still running and the overlap policy skips (started nothing)"
            )
        await asyncio.sleep(0.2)
    return None


def _handle(client: Client, name: str) -> Any:
    return client.get_schedule_handle(f"{SCHEDULE_PREFIX}{name}")


async def _known(client: Client, name: str) -> Any:
    handle = _handle(client, name)
    try:
        await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise ScheduleError(f"no schedule {name!r}: `runbook schedules` lists them") from None
        raise
    return handle


async def pause(client: Client, name: str, note: str) -> None:
    """No runs until unpaused; the note (why, and who) is shown by `runbook schedules`."""
    await (await _known(client, name)).pause(note=note)


async def unpause(client: Client, name: str, note: str) -> None:
    await (await _known(client, name)).unpause(note=note)


async def backfill(client: Client, name: str, start: datetime, end: datetime) -> None:
    """The runs the schedule would have started between `start` and `end`, now, each one (a
    backfill asks for every run in the range, whatever the overlap policy says of late ones)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ScheduleError("backfill: give times with their zone, e.g. 2026-12-01T00:00Z")
    if end <= start:
        raise ScheduleError(f"backfill: --to {end.isoformat()} is not after --from {start.isoformat()}")
    if end > datetime.now(UTC):
        raise ScheduleError(f"backfill: --to {end.isoformat()} is in the future; the schedule itself runs those")
    if end - start > MAX_BACKFILL:
        raise ScheduleError(f"backfill: at most {MAX_BACKFILL.days} days at once")
    handle = await _known(client, name)
    await handle.backfill(ScheduleBackfill(start_at=start, end_at=end, overlap=ScheduleOverlapPolicy.BUFFER_ALL))
