"""Starting and finding incidents: the client side that the CLI and the intake share.

It names the workflow by its type, so that clients need not import the workflow code."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client, WorkflowExecution, WorkflowHandle

from contracts import Alert, AlertBatch, IncidentInput, IncidentResult, incident_workflow_id, new_incident_id
from contracts.bedrock_connectivity import BedrockInput, BedrockResult, BedrockTrigger, bedrock_workflow_id
from contracts.maintenance import MaintenanceInput, MaintenanceRequest, MaintenanceResult, maintenance_workflow_id
from contracts.post_incident import FollowupAsk, FollowupInput, FollowupResult, postincident_workflow_id
from contracts.region_failover import FailoverInput, FailoverResult, FailoverTrigger, failover_workflow_id
from contracts.scaling_decision import ScalingInput, ScalingResult, ScalingTrigger, scaling_workflow_id
from signing import Signer

WORKFLOW_TYPE = "IncidentResponseWorkflow"


async def open_or_join_incident(
    client: Client, alert: Alert, opened_by: str, task_queue: str, signer: Signer
) -> WorkflowHandle:
    """Signal-with-start: the first alert for a target opens its incident, later ones join it.

    The alert is signed by the intake's `signer` for this workflow, in the name of `opened_by`:
    the run takes no alert it cannot verify. The run reads its policy from the worker's own file,
    never from the start (which anyone who can reach Temporal could write).
    """
    workflow_id = incident_workflow_id(alert.service, alert.region)
    now = datetime.now(UTC)
    incident_id = new_incident_id(workflow_id, now)
    signed = signer.sign(alert, subject=opened_by, action="alert", workflow_id=workflow_id)
    return await client.start_workflow(
        WORKFLOW_TYPE,
        IncidentInput(incident_id=incident_id, service=alert.service, region=alert.region, opened_by=opened_by),
        id=workflow_id,
        task_queue=task_queue,
        start_signal="alert",
        start_signal_args=[signed],
        memo={"incident_id": incident_id, "service": alert.service, "region": alert.region},
        result_type=IncidentResult,
    )


async def open_or_join_with_batch(
    client: Client, alerts: list[Alert], opened_by: str, task_queue: str, signer: Signer
) -> WorkflowHandle:
    """Like `open_or_join_incident`, for alerts of one target coalesced into one signal
    (`alert_batch`), signed once; the first alert names the incident."""
    first = alerts[0]
    workflow_id = incident_workflow_id(first.service, first.region)
    incident_id = new_incident_id(workflow_id, datetime.now(UTC))
    signed = signer.sign(AlertBatch(alerts=alerts), subject=opened_by, action="alert_batch", workflow_id=workflow_id)
    return await client.start_workflow(
        WORKFLOW_TYPE,
        IncidentInput(incident_id=incident_id, service=first.service, region=first.region, opened_by=opened_by),
        id=workflow_id,
        task_queue=task_queue,
        start_signal="alert_batch",
        start_signal_args=[signed],
        memo={"incident_id": incident_id, "service": first.service, "region": first.region},
        result_type=IncidentResult,
    )


SCALING_TYPE = "ScalingDecisionWorkflow"


async def trigger_scaling(
    client: Client, service: str, region: str, trigger: ScalingTrigger, task_queue: str, signer: Signer
) -> WorkflowHandle:
    """Signal-with-start of the service's scaling run (`scaling/{service}/{region}`): the
    trigger, signed by the intake in the name of the operator who sent it."""
    workflow_id = scaling_workflow_id(service, region)
    signed = signer.sign(trigger, subject=trigger.by, action="trigger", workflow_id=workflow_id)
    return await client.start_workflow(
        SCALING_TYPE,
        ScalingInput(service=service, region=region, opened_by=trigger.by, plan=trigger.plan),
        id=workflow_id,
        task_queue=task_queue,
        start_signal="trigger",
        start_signal_args=[signed],
        memo={"service": service, "region": region},
        result_type=ScalingResult,
    )


async def open_or_join_scaling_with_batch(
    client: Client, alerts: list[Alert], opened_by: str, task_queue: str, signer: Signer
) -> WorkflowHandle:
    """Alerts a scaling route took: signal-with-start of the service's scaling run."""
    first = alerts[0]
    workflow_id = scaling_workflow_id(first.service, first.region)
    signed = signer.sign(AlertBatch(alerts=alerts), subject=opened_by, action="alert_batch", workflow_id=workflow_id)
    return await client.start_workflow(
        SCALING_TYPE,
        ScalingInput(service=first.service, region=first.region, opened_by=opened_by),
        id=workflow_id,
        task_queue=task_queue,
        start_signal="alert_batch",
        start_signal_args=[signed],
        memo={"service": first.service, "region": first.region},
        result_type=ScalingResult,
    )


async def incident_id_of(handle: WorkflowHandle) -> str:
    """The incident id of the run the handle points at (read from its memo, no worker needed)."""
    description = await handle.describe()
    return str(await description.memo_value("incident_id", default=handle.id))


def runbook_status(memo: Mapping[str, Any], execution: WorkflowExecution) -> str | None:
    """The runbook's own status: its `...Status` keyword search attribute, kept current on every
    change; else the memo (runs from before the lean kit kept it there at every step)."""
    for pair in execution.typed_search_attributes:
        if pair.key.name.endswith("Status") and isinstance(pair.value, str) and pair.value:
            return pair.value
    status = memo.get("status")
    return str(status) if status else None


FAILOVER_TYPE = "RegionFailoverWorkflow"


async def trigger_failover(
    client: Client, service: str, trigger: FailoverTrigger, task_queue: str, signer: Signer
) -> WorkflowHandle:
    """Signal-with-start of the service's failover run (`failover/{service}`): the trigger,
    signed by the intake in the name of the operator who sent it. A run already open takes it."""
    workflow_id = failover_workflow_id(service)
    signed = signer.sign(trigger, subject=trigger.by, action="trigger", workflow_id=workflow_id)
    return await client.start_workflow(
        FAILOVER_TYPE,
        FailoverInput(service=service, opened_by=trigger.by, plan=trigger.plan),
        id=workflow_id,
        task_queue=task_queue,
        start_signal="trigger",
        start_signal_args=[signed],
        memo={"service": service},
        result_type=FailoverResult,
    )


async def open_or_join_failover_with_batch(
    client: Client, alerts: list[Alert], opened_by: str, task_queue: str, signer: Signer
) -> WorkflowHandle:
    """Alerts a failover route took (a region-health alarm, an AWS Health event): signal-with-start
    of the service's failover run, which confirms with its own probes before anything moves."""
    service = alerts[0].service
    workflow_id = failover_workflow_id(service)
    signed = signer.sign(AlertBatch(alerts=alerts), subject=opened_by, action="alert_batch", workflow_id=workflow_id)
    return await client.start_workflow(
        FAILOVER_TYPE,
        FailoverInput(service=service, opened_by=opened_by),
        id=workflow_id,
        task_queue=task_queue,
        start_signal="alert_batch",
        start_signal_args=[signed],
        memo={"service": service},
        result_type=FailoverResult,
    )


FOLLOWUP_TYPE = "PostIncidentWorkflow"


async def start_followup(
    client: Client, start: FollowupInput, ask: FollowupAsk, task_queue: str, signer: Signer
) -> WorkflowHandle:
    """Signal-with-start of an incident's follow-up (`postincident/{incident id}`), asked by an
    operator: the ask signed by the intake in their name. A follow-up already running takes it."""
    workflow_id = postincident_workflow_id(start.incident_id)
    signed = signer.sign(ask, subject=ask.by, action="asked", workflow_id=workflow_id)
    return await client.start_workflow(
        FOLLOWUP_TYPE,
        start,
        id=workflow_id,
        task_queue=task_queue,
        start_signal="asked",
        start_signal_args=[signed],
        memo={"incident_id": start.incident_id, "service": start.service},
        result_type=FollowupResult,
    )


BEDROCK_TYPE = "BedrockConnectivityWorkflow"


async def trigger_bedrock(
    client: Client, region: str, trigger: BedrockTrigger, task_queue: str, signer: Signer
) -> WorkflowHandle:
    """Signal-with-start of the region's Bedrock connectivity run (`bedrock/{region}`): the
    trigger, signed by the intake in the name of the operator who sent it."""
    workflow_id = bedrock_workflow_id(region)
    signed = signer.sign(trigger, subject=trigger.by, action="trigger", workflow_id=workflow_id)
    return await client.start_workflow(
        BEDROCK_TYPE,
        BedrockInput(region=region, opened_by=trigger.by, plan=trigger.plan),
        id=workflow_id,
        task_queue=task_queue,
        start_signal="trigger",
        start_signal_args=[signed],
        memo={"region": region},
        result_type=BedrockResult,
    )


async def open_or_join_bedrock_with_batch(
    client: Client, alerts: list[Alert], opened_by: str, task_queue: str, signer: Signer
) -> WorkflowHandle:
    """Alerts a bedrock route took (error rate, breaker open, bedrock-client health): signal-with-start
    of the region's Bedrock connectivity run."""
    region = alerts[0].region
    workflow_id = bedrock_workflow_id(region)
    signed = signer.sign(AlertBatch(alerts=alerts), subject=opened_by, action="alert_batch", workflow_id=workflow_id)
    return await client.start_workflow(
        BEDROCK_TYPE,
        BedrockInput(region=region, opened_by=opened_by),
        id=workflow_id,
        task_queue=task_queue,
        start_signal="alert_batch",
        start_signal_args=[signed],
        memo={"region": region},
        result_type=BedrockResult,
    )


MAINTENANCE_TYPE = "MaintenanceWindowWorkflow"


async def schedule_maintenance(
    client: Client, request: MaintenanceRequest, task_queue: str, signer: Signer
) -> WorkflowHandle:
    """Starts the window's run now (`maintenance/{service}/{start}`) with the request, signed by
    the intake in the operator's name, as its start signal; the run waits for the start itself.
    A second request for the same window joins the first run and changes nothing."""
    service = request.spec.service
    workflow_id = maintenance_workflow_id(service, request.start)
    signed = signer.sign(request, subject=request.by, action="request_window", workflow_id=workflow_id)
    return await client.start_workflow(
        MAINTENANCE_TYPE,
        MaintenanceInput(service=service, opened_by=request.by),
        id=workflow_id,
        task_queue=task_queue,
        start_signal="request_window",
        start_signal_args=[signed],
        memo={"service": service, "start": request.start.isoformat()},
        result_type=MaintenanceResult,
    )
