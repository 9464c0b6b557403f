"""The routine runs the policy declares (`schedules:`), kept as Temporal Schedules by
`runbook schedules apply`, and the first of them: the weekly digest of the follow-ups' action
items (`runbooks/followup-digest.md`)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from contracts.common import Duration, Strict, TimelineEntry
from contracts.maintenance import MaintenanceSpec

# runbook name in the policy -> the workflow type a schedule starts
SCHEDULED_RUNBOOKS: dict[str, str] = {
    "followup-digest": "FollowupDigestWorkflow",
    "maintenance": "MaintenanceWindowWorkflow",
    "performance-review": "PerformanceReviewWorkflow",
    "schedule-watchdog": "ScheduleWatchdogWorkflow",
    "weekly-review": "WeeklyReviewWorkflow",
    "capacity-review": "CapacityReviewWorkflow",
}
SCHEDULE_PREFIX = "runbook-"  # the Schedules `apply` manages; others on the server are left alone
MANAGED_BY = "temporal-runbooks"
Overlap = Literal["skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"]

_CRON_FIELD = re.compile(r"[0-9A-Za-z*?,/\-]+")


class ScheduleSpec(Strict):
    """One routine run: which runbook, when (a five-field cron line, UTC), and how Temporal
    treats a run still going (`overlap`) or missed while the server was away (`catchup_window`:
    short, not Temporal's default of a year, so a long outage does not start a flood of old runs)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    runbook: str
    cron: str
    overlap: Overlap = "skip"
    catchup_window: Duration = timedelta(hours=1)
    jitter: Duration = timedelta(0)
    paused: bool = False
    note: str = ""
    maintenance: MaintenanceSpec | None = None  # runbook maintenance: what each window does

    @model_validator(mode="after")
    def _maintenance_says_what(self) -> ScheduleSpec:
        if (self.runbook == "maintenance") != (self.maintenance is not None):
            raise ValueError("maintenance: required with runbook maintenance (what the window does), else not allowed")
        return self

    @field_validator("runbook")
    @classmethod
    def _known_runbook(cls, value: str) -> str:
        if value not in SCHEDULED_RUNBOOKS:
            raise ValueError(f"unknown runbook {value!r}: one of {', '.join(sorted(SCHEDULED_RUNBOOKS))}")
        return value

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
            raise ValueError(f"{value!r} is not a cron line of five fields (minute hour day month weekday), in UTC")
        return " ".join(fields)

    @field_validator("jitter")
    @classmethod
    def _no_jitter_yet(cls, value: timedelta) -> timedelta:
        if value != timedelta(0):
            # the watchdog finds a run by the nominal time in its id; a jittered start time
            # would read as a missed run
            raise ValueError("jitter: only 0s for now (the schedule watchdog matches runs by their nominal time)")
        return value

    @field_validator("catchup_window")
    @classmethod
    def _catchup_at_least_a_minute(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("catchup_window: at least 1m (Temporal's minimum)")
        return value

    @property
    def schedule_id(self) -> str:
        return f"{SCHEDULE_PREFIX}{self.name}"

    @property
    def workflow_type(self) -> str:
        return SCHEDULED_RUNBOOKS[self.runbook]

    def fingerprint(self, task_queue: str, start_input: object = None) -> str:
        """What `apply` compares: the same declaration, on the same queue, starting its runs
        with the same input (the code that makes it may change) changes nothing."""
        declared = {**self.model_dump(mode="json"), "task_queue": task_queue, "input": start_input}
        return hashlib.sha256(json.dumps(declared, sort_keys=True).encode()).hexdigest()[:16]


class ScheduleChange(Strict):
    name: str
    change: Literal["created", "updated", "removed", "unchanged"]
    detail: str = ""


# --------------------------------------------------------------------------- the digest


class DigestInput(Strict):
    started_by: str = "schedule"  # the schedule's name, or who triggered it


class DigestItem(Strict):
    incident_id: str
    item_id: str
    text: str
    owner: str
    due: datetime
    overdue: bool


class OpenItems(Strict):
    """What the running follow-ups say: their open items, and the runs that did not answer."""

    items: list[DigestItem]
    unread: list[str] = Field(default_factory=list)


class StoreReport(Strict):
    bucket: str
    region: str
    key: str
    body: str
    content_type: str = "text/markdown; charset=utf-8"


class StoredReport(Strict):
    uri: str
    bytes: int
    version_id: str | None = None


class OwnerCount(Strict):
    open: int
    overdue: int


DigestStatus = Literal["collecting", "storing", "done"]


class DigestView(Strict):
    status: DigestStatus
    step: str
    started_by: str
    items: list[DigestItem] = Field(default_factory=list)
    uri: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)


class DigestResult(Strict):
    at: datetime
    open: int
    overdue: int
    owners: dict[str, OwnerCount]
    uri: str | None  # None: no bucket configured (no postincident section): the digest is only this result
    unread: list[str]  # follow-up runs that could not be read: named in the digest, not silently left out
    markdown: str


def digest_key(at: datetime) -> str:
    return f"digests/action-items-{at:%Y-%m-%d}.md"


def owners_of(items: list[DigestItem]) -> dict[str, OwnerCount]:
    counts: dict[str, OwnerCount] = {}
    for item in items:
        now = counts.get(item.owner, OwnerCount(open=0, overdue=0))
        counts[item.owner] = OwnerCount(open=now.open + 1, overdue=now.overdue + int(item.overdue))
    return dict(sorted(counts.items()))


def render_digest(items: list[DigestItem], at: datetime, unread: list[str] | None = None) -> str:
    """Markdown, one section per owner (most overdue first), overdue items first in each."""
    lines = [f"# Open action items, {at:%Y-%m-%d %H:%M} UTC", ""]
    if unread:
        lines += [f"Not read (their items are missing here): {', '.join(unread)}.", ""]
    if not items:
        return "\n".join([*lines, "No open action items.", ""])
    overdue = sum(item.overdue for item in items)
    lines += [f"{len(items)} open, {overdue} overdue, across {len({i.incident_id for i in items})} incident(s).", ""]
    counts = owners_of(items)
    for owner in sorted(counts, key=lambda o: (-counts[o].overdue, -counts[o].open, o)):
        lines += [f"## {owner}: {counts[owner].open} open, {counts[owner].overdue} overdue", ""]
        mine = sorted((i for i in items if i.owner == owner), key=lambda i: (not i.overdue, i.due, i.incident_id))
        for item in mine:
            state = "**OVERDUE**" if item.overdue else "open"
            lines.append(f"- {state} {item.incident_id} {item.item_id}: {item.text} (due {item.due:%Y-%m-%d})")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the watchdog


class WatchdogInput(Strict):
    """`look_back`: the nominal times checked, up to `grace` ago (a run due a moment ago may
    still be starting); the watchdog's own cadence should be about `look_back`, so each time is
    checked once. A missed run pages at `severity` (P2: PagerDuty's warning)."""

    started_by: str = "schedule"
    look_back: Duration = timedelta(hours=1)
    grace: Duration = timedelta(minutes=10)
    severity: Literal["critical", "error", "warning", "info"] = "warning"


class ScheduleCheck(Strict):
    look_back: Duration
    grace: Duration


class MissedRun(Strict):
    schedule: str
    nominal: datetime
    problem: Literal["missing", "failed"]
    workflow_id: str
    detail: str

    @property
    def dedup_key(self) -> str:
        return f"schedule/{self.schedule}#{self.nominal:%Y-%m-%dT%H:%M:%SZ}"

    def summary(self) -> str:
        when = f"{self.nominal:%Y-%m-%d %H:%M} UTC"
        return f"[schedule] {self.schedule}: the run due {when} is {self.problem} ({self.detail})"


class ScheduleReport(Strict):
    checked: list[str]  # the schedules looked at (paused ones are not: they start nothing by design)
    missed: list[MissedRun]


class WatchdogResult(Strict):
    checked: list[str]
    missed: list[MissedRun]
    paged: list[str]  # the dedup keys paged (one per missed run; PagerDuty keeps them unique)


def scheduled_workflow_id(base: str, nominal: datetime) -> str:
    """The id Temporal gives the run a Schedule starts: its action's id and the nominal time."""
    return f"{base}-{nominal:%Y-%m-%dT%H:%M:%SZ}"
