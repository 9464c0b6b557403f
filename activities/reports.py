"""The reviews' charts: drawn with matplotlib (Agg, no display) and stored as PNG next to the
report in the reports' bucket. A retry draws the same chart and puts the same key again."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from temporalio import activity

from activities._aws import aws_error, client, put_object
from contracts.reviews import ChartRequest, Judgement
from contracts.scaling_rules import Series
from contracts.schedules import StoredReport
from contracts.trend_reviews import CapacityChartRequest, FiguresRequest, PeriodFigures, WeekChartRequest

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas. matplotlib loads on the first chart, not with the worker:
    it is most of a second of every worker's start, and only the reviews draw."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


COLOURS = {"warning": "#f0a202", "critical": "#d1495b"}


def _times(series: Series) -> list[datetime]:
    return [p.at for p in series.points]


def _plot_judged(axes: Axes, series: Series, judgement: Judgement) -> None:
    axes.plot(_times(series), [p.value for p in series.points], color="#2e86ab", linewidth=1.2)  # type: ignore[arg-type]
    for name in ("warning", "critical"):
        bound = getattr(judgement, name)
        if bound is not None:
            axes.axhline(bound, color=COLOURS[name], linestyle="--", linewidth=0.9, label=f"{name} {bound:g}")
    for breach in judgement.breaches:
        axes.axvspan(breach.start, breach.end, color=COLOURS[breach.level], alpha=0.18)  # type: ignore[arg-type]
    axes.set_title(f"{judgement.key} ({judgement.stat}): {judgement.level}", fontsize=9, loc="left")
    if judgement.warning is not None or judgement.critical is not None:
        axes.legend(fontsize=7, loc="upper right")


def chart_png(request: ChartRequest) -> bytes:
    """One PNG: response time and requests on top, then each judged metric with its bounds and
    its breaches shaded (amber warning, red critical)."""
    panels = 2 + len(request.judged)
    # a Figure of its own, not pyplot's global state: charts drawn at once in the activity
    # threads do not share anything
    figure = _figure(10, 2.2 * panels)
    axes = figure.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    top, load = axes[0], axes[1]
    for series, label in zip(request.response_time, ("average", "maximum"), strict=False):
        top.plot(_times(series), [p.value for p in series.points], label=label, linewidth=1.2)
    top.set_title("response time (ms)", fontsize=9, loc="left")
    top.legend(fontsize=7, loc="upper right")
    load.bar(
        _times(request.requests),
        [p.value for p in request.requests.points],
        width=request.requests.period_seconds / 86400,
        color="#6c757d",
    )
    load.set_title("requests per period", fontsize=9, loc="left")
    by_key = {j.key: j for j in request.judgements}
    for panel, series in zip(axes[2:], request.judged, strict=True):
        _plot_judged(panel, series, by_key[series.key])
    axes[-1].set_xlim(request.window.start, request.window.end)
    from matplotlib.dates import DateFormatter

    axes[-1].xaxis.set_major_formatter(DateFormatter("%H:%M"))  # type: ignore[no-untyped-call]
    figure.suptitle(request.title, fontsize=11)
    return _png(figure)


def _png(figure: Figure) -> bytes:
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=90)
    return out.getvalue()


@activity.defn
def chart_review(request: ChartRequest) -> StoredReport:
    """The review's chart at `s3://bucket/key` (PNG)."""
    body = chart_png(request)
    answer = put_object(request.region, request.bucket, request.key, body, "image/png", "the chart")
    return StoredReport(uri=f"s3://{request.bucket}/{request.key}", bytes=len(body), version_id=answer.get("VersionId"))


def _stored(bucket: str, region: str, key: str, figure: Figure, what: str) -> StoredReport:
    body = _png(figure)
    answer = put_object(region, bucket, key, body, "image/png", what)
    return StoredReport(uri=f"s3://{bucket}/{key}", bytes=len(body), version_id=answer.get("VersionId"))


def week_png_figure(request: WeekChartRequest) -> Figure:
    """Each day of the week against the same weekday of the week before: requests, response
    time, then each judged metric's daily average with its warning and critical lines."""
    this, previous = request.this, request.previous
    panels = 2 + len(this.judgements)
    figure = _figure(10, 2.2 * panels)
    axes = figure.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    labels = [f"{day.start:%a %d}" for day in this.days]
    x = list(range(len(this.days)))
    before = previous.days if previous is not None else []
    axes[0].bar(
        [i - 0.2 for i in x], [d.traffic.requests for d in this.days], width=0.4, label="this week", color="#2e86ab"
    )
    if before:
        axes[0].bar(
            [i + 0.2 for i in x[: len(before)]],
            [d.traffic.requests for d in before],
            width=0.4,
            label="week before",
            color="#adb5bd",
        )
    axes[0].set_title("requests a day", fontsize=9, loc="left")
    axes[0].legend(fontsize=7, loc="upper right")
    axes[1].plot(x, [d.traffic.average_ms for d in this.days], marker="o", label="average, this week")
    axes[1].plot(x, [d.traffic.p95_ms for d in this.days], marker="o", label="P95, this week")
    if before:
        axes[1].plot(
            x[: len(before)],
            [d.traffic.average_ms for d in before],
            linestyle="--",
            color="#adb5bd",
            label="average, week before",
        )
    axes[1].set_title("response time (ms)", fontsize=9, loc="left")
    axes[1].legend(fontsize=7, loc="upper right")
    for n, judgement in enumerate(this.judgements):
        panel = axes[2 + n]
        panel.plot(x, [d.metrics[n].average for d in this.days], marker="o", color="#2e86ab", label="this week")
        if before and len(before[0].metrics) > n and before[0].metrics[n].key == judgement.key:
            panel.plot(
                x[: len(before)],
                [d.metrics[n].average for d in before],
                linestyle="--",
                color="#adb5bd",
                label="week before",
            )
        for name in ("warning", "critical"):
            bound = getattr(judgement, name)
            if bound is not None:
                panel.axhline(bound, color=COLOURS[name], linestyle="--", linewidth=0.9, label=f"{name} {bound:g}")
        for i, day in enumerate(this.days):
            level = day.metrics[n].level
            if level in COLOURS:
                panel.axvspan(i - 0.5, i + 0.5, color=COLOURS[level], alpha=0.15)
        panel.set_title(f"{judgement.key} ({judgement.stat}), daily average: {judgement.level}", fontsize=9, loc="left")
        panel.legend(fontsize=7, loc="upper right")
    axes[-1].set_xticks(x, labels)
    figure.suptitle(request.title, fontsize=11)
    return figure


@activity.defn
def chart_week(request: WeekChartRequest) -> StoredReport:
    return _stored(request.bucket, request.region, request.key, week_png_figure(request), "the weekly chart")


def capacity_figure(request: CapacityChartRequest) -> Figure:
    """Each measure's daily peak over the month, its fitted trend carried to the horizon, and
    its capacity and warning lines."""
    from matplotlib.dates import DateFormatter

    figure = _figure(10, 2.4 * len(request.measures))
    axes = figure.subplots(len(request.measures), 1, squeeze=False)[:, 0]
    for panel, measure in zip(axes, request.measures, strict=True):
        days = [request.start + timedelta(days=n) for n in range(len(measure.daily_peaks))]
        panel.plot(days, measure.daily_peaks, marker=".", color="#2e86ab", label="daily peak")
        fitted = request.fits.get(measure.key)
        if fitted is not None:
            last = len(measure.daily_peaks) - 1 + fitted.horizon_days
            ends = [request.start, request.start + timedelta(days=last)]
            panel.plot(ends, [fitted.intercept, fitted.projected], linestyle="--", color="#6c757d", label="trend")
        if measure.capacity is not None:
            panel.axhline(
                measure.capacity, color=COLOURS["critical"], linewidth=0.9, label=f"capacity {measure.capacity:g}"
            )
        if measure.warning is not None:
            panel.axhline(
                measure.warning,
                color=COLOURS["warning"],
                linestyle="--",
                linewidth=0.9,
                label=f"warning {measure.warning:g}",
            )
        panel.set_title(f"{measure.key}: peak {measure.peak or 0:.1f}, {measure.level}", fontsize=9, loc="left")
        panel.legend(fontsize=7, loc="upper left")
        panel.xaxis.set_major_formatter(DateFormatter("%m-%d"))  # type: ignore[no-untyped-call]
    figure.suptitle(request.title, fontsize=11)
    return figure


@activity.defn
def chart_capacity(request: CapacityChartRequest) -> StoredReport:
    return _stored(request.bucket, request.region, request.key, capacity_figure(request), "the capacity chart")


@activity.defn
def read_figures(request: FiguresRequest) -> PeriodFigures | None:
    """A stored review's figures (the JSON next to its report); None when there is none."""
    try:
        answer = client("s3", request.region).get_object(Bucket=request.bucket, Key=request.key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise aws_error(err, f"read s3://{request.bucket}/{request.key}") from err
    except BotoCoreError as err:
        raise aws_error(err, f"read s3://{request.bucket}/{request.key}") from err
    return PeriodFigures.model_validate_json(answer["Body"].read())
