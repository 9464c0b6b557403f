"""The Bedrock connectivity runbook's run: its start, triggers, diagnosis, plans, view and result."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from contracts.approvals import Decision
from contracts.bedrock import BreakerReading, PermissionCheck, Reachability
from contracts.common import Strict, TimelineEntry
from contracts.paging import PagerDutyRef


def bedrock_workflow_id(region: str) -> str:
    """One run per region: the only one that switches hybrid routing for Bedrock there."""
    return f"bedrock/{region}"


class BedrockStatus(StrEnum):
    DIAGNOSING = "diagnosing"
    AWAITING_APPROVAL = "awaiting-approval"
    SWITCHING = "switching"  # turning hybrid routing off or on
    VERIFYING = "verifying"
    HALF_OPEN = "half-open"  # switched off; probing Bedrock until it has been healthy for the window
    # closed
    HEALTHY = "healthy"  # nothing wrong with Bedrock: nothing done
    PERMISSION_DENIED = "permission-denied"  # the owner was paged; nothing switched
    PLANNED = "planned"
    RECOVERED = "recovered"  # hybrid routing back on and verified
    HANDED_OVER = "handed-over"  # people take over (not approved, limit reached, verification failed)
    DEFERRED = "deferred"  # another run owns the emergency switch
    CANCELLED = "cancelled"
    REFUSED = "refused"


CLOSED_BEDROCK = frozenset(
    {
        BedrockStatus.HEALTHY,
        BedrockStatus.PERMISSION_DENIED,
        BedrockStatus.PLANNED,
        BedrockStatus.RECOVERED,
        BedrockStatus.HANDED_OVER,
        BedrockStatus.DEFERRED,
        BedrockStatus.CANCELLED,
        BedrockStatus.REFUSED,
    }
)
# While a run is in one of these, it owns the platform's emergency switch (see SwitchOwnerRequest).
OWNS_SWITCH = frozenset({BedrockStatus.SWITCHING, BedrockStatus.VERIFYING, BedrockStatus.HALF_OPEN})


class BedrockInput(Strict):
    region: str
    opened_by: str
    plan: bool = False  # plan mode: diagnose and decide; change nothing, page nobody
    carried: BedrockCarry | None = None  # a continued run: what its predecessor knew (never a start's)


class BedrockTrigger(Strict):
    """`runbook trigger bedrock`: an operator asks the region's run to diagnose Bedrock now."""

    by: str
    plan: bool = False
    reason: str = "operator trigger"
    assertion: str | None = None  # signed by the intake for the signed-in operator


class BedrockDiagnosis(Strict):
    """The four readings, taken at once, and what the runbook makes of them."""

    reachability: Reachability
    permission: PermissionCheck | None  # None: the simulation itself failed (see permission_error)
    permission_error: str | None = None
    breaker: BreakerReading
    slow: bool = False  # reached, but slower than the policy's slow_after

    @property
    def verdict(self) -> Literal["healthy", "denied", "failing"]:
        """A denied permission first: switching does not fix it. Then anything failing."""
        if self.permission is not None and not self.permission.allowed:
            return "denied"
        reach = self.reachability
        if not reach.reachable or not reach.model_active or self.slow or self.breaker.state == "open":
            return "failing"
        return "healthy"

    def summary(self) -> str:
        permission = (
            self.permission.describe() if self.permission is not None else f"not simulated: {self.permission_error}"
        )
        slow = " (slow)" if self.slow else ""
        return f"{self.reachability.describe()}{slow}; {permission}; {self.breaker.describe()}"


class SwitchPlan(Strict):
    """Hybrid routing off (the emergency switch) or back on; the attempt is part of the id, so an
    approval of one attempt never approves the next."""

    enable: bool
    region: str
    attempt: int
    reason: str

    @property
    def plan_id(self) -> str:
        verb = "enable" if self.enable else "disable"
        digest = hashlib.sha256(f"{verb}/{self.region}/{self.attempt}".encode()).hexdigest()[:8]
        return f"{verb}-hybrid-routing-{self.attempt}-{digest}"

    @property
    def action_name(self) -> str:
        return "re_enable_hybrid_routing" if self.enable else "emergency_switch"

    def describe(self) -> str:
        if self.enable:
            return f"re-enable hybrid routing (Bedrock in {self.region} healthy again), attempt {self.attempt}"
        return f"emergency switch: disable hybrid routing, serve through standard routing (Bedrock in {self.region})"

    def calls(self) -> list[str]:
        verb = "enable" if self.enable else "disable"
        return [
            f"POST /admin/emergency/{verb}-hybrid-routing",
            "GET /admin/health/system-status (until hybrid routing is "
            + ("enabled and healthy)" if self.enable else "disabled and the platform healthy)"),
        ]


class SwitchRecord(Strict):
    plan_id: str
    enabled: bool  # what the switch was set to
    at: datetime
    verified: bool = False
    seconds_to_verified: float | None = None  # from the switch to the verified system status
    detail: str = ""


class SwitchOwnerRequest(Strict):
    """Who else holds the platform's emergency switch, asked by the run `asking`."""

    asking: str  # the asking run's workflow id (it never counts as another owner)


class BedrockCarry(Strict):
    """What a run that has probed half-open for long hands the run it continues as."""

    switched_off_at: datetime
    healthy_since: datetime | None  # the healthy window goes on in the new run
    switches: list[SwitchRecord]
    failed_reenables: int
    diagnosis: BedrockDiagnosis | None
    triggers: int
    opened_by: str
    pagerduty: PagerDutyRef | None
    timeline: list[TimelineEntry]
    deliveries: list[str]


class BedrockView(Strict):
    workflow_id: str
    region: str
    status: BedrockStatus
    opened_by: str
    opened_at: datetime
    plan_only: bool
    diagnosis: BedrockDiagnosis | None = None
    switches: list[SwitchRecord] = Field(default_factory=list)
    healthy_since: datetime | None = None  # half-open: probes healthy without a break since then
    failed_reenables: int = 0
    next_probe_at: datetime | None = None
    planned_calls: list[str] = Field(default_factory=list)
    pending_approval: SwitchPlan | None = None
    decision: Decision | None = None
    pagerduty: PagerDutyRef | None = None
    outcome: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    refused_signals: int = 0

    def facts(self) -> list[tuple[str, str]]:
        """What `runbook show` and the approval page show besides status, approval and timeline."""
        facts: list[tuple[str, str]] = []
        if self.diagnosis is not None:
            d = self.diagnosis
            facts.append(("verdict", d.verdict))
            facts.append(("bedrock", d.reachability.describe()))
            facts.append(
                ("permission", d.permission.describe() if d.permission is not None else f"{d.permission_error}")
            )
            facts.append(("breaker", d.breaker.describe()))
        for switch in self.switches:
            took = f", verified in {switch.seconds_to_verified:.0f}s" if switch.seconds_to_verified is not None else ""
            state = "on" if switch.enabled else "off"
            facts.append(("switch", f"{switch.at:%H:%M:%S} hybrid routing {state}{took} ({switch.plan_id})"))
        if self.healthy_since is not None:
            facts.append(("healthy since", f"{self.healthy_since:%H:%M:%S} UTC"))
        if self.failed_reenables:
            facts.append(("failed re-enables", str(self.failed_reenables)))
        facts.extend(("would call", call) for call in self.planned_calls)
        return facts


class BedrockResult(Strict):
    outcome: str
    view: BedrockView


BedrockInput.model_rebuild()
