"""The numbers people ask of an incident tool: per severity, how many incidents, how they
ended, the mean time to acknowledge (MTTA) and to resolve (MTTR), from the runs' own records
(the same figures as each post-mortem draft: `contracts.postmortem.IncidentFigures`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from statistics import mean, quantiles

from contracts.common import Severity, Strict, format_duration
from contracts.incident import IncidentStatus, IncidentView
from contracts.postmortem import IncidentFigures


class SeverityStats(Strict):
    severity: str  # P0..P3, or "?" for incidents refused before they were classified
    incidents: int
    open: int
    resolved: int
    escalated: int
    cancelled: int
    acknowledged: int
    mtta: timedelta | None = None  # over the acknowledged ones
    mttr: timedelta | None = None  # over the resolved ones: detected to resolved
    p90_tta: timedelta | None = None
    p90_ttr: timedelta | None = None

    def row(self) -> str:
        def cut(value: timedelta | None) -> str:
            return format_duration(timedelta(seconds=round(value.total_seconds()))) if value is not None else "-"

        times = f"{cut(self.mtta):>8} {cut(self.p90_tta):>8} {cut(self.mttr):>8} {cut(self.p90_ttr):>8}"
        return (
            f"{self.severity:<4} {self.incidents:>9} {self.open:>5} {self.resolved:>9} {self.escalated:>10} "
            f"{self.cancelled:>10} {times}"
        )


HEADER = (
    f"{'SEV':<4} {'INCIDENTS':>9} {'OPEN':>5} {'RESOLVED':>9} {'ESCALATED':>10} {'CANCELLED':>10} "
    f"{'MTTA':>8} {'P90 TTA':>8} {'MTTR':>8} {'P90 TTR':>8}"
)


def _mean(values: list[timedelta]) -> timedelta | None:
    return timedelta(seconds=mean(v.total_seconds() for v in values)) if values else None


def _p90(values: list[timedelta]) -> timedelta | None:
    if len(values) < 2:
        return values[0] if values else None
    return timedelta(seconds=quantiles([v.total_seconds() for v in values], n=10, method="inclusive")[-1])


def incident_stats(views: Iterable[IncidentView]) -> list[SeverityStats]:
    """One row per severity seen (P0 first); refused runs (nothing done, nobody paged) left out."""
    groups: dict[str, list[IncidentView]] = {}
    for view in views:
        if view.status == IncidentStatus.REFUSED:
            continue
        groups.setdefault(view.severity.value if view.severity else "?", []).append(view)
    order = [s.value for s in Severity] + ["?"]
    rows = []
    for severity in sorted(groups, key=order.index):
        group = groups[severity]
        figures = [IncidentFigures.of(view) for view in group]
        tta = [f.time_to_acknowledge for f in figures if f.time_to_acknowledge is not None]
        ttr = [f.time_to_resolve for f in figures if f.time_to_resolve is not None]
        rows.append(
            SeverityStats(
                severity=severity,
                incidents=len(group),
                open=sum(1 for v in group if v.outcome is None),
                resolved=sum(1 for v in group if v.status == IncidentStatus.RESOLVED),
                escalated=sum(1 for v in group if v.status == IncidentStatus.ESCALATED),
                cancelled=sum(1 for v in group if v.status == IncidentStatus.CANCELLED),
                acknowledged=len(tta),
                mtta=_mean(tta),
                mttr=_mean(ttr),
                p90_tta=_p90(tta),
                p90_ttr=_p90(ttr),
            )
        )
    return rows
