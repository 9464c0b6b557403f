"""Other runbooks' runs, as a runbook needs to know them: the incident runbook acting on the same
target holds scaling; a P0 incident that handed its region to the failover run follows it. A
query through the worker's own Temporal client: what the run itself says, not what a signal
claims."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client, RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError

from contracts import IncidentStatus, IncidentView
from contracts.post_incident import IncidentRef
from contracts.region_failover import FailoverProgress, FailoverView

# The incident runbook's statuses in which it changes (or may change) the target's tasks.
ACTING = frozenset({IncidentStatus.REMEDIATING, IncidentStatus.VERIFYING, IncidentStatus.UNDOING})


class Runs:
    def __init__(self, client: Client) -> None:
        self.client = client

    def all(self) -> list[Callable[..., Any]]:
        return [self.remediation_in_progress, self.failover_progress, self.incident_record]

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
