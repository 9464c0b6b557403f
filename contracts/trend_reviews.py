"""The weekly and monthly reviews (`runbooks/weekly-review.md`, `runbooks/capacity-planning.md`):
their inputs and results, and the deterministic parts their workflows run themselves: the week
and month a run reviews, each day's figures, the trends against the week before, the growth
fitted to the month and the recommendation drawn from it, and the reports' Markdown.

They read CloudWatch at an hour a datapoint (not the daily review's five minutes) and the read
activity hands back each day's figures, not the datapoints: a week or a month stays a few
kilobytes of history. The week's figures are also stored as JSON next to its report: that is
what next week's run compares against.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import ClassVar, Literal

from pydantic import Field

from contracts.common import Strict, TimelineEntry, format_duration
from contracts.policy import MetricQuery
from contracts.reviews import (
    REPORTS_PREFIX,
    Judgement,
    OvernightIncident,
    RaisedAlert,
    Traffic,
    _number,
    breach_lines,
    incident_lines,
    judge,
    overall_level,
    percentile,
    traffic,
)
from contracts.scaling_rules import Series
from contracts.systems import MetricLevel

# The series a review reads besides the judged metrics, by the key they carry (as the daily's).
AVERAGE, MAXIMUM, SAMPLES, REQUESTS = "response_time_avg", "response_time_max", "response_time_samples", "requests"
TREND_FLAT_PCT = 2.0  # a change smaller than this reads as flat
TrendStatus = Literal["reading", "judging", "charting", "storing", "escalating", "done"]


class TrendInput(Strict):
    started_by: str = "schedule"  # the schedule's name, or who triggered it


# --------------------------------------------------------------------------- the week


class PeriodWindow(Strict):
    """A review's period and where its objects go: `reports/{FOLDER}/{name}...`."""

    FOLDER: ClassVar[str]
    start: datetime
    end: datetime

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def key(self) -> str:
        return f"{REPORTS_PREFIX}{self.FOLDER}/{self.name}.md"

    def chart_key(self, chart: str) -> str:
        return f"{REPORTS_PREFIX}{self.FOLDER}/{self.name}-{chart}.png"


class WeekWindow(PeriodWindow):
    """Seven days of `end_hour` to `end_hour` UTC, ending on a Monday."""

    FOLDER: ClassVar[str] = "weekly"

    @property
    def name(self) -> str:
        return f"{self.end:%Y-%m-%d}"

    @property
    def figures_key(self) -> str:
        """The week's figures as JSON: what the next week's run compares against."""
        return f"{REPORTS_PREFIX}{self.FOLDER}/{self.name}.json"

    @property
    def previous(self) -> WeekWindow:
        return WeekWindow(start=self.start - timedelta(days=7), end=self.start)


def week_window(at: datetime, end_hour: int) -> WeekWindow:
    """The last complete week at `at`: a run on Monday 09:00 reviews Monday 09:00 a week ago to
    now; a run by hand on a Wednesday reviews the same week."""
    end = at.replace(hour=end_hour, minute=0, second=0, microsecond=0)
    if end > at:
        end -= timedelta(days=1)
    end -= timedelta(days=end.weekday())  # back to Monday
    return WeekWindow(start=end - timedelta(days=7), end=end)


class MetricDay(Strict):
    key: str
    level: MetricLevel
    average: float | None
    worst: float | None
    breached_minutes: int


class DayFigures(Strict):
    start: datetime
    traffic: Traffic
    metrics: list[MetricDay]


class DaysRequest(Strict):
    """Read `days` days from `start` at `period_seconds` and hand back each day's figures."""

    region: str
    queries: list[MetricQuery]  # AVERAGE, MAXIMUM, SAMPLES, REQUESTS, then the judged metrics
    judged: list[str]  # the keys among `queries` judged against their levels
    latency_p95: str
    start: datetime
    days: int = Field(ge=1, le=62)
    period_seconds: int = Field(default=3600, ge=60)


class PeriodFigures(Strict):
    """A week's (or any run of days') figures: the whole and each day."""

    start: datetime
    end: datetime
    period_seconds: int
    traffic: Traffic
    judgements: list[Judgement]
    days: list[DayFigures]

    @property
    def level(self) -> MetricLevel:
        return overall_level(self.judgements)


def _slice(series: Series, start: datetime, end: datetime) -> Series:
    return series.model_copy(update={"points": [p for p in series.points if start <= p.at < end]})


def summarise_days(request: DaysRequest, series: dict[str, Series]) -> PeriodFigures:
    """The whole period judged as one, then each day on its own (a breach over midnight counts
    in both days)."""
    queries = {q.key: q for q in request.queries}
    end = request.start + timedelta(days=request.days)

    def figures(start: datetime, stop: datetime) -> tuple[Traffic, list[Judgement]]:
        cut = {key: _slice(s, start, stop) for key, s in series.items()}
        judgements = [judge(queries[key], cut[key]) for key in request.judged]
        p95 = next((j for j in judgements if j.key == request.latency_p95), None)
        return traffic(cut[AVERAGE], cut[MAXIMUM], cut[SAMPLES], cut[REQUESTS], p95), judgements

    whole, judgements = figures(request.start, end)
    days = []
    for n in range(request.days):
        start = request.start + timedelta(days=n)
        load, judged = figures(start, start + timedelta(days=1))
        metrics = [
            MetricDay(
                key=j.key,
                level=j.level,
                average=j.average,
                worst=j.worst,
                breached_minutes=int(j.breached_for.total_seconds() // 60),
            )
            for j in judged
        ]
        days.append(DayFigures(start=start, traffic=load, metrics=metrics))
    return PeriodFigures(
        start=request.start,
        end=end,
        period_seconds=request.period_seconds,
        traffic=whole,
        judgements=judgements,
        days=days,
    )


class FiguresRequest(Strict):
    bucket: str
    region: str
    key: str


class Trend(Strict):
    """One measure this week against the week before: which way and by how much, and whether
    that is better or worse (for latency up is worse, for the cache hit rate down is)."""

    measure: str
    this: float | None
    previous: float | None
    change_pct: float | None
    direction: Literal["up", "down", "flat", "unknown"]
    verdict: Literal["better", "worse", "same", "neutral", "unknown"]


def trend(measure: str, this: float | None, previous: float | None, bad: Literal["above", "below"] | None) -> Trend:
    if this is None or previous is None or previous == 0:
        return Trend(
            measure=measure, this=this, previous=previous, change_pct=None, direction="unknown", verdict="unknown"
        )
    change = (this - previous) / abs(previous) * 100
    direction: Literal["up", "down", "flat"] = (
        "flat" if abs(change) < TREND_FLAT_PCT else "up" if change > 0 else "down"
    )
    verdict: Literal["better", "worse", "same", "neutral"]
    if bad is None:
        verdict = "neutral"
    elif direction == "flat":
        verdict = "same"
    else:
        verdict = "worse" if (direction == "up") == (bad == "above") else "better"
    return Trend(
        measure=measure, this=this, previous=previous, change_pct=round(change, 1), direction=direction, verdict=verdict
    )


def trends(this: PeriodFigures, previous: PeriodFigures) -> list[Trend]:
    """Requests (neither better nor worse), response time, and each judged metric's average."""
    before = {j.key: j for j in previous.judgements}
    found = [
        trend("requests", this.traffic.requests, previous.traffic.requests, None),
        trend("average response time (ms)", this.traffic.average_ms, previous.traffic.average_ms, "above"),
        trend("maximum response time (ms)", this.traffic.maximum_ms, previous.traffic.maximum_ms, "above"),
        trend("P95 response time (ms)", this.traffic.p95_ms, previous.traffic.p95_ms, "above"),
    ]
    for j in this.judgements:
        old = before.get(j.key)
        found.append(trend(f"{j.key} ({j.stat})", j.average, old.average if old else None, j.direction))
    return found


PreviousSource = Literal["review", "metrics"]


class WeekChartRequest(Strict):
    title: str
    bucket: str
    region: str
    key: str
    this: PeriodFigures
    previous: PeriodFigures | None


class WeeklyResult(Strict):
    window: WeekWindow
    level: MetricLevel
    this: PeriodFigures
    previous: PeriodFigures | None
    previous_source: PreviousSource | None
    trends: list[Trend]
    incidents: list[OvernightIncident]
    uri: str | None
    charts: list[str]
    escalated: RaisedAlert | None
    markdown: str


class TrendView(Strict):
    status: TrendStatus
    step: str
    started_by: str
    window: str | None = None
    uri: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)


_ARROW = {"up": "up", "down": "down", "flat": "flat", "unknown": "?"}


def _verdict_line(level: MetricLevel, judgements: list[Judgement], what: str) -> str:
    breached = [j for j in judgements if j.breaches]
    if breached:
        worst = ", ".join(f"{j.key} {j.level} for {format_duration(j.breached_for)}" for j in breached)
        return f"**{level.upper()}**: {worst} over the {what}."
    if level == "no-data":
        return f"**NO DATA**: no datapoints in the {what}."
    return f"**OK**: every service level held all {what}."


def render_week(
    service: str,
    window: WeekWindow,
    this: PeriodFigures,
    previous: PeriodFigures | None,
    source: PreviousSource | None,
    found: list[Trend],
    incidents: list[OvernightIncident],
    charts: list[str],
) -> str:
    """The week: the verdict, the chart, the trends against the week before, each day, what
    breached and for how long, the incidents."""
    lines = [
        f"# Weekly performance review: {service}, week to {window.name}",
        "",
        f"{window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC, "
        f"at {this.period_seconds // 60}-minute datapoints.",
        "",
        _verdict_line(this.level, this.judgements, "week"),
        "",
    ]
    lines += [f"![{chart.rpartition('-')[2].removesuffix('.png')}]({chart.rpartition('/')[2]})" for chart in charts]
    lines += ["", "## Against the week before", ""]
    if previous is None:
        lines.append("No week before to compare with: no review of it stored and no datapoints for it.")
    else:
        said = "its stored review" if source == "review" else "its datapoints (no review of it was stored)"
        lines += [
            f"The week to {previous.end:%Y-%m-%d}, from {said}.",
            "",
            "| measure | this week | week before | change | trend |",
            "|---|---|---|---|---|",
        ]
        for t in found:
            change = "-" if t.change_pct is None else f"{t.change_pct:+.1f} %"
            lines.append(
                f"| {t.measure} | {_number(t.this)} | {_number(t.previous)} | {change} "
                f"| {_ARROW[t.direction]}, {t.verdict} |"
            )
    keys = [j.key for j in this.judgements]
    lines += [
        "",
        "## Each day",
        "",
        "| day | requests | avg ms | max ms | P95 ms | " + " | ".join(keys) + " |",
        "|---|---|---|---|---|" + "---|" * len(keys),
    ]
    for day in this.days:
        cells = [f"{m.level}" + (f" ({m.breached_minutes} min)" if m.breached_minutes else "") for m in day.metrics]
        lines.append(
            f"| {day.start:%a %m-%d} | {day.traffic.requests:,} | {_number(day.traffic.average_ms)} "
            f"| {_number(day.traffic.maximum_ms)} | {_number(day.traffic.p95_ms)} | " + " | ".join(cells) + " |"
        )
    lines += breach_lines(this.judgements, "%a %m-%d %H:%M")
    lines += incident_lines(incidents, "in the week")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the month


class MonthWindow(PeriodWindow):
    """A calendar month, UTC."""

    FOLDER: ClassVar[str] = "monthly"

    @property
    def name(self) -> str:
        return f"{self.start:%Y-%m}"

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def month_window(at: datetime) -> MonthWindow:
    """The last complete calendar month at `at` (a run on the 1st reviews the month before)."""
    end = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (end - timedelta(days=1)).replace(day=1)
    return MonthWindow(start=start, end=end)


class UtilisationQuery(Strict):
    """One utilisation measure read at `period_seconds`: its Average and its Maximum per period."""

    key: str
    average: MetricQuery
    maximum: MetricQuery
    capacity: float | None  # 100 for a percentage; None: no fixed ceiling (concurrency)
    warning: float | None = None
    critical: float | None = None


class UtilisationRequest(Strict):
    region: str
    measures: list[UtilisationQuery]
    requests: MetricQuery  # Sum per period
    latency: MetricQuery  # Average per period: with the requests, the requests in flight
    start: datetime
    days: int = Field(ge=1, le=62)


CONCURRENCY = "concurrency"


class Utilisation(Strict):
    key: str
    capacity: float | None
    peak: float | None  # the highest of the periods' maximum
    p95: float | None  # of the periods' averages
    average: float | None
    daily_peaks: list[float | None]  # one a day, from the window's start: the trend is fitted to them
    level: MetricLevel  # the peak against warning and critical, or the capacity (critical at it)
    warning: float | None = None
    critical: float | None = None


def _daily_peaks(series: Series, start: datetime, days: int) -> list[float | None]:
    """Each day's highest value; a day with under three quarters of its datapoints is left out
    (the first day of the metrics' history, an outage of the metrics): its peak is not the day's."""
    peaks: list[float | None] = []
    enough = 0.75 * 86400 / series.period_seconds
    for n in range(days):
        first = start + timedelta(days=n)
        values = [p.value for p in series.points if first <= p.at < first + timedelta(days=1)]
        peaks.append(max(values) if len(values) >= enough else None)
    return peaks


def utilisation(
    key: str,
    average: Series,
    maximum: Series,
    start: datetime,
    days: int,
    capacity: float | None,
    warning: float | None = None,
    critical: float | None = None,
) -> Utilisation:
    averages = [p.value for p in average.points]
    peak = max((p.value for p in maximum.points), default=None)
    level: MetricLevel = "no-data"
    if peak is not None:
        critical_at = min(v for v in (critical, capacity) if v is not None) if (critical or capacity) else None
        if critical_at is not None and peak >= critical_at:
            level = "critical"
        elif warning is not None and peak > warning:
            level = "warning"
        else:
            level = "ok"
    return Utilisation(
        key=key,
        capacity=capacity,
        peak=peak,
        p95=percentile(averages, 95),
        average=sum(averages) / len(averages) if averages else None,
        daily_peaks=_daily_peaks(maximum, start, days),
        level=level,
        warning=warning,
        critical=critical,
    )


def in_flight(requests: Series, latency: Series) -> Series:
    """Requests in flight per period by Little's law: arrivals a second times seconds each."""
    ms = {p.at: p.value for p in latency.points}
    period = requests.period_seconds
    points = [p.model_copy(update={"value": p.value / period * ms[p.at] / 1000}) for p in requests.points if p.at in ms]
    return Series(key=CONCURRENCY, period_seconds=period, points=points)


class Fit(Strict):
    """A least-squares line through the daily peaks: value = intercept + slope x day."""

    slope_per_day: float
    intercept: float
    days: int  # how many days had data
    projected: float  # at the end of the horizon
    horizon_days: int
    growth_pct_per_month: float | None  # 30 days of slope against the fitted value today


def fit(daily: list[float | None], horizon_days: int) -> Fit | None:
    points = [(float(x), y) for x, y in enumerate(daily) if y is not None]
    if len(points) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx if sxx else 0.0
    intercept = mean_y - slope * mean_x
    today = intercept + slope * (len(daily) - 1)
    return Fit(
        slope_per_day=slope,
        intercept=intercept,
        days=n,
        projected=intercept + slope * (len(daily) - 1 + horizon_days),
        horizon_days=horizon_days,
        growth_pct_per_month=slope * 30 / today * 100 if today > 0 else None,
    )


class ScalingRunSeen(Strict):
    workflow_id: str
    started: datetime
    status: str  # the run's execution status
    runbook_status: str | None = None


class Recommendation(Strict):
    baseline_tasks: int
    maximum_tasks: int
    provisioned_concurrency: int | None
    thresholds: dict[str, float]  # scaling rule name -> its `above`
    reasons: list[str]
    snippet: str  # YAML an operator applies


class CapacityResult(Strict):
    window: MonthWindow
    level: MetricLevel
    measures: list[Utilisation]
    fits: dict[str, Fit]
    desired_count: int
    provisioned_concurrency: int | None
    scaling_runs: list[ScalingRunSeen]
    recommendation: Recommendation
    uri: str | None
    charts: list[str]
    escalated: RaisedAlert | None
    markdown: str


class CapacityChartRequest(Strict):
    title: str
    bucket: str
    region: str
    key: str
    start: datetime
    measures: list[Utilisation]
    fits: dict[str, Fit]


def projected_p95(measure: Utilisation, fitted: Fit | None) -> float | None:
    """The P95 grown by the peaks' fitted growth over the horizon."""
    if measure.p95 is None or measure.peak is None:
        return None
    if fitted is None or measure.peak <= 0:
        return measure.p95
    return measure.p95 * max(fitted.projected, 0) / measure.peak if fitted.projected > measure.peak else measure.p95


def recommend(
    measures: list[Utilisation],
    fits: dict[str, Fit],
    tasks: int,
    target_pct: float,
    step: int,
    rules: dict[str, tuple[str, float, str]],  # measure key -> (rule name, its above, its sustained_for)
    concurrency_step: int | None,
    current_max: int | None = None,
) -> tuple[int, int, int | None, dict[str, float], list[str]]:
    """Tasks for the projected load at `target_pct` of each task's capacity: the baseline for the
    projected P95, the maximum for twice the projected peak (room for a spike); provisioned
    concurrency for the projected peak in flight plus a fifth, in the function's steps; each
    utilisation rule's threshold 10 points above where the projected daily peak sits on the
    baseline (an ordinary busy hour does not scale), never under the target nor within 10 of
    the capacity."""
    tasks = max(tasks, 1)
    baseline, maximum, reasons = 1, 1, []
    peaks: dict[str, tuple[float, float]] = {}  # measure key -> projected peak, capacity
    for m in measures:
        if m.capacity is None or m.peak is None:
            continue
        f = fits.get(m.key)
        peak = max(m.peak, f.projected if f else m.peak)
        p95 = projected_p95(m, f) or 0.0
        need_p95 = math.ceil(tasks * p95 / target_pct)
        need_peak = math.ceil(2 * tasks * peak / target_pct)
        baseline, maximum = max(baseline, need_p95), max(maximum, need_peak)
        peaks[m.key] = (peak, m.capacity)
        reasons.append(
            f"{m.key}: P95 {p95:.1f} and peak {peak:.1f} (of {m.capacity:g}) projected on {tasks} task(s): "
            f"{need_p95} task(s) keep the P95 at {target_pct:g}, {need_peak} twice the peak"
        )
    if not peaks:  # no utilisation read at all: nothing to base a change on
        return (
            tasks,
            current_max or tasks,
            None,
            {},
            ["no utilisation datapoints in the month: keep the policy as it is"],
        )
    maximum = max(maximum, baseline + step)
    thresholds: dict[str, float] = {}
    for key, (peak, capacity) in peaks.items():
        if key in rules:
            on_baseline = tasks * peak / baseline
            thresholds[rules[key][0]] = round(min(max(on_baseline + 10, target_pct), capacity - 10), 1)
    provisioned = None
    concurrency = next((m for m in measures if m.key == CONCURRENCY), None)
    if concurrency_step and concurrency is not None and concurrency.peak is not None:
        f = fits.get(CONCURRENCY)
        peak = max(concurrency.peak, f.projected if f else concurrency.peak)
        provisioned = math.ceil(peak * 1.2 / concurrency_step) * concurrency_step
        reasons.append(f"{CONCURRENCY}: peak {peak:.1f} in flight projected: {provisioned} provisioned (+20 %)")
    return baseline, maximum, provisioned, thresholds, reasons


def render_capacity(
    service: str,
    window: MonthWindow,
    level: MetricLevel,
    measures: list[Utilisation],
    fits: dict[str, Fit],
    desired: int,
    provisioned: int | None,
    runs: list[ScalingRunSeen],
    recommendation: Recommendation,
    charts: list[str],
) -> str:
    lines = [f"# Monthly capacity planning: {service}, {window.name}", ""]
    hot = [m for m in measures if m.level in ("warning", "critical")]
    if hot:
        lines.append(
            f"**{level.upper()}**: " + ", ".join(f"{m.key} peaked at {_number(m.peak)} ({m.level})" for m in hot) + "."
        )
    else:
        lines.append("**OK**: no utilisation reached its warning line." if level == "ok" else "**NO DATA**.")
    lines += ["", *[f"![capacity]({chart.rpartition('/')[2]})" for chart in charts], ""]
    lines += [
        f"Today: {desired} task(s)" + (f", {provisioned} provisioned concurrency." if provisioned is not None else "."),
        "",
        "## Utilisation",
        "",
        "| measure | peak | P95 | average | capacity | level | growth a month | projected peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in measures:
        f = fits.get(m.key)
        growth = "-" if f is None or f.growth_pct_per_month is None else f"{f.growth_pct_per_month:+.1f} %"
        projected = "-" if f is None else f"{_number(f.projected)} in {f.horizon_days}d"
        capacity = "-" if m.capacity is None else f"{m.capacity:g}"
        lines.append(
            f"| {m.key} | {_number(m.peak)} | {_number(m.p95)} | {_number(m.average)} | {capacity} | {m.level} "
            f"| {growth} | {projected} |"
        )
    lines += ["", "## Scaling decisions in the month", ""]
    for run in runs:
        lines.append(
            f"- `{run.workflow_id}` started {run.started:%Y-%m-%d %H:%M} UTC, {run.runbook_status or run.status}"
        )
    if not runs:
        lines.append("None.")
    lines += ["", "## Recommendation", ""]
    lines += [f"- {reason}" for reason in recommendation.reasons]
    lines += [
        "",
        "Apply by editing the policy (and the service's desired count):",
        "",
        "```yaml",
        recommendation.snippet,
        "```",
        "",
    ]
    return "\n".join(lines)


def policy_snippet(
    service: str,
    window: MonthWindow,
    baseline: int,
    maximum: int,
    provisioned: int | None,
    thresholds: dict[str, float],
    rules: list[tuple[str, str, float, str]],  # the policy's scaling rules: name, metric, above, sustained_for
    limits: dict[str, object],  # the service's scaling.limits entry as the policy has it
) -> str:
    """What to change, in the policy's own shape: the `scaling:` rules with the new thresholds and
    the service's limits with the new maximum; the baseline and the provisioned concurrency are
    the service's own settings (its desired count, its alias), given as the commands that set them."""
    lines = [
        f"# capacity planning {window.name} for {service}: merge into the policy's scaling: section",
        "scaling:",
        "  rules:",
    ]
    for name, metric, above, sustained in rules:
        new = thresholds.get(name, above)
        note = f"  # was {above:g}" if new != above else ""
        lines.append(f"    - {{name: {name}, metric: {metric}, above: {new:g}, sustained_for: {sustained}}}{note}")
    merged = {**limits, "ecs_max": maximum}
    if provisioned is not None and "lambda_max" in limits:
        merged["lambda_max"] = max(int(str(limits["lambda_max"])), provisioned)
    fields = ", ".join(f"{key}: {value}" for key, value in merged.items() if value is not None)
    lines += ["  limits:", f"    {service}: {{{fields}}}"]
    lines.append(f"# baseline: {baseline} task(s) (the ECS service's desired count outside scaling)")
    if provisioned is not None:
        lines.append(
            f"# provisioned concurrency: {provisioned} "
            f"on {limits.get('lambda_function')}:{limits.get('lambda_qualifier')}"
        )
    return "\n".join(lines)
