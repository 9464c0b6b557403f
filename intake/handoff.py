"""Hand-off to Temporal. Only an accepted hand-off lets the intake answer 2xx; anything
else is `Unavailable`, which the intake answers with 503 so that the sender retries."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Literal

from temporalio.client import Client, RPCError
from temporalio.service import RPCStatusCode

from contracts import Alert, AlertBatch, PagerDutyEvent, incident_workflow_id
from contracts.bedrock_connectivity import BedrockTrigger, bedrock_workflow_id
from contracts.maintenance import MaintenanceRequest
from contracts.post_incident import FollowupAsk, FollowupInput
from contracts.region_failover import FailoverTrigger, failover_workflow_id
from contracts.scaling_decision import ScalingTrigger, scaling_workflow_id
from signing import Signer
from starter import (
    open_or_join_bedrock_with_batch,
    open_or_join_failover_with_batch,
    open_or_join_incident,
    open_or_join_scaling_with_batch,
    open_or_join_with_batch,
    schedule_maintenance,
    start_followup,
    trigger_bedrock,
    trigger_failover,
    trigger_scaling,
)

HANDOFF_TIMEOUT = 4.0  # PagerDuty wants an answer within 5 s; the others are more patient


Runbook = Literal["incident", "scaling", "failover", "bedrock"]


def workflow_id_for(runbook: Runbook, service: str, region: str) -> str:
    """The run an alert for this target joins, per the runbook its route names (a failover is
    one per service: the alert is about the region it fails over from)."""
    if runbook == "scaling":
        return scaling_workflow_id(service, region)
    if runbook == "failover":
        return failover_workflow_id(service)
    if runbook == "bedrock":  # one per region: Bedrock is the platform's, not one service's
        return bedrock_workflow_id(region)
    return incident_workflow_id(service, region)


def runbook_of(workflow_id: str) -> Runbook:
    if workflow_id.startswith("scaling/"):
        return "scaling"
    if workflow_id.startswith("bedrock/"):
        return "bedrock"
    return "failover" if workflow_id.startswith("failover/") else "incident"


class Unavailable(Exception):
    """Temporal did not take the hand-off; the sender must retry."""


class Rejected(Exception):
    """Temporal refused the hand-off as invalid: retrying the same request cannot help."""


_PERMANENT = (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION, RPCStatusCode.OUT_OF_RANGE)


def _failed(err: BaseException, what: str) -> Exception:
    if isinstance(err, RPCError) and err.status in _PERMANENT:
        return Rejected(f"Temporal refused the {what}: {err}")
    return Unavailable(f"Temporal did not take the {what}: {err or type(err).__name__}")


class Deliveries:
    """Delivery ids already handed over, so a sender's retry is answered without a second hand-off.

    Bounded and per process: the workflow keeps its own record, which is what makes a retry
    that reaches another intake replica (or this one after a restart) change nothing.
    """

    def __init__(self, size: int = 100_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def __contains__(self, delivery_id: object) -> bool:
        return delivery_id in self._seen

    def add(self, delivery_id: str) -> None:
        self._seen[delivery_id] = None
        self._seen.move_to_end(delivery_id)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)


class Handoff:
    def __init__(self, connect: Callable[[], Awaitable[Client]], task_queue: str, signer: Signer) -> None:
        """`signer`: the intake's key; every alert and event it hands over is signed with it."""
        self._connect = connect
        self.signer = signer
        self._client: Client | None = None
        self._lock = asyncio.Lock()
        self.task_queue = task_queue

    async def client(self) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    try:
                        self._client = await asyncio.wait_for(self._connect(), HANDOFF_TIMEOUT)
                    except Exception as err:  # noqa: BLE001 - every way of not connecting is one answer
                        raise Unavailable(f"Temporal is not reachable: {err or type(err).__name__}") from err
        return self._client

    async def alert(self, alert: Alert, opened_by: str) -> str:
        """Signal-with-start, signed in the name of `opened_by` ("intake/alertmanager", or the
        signed-in operator who triggered it); returns the incident's workflow id."""
        client = await self.client()
        try:
            handle = await asyncio.wait_for(
                open_or_join_incident(client, alert, opened_by, self.task_queue, self.signer), HANDOFF_TIMEOUT
            )
        except (RPCError, TimeoutError, ConnectionError) as err:
            raise _failed(err, "alert") from err
        return handle.id

    async def batch(
        self,
        workflow_id: str,
        alerts: list[Alert],
        opened_by: str,
        start: bool,
        runbook: Runbook = "incident",
        run_id: str | None = None,
    ) -> tuple[bool, str | None]:
        """Alerts of one target as one signal (`intake.coalesce`): with `start`, signal-with-start
        (the batch holds a firing alert); else a plain signal, which never opens a run. Returns
        whether a run took them, and its run id when Temporal said it.

        `run_id`: the run this target's last hand-over reached, when the intake knows it. A
        firing batch then goes to that run as a plain signal first, which costs the server less
        than a signal-with-start (in a storm nearly every batch goes so); only when that run has
        closed (NOT_FOUND: resolved, or continued as new) does it go as a signal-with-start,
        which opens a new run or joins the one open now (a batch of resolutions, to the run open
        now, if any)."""
        if run_id is not None or not start:
            signed = self.signer.sign(
                AlertBatch(alerts=alerts), subject=opened_by, action="alert_batch", workflow_id=workflow_id
            )
            if run_id is not None and await self._signal(workflow_id, "alert_batch", signed, run_id=run_id):
                return True, run_id
            if not start:  # to whichever run is open now, if any
                return await self._signal(workflow_id, "alert_batch", signed), None
        client = await self.client()
        try:
            opening = {
                "incident": open_or_join_with_batch,
                "scaling": open_or_join_scaling_with_batch,
                "failover": open_or_join_failover_with_batch,
                "bedrock": open_or_join_bedrock_with_batch,
            }[runbook]
            handle = await asyncio.wait_for(
                opening(client, alerts, opened_by, self.task_queue, self.signer), HANDOFF_TIMEOUT
            )
        except (RPCError, TimeoutError, ConnectionError) as err:
            raise _failed(err, "alerts") from err
        return True, handle.result_run_id

    async def scaling_trigger(self, service: str, region: str, trigger: ScalingTrigger) -> str:
        """Signal-with-start of the service's scaling run, signed for the operator; its workflow id."""
        client = await self.client()
        try:
            handle = await asyncio.wait_for(
                trigger_scaling(client, service, region, trigger, self.task_queue, self.signer), HANDOFF_TIMEOUT
            )
        except (RPCError, TimeoutError, ConnectionError) as err:
            raise _failed(err, "scaling trigger") from err
        return handle.id

    async def failover_trigger(self, service: str, trigger: FailoverTrigger) -> str:
        """Signal-with-start of the service's failover run, signed for the operator; its workflow id."""
        client = await self.client()
        try:
            handle = await asyncio.wait_for(
                trigger_failover(client, service, trigger, self.task_queue, self.signer), HANDOFF_TIMEOUT
            )
        except (RPCError, TimeoutError, ConnectionError) as err:
            raise _failed(err, "failover trigger") from err
        return handle.id

    async def maintenance_request(self, request: MaintenanceRequest) -> str:
        """Starts a maintenance window's run with the request, signed for the operator; its id."""
        client = await self.client()
        try:
            handle = await asyncio.wait_for(
                schedule_maintenance(client, request, self.task_queue, self.signer), HANDOFF_TIMEOUT
            )
        except (RPCError, TimeoutError, ConnectionError) as err:
            raise _failed(err, "maintenance window") from err
        return handle.id

    async def followup_ask(self, start: FollowupInput, ask: FollowupAsk) -> str:
        """Signal-with-start of an incident's follow-up, signed for the operator; its workflow id."""
        client = await self.client()
        try:
            handle = await asyncio.wait_for(
                start_followup(client, start, ask, self.task_queue, self.signer), HANDOFF_TIMEOUT
            )
        except (RPCError, TimeoutError, ConnectionError) as err:
            raise _failed(err, "follow-up") from err
        return handle.id

    async def bedrock_trigger(self, region: str, trigger: BedrockTrigger) -> str:
        """Signal-with-start of the region's Bedrock connectivity run, signed for the operator."""
        client = await self.client()
        try:
            handle = await asyncio.wait_for(
                trigger_bedrock(client, region, trigger, self.task_queue, self.signer), HANDOFF_TIMEOUT
            )
        except (RPCError, TimeoutError, ConnectionError) as err:
            raise _failed(err, "bedrock trigger") from err
        return handle.id

    async def pagerduty_event(self, workflow_id: str, event: PagerDutyEvent) -> bool:
        """Signals the incident; False when there is no such incident running."""
        signed = self.signer.sign(event, subject="intake/pagerduty", action="pagerduty_event", workflow_id=workflow_id)
        return await self._signal(workflow_id, "pagerduty_event", signed)

    async def _signal(self, workflow_id: str, signal: str, arg: object, run_id: str | None = None) -> bool:
        client = await self.client()
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        try:
            await asyncio.wait_for(handle.signal(signal, arg), HANDOFF_TIMEOUT)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:  # no such workflow, or it has closed
                return False
            raise _failed(err, signal) from err
        except (TimeoutError, ConnectionError) as err:
            raise _failed(err, signal) from err
        return True

    async def ready(self) -> str | None:
        """None when Temporal answers; else why not."""
        try:
            client = await self.client()
            await asyncio.wait_for(client.service_client.check_health(), HANDOFF_TIMEOUT)
        except Unavailable as err:
            return str(err)
        except Exception as err:  # noqa: BLE001
            return f"Temporal is not healthy: {err or type(err).__name__}"
        return None
