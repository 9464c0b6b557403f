"""The post-mortem draft, built from an incident's own record (its final view), not typed again.

Pure and deterministic, so the post-incident runbook can build it inside a workflow and the CLI
can print it: the figures users ask for (time to acknowledge, to mitigate, to resolve), what the
runbook saw and did (detection, diagnosis, the remediation, its verification, what was undone),
every timeline entry with who and when, and the blameless sections people fill in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field

from contracts.common import Strict, TimelineEntry
from contracts.incident import IncidentStatus, IncidentView

# The blameless sections, in the order the draft shows them; people write them, the runbook never does.
SECTIONS = ("Summary", "Impact", "Contributing factors", "What went well", "What went badly", "Lessons")
ACKNOWLEDGED = "acknowledged"  # a person's acknowledgement (the CLI, the page, or PagerDuty's webhook)
REMEDIATED = ("remediated",)
VERIFIED = "verified"
UNDONE = ("undone", "undo failed", "nothing to undo")
CLOSED = "closed"


class IncidentFigures(Strict):
    """When the incident was detected, acknowledged, mitigated (its remediation verified) and
    resolved, from its timeline; a stage it never reached is None."""

    detected_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    mitigated_at: datetime | None = None
    closed_at: datetime | None = None
    resolved: bool = False  # closed as resolved (not escalated to people, not cancelled)

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        return self.acknowledged_at - self.detected_at if self.acknowledged_at else None

    @property
    def time_to_mitigate(self) -> timedelta | None:
        return self.mitigated_at - self.detected_at if self.mitigated_at else None

    @property
    def time_to_resolve(self) -> timedelta | None:
        return self.closed_at - self.detected_at if self.closed_at and self.resolved else None

    @classmethod
    def of(cls, view: IncidentView) -> IncidentFigures:
        def first(*events: str) -> TimelineEntry | None:
            return next((entry for entry in view.timeline if entry.event in events), None)

        acknowledged, verified, closed = first(ACKNOWLEDGED), first(VERIFIED), first(CLOSED)
        return cls(
            detected_at=view.opened_at,
            acknowledged_at=acknowledged.at if acknowledged else None,
            acknowledged_by=acknowledged.actor if acknowledged else None,
            mitigated_at=verified.at if verified else None,
            closed_at=closed.at if closed else None,
            resolved=view.status == IncidentStatus.RESOLVED,
        )


class PostmortemDraft(Strict):
    incident_id: str
    workflow_id: str
    service: str
    region: str
    severity: str
    summary: str
    outcome: str
    opened_by: str
    alert_count: int
    figures: IncidentFigures
    diagnosis: str | None = None
    remediation: str | None = None
    verification: str | None = None
    undone: list[str] = Field(default_factory=list)
    pagerduty: str | None = None
    people: list[str] = Field(default_factory=list)  # everyone who acted, in order of first action
    timeline: list[TimelineEntry] = Field(default_factory=list)
    sections: dict[str, str] = Field(default_factory=lambda: dict.fromkeys(SECTIONS, ""))

    def markdown(self) -> str:
        figures = self.figures
        lines = [
            f"# Post-mortem (draft): {self.incident_id}: {cell(self.summary)}",
            "",
            f"{self.severity} · {self.service} in {self.region} · outcome: {cell(self.outcome)}",
            f"Workflow `{self.workflow_id}`"
            + (f" · PagerDuty {self.pagerduty}" if self.pagerduty else "")
            + " · blameless: it describes what happened and what the system allowed, not who is at fault.",
            "",
            "## Figures",
            "",
            "| stage | at (UTC) | after detection |",
            "|---|---|---|",
            f"| detected | {clock(figures.detected_at)} | 0 s |",
            f"| acknowledged | {clock(figures.acknowledged_at)} | {span(figures.time_to_acknowledge)} |",
            f"| mitigated (remediation verified) | {clock(figures.mitigated_at)} | {span(figures.time_to_mitigate)} |",
            f"| resolved | {clock(figures.closed_at if figures.resolved else None)} "
            f"| {span(figures.time_to_resolve)} |",
            "",
            "## What the runbook saw and did",
            "",
            f"- **Detection:** opened by {cell(self.opened_by)} at {clock(figures.detected_at)} UTC, "
            f"{self.alert_count} alert(s).",
            f"- **Acknowledged:** {cell(figures.acknowledged_by) if figures.acknowledged_by else 'never'}.",
            f"- **Diagnosis:** {cell(self.diagnosis) if self.diagnosis else 'none recorded'}.",
            f"- **Remediation:** {cell(self.remediation) if self.remediation else 'none'}.",
            f"- **Verification:** {cell(self.verification) if self.verification else 'none'}.",
        ]
        if self.undone:
            lines.append(f"- **Undone:** {'; '.join(cell(u) for u in self.undone)}.")
        lines.append(f"- **People involved:** {', '.join(self.people) if self.people else 'nobody'}.")
        lines += ["", "## Timeline", "", "| UTC | step | event | who | detail |", "|---|---|---|---|---|"]
        lines += [
            f"| {entry.at:%Y-%m-%d %H:%M:%S} | {cell(entry.step)} | {cell(entry.event)} | {cell(entry.actor)} "
            f"| {cell(entry.detail)} |"
            for entry in self.timeline
        ]
        for title, text in self.sections.items():
            lines += ["", f"## {title}", "", text or "_(to be written)_"]
        return "\n".join(lines) + "\n"


def draft_postmortem(view: IncidentView) -> PostmortemDraft:
    """The draft of a closed (or still running) incident, from its view alone."""
    figures = IncidentFigures.of(view)
    verified = next((entry for entry in view.timeline if entry.event == VERIFIED), None)
    remediation = None
    if view.remediation is not None:
        done = "changed" if view.remediation.changed else "found already done"
        remediation = f"{view.remediation.action}: {done}; {view.remediation.detail}"
    people: list[str] = []
    for entry in view.timeline:  # the classification's actor is the alert's sender, not a person
        if entry.actor != "runbook" and entry.event != "classified" and entry.actor not in people:
            people.append(entry.actor)
    pagerduty = None
    if view.pagerduty is not None:
        pagerduty = view.pagerduty.html_url or view.pagerduty.incident_id or view.pagerduty.dedup_key
    return PostmortemDraft(
        incident_id=view.id,
        workflow_id=view.workflow_id,
        service=view.service,
        region=view.region,
        severity=view.severity.value if view.severity else "unclassified",
        summary=view.summary,
        outcome=view.outcome or view.status.value,
        opened_by=view.opened_by,
        alert_count=view.alert_count,
        figures=figures,
        diagnosis=view.diagnosis.summary() if view.diagnosis else None,
        remediation=remediation,
        verification=f"{verified.at:%H:%M:%S} UTC: {verified.detail}" if verified else None,
        undone=[f"{entry.event}: {entry.detail}".rstrip(": ") for entry in view.timeline if entry.event in UNDONE],
        pagerduty=pagerduty,
        people=people,
        timeline=list(view.timeline),
    )


def cell(text: str) -> str:
    """Text that stays inside one markdown table cell or list item."""
    return " ".join(text.replace("|", "\\|").split())


def clock(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}" if at is not None else "-"


def span(duration: timedelta | None) -> str:
    if duration is None:
        return "-"
    seconds = int(duration.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "", f"{seconds} s" if seconds else ""]
    return " ".join(p for p in parts if p) or "0 s"
