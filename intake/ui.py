"""The approval page: pending approvals with their plan and diagnosis, approve / reject
buttons, timelines. Served on the operator listener (`intake.signin`), never on the webhooks'.

Approve and reject, and a follow-up's action items (added, done, dropped: `intake.followup_page`
renders them), go through `intake.operations`, the same path as the operators' API: the request
is made in the signed-in person's name, signed by the sign-in service and sent as the runbook's
Update, so the runbook verifies who asks and its own validators decide.

Every runbook offers the same operator surface (Updates `approve`, `reject`, ... answering an
OperatorReply; the query `view`), so the page works for the run of any runbook: it reads the
view as plain data. Incidents keep their richer page.

Who is asking: `intake.sessions` (a password sign-in with a server-side session, or the trusted
proxy's header). Every form carries its session's CSRF token.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from temporalio.client import RPCError, WorkflowHandle, WorkflowQueryFailedError

from contracts import IncidentView, RemediationPlan
from contracts.post_incident import FollowupView
from contracts.views import Shown, shown
from intake.followup_page import add_fields, as_followup, done_fields, drop_fields, followups_section, render_followup
from intake.operations import ApiError, Operations
from intake.sessions import COOKIE, Auth, AuthError, Identity, hash_password
from starter import WORKFLOW_TYPE as INCIDENT_TYPE
from starter import runbook_status

VIEW_TIMEOUT = timedelta(seconds=3)  # a run whose worker is away must not hold the page up
PENDING_LIMIT = 200

__all__ = ["hash_password", "ui_routes"]  # hash_password: `python -m intake.ui hash-password`, and the benches


# --------------------------------------------------------------------------- rendering


STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}table{border-collapse:collapse}
td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
.plan{background:#fff6e0;padding:1rem;border:1px solid #e0b040}.msg{background:#eef;padding:.5rem}
.err{background:#fdd;padding:.5rem}button{padding:.4rem 1rem;margin-right:.5rem}
.overdue{color:#b00000;font-weight:bold}"""


def page(title: str, body: str, user: str | None = None, status: int = 200) -> HTMLResponse:
    who = f'<p>signed in as <b id="user">{html.escape(user)}</b></p>' if user else ""
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{who}{body}</body></html>",
        status,
    )


def e(value: Any) -> str:
    return html.escape(str(value))


def as_incident(workflow_type: str, view: dict[str, Any]) -> IncidentView | None:
    if workflow_type != INCIDENT_TYPE:
        return None
    try:
        return IncidentView.model_validate(view)
    except ValidationError:
        return None  # an incident view of another shape: shown by its common fields


def plan_fields(plan: dict[str, Any]) -> dict[str, Any]:
    nested = plan.get("fields")
    fields: dict[str, Any] = nested if isinstance(nested, dict) else plan
    return {key: value for key, value in fields.items() if key != "plan_id" and value is not None}


def describe_plan(plan: dict[str, Any]) -> str:
    try:
        return RemediationPlan.model_validate(plan).describe()
    except ValidationError:
        return ", ".join(f"{key}={value}" for key, value in plan_fields(plan).items())


def decision_forms(workflow_id: str, plan_id: str, csrf: str) -> str:
    hidden = (
        f'<input type="hidden" name="id" value="{e(workflow_id)}">'
        f'<input type="hidden" name="plan_id" value="{e(plan_id)}">'
        f'<input type="hidden" name="csrf" value="{e(csrf)}">'
    )
    return (
        f'<form method="post" action="/ui/approve">{hidden}'
        f'<input name="comment" placeholder="comment (optional)"><button id="approve">Approve</button></form>'
        f'<form method="post" action="/ui/reject">{hidden}'
        f'<input name="reason" required placeholder="reason"><button id="reject">Reject</button></form>'
    )


def timeline_table(entries: list[dict[str, Any]]) -> str:
    def clock(value: Any) -> str:
        try:
            return f"{datetime.fromisoformat(str(value)):%H:%M:%S}"
        except ValueError:
            return e(value or "")

    rows = "".join(
        f"<tr><td>{clock(t.get('at'))}</td><td>{e(t.get('step', ''))}</td><td>{e(t.get('event', ''))}</td>"
        f"<td>{e(t.get('actor', 'runbook'))}</td><td>{e(t.get('detail', ''))}</td></tr>"
        for t in entries
    )
    return (
        f'<h2>Timeline</h2><table id="timeline"><tr><th>UTC</th><th>step</th><th>event</th><th>who</th>'
        f"<th>detail</th></tr>{rows}</table>"
    )


def shown_of(workflow_type: str, view: dict[str, Any]) -> Shown:
    """A typed runbook's facts and pending plan (contracts.views); any other's pending plan by
    the fields every view has."""
    typed = shown(workflow_type, view)
    if typed is not None:
        return typed
    plan = view.get("pending_approval")
    if not isinstance(plan, dict):
        return Shown([], None, None)
    return Shown([], str(plan.get("plan_id")), describe_plan(plan))


def render_run(workflow_id: str, workflow_type: str, view: dict[str, Any], csrf: str, message: str | None) -> str:
    """Any runbook's run, by the fields every view has, and what its runbook adds."""
    parts = [f'<p class="msg" id="message">{e(message)}</p>' if message else ""]
    parts.append(
        f'<p id="status">status: <b>{e(view.get("status", "?"))}</b>'
        f"{' — ' + e(view['outcome']) if view.get('outcome') else ''}</p>"
    )
    parts.append(
        f"<p>runbook {e(workflow_type)} · workflow {e(workflow_id)} · opened {e(view.get('opened_at', '-'))}</p>"
    )
    run = shown_of(workflow_type, view)
    if run.facts:
        rows = "".join(f"<tr><th>{e(label)}</th><td>{e(text)}</td></tr>" for label, text in run.facts)
        parts.append(f'<table id="facts">{rows}</table>')
    plan = view.get("pending_approval")
    if isinstance(plan, dict) and run.plan_id is not None:
        rows = (
            f"<tr><th>proposed</th><td>{e(run.proposed)}</td></tr>"
            if run.facts
            else "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in plan_fields(plan).items())
        )
        parts.append(
            f'<div class="plan" id="plan"><h2>Awaiting approval: {e(run.plan_id)}</h2>'
            f"<table>{rows}</table>{decision_forms(workflow_id, run.plan_id, csrf)}</div>"
        )
    parts.append(timeline_table(view.get("timeline") or []))
    return "".join(parts)


def render_incident(view: IncidentView, csrf: str, message: str | None) -> str:
    parts = [f'<p class="msg" id="message">{e(message)}</p>' if message else ""]
    parts.append(
        f'<p id="status">status: <b>{e(view.status.value)}</b>{" — " + e(view.outcome) if view.outcome else ""}</p>'
    )
    parts.append(
        f"<p>{e(view.severity.value if view.severity else '?')} · {e(view.service)} in {e(view.region)} · "
        f"opened {view.opened_at:%Y-%m-%d %H:%M:%S} UTC by {e(view.opened_by)} · "
        f"acknowledged by {e(view.acknowledged_by or '-')}</p>"
    )
    if view.diagnosis:
        parts.append(f"<h2>Diagnosis</h2><p>{e(view.diagnosis.summary())}</p>")
    if view.failover:
        link = f"/ui/incident?id={quote(view.failover, safe='')}"
        parts.append(
            f'<p id="failover">The region is down: handed to <a href="{e(link)}">{e(view.failover)}</a>, '
            "which confirms, checks readiness and asks its own approvers.</p>"
        )
    plan = view.pending_approval
    if plan:
        parts.append(
            f'<div class="plan" id="plan"><h2>Awaiting approval: {e(plan.plan_id)}</h2><p>{e(plan.describe())}</p>'
            f"<p>why: {e(plan.reason)}</p>{decision_forms(view.workflow_id, plan.plan_id, csrf)}</div>"
        )
    parts.append(timeline_table([t.model_dump(mode="json") for t in view.timeline]))
    return "".join(parts)


# --------------------------------------------------------------------------- routes


async def query_view(handle: WorkflowHandle) -> Any:
    """The run's `view` query (every runbook has it) as plain data."""
    return await handle.query("view", result_type=dict, rpc_timeout=VIEW_TIMEOUT)


Handler = Callable[[Request, Identity], Awaitable[Response]]


def ui_routes(auth: Auth, operations: Operations) -> list[Route]:
    def to_login() -> Response:
        return RedirectResponse("/ui/login", 303)

    def signed_in(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """The visitor's identity for `handler`; the sign-in form for nobody; a refusal for a
        header that did not come from the trusted proxy."""

        async def endpoint(request: Request) -> Response:
            try:
                identity = auth.page(request)
            except AuthError as err:
                return page("Refused", f"<p class='err'>{e(err.message)}</p>", status=err.status)
            if identity is None:
                return to_login()
            response = await handler(request, identity)
            if identity.token is not None:  # a session opened for the proxy's user
                auth.set_cookie(request, response, identity.token, identity.session)
            return response

        return endpoint

    async def login_form(request: Request) -> Response:
        error = request.query_params.get("error")
        return page(
            "Sign in",
            (f'<p class="err">{e(error)}</p>' if error else "")
            + '<form method="post" action="/ui/login"><p><input name="user" id="login-user" placeholder="name">'
            '</p><p><input name="password" id="login-password" type="password" placeholder="password"></p>'
            '<button id="login">Sign in</button></form>',
        )

    async def login(request: Request) -> Response:
        form = await request.form()
        user, password = str(form.get("user", "")), str(form.get("password", ""))
        try:
            signed = await auth.check_password(user, password, request.client.host if request.client else None)
        except AuthError as err:  # too many failed sign-ins: said on the form
            return RedirectResponse("/ui/login?" + urlencode({"error": err.message}), 303)
        if not signed:
            return RedirectResponse("/ui/login?" + urlencode({"error": "wrong name or password"}), 303)
        auth.sessions.revoke(request.cookies.get(COOKIE))  # a new session, never the one the browser had
        token, session = auth.sessions.open(user)
        response = RedirectResponse("/ui", 303)
        auth.set_cookie(request, response, token, session)
        return response

    async def logout(request: Request, who: Identity) -> Response:
        form = await request.form()
        if not csrf_matches(form.get("csrf"), who):
            return page("Refused", "<p class='err'>the form is stale or forged (CSRF token)</p>", who.user, 403)
        auth.sessions.revoke(request.cookies.get(COOKIE))
        response = to_login()
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=auth.secure(request))
        return response

    async def pending(request: Request, who: Identity) -> Response:
        try:
            temporal = await operations.client()
        except ApiError as err:
            return page("Temporal unreachable", f"<p class='err'>{e(err.message)}</p>", who.user, err.status)
        rows = []
        # Running runs of every runbook, asked for their view's pending_approval. An incident's
        # status already says whether it awaits approval, which spares the query for the others.
        waiting = [
            (execution.id, execution.workflow_type)
            async for execution in temporal.list_workflows("ExecutionStatus = 'Running'", limit=PENDING_LIMIT)
            if execution.workflow_type != INCIDENT_TYPE
            or runbook_status(await execution.memo(), execution) == "awaiting_approval"
        ]

        async def view_of(workflow_id: str) -> dict[str, Any] | None:
            try:
                view = await query_view(temporal.get_workflow_handle(workflow_id))
            except (RPCError, WorkflowQueryFailedError, ValueError):  # no worker, no view, or not an object
                return None
            return view if isinstance(view, dict) else None

        views = await asyncio.gather(*(view_of(workflow_id) for workflow_id, _ in waiting))
        followups: list[FollowupView] = []
        for (workflow_id, workflow_type), view in zip(waiting, views, strict=True):
            followup = as_followup(workflow_type, view) if view is not None else None
            if followup is not None:
                followups.append(followup)
            if view is None or not isinstance(view.get("pending_approval"), dict):
                continue
            link = f"/ui/incident?id={quote(workflow_id, safe='')}"
            incident = as_incident(workflow_type, view)
            label, severity, service = (
                (incident.id, incident.severity, incident.service)
                if incident
                else (workflow_id, view.get("severity") or "", view.get("service") or "")
            )
            rows.append(
                f'<tr><td><a class="incident run" href="{link}">{e(label)}</a></td><td>{e(workflow_type)}</td>'
                f"<td>{e(severity or '')}</td><td>{e(service)}</td>"
                f"<td>{e(shown_of(workflow_type, view).proposed)}</td></tr>"
            )
        table = (
            (
                "<table id='pending'><tr><th>run</th><th>runbook</th><th>sev</th><th>service</th><th>proposed</th>"
                "</tr>" + "".join(rows) + "</table>"
            )
            if rows
            else "<p id='none'>nothing awaits approval</p>"
        )
        logout_form = (
            f'<form method="post" action="/ui/logout"><input type="hidden" name="csrf" value="{e(who.session.csrf)}">'
            '<button id="logout">Sign out</button></form>'
        )
        return page("Pending approvals", table + followups_section(followups) + logout_form, who.user)

    async def incident(request: Request, who: Identity) -> Response:
        workflow_id = request.query_params.get("id", "")
        if not workflow_id:
            return page("No such run", "<p class='err'>id must be the workflow id of a runbook run</p>", who.user, 404)
        try:
            handle = (await operations.client()).get_workflow_handle(workflow_id)
        except ApiError as err:
            return page("Temporal unreachable", f"<p class='err'>{e(err.message)}</p>", who.user, err.status)
        try:
            workflow_type = (await handle.describe()).workflow_type
            view = await query_view(handle)
        except RPCError as err:
            return page("No such run", f"<p class='err'>{e(err)}</p>", who.user, 404)
        except (WorkflowQueryFailedError, ValueError) as err:
            return page("No view", f"<p class='err'>{e(workflow_id)} has no operator view: {e(err)}</p>", who.user, 404)
        if not isinstance(view, dict):
            return page("No view", f"<p class='err'>{e(workflow_id)}: its view is not an object</p>", who.user, 404)
        message = request.query_params.get("msg")
        csrf = who.session.csrf
        incident = as_incident(workflow_type, view)
        followup = as_followup(workflow_type, view)
        if incident is not None:
            title, body = f"{incident.id}: {incident.summary}", render_incident(incident, csrf, message)
        elif followup is not None:
            title, body = f"Follow-up of {followup.incident_id}", render_followup(followup, csrf, message)
        else:
            title = f"{workflow_id}: {view.get('summary') or workflow_type}"
            body = render_run(workflow_id, workflow_type, view, csrf, message)
        return page(title, body + '<p><a href="/ui">pending approvals</a></p>', who.user)

    def decide(action: str, field: str) -> Handler:
        """Approve or reject from the page's form."""

        def fields(form: Mapping[str, Any]) -> dict[str, Any]:
            return {"plan_id": str(form.get("plan_id", "")), field: str(form.get(field, "")).strip() or None}

        return form_action(action, fields)

    def form_action(action: str, fields_of: Callable[[Mapping[str, Any]], dict[str, Any]]) -> Handler:
        """An operator action from one of the page's forms (its CSRF token checked first): the
        request's fields from the form by `fields_of`, sent on the API's own path
        (`Operations.act`); the answer, or the refusal, shown on the run's page."""

        async def endpoint(request: Request, who: Identity) -> Response:
            form = await request.form()
            if not csrf_matches(form.get("csrf"), who):
                return page("Refused", "<p class='err'>the form is stale or forged (CSRF token)</p>", who.user, 403)
            workflow_id = str(form.get("id", ""))
            fields = fields_of(form)
            try:
                message = (await operations.act(who.user, action, workflow_id, fields)).message
            except ApiError as err:
                message = f"refused: {err.message}"
            return RedirectResponse(f"/ui/incident?id={quote(workflow_id, safe='')}&msg={quote(message)}", 303)

        return endpoint

    return [
        Route("/ui/login", login_form, methods=["GET"]),
        Route("/ui/login", login, methods=["POST"]),
        Route("/ui/logout", signed_in(logout), methods=["POST"]),
        Route("/ui", signed_in(pending), methods=["GET"]),
        Route("/ui/incident", signed_in(incident), methods=["GET"]),
        Route("/ui/approve", signed_in(decide("approve", "comment")), methods=["POST"]),
        Route("/ui/reject", signed_in(decide("reject", "reason")), methods=["POST"]),
        Route("/ui/action/add", signed_in(form_action("add_action_item", add_fields)), methods=["POST"]),
        Route("/ui/action/done", signed_in(form_action("close_action_item", done_fields)), methods=["POST"]),
        Route("/ui/action/drop", signed_in(form_action("close_action_item", drop_fields)), methods=["POST"]),
    ]


def csrf_matches(offered: object, who: Identity) -> bool:
    return hmac.compare_digest(str(offered or "").encode(), who.session.csrf.encode())


if __name__ == "__main__":
    if sys.argv[1:2] != ["hash-password"] or len(sys.argv) != 3:
        sys.exit("usage: python -m intake.ui hash-password PASSWORD   (prints a line for the operators file)")
    print(hash_password(sys.argv[2]))
