"""What the operations console shows, read from Temporal and the runbooks' own views; no HTML here
(the templates in intake/templates/ draw it, intake/ui.py serves it).

Runs are found by visibility, whatever their workflow type, so a new runbook appears without a
change here: its steps come from its human runbook (`runbooks/*.md`, the line "Encoded by ...
(`XxxWorkflow`)" and its "## Step `id`: title" headings, which tests/test_runbook_drift.py keeps
equal to the workflow's), and everything else from the fields every runbook's `view` has
(status, opened_at, pending_approval, timeline, ...) and the ones some add (severity, service,
diagnosis, pagerduty, the follow-up's due dates and action items).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from markupsafe import Markup
from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from contracts import Policy, RemediationPlan
from contracts.common import Severity
from contracts.policy import MetricQuery
from contracts.views import LABELS, shown
from intake.charts import Line, metric_chart
from settings import PROJECT_ROOT
from signing import Signer
from starter import runbook_status

T = TypeVar("T")
VIEW_TIMEOUT = timedelta(seconds=3)  # a run whose worker is away must not hold the page up
OPEN_LIMIT = 200
VIEW_QUERIES = 20  # view queries in flight at once for one page (each is a workflow task on a worker)
PAGE_SIZE = 25
SCAN_PAGES = 8  # a service or severity filter reads at most this many pages of closed runs a page
SERVICE_LIMIT = 100
# An approval this close to its timeout (a share of the policy's approval_timeout) is a problem.
ABOUT_TO_TIME_OUT = 1 / 3


# --------------------------------------------------------------------------- the human runbooks


@dataclass(frozen=True)
class Step:
    id: str
    title: str


@dataclass(frozen=True)
class RunbookDoc:
    workflow_type: str
    title: str
    path: str
    steps: tuple[Step, ...]


ENCODED_BY = re.compile(r"Encoded by `[^`]+` \(`(\w+)`\)")
STEP = re.compile(r"^## Step `([a-z_-]+)`:?\s*(.*)$", re.MULTILINE)


@cache
def runbook_docs(directory: Path | None = None) -> dict[str, RunbookDoc]:
    """Every human runbook by the workflow type it documents, from RUNBOOK_DOCS (the image sets
    it) or the source tree's runbooks/. Without them a run's steps are those its timeline names."""
    directory = directory or Path(os.environ.get("RUNBOOK_DOCS") or PROJECT_ROOT / "runbooks")
    docs: dict[str, RunbookDoc] = {}
    for path in sorted(directory.glob("*.md")) if directory.is_dir() else []:
        text = path.read_text()
        encoded = ENCODED_BY.search(text)
        if encoded is None:
            continue
        title = text.splitlines()[0].lstrip("# ").strip() if text else path.stem
        steps = tuple(Step(step_id, heading.strip()) for step_id, heading in STEP.findall(text))
        docs[encoded.group(1)] = RunbookDoc(encoded.group(1), title, f"runbooks/{path.name}", steps)
    return docs


def runbook_label(workflow_type: str) -> str:
    """A short name: the CLI's, else the type without its `Workflow`."""
    known = {**LABELS, "IncidentResponseWorkflow": "incident"}
    return known.get(workflow_type) or re.sub(r"Workflow$", "", workflow_type) or workflow_type


# --------------------------------------------------------------------------- one run


ProblemKind = Literal[
    "page-failed", "approval-timing-out", "postmortem-overdue", "review-overdue", "items-overdue", "no-view"
]


@dataclass
class Problem:
    kind: ProblemKind
    text: str


@dataclass
class StepState:
    id: str
    title: str
    state: Literal["done", "current", "next"]


@dataclass
class Run:
    """One run as the console shows it, from its visibility record and (when it answered) its view."""

    workflow_id: str
    workflow_type: str
    status: str
    open: bool
    started: datetime | None
    closed: datetime | None
    severity: str = ""
    service: str = ""
    summary: str = ""
    holder: str = ""  # who holds it: the acknowledger, the commander, whoever opened it
    waits_on: str = ""  # what it waits for, and on whom
    outcome: str = ""
    proposed: str | None = None  # the plan awaiting approval
    problems: list[Problem] = field(default_factory=list)
    view: dict[str, Any] | None = None
    # Which run of the workflow id: ids are reused per target (incident/{service}/{region}, ...),
    # so a link without it would open whichever run is newest.
    run_id: str = ""

    @property
    def runbook(self) -> str:
        return runbook_label(self.workflow_type)

    def age(self, now: datetime) -> str:
        return ago(now - self.started) if self.started else "-"


def ago(span: timedelta) -> str:
    seconds = max(int(span.total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def timeline_of(view: Mapping[str, Any]) -> list[dict[str, Any]]:
    entries = view.get("timeline")
    return [entry for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []


def steps_of(workflow_type: str, view: Mapping[str, Any], open_: bool) -> list[StepState]:
    """The human runbook's steps, each done, current (the one the run is in) or next. A run's
    timeline names the step of every entry; steps it never entered that come before one it did
    were skipped by the runbook's own decision and count as done."""
    doc = runbook_docs().get(workflow_type)
    entered = [str(entry.get("step", "")) for entry in timeline_of(view)]
    ids = [step.id for step in doc.steps] if doc else list(dict.fromkeys(step for step in entered if step))
    titles = {step.id: step.title for step in doc.steps} if doc else {}
    current = next((step for step in reversed(entered) if step in ids), None)
    last = ids.index(current) if current is not None else -1
    states: list[StepState] = []
    for index, step_id in enumerate(ids):
        state: Literal["done", "current", "next"] = "done" if index < last else "next"
        if index == last:
            state = "current" if open_ else "done"
        states.append(StepState(step_id, titles.get(step_id, ""), state))
    return states


def problems_of(view: Mapping[str, Any], policy: Policy, now: datetime) -> list[Problem]:
    """What should not wait for someone to open the run: a page nobody received, an approval
    about to time out, a post-mortem or review past its due date, overdue action items."""
    found: list[Problem] = []
    timeline = timeline_of(view)
    paging = [t for t in timeline if str(t.get("event", "")) in ("paged", "page failed")]
    if view.get("status") == "unpaged" or (paging and paging[-1].get("event") == "page failed"):
        detail = next((str(t.get("detail", "")) for t in reversed(paging) if t.get("event") == "page failed"), "")
        found.append(Problem("page-failed", f"the page to PagerDuty failed: {detail or 'nobody was paged'}"))
    plan = view.get("pending_approval")
    if isinstance(plan, dict):
        plan_id = str(plan.get("plan_id", ""))
        asked = [
            when(t.get("at"))
            for t in timeline
            if plan_id
            and names(str(t.get("detail", "")), plan_id)
            and t.get("event") in ("proposed", "awaiting approval")
        ]
        since = next((at for at in reversed(asked) if at is not None), None)
        timeout = policy.timers.approval_timeout
        if since is not None:
            left = since + timeout - now
            if left <= timeout * ABOUT_TO_TIME_OUT:
                found.append(Problem("approval-timing-out", f"approval of {plan_id} times out in {ago(left)}"))
    due_now = when(view.get("now")) or now
    dues: list[tuple[str, str, str, ProblemKind]] = [
        ("postmortem_due", "completed_by", "post-mortem", "postmortem-overdue"),
        ("review_due", "reviewed_by", "review", "review-overdue"),
    ]
    for key, done_key, label, kind in dues:
        due = when(view.get(key))
        if due is not None and not view.get(done_key) and due_now >= due and view.get("status") != "cancelled":
            found.append(Problem(kind, f"the {label} was due {due:%Y-%m-%d %H:%M} UTC"))
    items = view.get("items")
    overdue = [
        item
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict) and item.get("status") == "open" and (when(item.get("due")) or due_now) < due_now
    ]
    if overdue:
        owners = ", ".join(sorted({str(item.get("owner")) for item in overdue}))
        found.append(Problem("items-overdue", f"{len(overdue)} action item(s) overdue ({owners})"))
    return found


def names(detail: str, plan_id: str) -> bool:
    """Whether a timeline entry's detail names the plan (a word of it, `p-1:` included), never a
    plan whose id merely contains this one (`p-1` in `p-12`)."""
    return plan_id in (word.strip(":,;()") for word in detail.split())


def waits_on(view: Mapping[str, Any], policy: Policy) -> str:
    """What the run waits for, and on whom, from its status and its pending plan or items."""
    status = str(view.get("status", ""))
    if status in ("awaiting_ack", "unpaged"):
        return "acknowledgement: " + (", ".join(sorted(set(policy.responders) | set(policy.approvers))) or "on-call")
    if isinstance(view.get("pending_approval"), dict):
        return "approval: " + (", ".join(sorted(policy.approvers)) or "an approver")
    if view.get("review_due") and not view.get("reviewed_by"):
        return f"review: {view.get('commander') or 'the commander'}"
    items = view.get("items")
    open_items = [
        i for i in (items if isinstance(items, list) else []) if isinstance(i, dict) and i.get("status") == "open"
    ]
    if open_items:
        return "action items: " + ", ".join(f"{i.get('owner')} ({i.get('item_id')})" for i in open_items[:5])
    if view.get("postmortem_due") and not view.get("completed_by"):
        return f"post-mortem: {view.get('commander') or 'the commander'}"
    return ""


def approvals_needed(plan: Mapping[str, Any], policy: Policy) -> str:
    """Who may approve the plan, and how many, by the policy's rule for its action's risk (when
    the plan names its action); else any of the approvers."""
    action = str(plan.get("action_name") or plan.get("action") or "")
    known = policy.approvals.risk if policy.approvals else {}
    if action not in known:
        return "approval by " + (", ".join(sorted(policy.approvers)) or "an approver (policy)")
    rule = policy.rule_for(action)
    people = ", ".join(sorted(policy.members(rule))) or "nobody (the policy names no one)"
    eyes = ", four eyes" if rule.four_eyes else ""
    return f"{rule.required} approval(s) from {people} ({policy.risk_of(action).value} risk{eyes})"


def summary_of(workflow_type: str, view: Mapping[str, Any]) -> str:
    if view.get("summary"):
        return str(view["summary"])
    typed = shown(workflow_type, dict(view))
    if typed is not None and typed.facts:
        return "; ".join(f"{label} {text}" for label, text in typed.facts[:2])
    return ""


def run_from(execution: WorkflowExecution, memo: Mapping[str, Any], view: dict[str, Any] | None, policy: Policy) -> Run:
    now = datetime.now(UTC)
    open_ = execution.status == WorkflowExecutionStatus.RUNNING
    status = str((view or {}).get("status") or runbook_status(memo, execution) or execution_status(execution))
    run = Run(
        workflow_id=execution.id,
        workflow_type=execution.workflow_type,
        status=status,
        open=open_,
        started=execution.start_time,
        closed=execution.close_time,
        severity=str(memo.get("severity") or ""),
        service=str(memo.get("service") or memo.get("region") or ""),
        summary=str(memo.get("summary") or ""),
        outcome=str(memo.get("outcome") or ("" if open_ else execution_status(execution))),
        view=view,
        run_id=execution.run_id or "",
    )
    if view is None:
        return run
    run.severity = str(view.get("severity") or run.severity)
    run.service = str(view.get("service") or view.get("region") or run.service)
    run.summary = summary_of(execution.workflow_type, view) or run.summary
    run.holder = str(view.get("acknowledged_by") or view.get("commander") or view.get("opened_by") or "")
    run.outcome = str(view.get("outcome") or run.outcome)
    if open_:
        run.waits_on = waits_on(view, policy)
        run.problems = problems_of(view, policy, now)
    plan = view.get("pending_approval")
    if isinstance(plan, dict):
        typed = shown(execution.workflow_type, view)
        run.proposed = (typed.proposed if typed is not None else None) or describe_plan(plan)
    return run


def plan_fields(plan: Mapping[str, Any]) -> dict[str, Any]:
    nested = plan.get("fields")
    fields: Mapping[str, Any] = nested if isinstance(nested, dict) else plan
    return {key: value for key, value in fields.items() if key != "plan_id" and value is not None}


def describe_plan(plan: Mapping[str, Any]) -> str:
    try:
        return RemediationPlan.model_validate(plan).describe()
    except ValidationError:
        return ", ".join(f"{key}={value}" for key, value in plan_fields(plan).items())


def execution_status(execution: WorkflowExecution) -> str:
    return execution.status.name.lower() if execution.status else "unknown"


async def view_of(client: Client, workflow_id: str, run_id: str | None = None) -> dict[str, Any] | None:
    """The run's `view` query (every runbook has it) as plain data; None when no worker answers
    in time, the run has no view, or it is not an object."""
    try:
        view = await client.get_workflow_handle(workflow_id, run_id=run_id).query(
            "view", result_type=dict, rpc_timeout=VIEW_TIMEOUT
        )
    except (RPCError, WorkflowQueryFailedError, ValueError):
        return None
    return view if isinstance(view, dict) else None


async def open_runs(client: Client, policy: Policy) -> tuple[list[Run], bool]:
    """Every open run of every runbook (at most OPEN_LIMIT: the second value says whether more
    are open), problems first, then by severity and age. A run whose view did not answer is a
    problem: nobody can see what it waits for."""
    executions = [e async for e in client.list_workflows("ExecutionStatus = 'Running'", limit=OPEN_LIMIT + 1)]
    cut = len(executions) > OPEN_LIMIT
    executions = executions[:OPEN_LIMIT]
    memos = await asyncio.gather(*(e.memo() for e in executions))
    asking = asyncio.Semaphore(VIEW_QUERIES)

    async def view(execution: WorkflowExecution) -> dict[str, Any] | None:
        async with asking:
            return await view_of(client, execution.id, execution.run_id)

    views = await asyncio.gather(*(view(e) for e in executions))
    runs = [run_from(e, m, v, policy) for e, m, v in zip(executions, memos, views, strict=True)]
    for run in runs:
        if run.view is None:
            run.problems.append(Problem("no-view", "no view: its worker did not answer in time (worker away?)"))
    return sorted(runs, key=lambda r: (not r.problems, r.severity or "P9", -(r.started or NEVER).timestamp())), cut


NEVER = datetime(1970, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- history


class BadParameter(ValueError):
    """A query parameter the console cannot use: a 400 page naming it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


NAME = re.compile(r"[A-Za-z0-9][\w.-]{0,99}")
OUTCOMES = {
    "completed": "Completed",
    "failed": "Failed",
    "cancelled": "Canceled",
    "terminated": "Terminated",
    "timed_out": "TimedOut",
    "continued": "ContinuedAsNew",
}
RELATIVE = re.compile(r"(\d{1,4})([hd])")
DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class HistoryFilter:
    runbook: str = ""  # a workflow type, or a runbook's short name
    service: str = ""
    severity: str = ""
    outcome: str = ""
    since: str = ""  # 24h, 7d, or an ISO date/time (UTC)
    until: str = ""
    page: bytes | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str], now: datetime, tokens: PageTokens) -> HistoryFilter:
        """The filters from the query string; a value the console cannot use raises
        BadParameter naming it (never a query built from it)."""
        known = {*FILTERS, "page"}
        for name in params:
            if name not in known:
                raise BadParameter(name, f"not a filter; the filters are {', '.join(sorted(known))}")
        values = {name: params.get(name, "").strip() for name in known}
        for name in ("runbook", "service"):
            if values[name] and not NAME.fullmatch(values[name]):
                raise BadParameter(name, "letters, digits, . _ - only (at most 100)")
        if values["runbook"]:
            values["runbook"] = workflow_type_of(values["runbook"])
        if values["severity"] and values["severity"] not in {s.value for s in Severity}:
            raise BadParameter("severity", f"one of {', '.join(s.value for s in Severity)}")
        if values["outcome"] and values["outcome"] not in OUTCOMES:
            raise BadParameter("outcome", f"one of {', '.join(OUTCOMES)}")
        for name in ("since", "until"):
            if values[name]:
                moment(name, values[name], now)
        filters = cls(
            values["runbook"],
            values["service"],
            values["severity"],
            values["outcome"],
            values["since"],
            values["until"],
        )
        return replace(filters, page=tokens.open(filters.canonical(), values["page"])) if values["page"] else filters

    def query(self, now: datetime) -> str:
        """The visibility query; every value in it was validated by `parse`."""
        clauses = ["ExecutionStatus != 'Running'"]
        if self.runbook:
            clauses.append(f"WorkflowType = '{self.runbook}'")
        if self.outcome:
            clauses.append(f"ExecutionStatus = '{OUTCOMES[self.outcome]}'")
        # Closed runs by when they closed; a date-only `until` keeps that whole day.
        if self.since:
            clauses.append(f"CloseTime >= '{moment('since', self.since, now).isoformat()}'")
        if self.until:
            clauses.append(f"CloseTime < '{moment('until', self.until, now, end=True).isoformat()}'")
        return " AND ".join(clauses)

    def matches(self, run: Run) -> bool:
        """Service and severity live in the runs' memos (only incidents index them, and only
        where the search attributes are registered), so they are matched on the pages the query
        returns: `closed_runs` reads on until a page's worth matches."""
        return (not self.service or run.service == self.service) and (
            not self.severity or run.severity == self.severity
        )

    def params(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in FILTERS if getattr(self, name)}

    def canonical(self) -> str:
        return urlencode(sorted(self.params().items()))

    def absolute(self, now: datetime) -> HistoryFilter:
        """The same filters with a span back from now (24h) as the moment it meant at `now`: the
        next page's link must not slide with the clock."""

        def fixed(name: str, value: str) -> str:
            return moment(name, value, now).isoformat() if RELATIVE.fullmatch(value) else value

        return replace(self, since=fixed("since", self.since), until=fixed("until", self.until))

    def link(self, page: bytes | None, tokens: PageTokens, now: datetime | None = None) -> str:
        if now is not None:
            return self.absolute(now).link(page, tokens)
        params = self.params()
        if page:
            params["page"] = tokens.seal(self.canonical(), page)
        return "/ui/history" + ("?" + urlencode(params) if params else "")


FILTERS = ("runbook", "service", "severity", "outcome", "since", "until")


@dataclass(frozen=True)
class PageTokens:
    """Visibility's page tokens, sealed for the filters they page through: Temporal answers a
    token it did not make with an internal error, so the console opens only its own (a MAC with
    a key no visitor has) and names `page` in a 400 for anything else."""

    key: bytes

    @classmethod
    def from_signer(cls, signer: Signer) -> PageTokens:
        """The same key on every intake replica, secret as the sign-in key is: derived from it by
        HKDF for this one purpose (never a signature the sign-in key makes)."""
        return cls(page_token_key(signer))

    def _mac(self, filters: str, token: bytes) -> bytes:
        return hmac.new(self.key, filters.encode() + b"\0" + token, hashlib.sha256).digest()[:16]

    def seal(self, filters: str, token: bytes) -> str:
        return base64.urlsafe_b64encode(self._mac(filters, token) + token).decode().rstrip("=")

    def open(self, filters: str, text: str) -> bytes:
        try:
            raw = base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        mac, token = raw[:16], raw[16:]
        if not token or not hmac.compare_digest(mac, self._mac(filters, token)):
            raise BadParameter("page", "not a page token of this console for these filters (start from the first page)")
        return token


def page_token_key(signer: Signer) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=b"console page tokens").derive(
        signer.private_key.private_bytes_raw()
    )


def moment(name: str, value: str, now: datetime, end: bool = False) -> datetime:
    """When `value` (24h, 7d, a date, a date and time) is; a date alone is its midnight, or with
    `end` the next midnight (an `until` date includes its day)."""
    relative = RELATIVE.fullmatch(value)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return now - (timedelta(hours=amount) if unit == "h" else timedelta(days=amount))
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadParameter(name, "a span back from now (24h, 7d) or a UTC date or time (2026-12-06T09:00)") from None
    if not datetime(2000, 1, 1) <= parsed.replace(tzinfo=None) <= datetime(2200, 1, 1):
        raise BadParameter(name, "a date between 2000 and 2200")
    if end and DATE_ONLY.fullmatch(value):
        parsed += timedelta(days=1)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def workflow_type_of(runbook: str) -> str:
    by_label = {label: workflow_type for workflow_type, label in LABELS.items()}
    return by_label.get(runbook, runbook)


@dataclass
class HistoryPage:
    runs: list[Run]
    next_page: bytes | None
    scanned: int
    capped: bool = False  # stopped reading at SCAN_PAGES with fewer than a page's worth matching


async def closed_runs(
    client: Client, wanted: HistoryFilter, policy: Policy, now: datetime | None = None
) -> HistoryPage:
    """One page of closed runs, newest first, and the token of the next. With a service or
    severity filter (matched on the runs' memos) it reads on, page after page, until PAGE_SIZE
    runs match or SCAN_PAGES pages were read, and says when it stopped short."""
    now = now or datetime.now(UTC)
    listing = client.list_workflows(wanted.query(now), page_size=PAGE_SIZE, next_page_token=wanted.page)
    runs: list[Run] = []
    scanned = pages = 0
    while True:
        try:
            await listing.fetch_next_page()
        except RPCError as err:
            if err.status != RPCStatusCode.INVALID_ARGUMENT:
                raise  # Temporal itself: the page says so (503)
            raise BadParameter("page" if wanted.page else "query", f"visibility refused it: {err.message}") from None
        executions = list(listing.current_page or [])
        memos = await asyncio.gather(*(e.memo() for e in executions))
        found = [run_from(e, m, None, policy) for e, m in zip(executions, memos, strict=True)]
        runs += [run for run in found if wanted.matches(run)]
        scanned, pages = scanned + len(executions), pages + 1
        if not listing.next_page_token or len(runs) >= PAGE_SIZE or pages >= SCAN_PAGES:
            break
    capped = bool(listing.next_page_token) and len(runs) < PAGE_SIZE
    return HistoryPage(runs, listing.next_page_token, scanned, capped)


def service_query(service: str) -> str:
    """The visibility query for one service's runs: the runbooks' workflow ids name it (incident/,
    scaling/ per region; failover/, failback/), the follow-ups name it in their memo only."""
    prefixes = (f"incident/{service}/", f"scaling/{service}/")
    exact = (f"failover/{service}", f"failback/{service}")
    return " OR ".join(
        [
            *(f"WorkflowId STARTS_WITH '{prefix}'" for prefix in prefixes),
            *(f"WorkflowId = '{workflow_id}'" for workflow_id in exact),
            "WorkflowType = 'PostIncidentWorkflow'",
        ]
    )


async def service_runs(client: Client, service: str, policy: Policy) -> list[Run]:
    """What the runbooks did to one service: its runs, newest first (at most SERVICE_LIMIT, of at
    most twice as many read), each of the newest 20 with its view when a worker answers (closed
    runs' views are replayed by the worker)."""
    if not NAME.fullmatch(service):  # the policy's names; never a quote in a query
        return []
    runs: list[Run] = []
    async for execution in client.list_workflows(service_query(service), limit=SERVICE_LIMIT * 2):
        memo = await execution.memo()
        if memo.get("service") == service or service in execution.id.split("/"):
            runs.append(run_from(execution, memo, None, policy))
        if len(runs) >= SERVICE_LIMIT:
            break
    views = await asyncio.gather(*(view_of(client, run.workflow_id, run.run_id or None) for run in runs[:20]))
    for run, view in zip(runs, views, strict=False):
        run.view = view
    return sorted(runs, key=lambda r: -(r.started or NEVER).timestamp())


def change_marks(runs: Sequence[Run]) -> list[tuple[datetime, str]]:
    """Each change of `runs` as a chart's mark: when, and what (runbook, event, detail)."""
    return [
        (at, f"{run.runbook} {run.workflow_id}: {entry.get('event')} {entry.get('detail', '')}".strip())
        for run in runs
        for entry in changes_of(run)
        if (at := when(entry.get("at"))) is not None
    ]


def changes_of(run: Run) -> list[dict[str, Any]]:
    """The timeline entries that changed something: a remediation, a scaling step, a failover,
    an action; what an operator wants to see next to the service's charts. Matched on the event
    only: a comment that mentions a deploy changed nothing."""
    words = ("remediat", "rolled", "rollback", "scaled", "failed over", "failback", "changed", "undone", "deploy")
    return [
        entry
        for entry in timeline_of(run.view or {})
        if any(word in (event := str(entry.get("event", "")).lower()) for word in words)
        and not event.startswith(("not ", "no "))  # "not scaled": it changed nothing
    ]


# --------------------------------------------------------------------------- diagnosis and charts


@dataclass
class Reading:
    key: str
    value: float | None
    level: str
    detail: str
    query: MetricQuery | None

    @property
    def bounds(self) -> str:
        if self.query is None:
            return ""
        side = ">" if self.query.direction == "above" else "<"
        parts = [
            f"{name} {side} {bound:g}"
            for name, bound in (
                ("warning", self.query.warning),
                ("critical", self.query.critical),
            )
            if bound is not None
        ]
        if self.query.target is not None:
            parts.insert(0, f"target {'≤' if self.query.direction == 'above' else '≥'} {self.query.target:g}")
        return ", ".join(parts)


def readings_of(view: Mapping[str, Any], policy: Policy) -> list[Reading]:
    """The diagnosis's metric readings against the policy's service levels."""
    diagnosis = view.get("diagnosis")
    metrics = diagnosis.get("metrics") if isinstance(diagnosis, dict) else None
    queries = {query.key: query for query in policy.metrics}
    readings = []
    for metric in metrics if isinstance(metrics, list) else []:
        if not isinstance(metric, dict):
            continue
        value = metric.get("value")
        readings.append(
            Reading(
                key=str(metric.get("key", "?")),
                value=float(value) if isinstance(value, int | float) else None,
                level=str(metric.get("level", "no-data")),
                detail=str(metric.get("detail", "")),
                query=queries.get(str(metric.get("key"))),
            )
        )
    return readings


def service_queries(policy: Policy, service: str) -> list[MetricQuery]:
    """The policy's service-level metrics that measure `service` (by their Service dimension,
    or all of them when none names a service)."""
    named = [q for q in policy.metrics if q.dimensions.get("Service") == service]
    return named or [q for q in policy.metrics if "Service" not in q.dimensions]


def chart_lines(query: MetricQuery) -> list[Line]:
    return [
        Line(name, bound)
        for name, bound in (("target", query.target), ("warning", query.warning), ("critical", query.critical))
        if bound is not None
    ]


def _quick_clients() -> None:
    from activities import _aws  # boto3 loads on the first read, not when the listener starts

    _aws.quick_clients()


# The console's AWS reads (charts, reports) wait in threads of their own: a slow CloudWatch or S3
# never holds up the default executor, where the sign-in checks passwords. Their clients give up
# (connect 3 s, read 6 s, no retry) before the page stops waiting, so a slow AWS cannot pile
# reads up behind the pages that gave up on them.
AWS_READS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="console-aws", initializer=_quick_clients)
CHART_WAIT = 10  # seconds a page waits for its charts' datapoints


async def aws_read(read: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(AWS_READS, read)


async def charts_for(
    queries: Sequence[MetricQuery],
    region: str,
    read: Any,
    window: timedelta = timedelta(hours=1),
    marks: Sequence[tuple[datetime, str]] = (),
) -> list[tuple[MetricQuery, Markup, str]]:
    """Each query's recent datapoints drawn with its threshold lines, all read at once (one
    GetMetricData call: `read(queries, region, window)` answers each query's points); when the
    read fails every chart is drawn empty with the reason, and the page still renders."""
    try:
        series = await asyncio.wait_for(aws_read(lambda: read(list(queries), region, window)), CHART_WAIT)
        notes = ["" if points else "no datapoints in the last hour" for points in series]
    except Exception as err:  # noqa: BLE001 - the charts say why they are empty; the page still renders
        series, notes = [[] for _ in queries], [f"cannot read: {str(err)[:200]}" for _ in queries]
    return [
        (query, metric_chart(query.key, points, chart_lines(query), marks), note)
        for query, points, note in zip(queries, series, notes, strict=True)
    ]


def judged_chart(view: Mapping[str, Any]) -> tuple[str, Markup, str] | None:
    """A run that judged a rule over datapoints (a scaling decision) carries them: drawn with the
    rule's threshold, no CloudWatch read needed."""
    judged = view.get("judgement")
    if not isinstance(judged, dict) or not isinstance(judged.get("points"), list):
        return None
    points = [
        (at, float(point["value"]))
        for point in judged["points"]
        if isinstance(point, dict) and isinstance(point.get("value"), int | float) and (at := when(point.get("at")))
    ]
    threshold = judged.get("threshold")
    lines = [Line("critical", float(threshold))] if isinstance(threshold, int | float) else []
    key = str(judged.get("metric", "?"))
    verdict = "held" if judged.get("sustained") else "not sustained"
    return key, metric_chart(key, points, lines), f"rule {judged.get('rule', '?')}: {verdict}"


def read_cloudwatch(queries: list[MetricQuery], region: str, window: timedelta) -> list[list[tuple[datetime, float]]]:
    """Each metric's datapoints over the window, from CloudWatch in one GetMetricData call (the
    activity's own read; boto3 is loaded on the first chart, not when the listener starts)."""
    from activities.cloudwatch import read_series
    from contracts.systems import SeriesRequest

    series = read_series(SeriesRequest(region=region, queries=queries, window=window))
    return [[(point.at, point.value) for point in one.points] for one in series]
