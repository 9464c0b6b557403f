"""Fakes of the outside world shared by workflow tests and benches.

`FakePlatform` stands in for PagerDuty, the platform API, CloudWatch and ECS under the
activity names the worker registers; it records every call that changes something.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.cloudwatch import grade
from contracts import (
    Acknowledge,
    Alert,
    DeploymentRequest,
    DeploymentState,
    DiagnoseRequest,
    Diagnosis,
    EmergencySwitchRequest,
    EscalateRequest,
    FallbackNotice,
    FallbackSent,
    HealthReading,
    HealthRequest,
    IncidentStatus,
    IncidentView,
    LogScan,
    LogScanRequest,
    MetricReading,
    MetricsRequest,
    NoteRequest,
    OperatorReply,
    PageAndNote,
    PagerDutyRef,
    PagerDutySync,
    PagerDutySynced,
    PageRequest,
    Policy,
    ProbeRequest,
    ProbeResult,
    RemediationAction,
    RemediationPlan,
    RemediationRecord,
    Severity,
    SystemStatus,
    Verification,
    VerifyRequest,
)
from signing import Signer
from starter import open_or_join_incident
from tests.identity import INTAKE

CURRENT = "arn:aws:ecs:eu-central-1:123456789012:task-definition/hybrid-router:3"
PREVIOUS = "arn:aws:ecs:eu-central-1:123456789012:task-definition/hybrid-router:2"
BAD = {"p95_latency_ms": 3500.0, "error_rate_pct": 12.0}
GOOD = {"p95_latency_ms": 800.0, "error_rate_pct": 0.3}

T = TypeVar("T")
# What a probe of a run may meet while it is not there yet: not started, its worker restarting
# (a query waits for a worker), a query its run cannot answer yet.
NOT_YET = (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError)


class FakePlatform:
    """Stands in for PagerDuty, the platform API, CloudWatch and ECS; records every call."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.healthy = False
        self.task_definition = CURRENT
        self.previous: str | None = PREVIOUS
        self.heals: set[RemediationAction] = {RemediationAction.ROLLBACK}
        self.hybrid_routing = True
        self.metrics_critical = False
        self.switch_helps = True
        self.note_delay = 0.0  # seconds a proposal note takes to reach PagerDuty
        self.page_fails = 0  # pages PagerDuty refuses for good (400) before it takes one
        self.verify_for = 3.0  # real seconds a failing verification keeps checking
        # the region's own health, when a diagnosis asks it (a service that can fail over)
        self.probe_region: Callable[[ProbeRequest], Awaitable[ProbeResult]] | None = None
        self.calls: list[tuple[str, Any]] = []

    def called(self, name: str) -> list[Any]:
        return [arg for call, arg in self.calls if call == name]

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.load_policy,
            self.trigger_page,
            self.find_pagerduty_incident,
            self.add_pagerduty_note,
            self.escalate_pagerduty_incident,
            self.acknowledge_page,
            self.resolve_page,
            self.check_component_health,
            self.check_system_status,
            self.read_metrics,
            self.scan_error_logs,
            self.describe_deployment,
            self.set_service_task_definition,
            self.force_new_deployment,
            self.set_hybrid_routing,
            self.page_and_note,
            self.notify_fallback,
            self.sync_pagerduty,
            self.diagnose,
            self.verify_slo,
        ]

    @activity.defn(name="load_policy")
    async def load_policy(self) -> Policy:
        return self.policy

    @activity.defn(name="trigger_page")
    async def trigger_page(self, request: PageRequest) -> str:
        self.calls.append(("trigger_page", request))
        return request.dedup_key

    @activity.defn(name="find_pagerduty_incident")
    async def find_pagerduty_incident(self, dedup_key: str) -> PagerDutyRef:
        return PagerDutyRef(dedup_key=dedup_key, incident_id="PFAKE01")

    @activity.defn(name="add_pagerduty_note")
    async def add_pagerduty_note(self, request: NoteRequest) -> str:
        if request.content.startswith("Proposed"):
            await asyncio.sleep(self.note_delay)
        self.calls.append(("add_pagerduty_note", request))
        return "NOTE1"

    @activity.defn(name="page_and_note")
    async def page_and_note(self, request: PageAndNote) -> PagerDutyRef:
        self.calls.append(("trigger_page", request.page))
        if self.page_fails > 0:
            self.page_fails -= 1
            raise ApplicationError("trigger: HTTP 400: Event object is invalid", non_retryable=True)
        ref = await self.find_pagerduty_incident(request.page.dedup_key)
        self.calls.append(
            ("add_pagerduty_note", NoteRequest(incident_id="PFAKE01", note_key=request.note_key, content=request.note))
        )
        return ref

    @activity.defn(name="notify_fallback")
    async def notify_fallback(self, notice: FallbackNotice) -> FallbackSent:
        self.calls.append(("notify_fallback", notice))
        return FallbackSent(sent=True, detail="told chat.example.com")

    @activity.defn(name="sync_pagerduty")
    async def sync_pagerduty(self, request: PagerDutySync) -> PagerDutySynced:
        for note in request.notes:
            await self.add_pagerduty_note(
                NoteRequest(incident_id=request.incident_id or "", note_key=note.note_key, content=note.content)
            )
        if request.acknowledge and not request.resolve:
            self.calls.append(("acknowledge_page", request.dedup_key))
        if request.resolve:
            self.calls.append(("resolve_page", request.dedup_key))
        return PagerDutySynced(notes_added=len(request.notes))

    @activity.defn(name="escalate_pagerduty_incident")
    async def escalate_pagerduty_incident(self, request: EscalateRequest) -> None:
        self.calls.append(("escalate_pagerduty_incident", request.level))

    @activity.defn(name="acknowledge_page")
    async def acknowledge_page(self, dedup_key: str) -> str:
        self.calls.append(("acknowledge_page", dedup_key))
        return dedup_key

    @activity.defn(name="resolve_page")
    async def resolve_page(self, dedup_key: str) -> str:
        self.calls.append(("resolve_page", dedup_key))
        return dedup_key

    @activity.defn(name="check_component_health")
    async def check_component_health(self, request: HealthRequest) -> HealthReading:
        return HealthReading(component=request.component, healthy=self.healthy, detail="fake")

    @activity.defn(name="check_system_status")
    async def check_system_status(self) -> SystemStatus:
        ok = not self.hybrid_routing or (self.healthy and not self.metrics_critical)
        return SystemStatus(healthy=ok, hybrid_routing="enabled" if self.hybrid_routing else "disabled")

    @activity.defn(name="read_metrics")
    async def read_metrics(self, request: MetricsRequest) -> list[MetricReading]:
        if self.metrics_critical:
            values = GOOD if not self.hybrid_routing and self.switch_helps else BAD
        else:
            values = GOOD if self.healthy else BAD
        return [grade(q, [values[q.key]]) for q in request.queries if q.key in values]

    @activity.defn(name="scan_error_logs")
    async def scan_error_logs(self, request: LogScanRequest) -> LogScan:
        return LogScan(log_group=request.log_group, error_count=0 if self.healthy else 7)

    @activity.defn(name="describe_deployment")
    async def describe_deployment(self, request: DeploymentRequest) -> DeploymentState:
        return DeploymentState(
            cluster=request.cluster,
            service=request.service,
            region=request.region,
            task_definition=self.task_definition,
            previous_task_definition=self.previous,
            primary_deployment_id="ecs-svc/1",
        )

    @activity.defn(name="diagnose")
    async def diagnose(self, request: DiagnoseRequest) -> Diagnosis:
        region = None
        if request.region is not None:
            self.calls.append(("probe_region", request.region.region))
            region = (
                await self.probe_region(request.region)
                if self.probe_region is not None
                else ProbeResult(region=request.region.region, url=request.region.url, ok=True, status_code=200)
            )
        return Diagnosis(
            health=await self.check_component_health(request.health),
            metrics=await self.read_metrics(request.metrics),
            logs=await self.scan_error_logs(request.logs),
            deployment=await self.describe_deployment(request.deployment),
            region=region,
        )

    @activity.defn(name="verify_slo")
    async def verify_slo(self, request: VerifyRequest) -> Verification:
        """Verified as soon as the fake is within SLO; a failing one checks on for a few real
        seconds, heartbeating, so an operator can cancel it meanwhile."""
        self.calls.append(("verify_slo", request.system_status))
        until = time.monotonic() + self.verify_for
        while True:
            if request.system_status:
                healthy = (await self.check_system_status()).healthy
            else:
                healthy = (await self.check_component_health(request.health)).healthy
            metrics = await self.read_metrics(request.metrics)
            if healthy and all(m.within_target for m in metrics):
                return Verification(verified=True, detail="within SLO (fake)")
            if time.monotonic() > until:
                return Verification(verified=False, detail="not within SLO (fake)")
            activity.heartbeat()
            await asyncio.sleep(0.05)

    @activity.defn(name="set_service_task_definition")
    async def set_service_task_definition(self, plan: RemediationPlan) -> RemediationRecord:
        self.calls.append(("set_service_task_definition", plan.to_task_definition))
        self.task_definition = plan.to_task_definition or self.task_definition
        self.healthy = RemediationAction.ROLLBACK in self.heals and self.task_definition == PREVIOUS
        return RemediationRecord(action=plan.action, changed=True, detail=f"now {self.task_definition}")

    @activity.defn(name="force_new_deployment")
    async def force_new_deployment(self, plan: RemediationPlan) -> RemediationRecord:
        self.calls.append(("force_new_deployment", plan.plan_id))
        self.healthy = RemediationAction.FORCE_NEW_DEPLOYMENT in self.heals
        return RemediationRecord(action=plan.action, changed=True, detail="redeployed")

    @activity.defn(name="set_hybrid_routing")
    async def set_hybrid_routing(self, request: EmergencySwitchRequest) -> RemediationRecord:
        self.calls.append(("set_hybrid_routing", request.hybrid_routing_enabled))
        self.hybrid_routing = request.hybrid_routing_enabled
        return RemediationRecord(action=RemediationAction.EMERGENCY_SWITCH, changed=True, detail="switched")


async def skip_time(env: WorkflowEnvironment, duration: timedelta) -> None:
    """The time-skipping server's clock moves on by `duration`.

    That server now and then answers a long skip with RPC "Timeout expired", or drops the
    call ("h2 protocol error"), more often on a busy machine, while its clock goes on moving;
    the skip is then finished from where the clock stands, so it ends where one whole skip
    would have.
    """
    target = await env.get_current_time() + duration
    for _ in range(5):
        left = target - await env.get_current_time()
        if left <= timedelta(0):
            return
        try:
            # bounded: after a dropped call the server has been seen to leave a sleep unanswered
            await asyncio.wait_for(env.sleep(left), timeout=60)
            return
        except TimeoutError:
            continue
        except RPCError as err:
            if not any(flake in str(err) for flake in ("Timeout expired", "h2 protocol error")):
                raise
    raise AssertionError(f"the time-skipping server never skipped {duration}")


async def keep_history(handle: WorkflowHandle, path: Path) -> None:
    """With RECORD_HISTORIES=1, the run's history becomes a replay fixture. An existing one is
    kept: it stands for runs of an older version still in flight."""
    if os.environ.get("RECORD_HISTORIES") and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((await handle.fetch_history()).to_json())


async def eventually(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    what: str,
    timeout: float = 60,
    every: float = 0.05,
    shown: Callable[[T], object] = repr,
) -> T:
    """What `probe()` returns once `check` holds on it, polled against a real deadline
    (`time.monotonic()`: however long each probe takes on a busy machine, the wait is `timeout`
    seconds, not a number of tries). A query or RPC error counts as "not yet" (the run not
    started, its worker restarting). Past the deadline it fails naming `what` and the last
    value seen (through `shown`), or the last error when no value came."""
    deadline = time.monotonic() + timeout
    last: object = "nothing answered"
    while True:
        try:
            value = await probe()
        except NOT_YET as err:
            last = f"{type(err).__name__}: {err}"
        else:
            if check(value):
                return value
            last = shown(value)
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s; last: {last}")
        await asyncio.sleep(every)


async def incident_when(handle: WorkflowHandle, check: Callable[[IncidentView], bool]) -> IncidentView:
    """The incident's view once `check` holds (polled in real time: nothing skips meanwhile)."""
    return await eventually(
        lambda: handle.query("view", result_type=IncidentView),
        check,
        f"{handle.id} never got there",
        shown=lambda view: f"{view.status} {view.timeline[-3:]}",
    )


async def open_acknowledged(
    client: Client, env: WorkflowEnvironment, task_queue: str, service: str, region: str, by: str = "alice"
) -> WorkflowHandle:
    """A P0 incident opened by a signed alert (on the server's clock) and acknowledged by `by`."""
    now = await env.get_current_time()
    signer: Signer = dataclasses.replace(INTAKE, clock=lambda: now.timestamp())
    alert = Alert(source="test", service=service, region=region, summary="down", severity=Severity.P0, received_at=now)
    handle = await open_or_join_incident(client, alert, "tester", task_queue, signer)
    await incident_when(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
    await handle.execute_update("acknowledge", Acknowledge(by=by), result_type=OperatorReply)
    return handle
