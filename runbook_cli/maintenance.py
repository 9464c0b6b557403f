"""`runbook maintenance`: the maintenance windows, listed from Temporal (each run's own view),
and `runbook maintenance schedule`, which asks the sign-in service for a window in the
signed-in operator's name (the CLI writes nothing to Temporal itself)."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError
from temporalio.client import Client, RPCError, WorkflowExecutionStatus, WorkflowQueryFailedError

from contracts.common import Strict
from contracts.maintenance import (
    ACTIONS,
    CLOSED_MAINTENANCE,
    MAINTENANCE_TYPE,
    MaintenanceSpec,
    MaintenanceStatus,
    MaintenanceView,
)

QUERY_TIMEOUT = timedelta(seconds=10)
State = Literal["scheduled", "active", "done"]
WAITING = frozenset({MaintenanceStatus.SCHEDULED, MaintenanceStatus.AWAITING_APPROVAL})


class WindowRow(Strict):
    workflow_id: str
    service: str
    state: State
    status: str
    start: datetime | None
    action: str
    opened_by: str
    outcome: str | None


def add_parser(commands: Any, identity: Any, timestamp: Any, duration: Any) -> None:
    maintenance = commands.add_parser(
        "maintenance", help="maintenance windows: list them (default), or schedule one (`maintenance schedule`)"
    )
    maintenance.add_argument("--json", action="store_true", help="list: one JSON object per window")
    verbs = maintenance.add_subparsers(dest="verb", metavar="VERB")
    schedule = verbs.add_parser("schedule", help="a one-off window: checked, silenced in PagerDuty, changed, checked")
    schedule.add_argument("--service", required=True, help="a service of the policy, e.g. hybrid-router")
    schedule.add_argument("--start", required=True, type=timestamp("--start"), help="UTC, e.g. 2026-12-07T02:00Z")
    schedule.add_argument("--duration", default="1h", type=duration("--duration"), help="1m to 24h (default 1h)")
    schedule.add_argument("--action", required=True, choices=ACTIONS, help="what the window does")
    schedule.add_argument("--revision", type=_number("--revision", 1), help="deploy: the task definition revision")
    schedule.add_argument("--count", type=_number("--count", 0), help="scale: the number of tasks")
    schedule.add_argument("--plan", action="store_true", help="plan only: print what it would change; change none")
    schedule.add_argument("--reason", help="why, one line (the run's timeline shows it)")
    identity(schedule)


def _number(flag: str, least: int):  # noqa: ANN202
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < least:
            raise argparse.ArgumentTypeError(f"{flag}: {text!r} is not a whole number of at least {least}")
        return int(text)

    return parse


def check_flags(args: argparse.Namespace) -> str | None:
    """The window's arguments as the run will judge them; a message naming the flag, or None."""
    try:
        MaintenanceSpec(
            service=args.service, action=args.action, duration=args.duration, revision=args.revision, count=args.count
        )
    except ValidationError as err:
        message = str(err.errors(include_url=False)[0]["msg"]).removeprefix("Value error, ")
        field, _, rest = message.partition(": ")
        return f"--{field}: {rest}" if rest else message
    return None


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    asked = {
        "service": args.service,
        "start": args.start.isoformat(),
        "duration": args.duration,
        "action": args.action,
        "revision": args.revision,
        "count": args.count,
        "plan": args.plan,
        "reason": args.reason,
    }
    return {name: value for name, value in asked.items() if value is not None}


async def view_of(client: Client, workflow_id: str, run_id: str | None = None) -> MaintenanceView | None:
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    try:
        view: MaintenanceView = await handle.query("view", result_type=MaintenanceView, rpc_timeout=QUERY_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError):
        return None
    return view


def state_of(view: MaintenanceView) -> State:
    if view.status in WAITING:
        return "scheduled"
    return "done" if view.status in CLOSED_MAINTENANCE else "active"


async def rows(client: Client) -> list[WindowRow]:
    """Every window's run, newest first, as its own view says (a run that does not answer is
    listed by what Temporal knows of it)."""
    found: list[WindowRow] = []
    async for execution in client.list_workflows(f"WorkflowType = '{MAINTENANCE_TYPE}'", limit=500):
        view = await view_of(client, execution.id, execution.run_id)
        if view is None:
            memo = await execution.memo()
            running = execution.status == WorkflowExecutionStatus.RUNNING
            status = execution.status.name.lower() if execution.status else "unknown"
            found.append(
                WindowRow(
                    workflow_id=execution.id,
                    service=str(memo.get("service", "?")),
                    state="active" if running else "done",
                    status=f"{status} (no answer)" if running else status,
                    start=None,
                    action="?",
                    opened_by="?",
                    outcome=None,
                )
            )
            continue
        found.append(
            WindowRow(
                workflow_id=view.workflow_id,
                service=view.service,
                state=state_of(view),
                status=view.status.value,
                start=view.start if view.spec is not None else None,
                action=view.spec.describe() if view.spec else "?",
                opened_by=view.opened_by,
                outcome=view.outcome,
            )
        )
    return found


def render(found: list[WindowRow]) -> str:
    if not found:
        return "no maintenance windows: `runbook maintenance schedule --help` asks for one"
    lines = [f"{'STATE':<10} {'START (UTC)':<17} {'STATUS':<17} {'WINDOW':<48} ACTION / OUTCOME"]
    for row in found:
        start = f"{row.start:%Y-%m-%d %H:%M}" if row.start else "-"
        lines.append(f"{row.state:<10} {start:<17} {row.status:<17} {row.workflow_id:<48} {row.action}")
        if row.outcome:
            lines.append(f"{'':<10} {'':<17} {'':<17} {'':<48} {row.outcome}")
    return "\n".join(lines)
