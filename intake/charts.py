"""Small charts drawn on the server as inline SVG: a metric's recent datapoints with its
service-level lines (warning amber, critical red, target grey). No JavaScript, no image
request (the page's content security policy allows none it does not need), and it scales to
the phone's width through its viewBox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

WIDTH, HEIGHT = 320, 120
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 20
COLOURS = {"target": "#6c757d", "warning": "#c77c00", "critical": "#c0392b", "series": "#1f6fa8"}


@dataclass(frozen=True)
class Line:
    name: str  # target, warning, critical
    value: float


def _label(value: float) -> str:
    return f"{value:.4g}"


def metric_chart(
    key: str,
    points: Sequence[tuple[datetime, float]],
    lines: Sequence[Line],
    marks: Sequence[tuple[datetime, str]] = (),
) -> Markup:
    """One metric's datapoints (oldest first) and its threshold lines, as an <svg> element.
    The y axis takes in both the data and every line, so a threshold is drawn even when the
    readings are far from it. `marks`: what a runbook changed, and when, as vertical lines
    where they fall within the datapoints' span."""
    values = [value for _, value in points] + [line.value for line in lines]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 1, high + 1
    pad = (high - low) * 0.08
    low, high = low - pad, high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def y(value: float) -> float:
        return TOP + plot_h * (1 - (value - low) / (high - low))

    parts = [
        f'<svg class="chart" data-metric="{escape(key)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(key)}: {len(points)} datapoints" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(key)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ddd"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 8}" font-size="9" text-anchor="end">{_label(high - pad)}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" font-size="9" text-anchor="end">{_label(low + pad)}</text>',
    ]
    for line in lines:
        at = y(line.value)
        colour = COLOURS.get(line.name, "#333")
        parts.append(
            f'<line class="threshold {escape(line.name)}" data-value="{line.value:g}" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
            f'y1="{at:.1f}" y2="{at:.1f}" stroke="{colour}" stroke-dasharray="4 3" stroke-width="1"/>'
            f'<text x="{WIDTH - RIGHT - 2}" y="{at - 2:.1f}" font-size="8" text-anchor="end" fill="{colour}">'
            f"{escape(line.name)} {_label(line.value)}</text>"
        )
    if points:
        start, end = points[0][0], points[-1][0]
        span = (end - start).total_seconds() or 1.0

        def x(at: datetime) -> float:
            return LEFT + plot_w * ((at - start).total_seconds() / span if len(points) > 1 else 0.5)

        coords = " ".join(f"{x(at):.1f},{y(value):.1f}" for at, value in points)
        parts.append(
            f'<polyline class="series" points="{coords}" fill="none" stroke="{COLOURS["series"]}" stroke-width="1.5"/>'
        )
        for moment, label in marks:
            if start <= moment <= end:
                parts.append(
                    f'<line class="change" x1="{x(moment):.1f}" x2="{x(moment):.1f}" y1="{TOP}" y2="{TOP + plot_h}" '
                    f'stroke="#6a1b9a" stroke-width="1.5"><title>{escape(label)}</title></line>'
                )
        parts.append(
            f'<text x="{LEFT}" y="{HEIGHT - 6}" font-size="9">{start:%H:%M}</text>'
            f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" font-size="9" text-anchor="end">{end:%H:%M} UTC</text>'
        )
    else:
        parts.append(
            f'<text class="no-data" x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" font-size="10" '
            'text-anchor="middle">no datapoints</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
