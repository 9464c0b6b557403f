"""Bedrock as the connectivity runbook reads it: the policy's `bedrock` section, and what the
Bedrock and IAM APIs and the platform's circuit breaker say (requests and readings)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from contracts.common import Duration, Strict


class BedrockTarget(Strict):
    """What the platform uses Bedrock with in one region."""

    model_id: str  # the foundation model the platform invokes, e.g. anthropic.claude-3-5-sonnet-20240620-v1:0
    role_arn: str  # the role the platform's Bedrock client runs as
    owner: str  # who owns that role's permissions: a denied permission pages them by name


class BedrockPolicy(Strict):
    """The Bedrock connectivity runbook's numbers (runbooks/bedrock-connectivity.md)."""

    regions: dict[str, BedrockTarget]
    action: str = "bedrock:InvokeModel"  # the permission the client role needs on the model
    slow_after: Duration = timedelta(seconds=5)  # a ListFoundationModels slower than this counts as failing
    switch_within: Duration = timedelta(minutes=5)  # standard routing verified within this after the switch
    probe_every: Duration = timedelta(minutes=1)  # half-open: one probe of Bedrock this often
    healthy_for: Duration = timedelta(minutes=10)  # half-open: every probe healthy this long before re-enabling
    verify_within: Duration = timedelta(minutes=10)  # after re-enabling: the deadline of the verification
    verify_for: Duration = timedelta(minutes=2)  # ... which needs hybrid routing serving and healthy this long
    backoff: Duration = timedelta(minutes=10)  # after a failed re-enable: wait this (doubling) before probing
    max_reenables: int = Field(default=3, ge=1)  # failed re-enables before people take over
    give_up_after: Duration = timedelta(hours=24)  # switched off this long without recovering: people take over
    dry_run: bool = False  # true: every run only diagnoses and plans
    # A run probing half-open for this many history events continues as a new run (Temporal warns at 10 240).
    continue_after_events: int = Field(default=2000, ge=50)

    @model_validator(mode="after")
    def _windows_fit(self) -> BedrockPolicy:
        if self.probe_every <= timedelta(0) or self.healthy_for < self.probe_every:
            raise ValueError("bedrock: probe_every must be positive and no longer than healthy_for")
        if self.verify_for > self.verify_within:
            raise ValueError("bedrock: verify_for must fit within verify_within")
        return self


class ReachabilityRequest(Strict):
    region: str
    model_id: str


class Reachability(Strict):
    """ListFoundationModels in the region: reached (and how long it took), the model listed and ACTIVE."""

    region: str
    reachable: bool
    latency_ms: float | None = None
    model_id: str
    model_arn: str | None = None
    model_listed: bool = False
    model_status: str | None = None  # modelLifecycle.status: ACTIVE or LEGACY
    error: str | None = None  # why it was not reached (the AWS error code and message)

    @property
    def model_active(self) -> bool:
        return self.model_listed and self.model_status == "ACTIVE"

    def describe(self) -> str:
        if not self.reachable:
            return f"Bedrock in {self.region} not reachable: {self.error}"
        took = f" in {self.latency_ms:.0f} ms" if self.latency_ms is not None else ""
        if not self.model_listed:
            return f"Bedrock reached{took}; {self.model_id} is not listed"
        return f"Bedrock reached{took}; {self.model_id} listed, {self.model_status}"


class PermissionRequest(Strict):
    region: str
    role_arn: str
    action: str
    resource_arn: str


class PermissionCheck(Strict):
    """IAM SimulatePrincipalPolicy for the role, the action and the model: the decision and the
    statements that decided it (none for an implicit deny: no statement allows it)."""

    role_arn: str
    action: str
    resource_arn: str
    decision: str  # allowed, explicitDeny or implicitDeny
    deciding_statements: list[str] = Field(default_factory=list)  # "policy-id (type) lines a-b"
    missing_context: list[str] = Field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.decision == "allowed"

    def describe(self) -> str:
        by = f" by {', '.join(self.deciding_statements)}" if self.deciding_statements else ""
        if not by and not self.allowed:
            by = " (no statement allows it)"
        return f"{self.role_arn} {self.action} on {self.resource_arn}: {self.decision}{by}"


class BreakerReading(Strict):
    """The platform's circuit breaker in front of Bedrock, from its system status."""

    state: str  # closed, open, half-open, or unknown (the status could not be read)
    consecutive_failures: int = 0
    fallback_rate_pct: float | None = None  # requests served by the fallback, recently
    hybrid_routing: str = "unknown"  # enabled or disabled
    platform_healthy: bool = False  # the system status says healthy
    component_healthy: bool = False  # the bedrock-client health component
    detail: str = ""

    def describe(self) -> str:
        rate = f", fallback rate {self.fallback_rate_pct:.1f} %" if self.fallback_rate_pct is not None else ""
        return (
            f"circuit breaker {self.state} ({self.consecutive_failures} consecutive failures{rate}), "
            f"hybrid routing {self.hybrid_routing}, platform {'healthy' if self.platform_healthy else 'not healthy'}"
        )

    @property
    def serving_standard(self) -> bool:
        """The emergency switch took: hybrid routing off and the platform healthy without it."""
        return self.hybrid_routing == "disabled" and self.platform_healthy

    @property
    def serving_hybrid(self) -> bool:
        """Recovered: hybrid routing on, the platform healthy, Bedrock's client healthy, breaker closed."""
        return (
            self.hybrid_routing == "enabled"
            and self.platform_healthy
            and self.component_healthy
            and self.state == "closed"
        )
