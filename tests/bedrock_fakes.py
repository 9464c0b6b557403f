"""A fake of Bedrock, IAM and the platform's breaker and switch for the Bedrock connectivity
runbook's workflow tests, under the activity names the worker registers. Bedrock's health is a
function of the time since the run started (the time-skipping server's clock, as the activity
sees it), so a test writes the outage as a schedule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity

from contracts import EmergencySwitchRequest, RemediationAction, RemediationRecord
from contracts.bedrock import BreakerReading, PermissionCheck, PermissionRequest, Reachability, ReachabilityRequest
from contracts.bedrock_connectivity import SwitchOwnerRequest

MODEL_ARN = "arn:aws:bedrock:{region}::foundation-model/{model}"


def down_until(minutes: float) -> Callable[[timedelta], bool]:
    """Bedrock fails from the start until `minutes` after it."""
    return lambda since: since < timedelta(minutes=minutes)


class FakeBedrock:
    def __init__(self) -> None:
        self.started: datetime | None = None
        self.down: Callable[[timedelta], bool] = lambda since: False
        self.denied = False
        self.hybrid_routing = True
        # re-enables whose verification sees the breaker open again (Bedrock fails under load)
        self.reenables_that_fail = 0
        self.reenables = 0
        self.owner: str | None = None  # another run that owns the emergency switch
        self.switches: list[bool] = []  # what set_hybrid_routing was told, in order
        self.switched_at: list[datetime] = []
        self.probes: list[tuple[datetime, bool]] = []

    def now(self) -> datetime:
        return activity.info().current_attempt_scheduled_time

    def failing(self) -> bool:
        assert self.started is not None
        return self.down(self.now() - self.started)

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.probe_bedrock,
            self.simulate_invoke_permission,
            self.read_bedrock_breaker,
            self.set_hybrid_routing,
            self.switch_owner,
        ]

    @activity.defn(name="probe_bedrock")
    async def probe_bedrock(self, request: ReachabilityRequest) -> Reachability:
        failing = self.failing()
        self.probes.append((self.now(), not failing))
        if failing:
            return Reachability(
                region=request.region,
                reachable=False,
                model_id=request.model_id,
                error="ServiceUnavailableException: Bedrock is unavailable",
            )
        return Reachability(
            region=request.region,
            reachable=True,
            latency_ms=120.0,
            model_id=request.model_id,
            model_arn=MODEL_ARN.format(region=request.region, model=request.model_id),
            model_listed=True,
            model_status="ACTIVE",
        )

    @activity.defn(name="simulate_invoke_permission")
    async def simulate_invoke_permission(self, request: PermissionRequest) -> PermissionCheck:
        if self.denied:
            return PermissionCheck(
                role_arn=request.role_arn,
                action=request.action,
                resource_arn=request.resource_arn,
                decision="implicitDeny",
            )
        return PermissionCheck(
            role_arn=request.role_arn,
            action=request.action,
            resource_arn=request.resource_arn,
            decision="allowed",
            deciding_statements=["bedrock-invoke (iam policy) lines 3-9"],
        )

    @activity.defn(name="read_bedrock_breaker")
    async def read_bedrock_breaker(self) -> BreakerReading:
        failing = self.failing() or (self.hybrid_routing and 0 < self.reenables <= self.reenables_that_fail)
        if not self.hybrid_routing:
            # nothing calls Bedrock through hybrid routing: the platform serves standard routing
            return BreakerReading(
                state="open" if failing else "closed",
                hybrid_routing="disabled",
                platform_healthy=True,
                component_healthy=not failing,
                fallback_rate_pct=0.0,
            )
        return BreakerReading(
            state="open" if failing else "closed",
            consecutive_failures=5 if failing else 0,
            fallback_rate_pct=100.0 if failing else 0.0,
            hybrid_routing="enabled",
            platform_healthy=not failing,
            component_healthy=not failing,
        )

    @activity.defn(name="set_hybrid_routing")
    async def set_hybrid_routing(self, request: EmergencySwitchRequest) -> RemediationRecord:
        changed = self.hybrid_routing != request.hybrid_routing_enabled
        self.switches.append(request.hybrid_routing_enabled)
        self.switched_at.append(self.now())
        self.hybrid_routing = request.hybrid_routing_enabled
        if request.hybrid_routing_enabled:
            self.reenables += 1
        return RemediationRecord(action=RemediationAction.EMERGENCY_SWITCH, changed=changed, detail="switched")

    @activity.defn(name="switch_owner")
    async def switch_owner(self, request: SwitchOwnerRequest) -> str | None:
        return self.owner
