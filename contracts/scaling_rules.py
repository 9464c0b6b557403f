"""Scaling decisions: the policy's rules and limits, the CloudWatch series they are judged on,
and the judgement itself (pure, so the workflow and its tests share it)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field, model_validator

from contracts.common import Duration, Strict


class ScalingRule(Strict):
    """Scale up when `metric` (a key of the policy's `metrics`) stayed above `above` for the
    whole of `sustained_for`: every datapoint of the window in breach, and the window covered."""

    name: str = Field(min_length=1)
    metric: str = Field(min_length=1)
    above: float
    sustained_for: Duration


class ScaleIn(Strict):
    """Back towards the baseline once every rule's metric stayed under `below` times its
    threshold for `sustained_for`."""

    below: float = Field(default=0.5, gt=0, lt=1)
    sustained_for: Duration = timedelta(minutes=30)


class CapacityLimits(Strict):
    """What one service may be scaled to. ECS: the desired count (or, where Application Auto
    Scaling manages the service, its minimum); Lambda: provisioned concurrency, optional."""

    ecs_step: int = Field(default=2, ge=1)
    ecs_max: int = Field(ge=1)
    lambda_function: str | None = None
    lambda_qualifier: str | None = None
    lambda_step: int = Field(default=50, ge=1)
    lambda_max: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _lambda_complete(self) -> CapacityLimits:
        named = [self.lambda_function, self.lambda_qualifier, self.lambda_max]
        if any(v is not None for v in named) and not all(v is not None for v in named):
            raise ValueError("lambda_function, lambda_qualifier and lambda_max go together")
        return self


class ScalingPolicy(Strict):
    rules: list[ScalingRule] = Field(min_length=1)
    limits: dict[str, CapacityLimits]  # per service (a key of `services`)
    cooldown: Duration = timedelta(seconds=300)  # after each step, as Application Auto Scaling's default
    max_steps_per_hour: int = Field(default=3, ge=1)
    auto_steps: int = Field(default=2, ge=0)  # steps above the baseline taken without approval
    verify_within: Duration = timedelta(minutes=10)
    check_every: Duration = timedelta(minutes=1)  # how often a watch reads CloudWatch
    hold_for: Duration = timedelta(minutes=30)  # how long a hold (a rollout, a remediation) may last
    scale_in: ScaleIn = Field(default_factory=ScaleIn)
    dry_run: bool = False  # every run plans only: the AWS calls it would make, none made
    # A run watching for this many history events continues as a new run (Temporal warns at 10 240).
    continue_after_events: int = Field(default=2000, ge=50)

    @model_validator(mode="after")
    def _unique_rules(self) -> ScalingPolicy:
        names = [rule.name for rule in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"scaling.rules: rule names repeat: {names}")
        return self

    def rule(self, name: str) -> ScalingRule | None:
        return next((rule for rule in self.rules if rule.name == name), None)


# --------------------------------------------------------------------------- series and judgement


class Datapoint(Strict):
    at: datetime
    value: float


class Series(Strict):
    """One metric's datapoints, oldest first, as CloudWatch returned them for the window."""

    key: str
    period_seconds: int
    points: list[Datapoint] = Field(default_factory=list)


class Judgement(Strict):
    rule: str
    metric: str
    threshold: float
    window: Duration
    sustained: bool
    points: list[Datapoint] = Field(default_factory=list)  # the window's datapoints, as judged
    why: str


def judge(
    rule: ScalingRule, series: Series, now: datetime, threshold: float | None = None, below: bool = False
) -> Judgement:
    """Whether the rule held for its whole window up to `now`: every datapoint of the window on
    the wrong side of `threshold` (the rule's own unless given), and datapoints covering it (at
    most one period missing at either end: CloudWatch publishes the last period late). With
    `below`, whether the metric stayed under the threshold instead (scale-in)."""
    limit = rule.above if threshold is None else threshold
    window = rule.sustained_for
    start = now - window
    points = [p for p in series.points if p.at >= start - timedelta(seconds=1)]
    period = timedelta(seconds=series.period_seconds)
    needed = max(1, int(window / period) - 1)
    relation = "<" if below else ">"

    def verdict(sustained: bool, why: str) -> Judgement:
        return Judgement(
            rule=rule.name,
            metric=rule.metric,
            threshold=limit,
            window=window,
            sustained=sustained,
            points=points,
            why=why,
        )

    if len(points) < needed:
        return verdict(False, f"{len(points)} datapoints in the last {_short(window)}, {needed} needed to judge")
    if points[0].at > start + period + timedelta(seconds=1):
        return verdict(False, f"datapoints only since {points[0].at:%H:%M:%S}: the window is not covered")
    outside = [p for p in points if (p.value >= limit if below else p.value <= limit)]
    values = ", ".join(f"{p.value:g}" for p in points[-6:])
    if outside:
        first = outside[0]
        return verdict(False, f"{first.value:g} at {first.at:%H:%M:%S} is not {relation} {limit:g} (last: {values})")
    return verdict(True, f"every datapoint of the last {_short(window)} {relation} {limit:g} (last: {values})")


def _short(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"
