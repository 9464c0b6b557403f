"""The policy file's schema: thresholds, timers, people, targets and routes are data loaded from
YAML, never constants in workflow code."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from contracts.approvals import ApprovalRule, Approvals, RiskLevel
from contracts.bedrock import BedrockPolicy
from contracts.common import Duration, Severity, Strict
from contracts.identity import Trust
from contracts.maintenance import MaintenancePolicy
from contracts.scaling_rules import ScalingPolicy
from contracts.schedules import ScheduleSpec


class SeverityPolicy(Strict):
    respond_within: Duration | None
    escalate_after: Duration | None  # None: never escalate (P3)
    # Every alert resolved before anyone acknowledged: keep paging people (the outage may
    # come back), or resolve the incident and its page. None: keep paging for P0/P1.
    on_clear: Literal["keep_paging", "resolve"] | None = None


class MetricQuery(Strict):
    """One CloudWatch metric judged against the platform's service levels.

    `direction` says which side is bad: "above" for latency, "below" for cache hit rate.
    `target` is the SLO that verification requires; `warning`/`critical` grade a diagnosis.
    """

    key: str
    namespace: str
    metric_name: str
    dimensions: dict[str, str] = Field(default_factory=dict)
    stat: str = "Average"  # "Maximum", "p95", ...: percentiles need real CloudWatch
    period_seconds: int = Field(default=60, ge=1)
    lookback: Duration = timedelta(minutes=10)
    direction: Literal["above", "below"] = "above"
    target: float | None = None
    warning: float | None = None
    critical: float | None = None
    region: str | None = None  # defaults to the service's region


class ServiceTarget(Strict):
    """What the runbook acts on for one service, and where to look."""

    region: str
    ecs_cluster: str
    ecs_service: str
    log_group: str
    health_component: str
    impact: str = "Requests to the hybrid-routing API fail or are slow"


class FailoverTarget(Strict):
    """Where a service fails over to, the DNS that moves its traffic, and where the worker's own
    probes ask each region for its health."""

    backup_region: str
    backup_cluster: str
    backup_service: str
    target_count: int = Field(default=3, ge=1)  # tasks the backup runs once failed over
    standby_count: int = Field(default=0, ge=0)  # tasks it runs on standby (failback returns it here)
    zone_name: str  # the public hosted zone, e.g. "hybrid-routing.example.com."
    record_name: str  # the failover record set, e.g. "api.hybrid-routing.example.com."
    record_type: str = "A"
    health_urls: dict[str, str]  # region -> the service's health endpoint in that region
    # region -> a check of the region itself that answers whatever the service does (a canary
    # behind the region's load balancer): a P0 incident hands its region to the failover only
    # when this fails too, so a bad deploy is rolled back, not failed over
    region_checks: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _backup_has_a_probe(self) -> FailoverTarget:
        if self.backup_region not in self.health_urls:
            raise ValueError(f"health_urls: no URL for the backup region {self.backup_region}")
        return self


class FailoverPolicy(Strict):
    """The region failover runbook's numbers."""

    services: dict[str, FailoverTarget]
    confirm_for: Duration = timedelta(minutes=5)  # the primary failing every probe for this long
    probe_every: Duration = timedelta(seconds=30)
    rto: Duration = timedelta(minutes=15)  # recovery time objective: trigger to verified
    min_interval: Duration = timedelta(hours=1)  # after a failover, no other one for this long
    scale_within: Duration = timedelta(minutes=10)  # the backup running its target count
    dns_within: Duration = timedelta(minutes=5)
    verify_within: Duration = timedelta(minutes=5)  # the service healthy where DNS now sends traffic
    soak_for: Duration = timedelta(minutes=30)  # failback: the primary healthy this long, unbroken
    failback_retry_after: Duration = timedelta(hours=4)  # a failback not approved is proposed again then
    continue_after_events: int = Field(default=2000, ge=50)  # a failback soaking for days continues as new
    dry_run: bool = False  # every run plans only


def _per_severity(**days_or_hours: timedelta) -> dict[Severity, timedelta]:
    return {Severity(name): value for name, value in days_or_hours.items()}


class PostIncidentPolicy(Strict):
    """The post-incident follow-up runbook's numbers (runbooks/post-incident.md)."""

    severities: list[Severity] = Field(default_factory=lambda: [Severity.P0, Severity.P1, Severity.P2])
    review_within: Duration = timedelta(hours=2)  # the immediate review, from the incident's close
    remind_every: Duration = timedelta(minutes=30)  # the review's reminders until it is recorded or escalated
    postmortem_due: dict[Severity, Duration] = Field(
        default_factory=lambda: _per_severity(P0=timedelta(hours=24), P1=timedelta(hours=48), P2=timedelta(days=5))
    )
    postmortem_remind_before: Duration = timedelta(hours=4)
    action_due: dict[Severity, Duration] = Field(
        default_factory=lambda: _per_severity(P0=timedelta(days=15), P1=timedelta(days=30), P2=timedelta(days=30))
    )
    action_remind_before: Duration = timedelta(days=2)  # the owner is reminded this long before the due date
    bucket: str = Field(default="runbook-postmortems", min_length=3, max_length=63)
    bucket_region: str = "eu-central-1"
    continue_after_events: int = Field(default=2000, ge=50)  # a follow-up lasting weeks continues as new

    def postmortem_due_for(self, severity: Severity) -> timedelta:
        return self.postmortem_due.get(severity, timedelta(days=5))

    def action_due_for(self, severity: Severity) -> timedelta:
        return self.action_due.get(severity, timedelta(days=30))


class ReviewMetric(Strict):
    """A CloudWatch metric the review reads with statistics of its own choosing."""

    namespace: str
    metric_name: str
    dimensions: dict[str, str] = Field(default_factory=dict)

    def query(self, key: str, stat: str, period_seconds: int) -> MetricQuery:
        return MetricQuery(
            key=key,
            namespace=self.namespace,
            metric_name=self.metric_name,
            dimensions=self.dimensions,
            stat=stat,
            period_seconds=period_seconds,
        )


class DailyReview(Strict):
    """The overnight window, UTC hours: from `start_hour` the evening before to `end_hour`."""

    start_hour: int = Field(default=18, ge=0, le=23)
    end_hour: int = Field(default=9, ge=0, le=23)


def _hybrid_router(metric_name: str) -> ReviewMetric:
    return ReviewMetric(namespace="HybridRouting", metric_name=metric_name, dimensions={"Service": "hybrid-router"})


class CapacityMeasure(Strict):
    """A utilisation the monthly review reads (Average and Maximum per period). `key` names it
    in the report; where it is a scaling rule's metric (cpu_pct) the recommendation gives that
    rule a threshold, and the policy's `metrics:` entry of that key its warning and critical."""

    key: str
    metric: ReviewMetric
    capacity: float | None = 100  # a percentage's ceiling


class CapacityReview(Strict):
    """The monthly capacity planning (runbooks/capacity-planning.md)."""

    period_seconds: int = Field(default=3600, ge=60)
    measures: list[CapacityMeasure] = Field(
        default_factory=lambda: [
            CapacityMeasure(key="cpu_pct", metric=_hybrid_router("CPUUtilization")),
            CapacityMeasure(key="memory_pct", metric=_hybrid_router("MemoryUtilization")),
        ]
    )
    target_pct: float = Field(default=60, gt=0, lt=100)  # each task's utilisation the recommendation aims at
    horizon_days: int = Field(default=30, ge=1, le=365)  # how far the fitted growth is projected


class ReviewPolicy(Strict):
    """The routine performance reviews (runbooks/performance-review.md): what they read and
    judge, and where they store their reports."""

    service: str = "hybrid-router"  # a key of services: its region is where the metrics are
    bucket: str = Field(default="runbook-reports", min_length=3, max_length=63)
    bucket_region: str = "eu-central-1"
    period_seconds: int = Field(default=300, ge=60)  # one datapoint per this long: judged and charted
    # keys of `metrics:`, each judged against its own target/warning/critical
    judged: list[str] = Field(
        default_factory=lambda: ["p95_latency_ms", "error_rate_pct", "cache_hit_pct", "cost_utilisation_pct"]
    )
    latency_p95: str = "p95_latency_ms"  # the judged key whose P95 over the window is the headline P95
    response_time: ReviewMetric = Field(default_factory=lambda: _hybrid_router("Latency"))  # Average, Maximum
    requests: ReviewMetric = Field(default_factory=lambda: _hybrid_router("RequestCount"))  # Sum
    daily: DailyReview = Field(default_factory=DailyReview)
    weekly_period_seconds: int = Field(default=3600, ge=60)  # the weekly review's datapoints: an hour
    capacity: CapacityReview = Field(default_factory=CapacityReview)
    # a weekly or monthly review whose data shows a critical breach sends an alert of this
    # severity label (severity_labels) to the intake, which opens or joins the service's
    # incident; None: it is only in the report. A warning is only in the report.
    escalate_severity: str | None = "high"


class IncidentTimers(Strict):
    approval_timeout: Duration = timedelta(minutes=30)
    verify_window: Duration = timedelta(minutes=5)
    verify_interval: Duration = timedelta(seconds=30)
    verify_timeout: Duration = timedelta(minutes=15)
    log_lookback: Duration = timedelta(minutes=10)
    next_update_every: Duration = timedelta(minutes=30)


class Communication(Strict):
    incident_commander: str = "on-call primary"
    channel: str = "#incident-hybrid-routing"
    status_page: str = "https://status.example.com"
    approval_page: str | None = None  # the operator listener's /ui, linked from the PagerDuty incident


class RouteMatch(Strict):
    """All given conditions must hold. Labels compare exactly; `alarm_name` is a regex."""

    source: str | None = None  # alertmanager, sns, eventbridge, generic
    labels: dict[str, str] = Field(default_factory=dict)
    alarm_name: str | None = None
    namespace: str | None = None
    metric: str | None = None
    # the region the sender says the alert is about (an alarm's, an AWS Health event's eventRegion)
    region: str | None = None

    @field_validator("alarm_name")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"alarm_name is not a valid regex: {exc}") from None
        return pattern


class Route(Strict):
    """Maps a normalised alert to a runbook, a target and (optionally) a severity."""

    name: str
    match: RouteMatch
    runbook: Literal["incident", "scaling", "failover", "bedrock"] = "incident"
    service: str | None = None  # None: the alert's own `service` label
    region: str | None = None  # None: the service's region in `services`
    severity: Severity | None = None  # None: the alert's severity label, else classification
    kind: str | None = None


class Policy(Strict):
    severities: dict[Severity, SeverityPolicy]
    escalation_levels: int = Field(default=3, ge=1)
    classification: dict[str, Severity] = Field(default_factory=dict)
    default_severity: Severity = Severity.P2
    responders: list[str] = Field(default_factory=list)  # may acknowledge
    approvers: list[str] = Field(default_factory=list)  # may approve or reject remediation
    # Per risk level (optional): without it, any of `approvers` approves anything alone.
    approvals: Approvals | None = None
    services: dict[str, ServiceTarget]
    metrics: list[MetricQuery] = Field(default_factory=list)
    timers: IncidentTimers = Field(default_factory=IncidentTimers)
    communication: Communication = Field(default_factory=Communication)
    # Alert intake: first matching route wins; an alert no route matches is refused.
    routes: list[Route] = Field(default_factory=list)
    # A sender's severity label (Alertmanager `severity`, generic `severity`) to P0-P3.
    severity_labels: dict[str, Severity] = Field(default_factory=dict)
    # Whose signatures the runbooks accept: the sign-in service's (operators) and the intake's.
    trust: Trust = Field(default_factory=Trust)
    scaling: ScalingPolicy | None = None  # the scaling decisions runbook; None: it scales nothing
    failover: FailoverPolicy | None = None  # the region failover runbook; None: nothing fails over
    # the post-incident follow-up runbook; None: no incident is followed up
    postincident: PostIncidentPolicy | None = None
    bedrock: BedrockPolicy | None = None  # the Bedrock connectivity runbook; None: it is never run
    # routine runs, kept as Temporal Schedules by `runbook schedules apply`
    schedules: list[ScheduleSpec] = Field(default_factory=list)
    # the routine performance reviews (runbooks/performance-review.md): the reports' bucket, what is judged
    reviews: ReviewPolicy = Field(default_factory=ReviewPolicy)
    # maintenance windows (runbooks/maintenance.md): exempt alerts, post-validation, PagerDuty services
    maintenance: MaintenancePolicy = Field(default_factory=MaintenancePolicy)

    @model_validator(mode="after")
    def _schedule_names_unique(self) -> Policy:
        seen: set[str] = set()
        for n, schedule in enumerate(self.schedules):
            if schedule.name in seen:
                raise ValueError(f"schedules[{n}]: the name {schedule.name!r} is used twice")
            seen.add(schedule.name)
        return self

    @model_validator(mode="after")
    def _maintenance_schedules_name_services(self) -> Policy:
        for schedule in self.schedules:
            service = schedule.maintenance.service if schedule.maintenance is not None else None
            if service is not None and service not in self.services:
                raise ValueError(f"schedules.{schedule.name}.maintenance.service: {service!r} is not in services")
        return self

    @model_validator(mode="after")
    def _bedrock_routes_have_a_section(self) -> Policy:
        for route in self.routes:
            if route.runbook == "bedrock" and self.bedrock is None:
                raise ValueError(f"routes.{route.name}: runbook bedrock, but the policy has no bedrock section")
            if route.runbook == "bedrock" and route.region is not None and self.bedrock is not None:
                if route.region not in self.bedrock.regions:
                    raise ValueError(f"routes.{route.name}: region {route.region} has no bedrock.regions entry")
        return self

    @model_validator(mode="after")
    def _failover_routes_fail_something_over(self) -> Policy:
        for route in self.routes:
            if route.runbook != "failover":
                continue
            if self.failover is None:
                raise ValueError(f"routes.{route.name}: runbook failover, but the policy has no failover section")
            if route.service is not None and route.service not in self.failover.services:
                raise ValueError(f"routes.{route.name}: {route.service} has no failover.services entry")
        return self

    @model_validator(mode="after")
    def _failover_services_known(self) -> Policy:
        for service, target in (self.failover.services if self.failover else {}).items():
            if service not in self.services:
                raise ValueError(f"failover.services.{service}: not a service of services")
            if self.services[service].region == target.backup_region:
                raise ValueError(f"failover.services.{service}: the backup region is the primary region")
        return self

    @model_validator(mode="after")
    def _scaling_names_known(self) -> Policy:
        if self.scaling is None:
            return self
        keys = {metric.key for metric in self.metrics}
        for rule in self.scaling.rules:
            if rule.metric not in keys:
                raise ValueError(f"scaling.rules.{rule.name}: metric {rule.metric!r} is not a key of metrics")
        for service in self.scaling.limits:
            if service not in self.services:
                raise ValueError(f"scaling.limits.{service}: not a service of services")
        return self

    @model_validator(mode="after")
    def _scaling_routes_scale_something(self) -> Policy:
        for route in self.routes:
            if route.runbook != "scaling":
                continue
            if self.scaling is None:
                raise ValueError(f"routes.{route.name}: runbook scaling, but the policy has no scaling section")
            if route.service is not None and route.service not in self.scaling.limits:
                raise ValueError(f"routes.{route.name}: {route.service} has no scaling.limits")
        return self

    def metric(self, key: str) -> MetricQuery:
        return next(metric for metric in self.metrics if metric.key == key)

    @model_validator(mode="after")
    def _every_severity_has_timers(self) -> Policy:
        missing = [s.value for s in Severity if s not in self.severities]
        if missing:
            raise ValueError(f"severities: missing {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _routes_name_known_services(self) -> Policy:
        for route in self.routes:
            if route.service is not None and route.service not in self.services:
                raise ValueError(f"routes: {route.name} names service {route.service!r}, not in services")
        return self

    @field_validator("metrics")
    @classmethod
    def _metric_keys_unique(cls, metrics: list[MetricQuery]) -> list[MetricQuery]:
        keys = [m.key for m in metrics]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"metrics: duplicate key(s) {', '.join(duplicates)}")
        return metrics

    def may_acknowledge(self, person: str) -> bool:
        return person in self.responders or self.may_approve(person)

    def may_approve(self, person: str) -> bool:
        """May approve something: in `approvers` or in the rule of some risk level."""
        rules = self.approvals.rules.values() if self.approvals else []
        return person in self.approvers or any(person in self.members(rule) for rule in rules)

    def risk_of(self, action: str) -> RiskLevel:
        default = Approvals().risk
        return (self.approvals.risk if self.approvals else default).get(action, RiskLevel.HIGH)

    def rule_for(self, action: str) -> ApprovalRule:
        rules = self.approvals.rules if self.approvals else {}
        return rules.get(self.risk_of(action)) or ApprovalRule(approvers=list(self.approvers))

    def members(self, rule: ApprovalRule) -> set[str]:
        groups = self.approvals.groups if self.approvals else {}
        people: set[str] = set()
        for name in rule.approvers:
            people.update(groups.get(name[6:], []) if name.startswith("group:") else [name])
        return people


class PolicyError(ValueError):
    """The policy file is missing or invalid; the message names the file and the field."""


def load_policy_file(path: Path) -> Policy:
    import yaml  # only the loader needs YAML; workflows never call this

    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise PolicyError(f"policy file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {path} is not valid YAML: {exc}") from exc
    try:
        return Policy.model_validate(raw)
    except ValueError as exc:
        raise PolicyError(f"policy file {path} is invalid: {exc}") from exc
