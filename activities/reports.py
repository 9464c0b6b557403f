"""The reviews' charts: drawn with matplotlib (Agg, no display) and stored as PNG next to the
report in the reports' bucket. A retry draws the same chart and puts the same key again."""

from __future__ import annotations

import io
from datetime import datetime

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from temporalio import activity

from activities._aws import put_object
from contracts.reviews import ChartRequest, Judgement
from contracts.scaling_rules import Series
from contracts.schedules import StoredReport

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
    figure = Figure(figsize=(10, 2.2 * panels))
    FigureCanvasAgg(figure)
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
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))  # type: ignore[no-untyped-call]
    figure.suptitle(request.title, fontsize=11)
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
