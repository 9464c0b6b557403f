"""Starting and finding incidents: the client side that the CLI and the intake share.

It names the workflow by its type, so that clients need not import the workflow code."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.client import Client, WorkflowHandle

from contracts import Alert, IncidentInput, IncidentResult, incident_workflow_id, new_incident_id

WORKFLOW_TYPE = "IncidentResponseWorkflow"


async def open_or_join_incident(client: Client, alert: Alert, opened_by: str, task_queue: str) -> WorkflowHandle:
    """Signal-with-start: the first alert for a target opens its incident, later ones join it."""
    workflow_id = incident_workflow_id(alert.service, alert.region)
    now = datetime.now(UTC)
    incident_id = new_incident_id(workflow_id, now)
    return await client.start_workflow(
        WORKFLOW_TYPE,
        IncidentInput(incident_id=incident_id, service=alert.service, region=alert.region, opened_by=opened_by),
        id=workflow_id,
        task_queue=task_queue,
        start_signal="alert",
        start_signal_args=[alert],
        memo={"incident_id": incident_id, "service": alert.service, "region": alert.region},
        result_type=IncidentResult,
    )


async def incident_id_of(handle: WorkflowHandle) -> str:
    """The incident id of the run the handle points at (read from its memo, no worker needed)."""
    description = await handle.describe()
    return str(await description.memo_value("incident_id", default=handle.id))
