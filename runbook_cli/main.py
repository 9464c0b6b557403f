"""`runbook`: the operators' command line. No runbook logic here.

Reads (show, incidents, runs, audit, postmortem, actions) go straight to Temporal. Everything
that acts (ack, approve, reject, comment, cancel, trigger, review, followup, action) goes through
the sign-in service's API with the token that `runbook login` stored
(RUNBOOK_SIGNIN_URL, default http://127.0.0.1:8081; the session file
RUNBOOK_SESSION_FILE, default $XDG_CONFIG_HOME/runbook/session.json, mode 0600): the service
signs each action in the signed-in person's name, and the runbook verifies it. The CLI itself
writes nothing to Temporal.

The operator commands work on the run of any runbook: every runbook workflow offers the same
operator surface (Updates `acknowledge`, `approve`, `reject`, `comment`, `cancel` answering an
OperatorReply, and the query `view`), so the view is read as plain data. Incidents keep their
richer rendering.

Imports stay light: no workflow or activity code (boto3 and the rest) is loaded for a command.

Exit codes: 0 done, 1 refused by the runbook (wrong state, not permitted, stale plan),
2 bad usage, not signed in, or nothing to act on, 3 Temporal, the sign-in service or the
worker cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import httpx
from pydantic import TypeAdapter, ValidationError
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import (
    Client,
    RPCError,
    WorkflowExecution,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCStatusCode

import settings
from client import TemporalConfigError, connect, load_config
from contracts import (
    SEARCH_SERVICE,
    SEARCH_SEVERITY,
    SEARCH_STATUS,
    IncidentView,
    Policy,
    PolicyError,
    RemediationPlan,
    Severity,
    load_policy_file,
)
from contracts.bedrock_connectivity import BedrockView
from contracts.common import Duration
from contracts.post_incident import ActionItem, FollowupView, ItemStatus
from contracts.postmortem import draft_postmortem
from contracts.scaling_decision import ScalingView
from contracts.stats import HEADER as STATS_HEADER
from contracts.stats import incident_stats
from contracts.views import LABELS, TypedView, shown, typed_view
from runbook_cli import maintenance, schedules
from runbook_cli.runbooks import RUNBOOKS, workflow_type
from starter import WORKFLOW_TYPE, runbook_status

QUERY_TIMEOUT = timedelta(seconds=10)
API_TIMEOUT = 45.0  # seconds: the service waits up to 30 s for the runbook's answer
ID_HELP = "INC-..., or the workflow id of any runbook run (e.g. incident/SERVICE/REGION)"
FOLLOWUP_HELP = "the incident's id INC-... (its follow-up is postincident/INC-...)"
FOLLOWUP_TYPE = "PostIncidentWorkflow"
DURATION: TypeAdapter[timedelta] = TypeAdapter(Duration)
SIGNIN_URL = "http://127.0.0.1:8081"
FLAGS = {"plan_id": "--plan", "workflow_id": "ID", "user": "--as"}  # the API's field names, as the CLI spells them


class CliError(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- arguments


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="runbook", description="Operate the runbooks: incidents and every other run.")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    trigger = commands.add_parser("trigger", help="open an incident (or join the open one for the target)")
    trigger_kinds = trigger.add_subparsers(dest="kind", required=True, metavar="KIND")
    incident = trigger_kinds.add_parser("incident", help="open an incident by hand")
    incident.add_argument("--service", required=True, help="a service of the policy, e.g. hybrid-router")
    incident.add_argument("--severity", required=True, type=_severity, help="P0, P1, P2 or P3")
    incident.add_argument("--summary", required=True, help="what is wrong, one line")
    incident.add_argument("--region", help="the service's region in the policy (the only one it has)")
    _identity(incident)
    scale = trigger_kinds.add_parser("scaling", help="ask the service's scaling run to judge it now")
    scale.add_argument("--service", required=True, help="a service with scaling limits in the policy")
    scale.add_argument("--plan", action="store_true", help="plan only: print the AWS calls it would make, make none")
    scale.add_argument("--reason", help="why, one line (the run's timeline shows it)")
    _identity(scale)
    bedrock = trigger_kinds.add_parser("bedrock", help="ask the region's Bedrock connectivity run to diagnose now")
    bedrock.add_argument("--region", required=True, help="a region of the policy's bedrock section, e.g. eu-central-1")
    bedrock.add_argument(
        "--plan", action="store_true", help="plan only: diagnose and say what it would do; change none"
    )
    bedrock.add_argument("--reason", help="why, one line (the run's timeline shows it)")
    _identity(bedrock)
    over = trigger_kinds.add_parser("failover", help="ask for the service's failover to its backup region")
    over.add_argument("--service", required=True, help="a service with a failover entry in the policy")
    over.add_argument("--to", dest="to_region", help="the region to fail over to (the policy's backup region)")
    over.add_argument("--plan", action="store_true", help="plan only: probe, check and print the calls; change none")
    over.add_argument("--reason", help="why, one line (the run's timeline shows it)")
    _identity(over)

    login = commands.add_parser("login", help="sign in to the sign-in service; the token is kept for the commands")
    login.add_argument("--as", dest="operator", help="your name (default: $RUNBOOK_OPERATOR, else asked)")
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin, not a prompt")
    commands.add_parser("logout", help="sign out: the token is revoked and forgotten")
    commands.add_parser("whoami", help="who you are signed in as, and until when")

    listing = commands.add_parser("incidents", help="list incidents, newest first")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    listing.add_argument("--open", action="store_true", help="only incidents whose runbook still runs")
    listing.add_argument("--limit", type=_positive, default=50)
    listing.add_argument("--service", help="only this service")
    listing.add_argument("--severity", type=_severity, help="only this severity (P0-P3)")
    listing.add_argument("--status", help="only this status (awaiting_ack, awaiting_approval, resolved, ...)")

    runs = commands.add_parser("runs", help="list the runs of every runbook, newest first")
    runs.add_argument(
        "--runbook",
        metavar="NAME",
        type=_runbook,
        help=f"only this runbook: {', '.join(sorted(RUNBOOKS))}, or a workflow type name",
    )
    runs.add_argument("--open", action="store_true", help="only runs still going")
    runs.add_argument("--limit", type=_positive, default=50)
    runs.add_argument("--json", action="store_true", help="JSON lines instead of a table")

    show = commands.add_parser("show", help="one run: status, pending approval, timeline")
    show.add_argument("id", help=ID_HELP)
    show.add_argument("--json", action="store_true")

    ack = commands.add_parser("ack", help="acknowledge an incident (or another run)")
    ack.add_argument("id", help=ID_HELP)
    _identity(ack)
    ack.add_argument("--note", help="optional note for the timeline")

    approve = commands.add_parser("approve", help="approve the proposed remediation")
    approve.add_argument("id", help=ID_HELP)
    _identity(approve)
    approve.add_argument("--plan", help="plan id to approve (default: the one pending now, shown first)")
    approve.add_argument("--comment")

    reject = commands.add_parser("reject", help="reject the proposed remediation; the runbook escalates")
    reject.add_argument("id", help=ID_HELP)
    _identity(reject)
    reject.add_argument("--reason", required=True, type=_non_empty("--reason"))
    reject.add_argument("--plan", help="plan id to reject (default: the one pending now)")

    comment = commands.add_parser("comment", help="add a comment to the run's timeline (and an incident's PagerDuty)")
    comment.add_argument("id", help=ID_HELP)
    _identity(comment)
    comment.add_argument("--text", required=True, type=_non_empty("--text"))

    cancel = commands.add_parser("cancel", help="stop the runbook safely (undoes a remediation not yet verified)")
    cancel.add_argument("id", help=ID_HELP)
    _identity(cancel)
    cancel.add_argument("--reason", required=True, type=_non_empty("--reason"))

    audit = commands.add_parser("audit", help="the run's audit trail, as JSON lines")
    audit.add_argument("id", help=ID_HELP)

    postmortem = commands.add_parser(
        "postmortem", help="an incident's post-mortem draft, from its own record (markdown, or JSON)"
    )
    postmortem.add_argument("id", help=ID_HELP)
    shape = postmortem.add_mutually_exclusive_group()
    shape.add_argument("--markdown", action="store_true", help="markdown (the default)")
    shape.add_argument("--json", action="store_true", help="the draft and its figures as JSON")

    review = commands.add_parser("review", help="record an incident's immediate review (its follow-up run)")
    review.add_argument("id", help=FOLLOWUP_HELP)
    _identity(review)
    review.add_argument("--notes", required=True, type=_non_empty("--notes"))

    followup = commands.add_parser("followup", help="an incident's follow-up run: start it, complete its post-mortem")
    followup.add_argument(
        "step",
        choices=["start", "complete"],
        help="start: the follow-up of an incident that closed without one; complete: the post-mortem is agreed",
    )
    followup.add_argument("id", help=FOLLOWUP_HELP)
    _identity(followup)
    followup.add_argument("--note", help="optional: where the final post-mortem is, or what was agreed")

    action = commands.add_parser("action", help="an incident's action items: add, done (with evidence), drop")
    action.add_argument("verb", choices=["add", "done", "drop"])
    action.add_argument("id", help=FOLLOWUP_HELP)
    action.add_argument("item", nargs="?", help="done, drop: the item id, e.g. A1")
    _identity(action)
    action.add_argument("--owner", help="add: who does it")
    action.add_argument("--text", help="add: what is to be done")
    action.add_argument("--due", type=_duration("--due"), help="add: due in, e.g. 14d or 36h (default: the policy's)")
    action.add_argument("--evidence", help="done: what shows it was really done (a link, a change, a ticket)")
    action.add_argument("--reason", help="drop: why it is no longer worth doing (an approver confirms)")

    actions = commands.add_parser("actions", help="action items of every incident, overdue first")
    actions.add_argument("--open", action="store_true", help="only the open ones")
    actions.add_argument("--owner", help="only this owner's")
    actions.add_argument("--json", action="store_true", help="JSON lines instead of a table")

    stats = commands.add_parser("stats", help="incidents per severity: how they ended, MTTA and MTTR")
    stats.add_argument(
        "--since", type=_duration("--since"), default="30d", help="how far back, e.g. 30d (default), 12h"
    )
    stats.add_argument("--json", action="store_true", help="one JSON object per severity")

    schedules = commands.add_parser(
        "schedules", help="the policy's routine runs as Temporal Schedules: list (default), apply, trigger"
    )
    schedules.add_argument(
        "verb", nargs="?", default="list", choices=["list", "apply", "trigger", "pause", "unpause", "backfill"]
    )
    schedules.add_argument("name", nargs="?", help="the schedule's name (as in the policy)")
    schedules.add_argument("--json", action="store_true", help="list: one JSON object per schedule")
    schedules.add_argument("--reason", help="pause (required), unpause: why; shown by `runbook schedules`")
    schedules.add_argument("--from", dest="start", type=_timestamp("--from"), help="backfill: from this time (UTC)")
    schedules.add_argument("--to", dest="end", type=_timestamp("--to"), help="backfill: to this time (UTC)")

    maintenance.add_parser(commands, _identity, _timestamp, _duration)

    reports = commands.add_parser("reports", help="the reviews' reports in the reports bucket, newest first")
    reports.add_argument("--json", action="store_true", help="one JSON object per report")
    report = commands.add_parser("report", help="one review's report (Markdown), e.g. daily/2026-12-07")
    report.add_argument("id", metavar="ID", help="as `runbook reports` lists it")

    demo = commands.add_parser("demo", help="the local stack's fault injection, offered load and regional outages")
    demo.add_argument("action", choices=["break", "heal", "deny", "load", *REGION_ACTIONS])
    demo.add_argument(
        "target",
        metavar="SERVICE|REGION|bedrock",
        help="break, heal, load: a service of the policy, e.g. hybrid-router; "
        "break-region, heal-region: a region of its services, e.g. eu-central-1; "
        "break, deny, heal bedrock: Bedrock fails, the client role loses bedrock:InvokeModel, both end",
    )
    for gauge, unit in (("cpu", "%%"), ("memory", "%%"), ("p95", "ms"), ("queue", "messages")):  # %% for argparse
        demo.add_argument(
            f"--{gauge}", type=_load_value(f"--{gauge}"), help=f"load: the {gauge} ({unit}) on the tasks running now"
        )
    demo.add_argument("--clear", action="store_true", help="load: end the offered load")
    return top


def _identity(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--as", dest="operator", help="optional: must be who you signed in as (`runbook login`), else refused"
    )


def _severity(value: str) -> Severity:
    try:
        return Severity(value.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of P0, P1, P2, P3") from None


def _runbook(value: str) -> str:
    try:
        return workflow_type(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _duration(flag: str):  # noqa: ANN202
    def parse(text: str) -> str:
        try:
            DURATION.validate_python(text)
        except ValidationError:
            raise argparse.ArgumentTypeError(f"{flag}: {text!r} is not a duration such as 14d, 36h or 90m") from None
        return text

    return parse


def _timestamp(flag: str):  # noqa: ANN202
    """An ISO 8601 time; one without a zone is UTC (the CLI's times are UTC)."""

    def parse(text: str) -> datetime:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: {text!r} is not a time such as 2026-12-01T08:00Z") from None
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)

    return parse


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number")
    return int(value)


def _non_empty(flag: str):  # noqa: ANN202
    def check(value: str) -> str:
        if not value.strip():
            raise argparse.ArgumentTypeError(f"{flag} must not be empty")
        return value

    return check


# --------------------------------------------------------------------------- signed in


@dataclass(frozen=True)
class SignedIn:
    """What `runbook login` keeps: where, who, the token, until when."""

    url: str
    user: str
    token: str
    expires_at: str  # ISO 8601, UTC

    @property
    def expiry(self) -> datetime:
        return datetime.fromisoformat(self.expires_at)


def session_path() -> Path:
    explicit = os.environ.get("RUNBOOK_SESSION_FILE")
    if explicit:
        return Path(explicit)
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "runbook" / "session.json"


def signin_url() -> str:
    """Where the sign-in service is. A password and a token go there: https, except on this
    machine (the local stack)."""
    url = (os.environ.get("RUNBOOK_SIGNIN_URL") or SIGNIN_URL).rstrip("/")
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise CliError(f"RUNBOOK_SIGNIN_URL {url!r} is not an http(s) URL")
    if parsed.scheme == "http" and parsed.host not in ("127.0.0.1", "localhost", "::1"):
        raise CliError(
            f"RUNBOOK_SIGNIN_URL {url!r}: your password and token would cross the network in clear; use https"
        )
    return url


def save_session(session: SignedIn) -> Path:
    """Written whole or not at all, readable by its owner only: the token acts in their name."""
    path = session_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(asdict(session), file)
    os.replace(temporary, path)
    return path


def load_session() -> SignedIn:
    path = session_path()
    try:
        session = SignedIn(**json.loads(path.read_text()))
        expiry = session.expiry
    except FileNotFoundError:
        raise CliError("not signed in: run `runbook login` first") from None
    except (OSError, ValueError, TypeError) as err:
        raise CliError(f"{path} is not a session this CLI wrote ({err}); run `runbook login` again") from None
    if expiry <= datetime.now(UTC):
        raise CliError(f"your session expired at {expiry:%Y-%m-%d %H:%M} UTC; run `runbook login` again")
    return session


def signed_in(args: argparse.Namespace) -> SignedIn:
    """The stored session, checked before anything is asked of Temporal; `--as` must name its user."""
    session = load_session()
    wanted = getattr(args, "operator", None)
    if wanted and wanted.strip() != session.user:
        raise CliError(
            f"--as {wanted}: you are signed in as {session.user}; "
            f"`runbook login --as {wanted}` to act as {wanted}, or leave --as out"
        )
    return session


async def call(url: str, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    """The sign-in service's API; its refusals become CLI errors with the exit codes above."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        async with httpx.AsyncClient(base_url=url, timeout=API_TIMEOUT) as http:
            response = await http.request(method, path, json=body, headers=headers)
    except httpx.HTTPError as err:
        raise CliError(
            f"cannot reach the sign-in service at {url}: {err or type(err).__name__} "
            "(is `make run` running? RUNBOOK_SIGNIN_URL says where it is)",
            3,
        ) from None
    try:
        answer = response.json()
    except ValueError:
        answer = {"error": response.text[:200] or response.reason_phrase}
    if response.is_success:
        return answer
    error = str(answer.get("error", answer)) if isinstance(answer, dict) else str(answer)
    status = response.status_code
    if status == 409:
        raise CliError(f"refused: {error}", 1)
    field = answer.get("field") if isinstance(answer, dict) else None
    flag = FLAGS.get(field, f"--{field}") if isinstance(field, str) else None
    raise CliError(f"{flag}: {error}" if flag else error, 3 if status >= 500 else 2)


# --------------------------------------------------------------------------- commands


async def cmd_login(args: argparse.Namespace) -> None:
    url = signin_url()
    user = (args.operator or os.environ.get("RUNBOOK_OPERATOR") or "").strip()
    if not user:
        if args.password_stdin:
            raise CliError("runbook login --password-stdin: give your name with --as NAME (or RUNBOOK_OPERATOR)")
        user = input("name: ").strip()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {user}: ")
    if not password:
        raise CliError("runbook login: no password given")
    answer = await call(url, "POST", "/auth/login", {"user": user, "password": password})
    session = SignedIn(url=url, user=answer["user"], token=answer["token"], expires_at=answer["expires_at"])
    path = save_session(session)
    print(f"signed in as {session.user} at {url} until {session.expiry:%Y-%m-%d %H:%M} UTC (session in {path})")


async def cmd_logout(args: argparse.Namespace) -> None:
    path = session_path()
    try:
        session = SignedIn(**json.loads(path.read_text()))
    except FileNotFoundError:
        print("not signed in")
        return
    except (OSError, ValueError, TypeError):
        path.unlink(missing_ok=True)
        print("signed out (the session file was unreadable; removed)")
        return
    try:
        await call(session.url, "POST", "/auth/logout", token=session.token)
    except CliError as err:
        if err.code == 3:  # the token stays good on the service until it expires
            path.unlink(missing_ok=True)
            raise CliError(f"forgot the session here, but could not revoke it: {err}", 3) from None
    path.unlink(missing_ok=True)
    print(f"signed out {session.user}")


async def cmd_whoami(args: argparse.Namespace) -> None:
    session = load_session()
    answer = await call(session.url, "GET", "/auth/whoami", token=session.token)
    print(f"{answer['user']}  (at {session.url}, until {session.expiry:%Y-%m-%d %H:%M} UTC)")


async def act(session: SignedIn, run: Run, action: str, **fields: Any) -> None:
    """An operator action through the sign-in service, which signs it and sends the Update."""
    body = {"workflow_id": run.workflow_id, **{name: value for name, value in fields.items() if value is not None}}
    if run.handle.run_id:  # an incident found by its INC- id: exactly that run's chain
        body["run_id"] = run.handle.run_id
    reply = await call(session.url, "POST", f"/api/v1/runs/{action}", body, token=session.token)
    print(reply["message"])


async def cmd_trigger(session: SignedIn, args: argparse.Namespace) -> None:
    if args.kind in ("scaling", "failover", "bedrock"):
        where = {"region": args.region} if args.kind == "bedrock" else {"service": args.service}
        asked = {**where, "plan": args.plan, "reason": args.reason}
        if args.kind == "failover":
            asked["to_region"] = args.to_region
        body = {name: value for name, value in asked.items() if value is not None}
        answer = await call(session.url, "POST", f"/api/v1/{args.kind}", body, token=session.token)
        print(answer["workflow_id"])
        return
    body = {"service": args.service, "severity": args.severity.value, "summary": args.summary, "region": args.region}
    answer = await call(
        session.url,
        "POST",
        "/api/v1/incidents",
        {name: value for name, value in body.items() if value is not None},
        token=session.token,
    )
    print(answer["incident_id"])
    print(f"workflow {answer['workflow_id']}", file=sys.stderr)


async def cmd_incidents(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    query = f"WorkflowType = '{WORKFLOW_TYPE}'"
    if args.open:
        query += " AND ExecutionStatus = 'Running'"
    filters = {
        SEARCH_SERVICE.name: args.service,
        SEARCH_SEVERITY.name: args.severity.value if args.severity else None,
        SEARCH_STATUS.name: args.status,
    }
    for name, value in filters.items():
        if value is not None:
            if not re.fullmatch(r"[\w.-]+", value):
                raise CliError(f"--{name.removeprefix('Incident').lower()} {value!r}: letters, digits, . _ - only")
            query += f" AND {name} = '{value}'"
    rows: list[dict[str, Any]] = []
    async for execution in client.list_workflows(query, limit=args.limit):
        memo = await execution.memo()
        status = _run_status(memo, execution)
        rows.append(
            {
                "id": memo.get("incident_id", execution.id),
                "workflow_id": execution.id,
                "service": memo.get("service"),
                "region": memo.get("region"),
                "severity": memo.get("severity"),
                "status": status,
                "runbook": _execution_status(execution.status),
                "opened_at": execution.start_time.isoformat() if execution.start_time else None,
                "summary": memo.get("summary"),
            }
        )
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    if not rows:
        print("no incidents")
        return
    print(f"{'ID':<28} {'SEV':<4} {'STATUS':<18} {'SERVICE':<16} {'OPENED (UTC)':<20} SUMMARY")
    for row in rows:
        opened = (row["opened_at"] or "")[:19].replace("T", " ")
        print(
            f"{row['id']:<28} {row['severity'] or '-':<4} {row['status']:<18} "
            f"{row['service'] or '-':<16} {opened:<20} {row['summary'] or ''}"
        )


async def cmd_runs(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    clauses = []
    if args.runbook is not None:
        clauses.append(f"WorkflowType = '{args.runbook}'")
    if args.open:
        clauses.append("ExecutionStatus = 'Running'")
    rows: list[dict[str, Any]] = []
    async for execution in client.list_workflows(" AND ".join(clauses) or None, limit=args.limit):
        memo = await execution.memo()
        rows.append(
            {
                "workflow_id": execution.id,
                "run_id": execution.run_id,
                "runbook": execution.workflow_type,
                "status": _run_status(memo, execution),
                "execution_status": _execution_status(execution.status),
                "started_at": execution.start_time.isoformat() if execution.start_time else None,
                "closed_at": execution.close_time.isoformat() if execution.close_time else None,
            }
        )
    rows.sort(key=lambda row: row["started_at"] or "", reverse=True)  # visibility lists running runs first
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    if not rows:
        hint = (
            "" if args.runbook in (None, *RUNBOOKS.values()) else f" (runbooks by name: {', '.join(sorted(RUNBOOKS))})"
        )
        print("no runs" + (f" of {args.runbook}{hint}" if args.runbook else ""))
        return
    width = max(len("WORKFLOW ID"), *(len(row["workflow_id"]) for row in rows))
    print(f"{'WORKFLOW ID':<{width}} {'RUNBOOK':<26} {'STATUS':<18} {'EXECUTION':<11} STARTED (UTC)")
    for row in rows:
        started = (row["started_at"] or "")[:19].replace("T", " ")
        print(
            f"{row['workflow_id']:<{width}} {row['runbook']:<26} {row['status']:<18} {row['execution_status']:<11} "
            f"{started}"
        )


async def cmd_show(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    run = await find_run(client, args.id)
    view = await current_view(run)
    if args.json:
        print(json.dumps(view, indent=2))
    else:
        print(render_any(run, view))


async def cmd_ack(client: Client, args: argparse.Namespace, session: SignedIn) -> None:
    await act(session, await find_run(client, args.id), "acknowledge", note=args.note)


async def cmd_approve(client: Client, args: argparse.Namespace, session: SignedIn) -> None:
    run = await find_run(client, args.id)
    plan_id = args.plan or await _pending_plan(run)
    await act(session, run, "approve", plan_id=plan_id, comment=args.comment)


async def cmd_reject(client: Client, args: argparse.Namespace, session: SignedIn) -> None:
    run = await find_run(client, args.id)
    plan_id = args.plan or await _pending_plan(run)
    await act(session, run, "reject", plan_id=plan_id, reason=args.reason)


async def cmd_comment(client: Client, args: argparse.Namespace, session: SignedIn) -> None:
    await act(session, await find_run(client, args.id), "comment", text=args.text)


async def cmd_cancel(client: Client, args: argparse.Namespace, session: SignedIn) -> None:
    await act(session, await find_run(client, args.id), "cancel", reason=args.reason)


def followup_id(ident: str) -> str:
    """An incident's follow-up run: `postincident/INC-...` from the incident id, or as given."""
    ident = ident.strip()
    return f"postincident/{ident}" if ident.startswith("INC-") else ident


async def followup_run(client: Client, ident: str) -> Run:
    run = await find_run(client, followup_id(ident))
    if run.workflow_type != FOLLOWUP_TYPE:
        raise CliError(f"{ident} is a {run.workflow_type} run, not an incident's follow-up (postincident/INC-...)")
    return run


async def cmd_review(client: Client, args: argparse.Namespace, session: SignedIn) -> None:
    await act(session, await followup_run(client, args.id), "review", notes=args.notes)


async def cmd_followup(client: Client, args: argparse.Namespace, session: SignedIn) -> None:
    if args.step == "start":
        run = await find_run(client, args.id)
        if not run.is_incident:
            raise CliError(f"{args.id} is a {run.workflow_type} run: follow-ups are of incidents")
        body = {"workflow_id": run.workflow_id, "run_id": run.handle.run_id}
        answer = await call(session.url, "POST", "/api/v1/followup", body, token=session.token)
        print(answer["workflow_id"])
        return
    await act(session, await followup_run(client, args.id), "complete_postmortem", note=args.note)


async def cmd_action(client: Client, args: argparse.Namespace, session: SignedIn) -> None:
    run = await followup_run(client, args.id)
    if args.verb == "add":
        for flag, value in (("--owner", args.owner), ("--text", args.text)):
            if not (value or "").strip():
                raise CliError(f"action add: {flag} is required")
        await act(session, run, "add_action_item", owner=args.owner, text=args.text, due_in=args.due)
        return
    if not args.item:
        raise CliError(f"action {args.verb}: give the item id (e.g. A1) after the incident id")
    flag, why = ("--evidence", args.evidence) if args.verb == "done" else ("--reason", args.reason)
    if not (why or "").strip():
        raise CliError(f"action {args.verb}: {flag} is required")
    await act(session, run, "close_action_item", item_id=args.item, how=args.verb, why=why)


async def cmd_actions(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    """Every follow-up's action items (open runs and finished ones), overdue first, then by due date."""
    rows: list[tuple[FollowupView, ActionItem]] = []
    async for execution in client.list_workflows(f"WorkflowType = '{FOLLOWUP_TYPE}'", limit=5000):
        run = Run(client.get_workflow_handle(execution.id, run_id=execution.run_id), FOLLOWUP_TYPE, execution.status)
        try:
            view = FollowupView.model_validate(await current_view(run))
        except (CliError, ValidationError):
            continue  # a run that cannot say (no worker, an older shape): `runbook show` tells more
        for item in view.items:
            if args.open and item.status != ItemStatus.OPEN:
                continue
            if args.owner and item.owner != args.owner:
                continue
            rows.append((view, item))
    rows.sort(key=lambda row: (not row[1].overdue(row[0].now), row[1].status != ItemStatus.OPEN, row[1].due))
    if args.json:
        for view, item in rows:
            overdue = item.overdue(view.now)
            print(json.dumps({"incident": view.incident_id, **item.model_dump(mode="json"), "overdue": overdue}))
        return
    if not rows:
        print("no action items" + (" open" if args.open else ""))
        return
    print(f"{'INCIDENT':<26} {'ITEM':<5} {'STATE':<8} {'OWNER':<14} {'DUE (UTC)':<17} TEXT")
    for view, item in rows:
        state = "OVERDUE" if item.overdue(view.now) else item.status.value
        due = f"{item.due:%Y-%m-%d %H:%M}"
        print(f"{view.incident_id:<26} {item.item_id:<5} {state:<8} {item.owner:<14} {due:<17} {item.text}")


async def cmd_stats(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    """Incidents opened within `--since`, per severity, from each run's own record (a closed
    run's result; an open one answers its query)."""
    since = datetime.now(UTC) - DURATION.validate_python(args.since)
    query = f"WorkflowType = '{WORKFLOW_TYPE}' AND StartTime >= '{since.isoformat().replace('+00:00', 'Z')}'"
    views: list[IncidentView] = []
    unread = 0
    async for execution in client.list_workflows(query, limit=10000):
        run = Run(client.get_workflow_handle(execution.id, run_id=execution.run_id), WORKFLOW_TYPE, execution.status)
        try:
            views.append(IncidentView.model_validate(await current_view(run)))
        except (CliError, ValidationError):
            unread += 1  # no worker for an open one, or an older shape: said below
    rows = incident_stats(views)
    if args.json:
        for row in rows:
            durations = {k: v.total_seconds() if isinstance(v, timedelta) else v for k, v in row.model_dump().items()}
            print(json.dumps({**durations, "since": since.isoformat()}))
    elif not rows:
        print(f"no incidents since {since:%Y-%m-%d %H:%M} UTC")
    else:
        print(f"incidents since {since:%Y-%m-%d %H:%M} UTC (MTTA over the acknowledged, MTTR over the resolved)")
        print(STATS_HEADER)
        for row in rows:
            print(row.row())
    if unread:
        print(f"{unread} incident run(s) could not be read (is the worker running?)", file=sys.stderr)


async def cmd_audit(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    """One JSON object a line: every step, alert and operator action, with who, when and why."""
    run = await find_run(client, args.id)
    view = await current_view(run)
    which = {"incident": view.get("id", run.workflow_id)} if run.is_incident else {"runbook": run.workflow_type}
    for entry in view.get("timeline") or []:
        print(json.dumps({**which, "workflow_id": run.workflow_id, **entry}))


async def cmd_postmortem(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    """The draft from the incident's final view (or its view now, while it runs): figures,
    what the runbook saw and did, the whole timeline, the blameless sections to fill."""
    run = await find_run(client, args.id)
    if not run.is_incident:
        raise CliError(f"{args.id} is a {run.workflow_type} run: post-mortems are drafted for incidents")
    try:
        view = IncidentView.model_validate(await current_view(run))
    except ValidationError as err:
        raise CliError(f"{args.id}: its record is not an incident view this CLI reads ({err})") from None
    draft = draft_postmortem(view)
    if not args.json:
        print(draft.markdown(), end="")
        return
    figures = draft.figures
    durations = {
        "time_to_acknowledge_s": figures.time_to_acknowledge,
        "time_to_mitigate_s": figures.time_to_mitigate,
        "time_to_resolve_s": figures.time_to_resolve,
    }
    seconds = {key: value.total_seconds() if value is not None else None for key, value in durations.items()}
    print(json.dumps({**draft.model_dump(mode="json"), **seconds}, indent=2))


def _load_value(flag: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value >= 0:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: a number of at least 0")
        return value

    return parse


LOAD_FLAGS = ("cpu", "memory", "p95", "queue")
REGION_ACTIONS = ("break-region", "heal-region")


def cmd_demo(args: argparse.Namespace, config: settings.Settings) -> None:
    policy = _policy(config)
    loads = {name: getattr(args, name) for name in LOAD_FLAGS if getattr(args, name) is not None}
    if args.action != "load":
        if loads or args.clear:
            raise CliError(f"demo {args.action}: --cpu, --memory, --p95, --queue and --clear are for `demo load`")
    elif bool(loads) == bool(args.clear):
        raise CliError("demo load: give --cpu, --memory, --p95 or --queue, or --clear (not both)")
    if args.action in REGION_ACTIONS:
        demo_region(args.action, args.target, _policy_regions(policy), config)
        return
    if args.target == "bedrock" or args.action == "deny":
        demo_bedrock(args.action, args.target)
        return
    target = policy.services.get(args.target)
    if target is None:
        raise CliError(f"demo: unknown service {args.target!r} (not in the policy {config.policy_path})")
    if args.action == "load":
        demo_load(args.target, loads, config)
        return
    demo = _devstack_demo()
    # The demo acts on the local stack's AWS emulator unless told otherwise.
    os.environ.setdefault("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        if args.action == "break":
            arn = demo.break_service(target.ecs_cluster, target.ecs_service, target.region)
            print(f"{args.target}: deployed faulty {arn.rsplit('/', 1)[-1]}; it turns unhealthy")
        else:
            arn = demo.heal_service(target.ecs_cluster, target.ecs_service, target.region)
            print(f"{args.target}: restored {arn.rsplit('/', 1)[-1]} by hand")
    except Exception as err:  # noqa: BLE001 - any failure here is reported, not traced
        raise CliError(f"demo {args.action}: {err} (is `make run` running?)", code=3) from err


def demo_bedrock(action: str, target: str) -> None:
    """Faults of the stack's Bedrock and IAM emulator (AWS_ENDPOINT_URL_BEDROCK, the stack's by default)."""
    if target != "bedrock" or action not in ("break", "deny", "heal"):
        raise CliError(f"demo {action} {target}: Bedrock's faults are `demo break|deny|heal bedrock`")
    url = os.environ.get("AWS_ENDPOINT_URL_BEDROCK") or "http://127.0.0.1:5002"
    faults: dict[str, dict[str, Any]] = {
        "break": {"bedrock": "down"},
        "deny": {"deny": True},
        "heal": {"bedrock": "ok", "deny": False},
    }
    wanted = faults[action]
    try:
        state = _devstack_demo().set_bedrock_faults(url, **wanted)
    except OSError as err:
        raise CliError(
            f"demo {action} bedrock: the Bedrock emulator at {url} did not answer: {err} (is `make run` running?)",
            code=3,
        ) from err
    said = {
        "break": "Bedrock answers every call with 500 InternalServerException; the platform's breaker opens after 5",
        "deny": "the client role lost its bedrock:InvokeModel policy; calls and the IAM simulation are denied",
        "heal": "Bedrock answers again and the client role has its permission back",
    }[action]
    print(f"bedrock: {said} (emulator: bedrock {state['bedrock']}, denied {state['denied']})")


def demo_load(service: str, loads: dict[str, float], config: settings.Settings) -> None:
    """The demo service's offered load (it publishes it spread over the tasks ECS runs)."""
    url = f"{config.platform_url.rstrip('/')}/demo/load"
    headers = {"authorization": f"Bearer {config.platform_admin_token}"}
    try:
        if loads:
            answer = httpx.post(url, json=loads, headers=headers, timeout=5)
        else:
            answer = httpx.delete(url, headers=headers, timeout=5)
    except httpx.HTTPError as err:
        raise CliError(
            f"demo load: the demo service at {config.platform_url} did not answer: {err} (is `make run` running?)",
            code=3,
        ) from err
    if answer.status_code != 200:
        raise CliError(f"demo load: the demo service answered {answer.status_code}: {answer.text}")
    if loads:
        given = ", ".join(f"{name} {value:g}" for name, value in loads.items())
        print(f"{service}: offered load {given} on {answer.json()['on_tasks']} task(s); more tasks bring it down")
    else:
        print(f"{service}: offered load cleared")


def _policy_regions(policy: Policy) -> list[str]:
    """The regions the policy's services run in: each service's own and its failover's backup."""
    regions = {service.region for service in policy.services.values()}
    if policy.failover is not None:
        regions |= {target.backup_region for target in policy.failover.services.values()}
    return sorted(regions)


def demo_region(action: str, region: str, known: list[str], config: settings.Settings) -> None:
    """A regional outage in the demo service (`break-region`) and its end (`heal-region`): the region's
    health endpoint, which the failover runbook probes, and the public name when DNS sends it there."""
    if region not in known:
        raise CliError(
            f"demo {action}: REGION {region!r} is not a region of the policy's services "
            f"({', '.join(known) or 'none'}; policy {config.policy_path})"
        )
    verb = action.removesuffix("-region")
    url = f"{config.platform_url.rstrip('/')}/demo/region/{region}/{verb}"
    try:
        answer = httpx.post(url, headers={"authorization": f"Bearer {config.platform_admin_token}"}, timeout=5)
    except httpx.HTTPError as err:
        raise CliError(
            f"demo {action}: the demo service at {config.platform_url} did not answer: {err} (is `make run` running?)",
            code=3,
        ) from err
    if answer.status_code != 200:
        raise CliError(f"demo {action}: the demo service answered {answer.status_code}: {answer.text}")
    already = "" if answer.json().get("changed") else " (it already was)"
    if verb == "break":
        print(f"{region}: down{already}; its health answers 503 until `runbook demo heal-region {region}`")
    else:
        print(f"{region}: back up{already}; its health follows its ECS service again")


def _devstack_demo():  # noqa: ANN202
    """The local stack's fault injection, loaded only for `runbook demo`: devstack/ is part of the
    source tree, not of the installed package or the image."""
    try:
        from devstack import demo
    except ModuleNotFoundError as err:
        if err.name != "devstack":
            raise
        if not (settings.PROJECT_ROOT / "devstack" / "demo.py").is_file():
            raise CliError(
                "demo: the local stack (devstack/) is not installed; run `runbook demo` from a source "
                "checkout (`make run`)"
            ) from None
        sys.path.insert(0, str(settings.PROJECT_ROOT))  # the console script of an editable install
        from devstack import demo
    return demo


# --------------------------------------------------------------------------- helpers


@dataclass
class Run:
    """One run of a runbook, as found by an operator's id."""

    handle: WorkflowHandle
    workflow_type: str
    status: int | None  # temporalio.client.WorkflowExecutionStatus, the same numbers as the API's

    @property
    def workflow_id(self) -> str:
        return self.handle.id

    @property
    def is_incident(self) -> bool:
        return self.workflow_type == WORKFLOW_TYPE


async def find_run(client: Client, ident: str) -> Run:
    """A run by its workflow id (any runbook's), or an incident by its INC- id."""
    if not ident.strip():
        raise CliError("the id must not be empty")
    if ident.startswith("INC-"):
        handle = await _incident_by_id(client, ident)
    else:
        handle = client.get_workflow_handle(ident)
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            what = "incident" if ident.startswith("incident/") else "run"
            raise CliError(f"no {what} {ident} (see `runbook runs`)") from None
        raise
    return Run(handle=handle, workflow_type=description.workflow_type, status=description.status)


async def _incident_by_id(client: Client, ident: str) -> WorkflowHandle:
    async for execution in client.list_workflows(f"WorkflowType = '{WORKFLOW_TYPE}'", limit=5000):
        memo = await execution.memo()
        if memo.get("incident_id") == ident:
            return client.get_workflow_handle(execution.id, run_id=execution.run_id)
    raise CliError(f"no incident {ident} (see `runbook incidents`)")


async def current_view(run: Run) -> dict[str, Any]:
    """The run's `view` as plain data. A completed run answers from its result when that
    carries the view (incidents do), so no worker is needed; else the worker answers the query."""
    if run.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED:
        result = await run.handle.result()
        if isinstance(result, dict) and isinstance(result.get("view"), dict):
            return result["view"]
    try:
        view = await run.handle.query("view", result_type=dict, rpc_timeout=QUERY_TIMEOUT)
    except WorkflowQueryFailedError as err:
        raise CliError(f"{run.workflow_id} ({run.workflow_type}) has no operator view: {err}") from None
    except RPCError as err:
        state = _execution_status(run.status)
        raise CliError(
            f"{run.workflow_id} ({state}): no worker answered the query ({err}); is the worker running?", 3
        ) from None
    if not isinstance(view, dict):
        raise CliError(f"{run.workflow_id} ({run.workflow_type}): its view is not an object but {type(view).__name__}")
    return view


async def _pending_plan(run: Run) -> str:
    view = await current_view(run)
    plan = view.get("pending_approval")
    if not plan:
        label = view.get("id") or run.workflow_id
        raise CliError(f"{label}: nothing awaits approval (status {view.get('status', '?')})", code=1)
    typed = shown(run.workflow_type, view)  # a typed runbook's plan id may be derived, not a field
    if typed is not None and typed.plan_id is not None:
        print(f"plan {typed.plan_id}: {typed.proposed}", file=sys.stderr)
        return typed.plan_id
    print(f"plan {plan.get('plan_id')}: {describe_plan(plan)}", file=sys.stderr)
    return str(plan.get("plan_id"))


def _policy(config: settings.Settings):  # noqa: ANN202
    try:
        return load_policy_file(config.policy_path)
    except PolicyError as err:
        raise CliError(str(err)) from None


def _execution_status(status: int | None) -> str:
    if status is None:
        return "unknown"
    name = WorkflowExecutionStatus.Name(WorkflowExecutionStatus.ValueType(status))
    return name.removeprefix("WORKFLOW_EXECUTION_STATUS_").lower()


def _run_status(memo: Mapping[str, Any], execution: WorkflowExecution) -> str:
    """The runbook's own status (search attribute, else memo), else Temporal's."""
    return runbook_status(memo, execution) or _execution_status(execution.status)


def describe_plan(plan: dict[str, Any]) -> str:
    """What a pending approval would do: an incident's remediation in words, else its fields."""
    try:
        return RemediationPlan.model_validate(plan).describe()
    except ValidationError:
        pass
    nested = plan.get("fields")
    fields: dict[str, Any] = nested if isinstance(nested, dict) else plan
    return ", ".join(f"{key}={value}" for key, value in fields.items() if key != "plan_id" and value is not None)


def render_any(run: Run, view: dict[str, Any]) -> str:
    """An incident as before; a typed runbook's run (scaling, failover) with its facts; any
    other run by the fields every runbook's view has."""
    if run.is_incident:
        try:
            return render(IncidentView.model_validate(view))
        except ValidationError:
            pass  # a view of another shape (an older run): the common fields still say what matters
    typed = typed_view(run.workflow_type, view)
    if typed is not None:
        return render_typed(LABELS[run.workflow_type], typed)
    return render_generic(run, view)


def render_typed(runbook: str, view: TypedView) -> str:
    if isinstance(view, ScalingView):
        where = f"{view.service} in {view.region}"
    elif isinstance(view, BedrockView):
        where = f"Bedrock in {view.region}"
    else:
        where = view.service
    lines = [
        f"{view.workflow_id}  [{runbook}]  {where}" + ("  (plan only)" if view.plan_only else ""),
        f"  status        {view.status.value}" + (f" ({view.outcome})" if view.outcome else ""),
        f"  opened        {view.opened_at:%Y-%m-%d %H:%M:%S} UTC by {view.opened_by}",
    ]
    lines.extend(f"  {label:<13} {text}" for label, text in view.facts())
    if view.refused_signals:
        lines.append(f"  REFUSED       {view.refused_signals} signal(s) the intake did not sign (see the worker's log)")
    if view.pending_approval is not None:
        plan = view.pending_approval
        lines.append(f"  AWAITING APPROVAL  {plan.plan_id}: {plan.describe()}")
        where = view.workflow_id
        lines.append(f"{'':21}runbook approve {where}   |   runbook reject {where} --reason TEXT")
    lines.append("  timeline")
    for entry in view.timeline:
        actor = "" if entry.actor == "runbook" else f" [{entry.actor}]"
        detail = f": {entry.detail}" if entry.detail else ""
        lines.append(f"    {entry.at:%H:%M:%S}  {entry.step:<11} {entry.event}{actor}{detail}")
    return "\n".join(lines)


def _time(value: Any, layout: str) -> str:
    try:
        return datetime.fromisoformat(str(value)).strftime(layout)
    except ValueError:
        return str(value or "-")


def render_generic(run: Run, view: dict[str, Any]) -> str:
    workflow_id = view.get("workflow_id") or run.workflow_id
    outcome = view.get("outcome")
    lines = [
        f"{workflow_id}  [{run.workflow_type}]  {view.get('summary') or ''}".rstrip(),
        f"  status        {view.get('status', '?')}" + (f" ({outcome})" if outcome else ""),
        f"  opened        {_time(view.get('opened_at'), '%Y-%m-%d %H:%M:%S')} UTC",
    ]
    plan = view.get("pending_approval")
    if plan:
        lines.append(f"  AWAITING APPROVAL  {plan.get('plan_id')}")
        fields = plan.get("fields") if isinstance(plan.get("fields"), dict) else plan
        for key, value in fields.items():
            if key != "plan_id" and value is not None:
                lines.append(f"                     {key}: {value}")
        lines.append(
            f"                     runbook approve {workflow_id}   |   runbook reject {workflow_id} --reason TEXT"
        )
    lines.append("  timeline")
    for entry in view.get("timeline") or []:
        actor = entry.get("actor") or "runbook"
        actor = "" if actor == "runbook" else f" [{actor}]"
        detail = f": {entry['detail']}" if entry.get("detail") else ""
        lines.append(
            f"    {_time(entry.get('at'), '%H:%M:%S')}  {entry.get('step', ''):<11} {entry.get('event', '')}"
            f"{actor}{detail}"
        )
    return "\n".join(lines)


def render(view: IncidentView) -> str:
    lines = [
        f"{view.id}  [{view.severity.value if view.severity else '?'}]  {view.summary}",
        f"  status        {view.status.value}" + (f" ({view.outcome})" if view.outcome else ""),
        f"  target        {view.service} in {view.region}   (workflow {view.workflow_id})",
        f"  opened        {view.opened_at:%Y-%m-%d %H:%M:%S} UTC by {view.opened_by}; {view.alert_count} alert(s)",
        f"  acknowledged  {view.acknowledged_by or '-'}",
    ]
    if view.refused_signals:  # forged or replayed signals straight into Temporal: worth a look
        lines.append(f"  REFUSED       {view.refused_signals} signal(s) the intake did not sign (see the worker's log)")
    if view.pagerduty and view.pagerduty.incident_id:
        lines.append(
            f"  pagerduty     {view.pagerduty.incident_id} level {view.pagerduty.escalation_level}"
            + (f"  {view.pagerduty.html_url}" if view.pagerduty.html_url else "")
        )
    if view.diagnosis:
        lines.append(f"  diagnosis     {view.diagnosis.summary()}")
    if view.failover:
        lines.append(f"  failover      {view.failover}: the region is down; approve it there")
    if view.pending_approval:
        plan = view.pending_approval
        lines += [
            f"  AWAITING APPROVAL  {plan.plan_id}: {plan.describe()}",
            f"                     why: {plan.reason}",
            f"                     runbook approve {view.id}   |   runbook reject {view.id} --reason TEXT",
        ]
    if view.remediation:
        lines.append(f"  remediation   {view.remediation.detail}")
    lines.append("  timeline")
    for entry in view.timeline:
        actor = "" if entry.actor == "runbook" else f" [{entry.actor}]"
        detail = f": {entry.detail}" if entry.detail else ""
        lines.append(f"    {entry.at:%H:%M:%S}  {entry.step:<11} {entry.event}{actor}{detail}")
    return "\n".join(lines)


async def cmd_schedules(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    """`apply` makes the server's `runbook-` Schedules what the policy declares (idempotent; the
    stack runs it at start, production on deploy); `trigger NAME` runs one now; else the list."""
    if args.verb == "apply":
        policy = _policy(config)
        for change in await schedules.apply(client, policy, config.task_queue):
            print(f"{change.change:<9} {change.name}  {change.detail}")
        if not policy.schedules:
            print(f"no schedules declared in {config.policy_path}")
        return
    if args.verb != "list":
        if not args.name:
            raise CliError(f"schedules {args.verb}: give the schedule's name (`runbook schedules` lists them)")
        try:
            print(await _schedule_verb(client, args))
        except schedules.ScheduleError as err:
            raise CliError(str(err)) from None
        return
    found = await schedules.rows(client)
    if args.json:
        for row in found:
            print(row.model_dump_json())
        return
    if not found:
        print("no schedules: `runbook schedules apply` creates the policy's")
        return
    print(f"{'NAME':<26} {'CRON (UTC)':<14} {'STATE':<7} {'NEXT (UTC)':<17} {'LAST (UTC)':<17} LAST RUN")
    for row in found:
        state = "paused" if row.paused else "active"
        upcoming = f"{row.next_runs[0]:%Y-%m-%d %H:%M}" if row.next_runs else "-"
        last = f"{row.last_run:%Y-%m-%d %H:%M}" if row.last_run else "-"
        run = f"{row.last_workflow_id} ({row.last_outcome})" if row.last_workflow_id else "-"
        print(f"{row.name:<26} {row.cron or '?':<14} {state:<7} {upcoming:<17} {last:<17} {run}")
        if row.paused and row.note:
            print(f"{'':<26} {row.note}")


async def _schedule_verb(client: Client, args: argparse.Namespace) -> str:
    if args.verb == "trigger":
        started = await schedules.trigger(client, args.name)
        if started is None:
            return f"asked {args.name} to run: not started yet (its overlap policy may hold it behind a running one)"
        return f"triggered {args.name}: started {started}"
    if args.verb in ("pause", "unpause"):
        reason = (args.reason or "").strip()
        if args.verb == "pause" and not reason:
            raise CliError("schedules pause: --reason is required (it is shown with the paused schedule)")
        note = f"{args.verb}d by {_who()}" + (f": {reason}" if reason else "")
        await (schedules.pause if args.verb == "pause" else schedules.unpause)(client, args.name, note)
        return f"{args.name} {args.verb}d"
    if args.start is None or args.end is None:
        raise CliError("schedules backfill: --from and --to are required")
    await schedules.backfill(client, args.name, args.start, args.end)
    return f"backfill of {args.name} from {args.start:%Y-%m-%d %H:%M} to {args.end:%Y-%m-%d %H:%M} UTC asked"


async def cmd_maintenance_schedule(session: SignedIn, args: argparse.Namespace) -> None:
    """Asks the sign-in service for the window (signed in your name); with --plan, waits for the
    run's plan and prints what it would change."""
    problem = maintenance.check_flags(args)
    if problem is not None:
        raise CliError(problem)
    answer = await call(session.url, "POST", "/api/v1/maintenance", maintenance.request_body(args), token=session.token)
    workflow_id = answer["workflow_id"]
    print(workflow_id)
    if not args.plan:
        print(
            f"scheduled for {args.start:%Y-%m-%d %H:%M} UTC: `runbook approve {workflow_id} --plan ...` "
            "(`runbook show` names the plan), `runbook maintenance` lists it",
            file=sys.stderr,
        )
        return
    client = await _connect()
    try:
        result = await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), timeout=60)
    except TimeoutError:
        raise CliError(f"{workflow_id}: no plan within a minute; is the worker running?", 3) from None
    view = maintenance.MaintenanceView.model_validate(result["view"])
    for line in view.planned_calls:
        print(f"would call    {line}")
    print(view.outcome or "")


async def cmd_maintenance(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    found = await maintenance.rows(client)
    if args.json:
        for row in found:
            print(row.model_dump_json())
        return
    print(maintenance.render(found))


def _who() -> str:
    """Who pauses: the signed-in operator if there is a session, else the machine's user."""
    try:
        return load_session().user
    except CliError:
        return f"{getpass.getuser()} (not signed in)"


def cmd_reports(args: argparse.Namespace, config: settings.Settings) -> None:
    """The stored reports, newest first, read from the bucket (not from Temporal)."""
    from runbook_cli import reports

    try:
        found = reports.list_reports(_policy(config).reviews)
    except reports.ReportError as err:
        raise CliError(f"reports: {err}", code=3) from None
    if args.json:
        for row in found:
            print(row.model_dump_json())
        return
    if not found:
        print("no reports yet: `runbook schedules trigger daily-performance-review` makes one")
        return
    print(f"{'ID':<20} {'STORED (UTC)':<17} {'BYTES':>7}  CHARTS")
    for row in found:
        print(f"{row.id:<20} {row.stored:%Y-%m-%d %H:%M} {row.bytes:>7}  {len(row.charts)}")


def cmd_report(args: argparse.Namespace, config: settings.Settings) -> None:
    from runbook_cli import reports

    try:
        print(reports.read_report(_policy(config).reviews, args.id), end="")
    except reports.ReportError as err:
        raise CliError(f"report: {err}", code=2 if isinstance(err, reports.NoSuchReport) else 3) from None


# The reports are read from the bucket, without Temporal.
STORE_READS = {"reports": cmd_reports, "report": cmd_report}
READS = {
    "incidents": cmd_incidents,
    "runs": cmd_runs,
    "show": cmd_show,
    "audit": cmd_audit,
    "postmortem": cmd_postmortem,
    "actions": cmd_actions,
    "stats": cmd_stats,
    "schedules": cmd_schedules,
    "maintenance": cmd_maintenance,
}
ACTIONS = {
    "ack": cmd_ack,
    "approve": cmd_approve,
    "reject": cmd_reject,
    "comment": cmd_comment,
    "cancel": cmd_cancel,
    "review": cmd_review,
    "followup": cmd_followup,
    "action": cmd_action,
}
SESSIONS = {"login": cmd_login, "logout": cmd_logout, "whoami": cmd_whoami}


async def run(args: argparse.Namespace) -> None:
    config = settings.load()
    if args.command == "demo":
        cmd_demo(args, config)
        return
    if args.command in SESSIONS:
        await SESSIONS[args.command](args)
        return
    if args.command in STORE_READS:
        STORE_READS[args.command](args, config)
        return
    scheduling = args.command == "maintenance" and args.verb == "schedule"
    session = signed_in(args) if args.command in (*ACTIONS, "trigger") or scheduling else None  # said first
    if scheduling:
        assert session is not None
        await cmd_maintenance_schedule(session, args)
        return
    if args.command == "trigger":
        assert session is not None
        await cmd_trigger(session, args)
        return
    client = await _connect()
    if session is not None:
        await ACTIONS[args.command](client, args, session)
    else:
        await READS[args.command](client, args, config)


async def _connect() -> Client:
    try:
        temporal = load_config()
    except TemporalConfigError as err:
        raise CliError(str(err)) from None
    try:
        return await connect(temporal)
    except Exception as err:  # noqa: BLE001 - connection failures come in many types
        raise CliError(f"cannot reach Temporal at {temporal.describe()}: {err} (is `make run` running?)", 3) from None


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = parser().parse_args(argv)
    code = 0
    try:
        asyncio.run(run(args))
    except CliError as err:
        print(f"runbook: {err}", file=sys.stderr)
        code = err.code
    except RPCError as err:
        print(f"runbook: Temporal answered {err.status.name if err.status else 'an error'}: {err}", file=sys.stderr)
        code = 3
    except KeyboardInterrupt:
        code = 130
    # sdk-python issue 300: the Temporal client's runtime may crash the interpreter at exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
