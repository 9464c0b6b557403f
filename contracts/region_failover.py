"""The region failover runbook's run: its input, triggers, plan, what it shows, its result."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import Field

from contracts.approvals import Decision
from contracts.common import Strict, TimelineEntry
from contracts.failover import DnsChangePlan, Preflight
from contracts.paging import PagerDutyRef
from contracts.scaling import AwsCall, EcsScalePlan
from contracts.systems import ProbeResult


class FailoverStatus(StrEnum):
    CONFIRMING = "confirming"  # probing the primary for the policy's window
    PREFLIGHT = "preflight"
    AWAITING_APPROVAL = "awaiting-approval"
    FAILING_OVER = "failing-over"
    VERIFYING = "verifying"
    FAILED_OVER = "failed-over"  # traffic on the backup, verified; further failovers refused for a while
    NOT_CONFIRMED = "not-confirmed"  # the primary answered within the window: nothing changed
    BLOCKED = "blocked"  # a readiness check failed: nothing changed
    PLANNED = "planned"  # plan mode: nothing changed
    NOT_APPROVED = "not-approved"
    STOPPED = "stopped"  # a step passed its deadline: what is done stays, people decide
    CANCELLED = "cancelled"
    REFUSED = "refused"  # started by nothing the intake signed


CLOSED_FAILOVER = frozenset(
    {
        FailoverStatus.FAILED_OVER,
        FailoverStatus.NOT_CONFIRMED,
        FailoverStatus.BLOCKED,
        FailoverStatus.PLANNED,
        FailoverStatus.NOT_APPROVED,
        FailoverStatus.STOPPED,
        FailoverStatus.CANCELLED,
        FailoverStatus.REFUSED,
    }
)


def failover_workflow_id(service: str) -> str:
    """One failover per service at a time: a second trigger joins the open run."""
    return f"failover/{service}"


class FailoverTrigger(Strict):
    """`runbook trigger failover`: an operator asks for the service's failover."""

    by: str
    plan: bool = False
    to_region: str | None = None  # None: the policy's backup region
    reason: str = "operator trigger"
    assertion: str | None = None  # signed by the intake for the signed-in operator


class FailoverInput(Strict):
    service: str
    opened_by: str
    plan: bool = False
    # the P0 incident (its id) that found the whole primary region down and started this run
    incident_id: str | None = None


class FailoverProgress(Strict):
    """How a failover run stands, as the P0 incident that handed its region to it reads it."""

    workflow_id: str
    status: FailoverStatus | None  # None: no such run
    outcome: str | None = None
    to_region: str | None = None

    @property
    def decided(self) -> bool:
        """Traffic moved and verified, or the run ended without moving it."""
        return self.status is not None and (self.status in CLOSED_FAILOVER)


class FailoverPlan(Strict):
    """The failover, computed once from what preflight read: the backup to its target count,
    then the DNS records swapped. An approval binds to its id, a hash of what it does."""

    service: str
    from_region: str
    to_region: str
    ecs: EcsScalePlan
    dns: DnsChangePlan
    reason: str

    @property
    def plan_id(self) -> str:
        digest = hashlib.sha256(f"{self.ecs.plan_id}/{self.dns.plan_id}".encode()).hexdigest()[:8]
        return f"failover-{self.service}-{self.to_region}-{digest}"

    @property
    def action_name(self) -> str:
        return "region_failover"

    def describe(self) -> str:
        where = f"fail {self.service} over from {self.from_region} to {self.to_region}"
        return f"{where}: {self.ecs.describe()}; then {self.dns.describe()}"

    def calls(self) -> list[AwsCall]:
        return [*self.ecs.aws_calls(), *self.dns.aws_calls()]


class RecoveryTime(Strict):
    """From the first trigger to verified, against the policy's RTO."""

    triggered_at: datetime
    verified_at: datetime
    rto: timedelta

    @property
    def took(self) -> timedelta:
        return self.verified_at - self.triggered_at

    @property
    def met(self) -> bool:
        return self.took <= self.rto


class FailoverView(Strict):
    workflow_id: str
    service: str
    status: FailoverStatus
    opened_by: str
    opened_at: datetime
    plan_only: bool
    primary_region: str | None = None
    backup_region: str | None = None
    probes: list[ProbeResult] = Field(default_factory=list)  # the last few, newest last
    preflight: Preflight | None = None
    plan: FailoverPlan | None = None
    pending_approval: FailoverPlan | None = None
    approvals: list[Decision] = Field(default_factory=list)
    decision: Decision | None = None
    planned_calls: list[str] = Field(default_factory=list)
    done: list[str] = Field(default_factory=list)  # the steps carried out, in order
    recovery: RecoveryTime | None = None
    refused_until: datetime | None = None  # another failover is refused until then
    pagerduty: PagerDutyRef | None = None
    outcome: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    refused_signals: int = 0

    def facts(self) -> list[tuple[str, str]]:
        """What `runbook show` and the approval page show of the run besides its status,
        approval and timeline, as (label, text) in order."""
        facts = [("regions", f"{self.primary_region or '?'} -> {self.backup_region or '?'}")]
        if self.probes:
            last = self.probes[-1]
            facts.append(("last probe", f"{last.region} {'ok' if last.ok else 'FAILING'} {last.detail}".rstrip()))
        if self.preflight is not None:
            failed, unverified = self.preflight.failures, self.preflight.unverified
            passed = f"all {len(self.preflight.checks)} checks passed"
            if unverified:
                passed += f", {len(unverified)} of them UNVERIFIED: " + "; ".join(
                    f"{c.name}: {c.detail}" for c in unverified
                )
            facts.append(("preflight", passed if not failed else "; ".join(f"{c.name}: {c.detail}" for c in failed)))
        if self.plan is not None:
            facts.append(("plan", f"{self.plan.plan_id}: {self.plan.describe()}"))
        if self.approvals:
            facts.append(("approved by", ", ".join(d.by for d in self.approvals)))
        facts.extend(("done", step) for step in self.done)
        if self.recovery is not None:
            verdict = "met" if self.recovery.met else "MISSED"
            facts.append(("recovery", f"{fmt_span(self.recovery.took)} (RTO {fmt_span(self.recovery.rto)}: {verdict})"))
        if self.refused_until is not None:
            facts.append(("hold-off", f"no other failover before {self.refused_until:%H:%M:%S} UTC"))
        facts.extend(("would call", call) for call in self.planned_calls)
        return facts


def fmt_span(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"


class FailoverResult(Strict):
    outcome: str
    view: FailoverView


# --- failback


class FailbackStatus(StrEnum):
    SOAKING = "soaking"  # waiting for the primary to stay healthy for the soak period
    AWAITING_APPROVAL = "awaiting-approval"
    FAILING_BACK = "failing-back"
    VERIFYING = "verifying"
    FAILED_BACK = "failed-back"  # traffic on the primary again, verified; the backup on standby
    STOPPED = "stopped"  # a step passed its deadline: what is done stays, people decide
    CANCELLED = "cancelled"
    REFUSED = "refused"  # not started by a failover


CLOSED_FAILBACK = frozenset(
    {FailbackStatus.FAILED_BACK, FailbackStatus.STOPPED, FailbackStatus.CANCELLED, FailbackStatus.REFUSED}
)


def failback_workflow_id(service: str) -> str:
    return f"failback/{service}"


class FailbackCarry(Strict):
    """What a failback soaking for days hands the run it continues as."""

    healthy_since: datetime | None
    proposals: int
    timeline: list[TimelineEntry]


class FailbackInput(Strict):
    """Started by the failover that moved the traffic (its child): the plan it carried out is
    what failback reverses."""

    service: str
    failover: FailoverPlan
    failed_over_at: datetime
    opened_by: str
    carried: FailbackCarry | None = None


class FailbackPlan(Strict):
    """The failback: the DNS records back as the failover found them, then the backup back to
    its standby count. An approval binds to its id."""

    service: str
    from_region: str
    to_region: str
    dns: DnsChangePlan
    ecs: EcsScalePlan
    reason: str

    @property
    def plan_id(self) -> str:
        digest = hashlib.sha256(f"{self.dns.plan_id}/{self.ecs.plan_id}".encode()).hexdigest()[:8]
        return f"failback-{self.service}-{self.to_region}-{digest}"

    @property
    def action_name(self) -> str:
        return "region_failback"

    def describe(self) -> str:
        where = f"fail {self.service} back from {self.from_region} to {self.to_region}"
        return f"{where}: {self.dns.describe()}; then {self.ecs.describe()}"

    def calls(self) -> list[AwsCall]:
        return [*self.dns.aws_calls(), *self.ecs.aws_calls()]


class FailbackView(Strict):
    workflow_id: str
    service: str
    status: FailbackStatus
    opened_by: str
    opened_at: datetime
    failed_over_at: datetime
    primary_region: str
    backup_region: str
    healthy_since: datetime | None = None  # the primary healthy, unbroken, since then
    soak_until: datetime | None = None  # failback may be proposed then
    probes: list[ProbeResult] = Field(default_factory=list)
    proposals: int = 0
    pending_approval: FailbackPlan | None = None
    approvals: list[Decision] = Field(default_factory=list)
    decision: Decision | None = None
    done: list[str] = Field(default_factory=list)
    pagerduty: PagerDutyRef | None = None
    outcome: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    refused_signals: int = 0
    plan_only: bool = False

    def facts(self) -> list[tuple[str, str]]:
        facts = [
            ("regions", f"{self.backup_region} -> {self.primary_region} (failed over {self.failed_over_at:%H:%M:%S})")
        ]
        if self.probes:
            last = self.probes[-1]
            facts.append(("last probe", f"{last.region} {'ok' if last.ok else 'FAILING'} {last.detail}".rstrip()))
        if self.healthy_since is not None:
            facts.append(("healthy since", f"{self.healthy_since:%H:%M:%S} UTC"))
        if self.soak_until is not None:
            facts.append(("soak until", f"{self.soak_until:%H:%M:%S} UTC at the earliest"))
        if self.approvals:
            facts.append(("approved by", ", ".join(d.by for d in self.approvals)))
        facts.extend(("done", step) for step in self.done)
        return facts


class FailbackResult(Strict):
    outcome: str
    view: FailbackView
