"""Other runbooks' runs, as the scaling runbook needs to know them: the incident runbook acting
on the same target holds scaling. A query through the worker's own Temporal client."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client, RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError

from contracts import IncidentStatus, IncidentView

# The incident runbook's statuses in which it changes (or may change) the target's tasks.
ACTING = frozenset({IncidentStatus.REMEDIATING, IncidentStatus.VERIFYING, IncidentStatus.UNDOING})


class Runs:
    def __init__(self, client: Client) -> None:
        self.client = client

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
