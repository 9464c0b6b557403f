"""Starting and finding incidents: the client side that the CLI (and later the intake) share."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.client import Client, WorkflowHandle

from contracts import Alert, IncidentInput, Policy, incident_workflow_id, new_incident_id
from workflows.incident_response import IncidentResponseWorkflow

WORKFLOW_TYPE = "IncidentResponseWorkflow"


async def open_or_join_incident(
    client: Client, alert: Alert, opened_by: str, task_queue: str, policy: Policy | None = None
) -> WorkflowHandle:
    """Signal-with-start: the first alert for a target opens its incident, later ones join it.

    The policy, when given, travels with the start, so the run reads no policy file first and
    the page goes out in its first workflow task.
    """
    workflow_id = incident_workflow_id(alert.service, alert.region)
    now = datetime.now(UTC)
    incident_id = new_incident_id(workflow_id, now)
    return await client.start_workflow(
        IncidentResponseWorkflow.run,
        IncidentInput(
            incident_id=incident_id, service=alert.service, region=alert.region, opened_by=opened_by, policy=policy
        ),
        id=workflow_id,
        task_queue=task_queue,
        start_signal="alert",
        start_signal_args=[alert],
        memo={"incident_id": incident_id, "service": alert.service, "region": alert.region},
    )


async def incident_id_of(handle: WorkflowHandle) -> str:
    """The incident id of the run the handle points at (read from its memo, no worker needed)."""
    description = await handle.describe()
    return str(await description.memo_value("incident_id", default=handle.id))
