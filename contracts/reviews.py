"""The routine performance reviews (`runbooks/performance-review.md`): the policy's `reviews:`
section, the review's input and result, and the deterministic parts the workflow runs itself:
the window a run reviews, each metric judged against the policy's service levels (what breached
and for how long), and the report's Markdown.

The cadence is in the input; `daily` is the one there is. Weekly trends and monthly capacity
planning read other windows at another resolution and keep other results (the week's figures,
the month's projection): they are workflows of their own (`contracts/trend_reviews.py`) that
reuse the judgement here. A critical breach in any review goes to the intake (`ReviewAlert`).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field

from contracts.common import Strict, TimelineEntry, format_duration
from contracts.policy import MetricQuery, ReviewPolicy
from contracts.scaling_rules import Series
from contracts.systems import MetricLevel

Cadence = Literal["daily"]  # the weekly and monthly reviews: WeeklyReviewWorkflow, CapacityReviewWorkflow
ReviewStatus = Literal["reading", "judging", "charting", "storing", "escalating", "done"]


class ReviewInput(Strict):
    cadence: Cadence = "daily"
    started_by: str = "schedule"  # the schedule's name, or who triggered it


class ReviewWindow(Strict):
    cadence: Cadence
    start: datetime
    end: datetime

    @property
    def name(self) -> str:
        """The report's id: the day the overnight window ends."""
        return f"{self.end:%Y-%m-%d}"

    @property
    def key(self) -> str:
        return f"{REPORTS_PREFIX}{self.cadence}/{self.name}.md"

    def chart_key(self, chart: str) -> str:
        return f"{REPORTS_PREFIX}{self.cadence}/{self.name}-{chart}.png"


REPORTS_PREFIX = "reports/"


def review_window(cadence: Cadence, at: datetime, policy: ReviewPolicy) -> ReviewWindow:
    """The last complete window at `at`: a run at 09:00 reviews 18:00 the evening before to
    09:00 now; a run by hand at 15:00 reviews the same night (it is the last one complete)."""
    daily = policy.daily
    end = at.replace(hour=daily.end_hour, minute=0, second=0, microsecond=0)
    if end > at:
        end -= timedelta(days=1)
    start = end.replace(hour=daily.start_hour)
    if start >= end:
        start -= timedelta(days=1)
    return ReviewWindow(cadence=cadence, start=start, end=end)


class Breach(Strict):
    level: Literal["warning", "critical"]
    start: datetime
    end: datetime  # the end of the last datapoint's period
    worst: float

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


class Judgement(Strict):
    """One metric over the window against its service levels."""

    key: str
    stat: str
    direction: Literal["above", "below"]
    target: float | None
    warning: float | None
    critical: float | None
    points: int
    average: float | None
    worst: float | None
    p95: float | None  # of the datapoints (the emulator has no percentile statistics)
    level: MetricLevel
    breaches: list[Breach] = Field(default_factory=list)

    @property
    def breached_for(self) -> timedelta:
        return sum((b.duration for b in self.breaches), timedelta(0))


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest rank: a value that was really seen."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def _beyond(query: MetricQuery, value: float, bound: float | None) -> bool:
    if bound is None:
        return False
    return value > bound if query.direction == "above" else value < bound


def judge(query: MetricQuery, series: Series) -> Judgement:
    """Each datapoint graded; consecutive bad ones (warning or worse) make one breach, which is
    critical if any of its datapoints is; a breach lasts to the end of its last period."""
    values = [p.value for p in series.points]
    period = timedelta(seconds=series.period_seconds)
    breaches: list[Breach] = []
    for point in series.points:
        critical = _beyond(query, point.value, query.critical)
        if not (critical or _beyond(query, point.value, query.warning)):
            continue
        last = breaches[-1] if breaches else None
        if last is not None and last.end >= point.at:
            worse = max(last.worst, point.value) if query.direction == "above" else min(last.worst, point.value)
            breaches[-1] = last.model_copy(
                update={"end": point.at + period, "worst": worse, "level": "critical" if critical else last.level}
            )
        else:
            breaches.append(
                Breach(
                    level="critical" if critical else "warning",
                    start=point.at,
                    end=point.at + period,
                    worst=point.value,
                )
            )
    level: MetricLevel = "no-data"
    if values:
        level = "critical" if any(b.level == "critical" for b in breaches) else "warning" if breaches else "ok"
    return Judgement(
        key=query.key,
        stat=query.stat,
        direction=query.direction,
        target=query.target,
        warning=query.warning,
        critical=query.critical,
        points=len(values),
        average=sum(values) / len(values) if values else None,
        worst=(max(values) if query.direction == "above" else min(values)) if values else None,
        p95=percentile(values, 95),
        level=level,
        breaches=breaches,
    )


class Traffic(Strict):
    """The overnight headline: requests and response time over the whole window."""

    requests: int
    average_ms: float | None  # weighted by each period's sample count
    maximum_ms: float | None
    p95_ms: float | None


def traffic(average: Series, maximum: Series, samples: Series, requests: Series, p95: Judgement | None) -> Traffic:
    counts = {p.at: p.value for p in samples.points}
    weighted = [(p.value, counts.get(p.at, 1.0)) for p in average.points]
    total = sum(n for _, n in weighted)
    return Traffic(
        requests=round(sum(p.value for p in requests.points)),
        average_ms=sum(v * n for v, n in weighted) / total if total else None,
        maximum_ms=max((p.value for p in maximum.points), default=None),
        p95_ms=p95.p95 if p95 is not None else None,
    )


class OvernightIncident(Strict):
    workflow_id: str
    started: datetime
    status: str  # the run's execution status (RUNNING, COMPLETED, ...)
    severity: str | None = None
    incident_status: str | None = None


class IncidentsRequest(Strict):
    start: datetime
    end: datetime


class ChartRequest(Strict):
    """The review's series and thresholds; the activity draws them and stores the PNG."""

    title: str
    window: ReviewWindow
    bucket: str
    region: str
    key: str
    response_time: list[Series]  # average, maximum
    judged: list[Series]
    judgements: list[Judgement]
    requests: Series


class ReviewView(Strict):
    status: ReviewStatus
    step: str
    cadence: Cadence
    started_by: str
    window: ReviewWindow | None = None
    uri: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)


class ReviewAlert(Strict):
    """A critical breach a review found, handed to the alert intake like any monitoring sender's
    alert: the intake routes, signs and opens or joins the service's incident."""

    service: str
    region: str
    summary: str
    report: str  # the report's s3:// uri
    review: str  # "weekly/2026-12-07"
    severity: str  # a severity label of the policy's severity_labels


class RaisedAlert(Strict):
    status: int
    answer: dict[str, object]


class ReviewResult(Strict):
    cadence: Cadence
    window: ReviewWindow
    level: MetricLevel  # the worst of the judged metrics
    traffic: Traffic
    judgements: list[Judgement]
    incidents: list[OvernightIncident]
    unjudged: list[str]  # judged keys the policy's metrics do not have
    uri: str | None
    charts: list[str]
    markdown: str
    escalated: RaisedAlert | None = None  # the alert a critical night sent to the intake


LEVEL_ORDER: dict[MetricLevel, int] = {"no-data": 0, "ok": 1, "warning": 2, "critical": 3}


def overall_level(judgements: list[Judgement]) -> MetricLevel:
    return max((j.level for j in judgements), key=LEVEL_ORDER.__getitem__, default="no-data")


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "no data"
    return f"{value:,.0f}{unit}" if abs(value) >= 100 else f"{value:,.2f}{unit}"


def _bounds(j: Judgement) -> str:
    relation = ">" if j.direction == "above" else "<"
    parts = [
        f"{name} {relation} {value:g}"
        for name, value in (("warning", j.warning), ("critical", j.critical))
        if value is not None
    ]
    return ", ".join(parts) or "none"


def render_review(
    service: str,
    window: ReviewWindow,
    load: Traffic,
    judgements: list[Judgement],
    incidents: list[OvernightIncident],
    charts: list[str],
    unjudged: list[str] | None = None,
) -> str:
    """The report: verdict first, the chart, the numbers, then what breached and for how long."""
    level = overall_level(judgements)
    breached = [j for j in judgements if j.breaches]
    lines = [
        f"# Daily performance review: {service}, {window.name}",
        "",
        f"Overnight {window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC.",
        "",
    ]
    if breached:
        worst = ", ".join(f"{j.key} {j.level} for {format_duration(j.breached_for)}" for j in breached)
        lines += [f"**{level.upper()}**: {worst}.", ""]
    elif level == "no-data":
        lines += ["**NO DATA**: no datapoints in the window.", ""]
    else:
        lines += ["**OK**: every service level held all night.", ""]
    if unjudged:
        lines += [f"Not judged (not among the policy's metrics): {', '.join(unjudged)}.", ""]
    lines += [f"![overnight]({chart.rpartition('/')[2]})" for chart in charts]
    lines += [
        "",
        "| overnight | |",
        "|---|---|",
        f"| requests | {load.requests:,} |",
        f"| average response time | {_number(load.average_ms, ' ms')} |",
        f"| maximum response time | {_number(load.maximum_ms, ' ms')} |",
        f"| P95 response time | {_number(load.p95_ms, ' ms')} |",
        f"| incidents opened | {len(incidents)} |",
        "",
        "## Service levels",
        "",
        "| metric | average | worst | P95 | target | bounds | level | breached for |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for j in judgements:
        target = "none" if j.target is None else f"{'<=' if j.direction == 'above' else '>='} {j.target:g}"
        lines.append(
            f"| {j.key} ({j.stat}) | {_number(j.average)} | {_number(j.worst)} | {_number(j.p95)} | {target} "
            f"| {_bounds(j)} | {j.level} | {format_duration(j.breached_for) if j.breaches else '-'} |"
        )
    lines += breach_lines(judgements, "%H:%M")
    lines += incident_lines(incidents, "overnight")
    return "\n".join(lines)


def breach_lines(judgements: list[Judgement], start_format: str) -> list[str]:
    """The report's breaches: each with its level, its times and how long, worst value."""
    lines = ["", "## Breaches", ""]
    for j in judgements:
        for b in j.breaches:
            lines.append(
                f"- {j.key} **{b.level}** {b.start.strftime(start_format)}-{b.end:%H:%M} UTC "
                f"({format_duration(b.duration)}), worst {_number(b.worst)}"
            )
    if not any(j.breaches for j in judgements):
        lines.append("None.")
    return lines


def incident_lines(incidents: list[OvernightIncident], when: str) -> list[str]:
    lines = ["", f"## Incidents opened {when}", ""]
    for incident in incidents:
        severity = f" {incident.severity}" if incident.severity else ""
        state = incident.incident_status or incident.status
        lines.append(f"- `{incident.workflow_id}`{severity}, opened {incident.started:%Y-%m-%d %H:%M} UTC, {state}")
    if not incidents:
        lines.append("None.")
    lines.append("")
    return lines
