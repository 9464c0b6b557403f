"""The post-mortem draft from an incident's own record: the final views of checked-in histories
(real runs of the incident workflow), and views built here for the edges."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts import IncidentView, Severity, TimelineEntry
from contracts.incident import IncidentStatus
from contracts.postmortem import SECTIONS, IncidentFigures, cell, draft_postmortem, span
from contracts.stats import incident_stats

HISTORIES = Path(__file__).parent / "histories" / "incident"


def final_view(name: str) -> IncidentView:
    """The view in a checked-in history's completion event (the run's result)."""
    events = json.loads((HISTORIES / f"{name}.json").read_text())["events"]
    completed = events[-1]["workflowExecutionCompletedEventAttributes"]
    result = json.loads(base64.b64decode(completed["result"]["payloads"][0]["data"]))
    return IncidentView.model_validate(result["view"])


def entry(view: IncidentView, event: str) -> TimelineEntry:
    return next(e for e in view.timeline if e.event == event)


def test_a_resolved_rollback_has_every_figure_from_its_timeline() -> None:
    view = final_view("signed_resolved_by_rollback")
    draft = draft_postmortem(view)
    figures = draft.figures
    assert figures.detected_at == view.opened_at
    assert figures.acknowledged_at == entry(view, "acknowledged").at and figures.acknowledged_by == "alice"
    assert figures.mitigated_at == entry(view, "verified").at
    assert figures.closed_at == entry(view, "closed").at and figures.resolved
    assert figures.time_to_resolve == entry(view, "closed").at - view.opened_at
    assert draft.remediation is not None and draft.remediation.startswith("rollback: changed; now arn:aws:ecs:")
    assert view.diagnosis is not None and draft.diagnosis == view.diagnosis.summary()
    assert draft.people == ["alice", "bob"]  # who acknowledged, who approved; not the alert's sender
    assert draft.undone == []

    markdown = draft.markdown()
    assert markdown.startswith(f"# Post-mortem (draft): {view.id}: ")
    rows = [line for line in markdown.splitlines() if line.startswith("| 20")]
    assert len(rows) == len(view.timeline)  # every timeline entry, in order
    for row, timeline_entry in zip(rows, view.timeline, strict=True):
        assert f"| {timeline_entry.event} | {timeline_entry.actor} |" in row
    for title in SECTIONS:
        assert f"## {title}\n\n_(to be written)_" in markdown
    assert "| resolved | 20" in markdown


@pytest.mark.parametrize(
    ("history", "status", "undone"),
    [
        ("signed_cancelled_and_undone", IncidentStatus.CANCELLED, ["undone: now arn:aws:ecs:"]),
        ("signed_undone_after_failed_verification", IncidentStatus.ESCALATED, ["undone: now arn:aws:ecs:"]),
        ("signed_rejected", IncidentStatus.ESCALATED, []),
    ],
)
def test_an_incident_people_took_over_is_not_resolved(history: str, status: IncidentStatus, undone: list[str]) -> None:
    view = final_view(history)
    assert view.status == status
    draft = draft_postmortem(view)
    assert draft.figures.closed_at == entry(view, "closed").at
    assert not draft.figures.resolved and draft.figures.time_to_resolve is None
    assert draft.figures.mitigated_at is None  # nothing verified: nothing mitigated
    assert [u[: len(p)] for u, p in zip(draft.undone, undone, strict=True)] == undone
    markdown = draft.markdown()
    assert "| resolved | - | - |" in markdown and f"outcome: {cell(view.outcome or '')}" in markdown
    if undone:
        assert "- **Undone:** undone: now arn:aws:ecs:" in markdown


def test_an_unacknowledged_incident_and_text_that_would_break_the_tables() -> None:
    opened = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    view = IncidentView(
        id="INC-20261201-030000-abcd",
        workflow_id="incident/hybrid-router/eu-central-1",
        service="hybrid-router",
        region="eu-central-1",
        severity=None,
        status=IncidentStatus.ESCALATED,
        summary="p95 | latency\nspiked",
        opened_at=opened,
        opened_by="intake/alertmanager",
        alert_count=3,
        acknowledged_by=None,
        pending_approval=None,
        diagnosis=None,
        decision=None,
        remediation=None,
        pagerduty=None,
        outcome="escalated: nobody acknowledged",
        timeline=[
            TimelineEntry(at=opened, step="page", event="paged", detail="a | b\nc"),
            TimelineEntry(at=opened + timedelta(minutes=45), step="escalate", event="closed", detail="x"),
        ],
    )
    draft = draft_postmortem(view)
    assert draft.figures.acknowledged_at is None and draft.figures.time_to_acknowledge is None
    assert draft.severity == "unclassified" and draft.people == []
    markdown = draft.markdown()
    assert "p95 \\| latency spiked" in markdown and "| a \\| b c |" in markdown  # one line, one cell each
    assert "- **Acknowledged:** never." in markdown
    assert "| acknowledged | - | - |" in markdown


def test_durations_read_as_people_write_them() -> None:
    assert span(None) == "-" and span(timedelta(0)) == "0 s"
    assert span(timedelta(seconds=59)) == "59 s"
    assert span(timedelta(minutes=3, seconds=12)) == "3 min 12 s"
    assert span(timedelta(hours=26, minutes=1)) == "26 h 1 min"
    figures = IncidentFigures(detected_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert figures.time_to_mitigate is None and figures.time_to_resolve is None


def test_stats_per_severity_from_the_runs_own_records() -> None:
    """MTTA over the acknowledged, MTTR over the resolved, from real runs' final views; a P1
    copy resolved twice as slowly shows in its own row; refused runs are left out."""
    resolved = final_view("signed_resolved_by_rollback")
    escalated = final_view("signed_rejected")
    slow = resolved.model_copy(
        update={
            "severity": Severity.P1,
            "timeline": [
                e.model_copy(update={"at": resolved.opened_at + (e.at - resolved.opened_at) * 2})
                for e in resolved.timeline
            ],
        }
    )
    refused = resolved.model_copy(update={"status": IncidentStatus.REFUSED})
    rows = {row.severity: row for row in incident_stats([resolved, escalated, slow, refused])}
    assert set(rows) == {"P0", "P1"}
    p0, p1 = rows["P0"], rows["P1"]
    assert (p0.incidents, p0.resolved, p0.escalated, p0.open) == (2, 1, 1, 0)
    ttr = entry(resolved, "closed").at - resolved.opened_at
    assert p0.mttr == ttr and p0.p90_ttr == ttr  # only the resolved one counts
    tta = [entry(v, "acknowledged").at - v.opened_at for v in (resolved, escalated)]
    assert p0.acknowledged == 2 and p0.mtta == (tta[0] + tta[1]) / 2
    assert p1.mttr == ttr * 2 and p1.incidents == 1
    assert p0.row().startswith("P0           2     0         1          1          0 ")
