"""Other runbooks' runs, as a runbook needs to know them, through the worker's own Temporal
client: what the run itself says, not what a signal claims. The incident runbook acting on a
target holds scaling; a P0 incident that handed its region to the failover run follows it; a
follow-up asked by hand checks its start against the incident's record; and the platform's
emergency switch has one owner at a time (the P0 incident runbook or the Bedrock connectivity
runbook).

The switch's owner is whichever open run is using it: an incident run proposing, applying,
verifying or undoing the emergency switch, or a Bedrock run switching, verifying or probing
while hybrid routing is off. `set_hybrid_routing` is registered here, under the name the
workflows call, so that every switch, from either runbook, first asks whether another run owns
it, and is refused (for good, naming the owner) if one does. The workflows' commands stay what
they were: the incident runbook's recorded histories replay unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio import activity
from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest
from temporalio.client import (
    Client,
    RPCError,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCStatusCode

from activities import platform_api
from contracts import (
    SEARCH_SEVERITY,
    SEARCH_STATUS,
    EmergencySwitchRequest,
    IncidentStatus,
    IncidentView,
    RemediationAction,
    RemediationRecord,
)
from contracts.bedrock_connectivity import OWNS_SWITCH, BedrockView, SwitchOwnerRequest
from contracts.maintenance import HoldRequest, maintenance_hold_query
from contracts.post_incident import FollowupView, IncidentRef, ItemStatus
from contracts.region_failover import FailoverProgress, FailoverView
from contracts.reviews import IncidentsRequest, OvernightIncident
from contracts.schedules import (
    SCHEDULE_PREFIX,
    DigestItem,
    MissedRun,
    OpenItems,
    ScheduleCheck,
    ScheduleReport,
    scheduled_workflow_id,
)
from contracts.trend_reviews import ScalingRunSeen
from starter import runbook_status

# The incident runbook's statuses in which it changes (or may change) the target's tasks.
ACTING = frozenset({IncidentStatus.REMEDIATING, IncidentStatus.VERIFYING, IncidentStatus.UNDOING})
INCIDENT_TYPE = "IncidentResponseWorkflow"
BEDROCK_TYPE = "BedrockConnectivityWorkflow"
FOLLOWUP_TYPE = "PostIncidentWorkflow"
SCALING_TYPE = "ScalingDecisionWorkflow"
FAILED_RUNS = frozenset(
    {WorkflowExecutionStatus.FAILED, WorkflowExecutionStatus.TIMED_OUT, WorkflowExecutionStatus.TERMINATED}
)
QUERY_TIMEOUT = timedelta(seconds=10)  # a run that cannot answer in this long is reported unread
OPEN_SWITCH_USERS = (
    f"(WorkflowType = '{INCIDENT_TYPE}' OR WorkflowType = '{BEDROCK_TYPE}') AND ExecutionStatus = 'Running'"
)


def incident_owns_switch(view: IncidentView) -> bool:
    if view.status == IncidentStatus.AWAITING_APPROVAL:
        pending = view.pending_approval
        return pending is not None and pending.action == RemediationAction.EMERGENCY_SWITCH
    if view.status not in ACTING:
        return False
    # between the approval and the remediation's record the view does not yet say which
    # remediation it is: count it as the switch (refusing is safe, switching twice is not)
    return view.remediation is None or view.remediation.action == RemediationAction.EMERGENCY_SWITCH


Switch = Callable[[EmergencySwitchRequest], Awaitable[RemediationRecord]]


class Runs:
    def __init__(self, client: Client, switch: Switch = platform_api.set_hybrid_routing) -> None:
        """`switch`: the platform's emergency switch itself (tests give a fake platform's)."""
        self.client = client
        self.switch = switch

    def all(self) -> list[Callable[..., Any]]:
        """The reads (the worker adds `set_hybrid_routing`; tests give a fake platform's switch)."""
        return [
            self.remediation_in_progress,
            self.failover_progress,
            self.incident_record,
            self.switch_owner,
            self.open_action_items,
            self.incidents_started,
            self.scaling_runs_started,
            self.missed_scheduled_runs,
            self.maintenance_hold,
        ]

    @activity.defn(name="remediation_in_progress")
    async def remediation_in_progress(self, workflow_id: str) -> str | None:
        """Why the incident run of this target holds scaling; None when none acts on it."""
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            view = await handle.query("view", result_type=IncidentView)
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError):
            return None  # no such incident (or it closed long ago): nothing acts on the target
        if view.status in ACTING:
            return f"incident {view.id} is {view.status.value} this target"
        return None

    @activity.defn(name="failover_progress")
    async def failover_progress(self, workflow_id: str) -> FailoverProgress:
        """How the failover run stands: its status, and its outcome once it has one."""
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            view = await handle.query("view", result_type=FailoverView)
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
            return FailoverProgress(workflow_id=workflow_id, status=None, outcome=f"cannot be read: {err}")
        return FailoverProgress(
            workflow_id=workflow_id,
            status=view.status,
            outcome=view.outcome,
            to_region=view.plan.to_region if view.plan is not None else view.backup_region,
        )

    @activity.defn(name="incident_record")
    async def incident_record(self, ref: IncidentRef) -> IncidentView | None:
        """The incident run's own record (its view; a closed run still answers); None: no such run."""
        handle = self.client.get_workflow_handle(ref.workflow_id, run_id=ref.run_id)
        try:
            view: IncidentView = await handle.query("view", result_type=IncidentView)
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError):
            return None
        return view

    @activity.defn(name="switch_owner")
    async def switch_owner(self, request: SwitchOwnerRequest) -> str | None:
        """The open run, other than the asking one, that owns the emergency switch; None: no other."""
        async for execution in self.client.list_workflows(OPEN_SWITCH_USERS):
            if execution.id == request.asking:
                continue
            handle = self.client.get_workflow_handle(execution.id, run_id=execution.run_id)
            try:
                if execution.workflow_type == INCIDENT_TYPE:
                    incident = await handle.query("view", result_type=IncidentView)
                    if incident_owns_switch(incident):
                        return f"incident run {execution.id} ({incident.status.value})"
                else:
                    bedrock = await handle.query("view", result_type=BedrockView)
                    if bedrock.status in OWNS_SWITCH:
                        return f"Bedrock run {execution.id} ({bedrock.status.value})"
            except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError):
                continue  # closed since it was listed: it owns nothing
        return None

    @activity.defn(name="open_action_items")
    async def open_action_items(self) -> OpenItems:
        """Every open action item of the running follow-ups on this worker's task queue (this
        deployment's), overdue as each run's own clock says; a run that does not answer within
        `QUERY_TIMEOUT` is named, not left out silently."""
        queue = activity.info().task_queue
        query = f"WorkflowType = '{FOLLOWUP_TYPE}' AND ExecutionStatus = 'Running' AND TaskQueue = '{queue}'"
        gate = asyncio.Semaphore(25)  # unanswering runs cost QUERY_TIMEOUT each, 25 at a time

        async def read(workflow_id: str, run_id: str | None) -> FollowupView | None:
            async with gate:
                handle = self.client.get_workflow_handle(workflow_id, run_id=run_id)
                try:
                    view: FollowupView = await handle.query("view", result_type=FollowupView, rpc_timeout=QUERY_TIMEOUT)
                except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError):
                    return None
                activity.heartbeat(workflow_id)
                return view

        listed = [(e.id, e.run_id) async for e in self.client.list_workflows(query)]
        views = await asyncio.gather(*(read(workflow_id, run_id) for workflow_id, run_id in listed))
        items = [
            DigestItem(
                incident_id=view.incident_id,
                item_id=item.item_id,
                text=item.text,
                owner=item.owner,
                due=item.due,
                overdue=item.overdue(view.now),
            )
            for view in views
            if view is not None
            for item in view.items
            if item.status == ItemStatus.OPEN
        ]
        unread = sorted(workflow_id for (workflow_id, _), view in zip(listed, views, strict=True) if view is None)
        return OpenItems(items=items, unread=unread)

    @activity.defn(name="incidents_started")
    async def incidents_started(self, request: IncidentsRequest) -> list[OvernightIncident]:
        """The incident runs started in the window (visibility), oldest first: a review lists them."""
        query = (
            f"WorkflowType = '{INCIDENT_TYPE}' AND StartTime >= '{request.start.isoformat()}' "
            f"AND StartTime < '{request.end.isoformat()}'"
        )
        found = []
        async for execution in self.client.list_workflows(query):
            attributes = execution.typed_search_attributes
            found.append(
                OvernightIncident(
                    workflow_id=execution.id,
                    started=execution.start_time,
                    status=execution.status.name if execution.status is not None else "UNKNOWN",
                    severity=attributes.get(SEARCH_SEVERITY),
                    incident_status=attributes.get(SEARCH_STATUS),
                )
            )
        return sorted(found, key=lambda incident: (incident.started, incident.workflow_id))

    @activity.defn(name="scaling_runs_started")
    async def scaling_runs_started(self, request: IncidentsRequest) -> list[ScalingRunSeen]:
        """The scaling decision runs started in the window, oldest first, with their own status."""
        query = (
            f"WorkflowType = '{SCALING_TYPE}' AND StartTime >= '{request.start.isoformat()}' "
            f"AND StartTime < '{request.end.isoformat()}'"
        )
        found = [
            ScalingRunSeen(
                workflow_id=execution.id,
                started=execution.start_time,
                status=execution.status.name if execution.status is not None else "UNKNOWN",
                runbook_status=runbook_status({}, execution),
            )
            async for execution in self.client.list_workflows(query)
        ]
        return sorted(found, key=lambda run: (run.started, run.workflow_id))

    @activity.defn(name="missed_scheduled_runs")
    async def missed_scheduled_runs(self, check: ScheduleCheck) -> ScheduleReport:
        """Each active `runbook-` Schedule's nominal times in the window (from `look_back` ago,
        or since it was created or last changed, up to `grace` ago) against the runs it started:
        a time with no run is missing, one whose run failed, timed out or was terminated failed."""
        now = datetime.now(UTC)
        end = now - check.grace
        checked: list[str] = []
        missed: list[MissedRun] = []
        async for listed in await self.client.list_schedules():
            if not listed.id.startswith(SCHEDULE_PREFIX):
                continue
            try:
                description = await self.client.get_schedule_handle(listed.id).describe()
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    continue  # removed since it was listed
                raise
            action = description.schedule.action
            if description.schedule.state.paused or not isinstance(action, ScheduleActionStartWorkflow):
                continue
            name = listed.id.removeprefix(SCHEDULE_PREFIX)
            checked.append(name)
            info = description.info
            # the window ends `grace` ago and reaches `look_back` before that: a watchdog running
            # every `look_back` checks each due time once, the last minutes before it included
            since = max(end - check.look_back, info.created_at, info.last_updated_at or info.created_at)
            if since >= end:
                continue
            request = ListScheduleMatchingTimesRequest(
                namespace=self.client.namespace, schedule_id=listed.id, start_time=_stamp(since), end_time=_stamp(end)
            )
            answer = await self.client.workflow_service.list_schedule_matching_times(request)
            for stamp in answer.start_time:
                nominal = stamp.ToDatetime(tzinfo=UTC)
                workflow_id = scheduled_workflow_id(action.id, nominal)
                activity.heartbeat(workflow_id)
                problem = await self._scheduled_run_problem(workflow_id)
                if problem is not None:
                    kind, detail = problem
                    missed.append(
                        MissedRun(schedule=name, nominal=nominal, problem=kind, workflow_id=workflow_id, detail=detail)
                    )
            # A run due before this window was checked by an earlier watchdog, maybe while it was
            # still running: if it has failed since, within this window, it is a miss now. (Each
            # failure is counted once: the windows of successive watchdogs do not overlap.)
            for recent in info.recent_actions:
                started = recent.action
                if recent.scheduled_at >= since or not isinstance(started, ScheduleActionExecutionStartWorkflow):
                    continue
                failure = await self._failed_between(started.workflow_id, since, end)
                if failure is not None:
                    missed.append(
                        MissedRun(
                            schedule=name,
                            nominal=recent.scheduled_at,
                            problem="failed",
                            workflow_id=started.workflow_id,
                            detail=failure,
                        )
                    )
        return ScheduleReport(checked=sorted(checked), missed=missed)

    async def _failed_between(self, workflow_id: str, since: datetime, end: datetime) -> str | None:
        try:
            description = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None  # gone past its retention: long since judged
            raise
        status, closed = description.status, description.close_time
        if status is None or status not in FAILED_RUNS or closed is None or not since <= closed < end:
            return None
        return f"its run {workflow_id} {status.name.lower().replace('_', ' ')} at {closed:%H:%M:%S} UTC"

    async def _scheduled_run_problem(self, workflow_id: str) -> tuple[Literal["missing", "failed"], str] | None:
        try:
            status = (await self.client.get_workflow_handle(workflow_id).describe()).status
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return (
                    "missing",
                    "no run was started: skipped while the last one ran, or missed while the server was away",
                )
            raise
        if status in FAILED_RUNS:
            return "failed", f"its run {workflow_id} {status.name.lower().replace('_', ' ')}"
        return None

    @activity.defn(name="maintenance_hold")
    async def maintenance_hold(self, request: HoldRequest) -> str | None:
        """The maintenance window holding the service (its PagerDuty window open, its action
        going on), from visibility: the run's own search attributes; None: none holds it."""
        async for execution in self.client.list_workflows(maintenance_hold_query(request.service)):
            if execution.id != request.asking:
                return f"maintenance window {execution.id} holds {request.service}"
        return None

    @activity.defn(name="set_hybrid_routing")
    async def set_hybrid_routing(self, request: EmergencySwitchRequest) -> RemediationRecord:
        """The emergency switch, once no other run owns it (see the module's docstring)."""
        owner = await self.switch_owner(SwitchOwnerRequest(asking=activity.info().workflow_id or ""))
        if owner is not None:
            verb = "enable" if request.hybrid_routing_enabled else "disable"
            raise ApplicationError(
                f"{verb} hybrid routing refused: the emergency switch is owned by {owner}",
                type="SwitchOwned",
                non_retryable=True,
            )
        return await self.switch(request)


def _stamp(when: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp
