"""`runbook`: the operators' command line, a thin Temporal client. No runbook logic here.

Exit codes: 0 done, 1 refused by the runbook (wrong state, not permitted, stale plan),
2 bad usage or nothing to act on, 3 Temporal or the worker cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import (
    Client,
    RPCError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCStatusCode

import settings
from contracts import (
    SEARCH_SERVICE,
    SEARCH_SEVERITY,
    SEARCH_STATUS,
    Acknowledge,
    Alert,
    Approve,
    Cancel,
    Comment,
    IncidentResult,
    IncidentView,
    PolicyError,
    Reject,
    Severity,
    load_policy_file,
)
from starter import WORKFLOW_TYPE, incident_id_of, open_or_join_incident
from worker import connect
from workflows.incident_response import IncidentResponseWorkflow

QUERY_TIMEOUT = timedelta(seconds=10)


class CliError(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- arguments


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="runbook", description="Operate the runbooks' incidents.")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    trigger = commands.add_parser("trigger", help="open an incident (or join the open one for the target)")
    trigger_kinds = trigger.add_subparsers(dest="kind", required=True, metavar="KIND")
    incident = trigger_kinds.add_parser("incident", help="open an incident by hand")
    incident.add_argument("--service", required=True, help="a service of the policy, e.g. hybrid-router")
    incident.add_argument("--severity", required=True, type=_severity, help="P0, P1, P2 or P3")
    incident.add_argument("--summary", required=True, help="what is wrong, one line")
    incident.add_argument("--region", help="the service's region in the policy (the only one it has)")
    _identity(incident, required=False)

    listing = commands.add_parser("incidents", help="list incidents, newest first")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    listing.add_argument("--open", action="store_true", help="only incidents whose runbook still runs")
    listing.add_argument("--limit", type=_positive, default=50)
    listing.add_argument("--service", help="only this service")
    listing.add_argument("--severity", type=_severity, help="only this severity (P0-P3)")
    listing.add_argument("--status", help="only this status (awaiting_ack, awaiting_approval, resolved, ...)")

    show = commands.add_parser("show", help="one incident: status, pending approval, timeline")
    show.add_argument("id", help="INC-... or incident/SERVICE/REGION")
    show.add_argument("--json", action="store_true")

    ack = commands.add_parser("ack", help="acknowledge an incident")
    ack.add_argument("id")
    _identity(ack)
    ack.add_argument("--note", help="optional note for the timeline")

    approve = commands.add_parser("approve", help="approve the proposed remediation")
    approve.add_argument("id")
    _identity(approve)
    approve.add_argument("--plan", help="plan id to approve (default: the one pending now, shown first)")
    approve.add_argument("--comment")

    reject = commands.add_parser("reject", help="reject the proposed remediation; the runbook escalates")
    reject.add_argument("id")
    _identity(reject)
    reject.add_argument("--reason", required=True, type=_non_empty("--reason"))
    reject.add_argument("--plan", help="plan id to reject (default: the one pending now)")

    comment = commands.add_parser("comment", help="add a comment to the incident's timeline and PagerDuty")
    comment.add_argument("id")
    _identity(comment)
    comment.add_argument("--text", required=True, type=_non_empty("--text"))

    cancel = commands.add_parser("cancel", help="stop the runbook safely (undoes a remediation not yet verified)")
    cancel.add_argument("id")
    _identity(cancel)
    cancel.add_argument("--reason", required=True, type=_non_empty("--reason"))

    audit = commands.add_parser("audit", help="the incident's audit trail, as JSON lines")
    audit.add_argument("id")

    demo = commands.add_parser("demo", help="the local stack's fault injection")
    demo.add_argument("action", choices=["break", "heal"])
    demo.add_argument("service", help="a service of the policy, e.g. hybrid-router")
    return top


def _identity(command: argparse.ArgumentParser, required: bool = True) -> None:
    command.add_argument(
        "--as", dest="operator", help="who you are (default: $RUNBOOK_OPERATOR)" + ("" if required else ", or 'cli'")
    )
    command.set_defaults(operator_required=required)


def _severity(value: str) -> Severity:
    try:
        return Severity(value.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of P0, P1, P2, P3") from None


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


def operator_of(args: argparse.Namespace) -> str:
    who = args.operator or os.environ.get("RUNBOOK_OPERATOR", "")
    if who.strip():
        return who.strip()
    if getattr(args, "operator_required", True):
        raise CliError(f"runbook {args.command}: --as NAME is required (or set RUNBOOK_OPERATOR)")
    return "cli"


# --------------------------------------------------------------------------- commands


async def cmd_trigger(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    policy = _policy(config)
    if args.service not in policy.services:
        known = ", ".join(sorted(policy.services)) or "none"
        raise CliError(f"--service {args.service!r} is not in the policy {config.policy_path} (known: {known})")
    if not args.summary.strip():
        raise CliError("--summary must not be empty")
    region = policy.services[args.service].region
    if args.region and args.region != region:  # the policy's target for the service is in one region
        raise CliError(f"--region {args.region!r}: the policy's {args.service} runs in {region}")
    who = operator_of(args)
    alert = Alert(source="cli", service=args.service, region=region, summary=args.summary.strip(),
                  severity=args.severity, raised_by=who, received_at=datetime.now(UTC))  # fmt: skip
    handle = await open_or_join_incident(client, alert, who, config.task_queue)
    incident_id = await incident_id_of(handle)
    print(incident_id)
    print(f"workflow {handle.id}", file=sys.stderr)


async def cmd_incidents(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    query = f"WorkflowType = '{WORKFLOW_TYPE}'"
    if args.open:
        query += " AND ExecutionStatus = 'Running'"
    filters = {SEARCH_SERVICE.name: args.service, SEARCH_SEVERITY.name: args.severity.value if args.severity else None,
               SEARCH_STATUS.name: args.status}  # fmt: skip
    for name, value in filters.items():
        if value is not None:
            if not re.fullmatch(r"[\w.-]+", value):
                raise CliError(f"--{name.removeprefix('Incident').lower()} {value!r}: letters, digits, . _ - only")
            query += f" AND {name} = '{value}'"
    rows: list[dict[str, Any]] = []
    async for execution in client.list_workflows(query, limit=args.limit):
        memo = await execution.memo()
        status = memo.get("status") or _execution_status(execution.status)
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


async def cmd_show(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    handle = await find_incident(client, args.id)
    view = await current_view(handle)
    if args.json:
        print(view.model_dump_json(indent=2))
    else:
        print(render(view))


async def cmd_ack(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    handle = await find_incident(client, args.id)
    reply = await _update(handle, IncidentResponseWorkflow.acknowledge, Acknowledge(by=operator_of(args), note=args.note))
    print(reply.message)


async def cmd_approve(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    handle = await find_incident(client, args.id)
    plan_id = args.plan or await _pending_plan(handle)
    request = Approve(by=operator_of(args), plan_id=plan_id, comment=args.comment)
    reply = await _update(handle, IncidentResponseWorkflow.approve, request)
    print(reply.message)


async def cmd_reject(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    handle = await find_incident(client, args.id)
    plan_id = args.plan or await _pending_plan(handle)
    reply = await _update(handle, IncidentResponseWorkflow.reject, Reject(by=operator_of(args), plan_id=plan_id,
                                                                          reason=args.reason))  # fmt: skip
    print(reply.message)


async def cmd_comment(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    handle = await find_incident(client, args.id)
    reply = await _update(handle, IncidentResponseWorkflow.comment, Comment(by=operator_of(args), text=args.text))
    print(reply.message)


async def cmd_cancel(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    handle = await find_incident(client, args.id)
    reply = await _update(handle, IncidentResponseWorkflow.cancel, Cancel(by=operator_of(args), reason=args.reason))
    print(reply.message)


async def cmd_audit(client: Client, args: argparse.Namespace, config: settings.Settings) -> None:
    """One JSON object a line: every step, alert and operator action, with who, when and why."""
    view = await current_view(await find_incident(client, args.id))
    for entry in view.timeline:
        print(json.dumps({"incident": view.id, **entry.model_dump(mode="json")}))


def cmd_demo(args: argparse.Namespace, config: settings.Settings) -> None:
    from devstack import demo  # the local stack's fault injection only

    target = _policy(config).services.get(args.service)
    if target is None:
        raise CliError(f"demo: unknown service {args.service!r} (not in the policy {config.policy_path})")
    # The demo acts on the local stack's AWS emulator unless told otherwise.
    os.environ.setdefault("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        if args.action == "break":
            arn = demo.break_service(target.ecs_cluster, target.ecs_service, target.region)
            print(f"{args.service}: deployed faulty {arn.rsplit('/', 1)[-1]}; it turns unhealthy")
        else:
            arn = demo.heal_service(target.ecs_cluster, target.ecs_service, target.region)
            print(f"{args.service}: restored {arn.rsplit('/', 1)[-1]} by hand")
    except Exception as err:  # noqa: BLE001 - any failure here is reported, not traced
        raise CliError(f"demo {args.action}: {err} (is `make run` running?)", code=3) from err


# --------------------------------------------------------------------------- helpers


async def find_incident(client: Client, ident: str) -> WorkflowHandle:
    """An incident by workflow id (incident/SERVICE/REGION) or by its INC- id."""
    if ident.startswith("incident/"):
        handle = client.get_workflow_handle(ident, result_type=IncidentResult)
        try:
            await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise CliError(f"no incident {ident}") from None
            raise
        return handle
    if not ident.startswith("INC-"):
        raise CliError(f"{ident!r} is not an incident id (INC-...) nor a workflow id (incident/SERVICE/REGION)")
    async for execution in client.list_workflows(f"WorkflowType = '{WORKFLOW_TYPE}'", limit=5000):
        memo = await execution.memo()
        if memo.get("incident_id") == ident:
            return client.get_workflow_handle(execution.id, run_id=execution.run_id, result_type=IncidentResult)
    raise CliError(f"no incident {ident} (see `runbook incidents`)")


async def current_view(handle: WorkflowHandle) -> IncidentView:
    description = await handle.describe()
    if description.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED:
        result: IncidentResult = await handle.result()
        return result.view
    try:
        return await handle.query(IncidentResponseWorkflow.view, rpc_timeout=QUERY_TIMEOUT)
    except (WorkflowQueryFailedError, RPCError) as err:
        state = _execution_status(description.status)
        raise CliError(f"{handle.id} ({state}): no worker answered the query ({err}); is the worker running?", 3) from None


async def _pending_plan(handle: WorkflowHandle) -> str:
    view = await current_view(handle)
    if view.pending_approval is None:
        raise CliError(f"{view.id}: nothing awaits approval (status {view.status.value})", code=1)
    print(f"plan {view.pending_approval.plan_id}: {view.pending_approval.describe()}", file=sys.stderr)
    return view.pending_approval.plan_id


async def _update(handle: WorkflowHandle, update: Any, request: Any) -> Any:
    try:
        return await handle.execute_update(update, request, rpc_timeout=QUERY_TIMEOUT * 3)
    except WorkflowUpdateFailedError as err:
        raise CliError(f"refused: {_message(err.cause)}", code=1) from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise CliError(f"{handle.id}: the incident's runbook has finished; nothing to change", code=1) from None
        raise


def _message(err: BaseException | None) -> str:
    message = getattr(err, "message", None) or str(err)
    return str(message)


def _policy(config: settings.Settings):  # noqa: ANN202
    try:
        return load_policy_file(config.policy_path)
    except PolicyError as err:
        raise CliError(str(err)) from None


def _execution_status(status: WorkflowExecutionStatus | int | None) -> str:
    if status is None:
        return "unknown"
    name = WorkflowExecutionStatus.Name(status)
    return name.removeprefix("WORKFLOW_EXECUTION_STATUS_").lower()


def render(view: IncidentView) -> str:
    lines = [
        f"{view.id}  [{view.severity.value if view.severity else '?'}]  {view.summary}",
        f"  status        {view.status.value}" + (f" ({view.outcome})" if view.outcome else ""),
        f"  target        {view.service} in {view.region}   (workflow {view.workflow_id})",
        f"  opened        {view.opened_at:%Y-%m-%d %H:%M:%S} UTC by {view.opened_by}; {view.alert_count} alert(s)",
        f"  acknowledged  {view.acknowledged_by or '-'}",
    ]
    if view.pagerduty and view.pagerduty.incident_id:
        lines.append(
            f"  pagerduty     {view.pagerduty.incident_id} level {view.pagerduty.escalation_level}"
            + (f"  {view.pagerduty.html_url}" if view.pagerduty.html_url else "")
        )
    if view.diagnosis:
        lines.append(f"  diagnosis     {view.diagnosis.summary()}")
    if view.pending_approval:
        plan = view.pending_approval
        lines += [
            f"  AWAITING APPROVAL  {plan.plan_id}: {plan.describe()}",
            f"                     why: {plan.reason}",
            f"                     runbook approve {view.id} --as NAME   |   runbook reject {view.id} --as NAME --reason TEXT",
        ]
    if view.remediation:
        lines.append(f"  remediation   {view.remediation.detail}")
    lines.append("  timeline")
    for entry in view.timeline:
        actor = "" if entry.actor == "runbook" else f" [{entry.actor}]"
        detail = f": {entry.detail}" if entry.detail else ""
        lines.append(f"    {entry.at:%H:%M:%S}  {entry.step:<11} {entry.event}{actor}{detail}")
    return "\n".join(lines)


COMMANDS = {
    "trigger": cmd_trigger,
    "incidents": cmd_incidents,
    "show": cmd_show,
    "ack": cmd_ack,
    "approve": cmd_approve,
    "reject": cmd_reject,
    "comment": cmd_comment,
    "cancel": cmd_cancel,
    "audit": cmd_audit,
}


async def run(args: argparse.Namespace) -> None:
    config = settings.load()
    if getattr(args, "operator_required", False):
        operator_of(args)  # say a missing --as before anything else
    if args.command == "demo":
        cmd_demo(args, config)
        return
    try:
        client = await connect(config)
    except Exception as err:  # noqa: BLE001 - connection failures come in many types
        raise CliError(f"cannot reach Temporal at {config.temporal_address}: {err} (is `make run` running?)", 3) from None
    await COMMANDS[args.command](client, args, config)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = parser().parse_args(argv)
    code = 0
    try:
        asyncio.run(run(args))
    except CliError as err:
        print(f"runbook: {err}", file=sys.stderr)
        code = err.code
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        print("runbook: no answer from the incident in time; is the worker running?", file=sys.stderr)
        code = 3
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
