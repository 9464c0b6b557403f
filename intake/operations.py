"""Operators' actions, signed and sent: the one path that the API and the approval page share.

For an operator action the sign-in service builds the runbook's request in the name of the
signed-in person, signs an assertion for exactly that request, person, action, run chain and
plan (`signing.Signer`, issuer "signin"), and sends the Update to the run chain it signed for.
The runbook verifies the assertion (`contracts.identity`) and its own validators decide. A
manual incident goes through the intake's hand-off, signed with the intake's key in the
person's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.responses import JSONResponse
from temporalio.client import (
    Client,
    RPCError,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCStatusCode

from contracts import (
    Acknowledge,
    Alert,
    Approve,
    Cancel,
    Comment,
    IncidentView,
    OperatorReply,
    Policy,
    Reject,
    Severity,
)
from contracts.bedrock_connectivity import BedrockTrigger
from contracts.common import Duration, Strict
from contracts.maintenance import MaintenanceAction, MaintenanceRequest, MaintenanceSpec
from contracts.post_incident import (
    AddActionItem,
    CloseActionItem,
    CompletePostmortem,
    FollowupAsk,
    Review,
    followup_input_of,
)
from contracts.region_failover import FailoverTrigger
from contracts.scaling_decision import ScalingTrigger
from intake.handoff import Handoff, Rejected, Unavailable
from signing import Signer
from starter import incident_id_of

ACTIONS: dict[str, type[BaseModel]] = {
    "acknowledge": Acknowledge,
    "approve": Approve,
    "reject": Reject,
    "comment": Comment,
    "cancel": Cancel,
    # the post-incident follow-up's
    "review": Review,
    "complete_postmortem": CompletePostmortem,
    "add_action_item": AddActionItem,
    "close_action_item": CloseActionItem,
}
SET_BY_US = ("by", "assertion")  # the sign-in service fills these in, never the caller
DESCRIBE_TIMEOUT = timedelta(seconds=5)
UPDATE_TIMEOUT = timedelta(seconds=30)
RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    """An answer other than 200: the status, and a message naming the problem (and the field)."""

    def __init__(self, status: int, message: str, field: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.retry_after = status, message, field, retry_after

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            body["field"] = self.field
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after else None
        return JSONResponse(body, self.status, headers=headers)


def unreachable(message: str) -> ApiError:
    return ApiError(503, f"{message}; retry later", retry_after=RETRY_AFTER_SECONDS)


def parse(model: type[Any], data: Mapping[str, Any]) -> Any:
    """`model` from `data`, or 422 naming the first field that is wrong."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as err:
        problems = err.errors(include_url=False, include_input=False)
        names = [".".join(str(part) for part in problem["loc"]) or "(body)" for problem in problems]
        detail = "; ".join(f"{name}: {problem['msg']}" for name, problem in zip(names, problems, strict=True))
        raise ApiError(422, detail, field=names[0]) from None


class ScalingRequest(Strict):
    """`POST /api/v1/scaling`: what `runbook trigger scaling` asks for."""

    service: str = Field(min_length=1)
    plan: bool = False
    reason: str = Field(default="operator trigger", min_length=1, max_length=512)


class BedrockRequest(Strict):
    """`POST /api/v1/bedrock`: what `runbook trigger bedrock` asks for."""

    region: str = Field(min_length=1)
    plan: bool = False
    reason: str = Field(default="operator trigger", min_length=1, max_length=512)


class FailoverRequest(Strict):
    """`POST /api/v1/failover`: what `runbook trigger failover` asks for."""

    service: str = Field(min_length=1)
    to_region: str | None = Field(default=None, min_length=1)
    plan: bool = False
    reason: str = Field(default="operator trigger", min_length=1, max_length=512)


class MaintenanceAsk(Strict):
    """`POST /api/v1/maintenance`: what `runbook maintenance schedule` asks for (field names as
    the CLI's flags: service, start, duration, action, revision, count, plan)."""

    service: str = Field(min_length=1)
    start: datetime
    duration: Duration = timedelta(hours=1)
    action: MaintenanceAction
    revision: int | None = Field(default=None, ge=1)
    count: int | None = Field(default=None, ge=0)
    plan: bool = False
    reason: str = Field(default="scheduled maintenance", min_length=1, max_length=512)


class FollowupRequest(Strict):
    """`POST /api/v1/followup`: `runbook followup start ID`, for an incident that closed without one."""

    workflow_id: str = Field(min_length=1)  # the incident's run, as the CLI found it by its id
    run_id: str | None = Field(default=None, min_length=1)


class IncidentRequest(Strict):
    """`POST /api/v1/incidents`: what `runbook trigger incident` asks for."""

    service: str = Field(min_length=1)
    severity: Severity
    summary: str = Field(min_length=1, max_length=1024)
    region: str | None = None

    @field_validator("summary")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class Operations:
    def __init__(self, handoff: Handoff, signer: Signer, policy: Policy) -> None:
        """`handoff`: the intake's (its Temporal connection, and its key for alerts);
        `signer`: the sign-in service's key; `policy`: the intake's, to check incidents against."""
        self.handoff, self.signer, self.policy = handoff, signer, policy

    async def client(self) -> Client:
        try:
            return await self.handoff.client()
        except Unavailable as err:
            raise unreachable(str(err)) from None

    async def act(
        self, user: str, action: str, workflow_id: str, fields: Mapping[str, Any], run_id: str | None = None
    ) -> OperatorReply:
        """`action` on the run chain of `workflow_id` (the one `run_id` belongs to, if given),
        in the name of `user`, with the request's own `fields` (note, plan_id, comment, ...)."""
        model = ACTIONS.get(action)
        if model is None:
            raise ApiError(404, f"no such action {action!r}: one of {', '.join(ACTIONS)}")
        for name in SET_BY_US:
            if name in fields:
                raise ApiError(422, f"{name}: the sign-in service sets it; leave it out", field=name)
        if not workflow_id:
            raise ApiError(422, "workflow_id: the workflow id of the run to act on is required", field="workflow_id")
        request = parse(model, {**fields, "by": user})
        client = await self.client()
        first_run = await self.first_run_id(client, workflow_id, run_id)
        signed = self.signer.sign(
            request,
            subject=user,
            action=action,
            workflow_id=workflow_id,
            run_id=first_run,
            plan_id=getattr(request, "plan_id", None),
        )
        handle = client.get_workflow_handle(workflow_id, first_execution_run_id=first_run)
        try:
            return await handle.execute_update(action, signed, result_type=OperatorReply, rpc_timeout=UPDATE_TIMEOUT)
        except WorkflowUpdateFailedError as err:
            raise ApiError(409, str(getattr(err.cause, "message", None) or err.cause or err)) from None
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise unreachable("no answer from the runbook in time; is the worker running?") from None
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise ApiError(409, f"{workflow_id}: the runbook has finished; nothing to change") from None
            raise unreachable(f"Temporal answered {err.status.name if err.status else 'an error'}: {err}") from None

    async def first_run_id(self, client: Client, workflow_id: str, run_id: str | None) -> str:
        """The run chain's first run id, which the assertion names."""
        try:
            description = await client.get_workflow_handle(workflow_id, run_id=run_id).describe(
                rpc_timeout=DESCRIBE_TIMEOUT
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                which = f"{workflow_id} (run {run_id})" if run_id else workflow_id
                raise ApiError(404, f"no run {which}") from None
            raise unreachable(f"Temporal did not answer: {err}") from None
        return description.raw_description.workflow_execution_info.first_run_id or description.run_id

    async def trigger_scaling(self, user: str, body: Mapping[str, Any]) -> dict[str, str]:
        """Asks the service's scaling run to judge it now (opening the run if none is open)."""
        wanted: ScalingRequest = parse(ScalingRequest, body)
        target = self.policy.services.get(wanted.service)
        if target is None:
            known = ", ".join(sorted(self.policy.services)) or "none"
            raise ApiError(422, f"service {wanted.service!r} is not in the policy (known: {known})", field="service")
        if self.policy.scaling is None or wanted.service not in self.policy.scaling.limits:
            raise ApiError(
                422,
                f"service {wanted.service!r} has no scaling limits in the policy: it is never scaled",
                field="service",
            )
        trigger = ScalingTrigger(by=user, plan=wanted.plan, reason=wanted.reason)
        try:
            workflow_id = await self.handoff.scaling_trigger(wanted.service, target.region, trigger)
        except Unavailable as err:
            raise unreachable(str(err)) from None
        except Rejected as err:
            raise ApiError(422, str(err)) from None
        return {"workflow_id": workflow_id}

    async def trigger_failover(self, user: str, body: Mapping[str, Any]) -> dict[str, str]:
        """Asks for the service's failover (the open failover run takes it, or a new one starts)."""
        wanted: FailoverRequest = parse(FailoverRequest, body)
        if wanted.service not in self.policy.services:
            known = ", ".join(sorted(self.policy.services)) or "none"
            raise ApiError(422, f"service {wanted.service!r} is not in the policy (known: {known})", field="service")
        target = self.policy.failover.services.get(wanted.service) if self.policy.failover else None
        if target is None:
            raise ApiError(
                422,
                f"service {wanted.service!r} has no failover entry in the policy: it never fails over",
                field="service",
            )
        if wanted.to_region is not None and wanted.to_region != target.backup_region:
            raise ApiError(
                422,
                f"to_region {wanted.to_region!r}: {wanted.service} fails over to {target.backup_region} only",
                field="to_region",
            )
        trigger = FailoverTrigger(by=user, plan=wanted.plan, to_region=wanted.to_region, reason=wanted.reason)
        try:
            workflow_id = await self.handoff.failover_trigger(wanted.service, trigger)
        except Unavailable as err:
            raise unreachable(str(err)) from None
        except Rejected as err:
            raise ApiError(422, str(err)) from None
        return {"workflow_id": workflow_id}

    async def schedule_maintenance(self, user: str, body: Mapping[str, Any]) -> dict[str, str]:
        """Starts a maintenance window's run in the operator's name; it waits for its start."""
        wanted: MaintenanceAsk = parse(MaintenanceAsk, body)
        if wanted.service not in self.policy.services:
            known = ", ".join(sorted(self.policy.services)) or "none"
            raise ApiError(422, f"service {wanted.service!r} is not in the policy (known: {known})", field="service")
        if wanted.start.tzinfo is None:
            raise ApiError(422, "give a time zone (the CLI's times are UTC)", field="start")
        if wanted.start < datetime.now(UTC) - timedelta(minutes=1):
            raise ApiError(422, f"{wanted.start:%Y-%m-%d %H:%M} UTC is in the past", field="start")
        fields = wanted.model_dump(include={"service", "action", "duration", "revision", "count"})
        try:
            spec = MaintenanceSpec.model_validate(fields)
        except ValidationError as err:
            # the spec's own checks say which argument is wrong first ("revision: ...")
            message = str(err.errors(include_url=False)[0]["msg"]).removeprefix("Value error, ")
            field, _, rest = message.partition(": ")
            raise ApiError(422, rest or message, field=field if rest else None) from None
        request = MaintenanceRequest(by=user, spec=spec, start=wanted.start, plan=wanted.plan, reason=wanted.reason)
        try:
            workflow_id = await self.handoff.maintenance_request(request)
        except Unavailable as err:
            raise unreachable(str(err)) from None
        except Rejected as err:
            raise ApiError(422, str(err)) from None
        return {"workflow_id": workflow_id}

    async def start_followup(self, user: str, body: Mapping[str, Any]) -> dict[str, str]:
        """Starts the follow-up of a closed incident (a running follow-up takes the ask and goes on)."""
        wanted: FollowupRequest = parse(FollowupRequest, body)
        if not wanted.workflow_id.startswith("incident/"):
            raise ApiError(422, f"workflow_id {wanted.workflow_id!r}: not an incident's run", field="workflow_id")
        client = await self.client()
        handle = client.get_workflow_handle(wanted.workflow_id, run_id=wanted.run_id)
        try:
            view = await handle.query("view", result_type=IncidentView, rpc_timeout=DESCRIBE_TIMEOUT)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise ApiError(404, f"no incident run {wanted.workflow_id}", field="workflow_id") from None
            raise unreachable(f"the incident did not answer: {err}") from None
        except WorkflowQueryFailedError as err:
            raise ApiError(
                422, f"{wanted.workflow_id}: its record cannot be read: {err}", field="workflow_id"
            ) from None
        try:
            start = followup_input_of(view, user, wanted.run_id)
        except ValueError as err:
            raise ApiError(409, str(err)) from None
        try:
            workflow_id = await self.handoff.followup_ask(start, FollowupAsk(by=user))
        except Unavailable as err:
            raise unreachable(str(err)) from None
        except Rejected as err:
            raise ApiError(422, str(err)) from None
        return {"workflow_id": workflow_id, "incident_id": view.id}

    async def trigger_bedrock(self, user: str, body: Mapping[str, Any]) -> dict[str, str]:
        """Asks the region's Bedrock connectivity run to diagnose now (opening it if none is open)."""
        wanted: BedrockRequest = parse(BedrockRequest, body)
        known = sorted(self.policy.bedrock.regions) if self.policy.bedrock else []
        if wanted.region not in known:
            listed = ", ".join(known) or "none"
            raise ApiError(
                422,
                f"region {wanted.region!r} is not in the policy's bedrock section (known: {listed})",
                field="region",
            )
        trigger = BedrockTrigger(by=user, plan=wanted.plan, reason=wanted.reason)
        try:
            workflow_id = await self.handoff.bedrock_trigger(wanted.region, trigger)
        except Unavailable as err:
            raise unreachable(str(err)) from None
        except Rejected as err:
            raise ApiError(422, str(err)) from None
        return {"workflow_id": workflow_id}

    async def open_incident(self, user: str, body: Mapping[str, Any]) -> dict[str, str]:
        """Opens an incident for a service of the policy, or joins the open one of its target."""
        wanted: IncidentRequest = parse(IncidentRequest, body)
        target = self.policy.services.get(wanted.service)
        if target is None:
            known = ", ".join(sorted(self.policy.services)) or "none"
            raise ApiError(422, f"service {wanted.service!r} is not in the policy (known: {known})", field="service")
        if wanted.region is not None and wanted.region != target.region:  # one region per service
            raise ApiError(
                422, f"region {wanted.region!r}: the policy's {wanted.service} runs in {target.region}", field="region"
            )
        alert = Alert(
            source="cli",
            service=wanted.service,
            region=target.region,
            summary=wanted.summary,
            severity=wanted.severity,
            raised_by=user,
            received_at=datetime.now(UTC),
        )
        try:
            workflow_id = await self.handoff.alert(alert, opened_by=user)
            incident_id = await incident_id_of((await self.client()).get_workflow_handle(workflow_id))
        except Unavailable as err:
            raise unreachable(str(err)) from None
        except Rejected as err:
            raise ApiError(422, str(err)) from None
        except RPCError as err:
            raise unreachable(f"Temporal did not answer: {err}") from None
        return {"incident_id": incident_id, "workflow_id": workflow_id}
