"""The approval page: pending approvals with their plan and diagnosis, approve / reject
buttons, timelines. It calls the same Updates as the CLI, so the runbook's own validators
decide what may be approved; the page only says who is asking.

Every runbook offers the same operator surface (Updates `approve`, `reject`, ... answering an
OperatorReply; the query `view`), so the page works for the run of any runbook: it calls them
by name and reads the view as plain data. Incidents keep their richer page.

Who is asking: operators log in with a password from the operators file (hashes made by
`python -m intake.ui hash-password`), and get a signed session cookie. Behind an identity
provider's proxy (oauth2-proxy and the like), set APPROVAL_TRUSTED_HEADER instead and the
proxy's user header is taken as the identity. Forms carry a CSRF token bound to the session,
and the cookie is HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from temporalio.client import Client, RPCError, WorkflowHandle, WorkflowQueryFailedError, WorkflowUpdateFailedError

from contracts import Approve, IncidentView, OperatorReply, Reject, RemediationPlan
from starter import WORKFLOW_TYPE as INCIDENT_TYPE
from starter import runbook_status

COOKIE = "runbook_session"
VIEW_TIMEOUT = timedelta(seconds=3)  # a run whose worker is away must not hold the page up
PENDING_LIMIT = 200
SESSION_SECONDS = 8 * 3600
PBKDF2_ROUNDS = 200_000


# --------------------------------------------------------------------------- credentials


def hash_password(password: str, salt: str | None = None, rounds: int = PBKDF2_ROUNDS) -> str:
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), rounds).hex()
    return f"pbkdf2_sha256${rounds}${salt}${digest}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, rounds, salt, _ = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256":
        return False
    return hmac.compare_digest(hash_password(password, salt, int(rounds)).encode(), stored.encode())


@dataclass
class UiConfig:
    operators: dict[str, str] = field(default_factory=dict)  # name -> password hash
    session_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    trusted_header: str | None = None

    @classmethod
    def from_env(cls) -> UiConfig | None:
        path, header = os.environ.get("APPROVAL_OPERATORS_FILE"), os.environ.get("APPROVAL_TRUSTED_HEADER")
        if not path and not header:
            return None
        operators = json.loads(Path(path).read_text()) if path else {}
        secret = os.environ.get("APPROVAL_SESSION_SECRET")
        return cls(
            operators={str(k): str(v) for k, v in operators.items()},
            session_secret=secret.encode() if secret else secrets.token_bytes(32),
            trusted_header=header or None,
        )


# --------------------------------------------------------------------------- sessions


def _sign(secret: bytes, payload: bytes) -> str:
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def make_session(config: UiConfig, user: str) -> str:
    payload = base64.urlsafe_b64encode(
        json.dumps(
            {"user": user, "csrf": secrets.token_urlsafe(24), "exp": int(time.time()) + SESSION_SECONDS}
        ).encode()
    )
    return f"{payload.decode()}.{_sign(config.session_secret, payload)}"


def read_session(config: UiConfig, request: Request) -> dict[str, Any] | None:
    if config.trusted_header:
        user = request.headers.get(config.trusted_header, "").strip()
        # the proxy authenticated the person; the CSRF token is derived so forms still carry one
        return {"user": user, "csrf": _sign(config.session_secret, user.encode())} if user else None
    raw = request.cookies.get(COOKIE, "")
    payload, _, signature = raw.partition(".")
    if not payload or not hmac.compare_digest(
        signature.encode(), _sign(config.session_secret, payload.encode()).encode()
    ):
        return None
    try:
        session = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except ValueError:
        return None
    return session if session.get("exp", 0) > time.time() else None


# --------------------------------------------------------------------------- rendering


STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}table{border-collapse:collapse}
td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
.plan{background:#fff6e0;padding:1rem;border:1px solid #e0b040}.msg{background:#eef;padding:.5rem}
.err{background:#fdd;padding:.5rem}button{padding:.4rem 1rem;margin-right:.5rem}"""


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


def render_run(workflow_id: str, workflow_type: str, view: dict[str, Any], csrf: str, message: str | None) -> str:
    """Any runbook's run, by the fields every view has."""
    parts = [f'<p class="msg" id="message">{e(message)}</p>' if message else ""]
    parts.append(
        f'<p id="status">status: <b>{e(view.get("status", "?"))}</b>'
        f"{' — ' + e(view['outcome']) if view.get('outcome') else ''}</p>"
    )
    parts.append(
        f"<p>runbook {e(workflow_type)} · workflow {e(workflow_id)} · opened {e(view.get('opened_at', '-'))}</p>"
    )
    plan = view.get("pending_approval")
    if plan:
        rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in plan_fields(plan).items())
        parts.append(
            f'<div class="plan" id="plan"><h2>Awaiting approval: {e(plan.get("plan_id"))}</h2>'
            f"<table>{rows}</table>{decision_forms(workflow_id, str(plan.get('plan_id')), csrf)}</div>"
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


def ui_routes(config: UiConfig, client: Callable[[], Awaitable[Client]]) -> list[Route]:
    async def who(request: Request) -> dict[str, Any] | None:
        return read_session(config, request)

    def to_login() -> Response:
        return RedirectResponse("/ui/login", 303)

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
        stored = config.operators.get(user)
        if stored is None or not password_matches(password, stored):
            return RedirectResponse("/ui/login?" + urlencode({"error": "wrong name or password"}), 303)
        response = RedirectResponse("/ui", 303)
        response.set_cookie(
            COOKIE,
            make_session(config, user),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(request: Request) -> Response:
        response = to_login()
        response.delete_cookie(COOKIE)
        return response

    async def pending(request: Request) -> Response:
        session = await who(request)
        if session is None:
            return to_login()
        temporal = await client()
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
        for (workflow_id, workflow_type), view in zip(waiting, views, strict=True):
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
                f"<td>{e(describe_plan(view['pending_approval']))}</td></tr>"
            )
        table = (
            (
                "<table id='pending'><tr><th>run</th><th>runbook</th><th>sev</th><th>service</th><th>proposed</th>"
                "</tr>" + "".join(rows) + "</table>"
            )
            if rows
            else "<p id='none'>nothing awaits approval</p>"
        )
        logout_form = '<form method="post" action="/ui/logout"><button>Sign out</button></form>'
        return page("Pending approvals", table + logout_form, session["user"])

    async def incident(request: Request) -> Response:
        session = await who(request)
        if session is None:
            return to_login()
        workflow_id = request.query_params.get("id", "")
        if not workflow_id:
            return page(
                "No such run", "<p class='err'>id must be the workflow id of a runbook run</p>", session["user"], 404
            )
        handle = (await client()).get_workflow_handle(workflow_id)
        try:
            workflow_type = (await handle.describe()).workflow_type
            view = await query_view(handle)
        except RPCError as err:
            return page("No such run", f"<p class='err'>{e(err)}</p>", session["user"], 404)
        except (WorkflowQueryFailedError, ValueError) as err:
            return page(
                "No view", f"<p class='err'>{e(workflow_id)} has no operator view: {e(err)}</p>", session["user"], 404
            )
        if not isinstance(view, dict):
            return page(
                "No view", f"<p class='err'>{e(workflow_id)}: its view is not an object</p>", session["user"], 404
            )
        message = request.query_params.get("msg")
        incident = as_incident(workflow_type, view)
        if incident is not None:
            title, body = f"{incident.id}: {incident.summary}", render_incident(incident, session["csrf"], message)
        else:
            title = f"{workflow_id}: {view.get('summary') or workflow_type}"
            body = render_run(workflow_id, workflow_type, view, session["csrf"], message)
        return page(title, body + '<p><a href="/ui">pending approvals</a></p>', session["user"])

    async def decide(request: Request, approving: bool) -> Response:
        session = await who(request)
        if session is None:
            return to_login()
        form = await request.form()
        if not hmac.compare_digest(str(form.get("csrf", "")).encode(), str(session["csrf"]).encode()):
            return page("Refused", "<p class='err'>the form is stale or forged (CSRF token)</p>", session["user"], 403)
        workflow_id, plan_id = str(form.get("id", "")), str(form.get("plan_id", ""))
        handle = (await client()).get_workflow_handle(workflow_id)
        try:
            if approving:
                reply = await handle.execute_update(
                    "approve",
                    Approve(by=session["user"], plan_id=plan_id, comment=str(form.get("comment", "")) or None),
                    result_type=OperatorReply,
                )
            else:
                reply = await handle.execute_update(
                    "reject",
                    Reject(by=session["user"], plan_id=plan_id, reason=str(form.get("reason", "")) or "(no reason)"),
                    result_type=OperatorReply,
                )
            message = reply.message
        except WorkflowUpdateFailedError as err:
            message = f"refused: {getattr(err.cause, 'message', err.cause)}"
        except (RPCError, ValueError) as err:
            message = f"refused: {err}"
        target = f"/ui/incident?id={quote(workflow_id, safe='')}&msg={quote(message)}"
        return RedirectResponse(target, 303)

    async def approve(request: Request) -> Response:
        return await decide(request, approving=True)

    async def reject(request: Request) -> Response:
        return await decide(request, approving=False)

    return [
        Route("/ui/login", login_form, methods=["GET"]),
        Route("/ui/login", login, methods=["POST"]),
        Route("/ui/logout", logout, methods=["POST"]),
        Route("/ui", pending, methods=["GET"]),
        Route("/ui/incident", incident, methods=["GET"]),
        Route("/ui/approve", approve, methods=["POST"]),
        Route("/ui/reject", reject, methods=["POST"]),
    ]


if __name__ == "__main__":
    if sys.argv[1:2] != ["hash-password"] or len(sys.argv) != 3:
        sys.exit("usage: python -m intake.ui hash-password PASSWORD   (prints a line for the operators file)")
    print(hash_password(sys.argv[2]))
