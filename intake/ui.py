"""The operations console: what is open now (problems first, then what awaits approval, then every
open run), closed runs with filters, each run's page (its steps, diagnosis, charts, plan,
approvals and timeline), each service's page and the reviews' reports. Served on the operator
listener (`intake.signin`), never on the webhooks'. Server-rendered from Jinja2 templates
(intake/templates/), charts as inline SVG: it works without JavaScript, and on a phone.

Approve and reject, and a follow-up's action items (added, done, dropped: `intake.followup_page`
renders them), go through `intake.operations`, the same path as the operators' API: the request
is made in the signed-in person's name, signed by the sign-in service and sent as the runbook's
Update, so the runbook verifies who asks and its own validators decide.

Every runbook offers the same operator surface (Updates `approve`, `reject`, ... answering an
OperatorReply; the query `view`), so the console works for the run of any runbook, found by
visibility whatever its workflow type: it reads the view as plain data (`intake.console`).

Who is asking: `intake.sessions` (a password sign-in with a server-side session, or the trusted
proxy's header). Every form carries its session's CSRF token.
"""

from __future__ import annotations

import hmac
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from markdown_it import MarkdownIt
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from temporalio.client import Client, RPCError, WorkflowQueryFailedError

from contracts import Policy
from contracts.common import Severity
from contracts.post_incident import postincident_workflow_id
from contracts.reviews import REPORTS_PREFIX
from intake import console
from intake.console import BadParameter, HistoryFilter, Run
from intake.followup_page import add_fields, as_followup, done_fields, drop_fields, followups_section, render_followup
from intake.operations import ApiError, Operations
from intake.rendering import STYLE, TEMPLATES
from intake.sessions import COOKIE, Auth, AuthError, Identity, hash_password
from runbook_cli.reports import ReportError, list_reports, read_report

__all__ = ["STYLE", "hash_password", "ui_routes"]  # hash_password: `python -m intake.ui hash-password`, the benches

TITLE_SUMMARY = 100  # the whole summary is on the page, below the title
REPORT_CHART = re.compile(r"[a-z0-9][\w-]{0,40}/[\w.-]{1,120}\.png")
REPORT_ID = re.compile(r"[a-z0-9][\w-]{0,40}/[\w.-]{1,120}")
RUN_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
REPORTS_DAYS = 92  # the reports page lists the reports of the last this many days (`runbook reports`: all)
MESSAGE = 500  # an action's answer, as the run's page shows it
# Reports are Markdown written by the reviews; raw HTML in them is shown as text, never run.
MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(template).render(style=Markup(STYLE), **context), status)


def report_html(text: str) -> Markup:
    return Markup(MARKDOWN.render(text))  # noqa: S704 - markdown-it escapes: raw HTML is off


# --------------------------------------------------------------------------- routes


Handler = Callable[[Request, Identity], Awaitable[Response]]


def ui_routes(auth: Auth, operations: Operations, read_points: Any = console.read_cloudwatch) -> list[Route]:
    """The console's routes; `read_points(queries, region, window)` reads the metrics' recent
    datapoints for the charts, a list for each query (CloudWatch by default)."""
    policy: Policy = operations.policy
    tokens = console.PageTokens.from_signer(operations.signer)
    services = sorted(policy.services)

    def page(
        who: Identity | None, title: str, template: str = "message.html", status: int = 200, **context: Any
    ) -> HTMLResponse:
        return render(
            template,
            status,
            title=title,
            user=who.user if who else None,
            csrf=who.session.csrf if who else None,
            services=services,
            **context,
        )

    def refused(who: Identity | None, title: str, message: str, status: int, hint: str = "") -> HTMLResponse:
        return page(who, title, status=status, message=message, hint=hint)

    def to_login() -> Response:
        return RedirectResponse("/ui/login", 303)

    def signed_in(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """The visitor's identity for `handler`; the sign-in form for nobody; a refusal for a
        header that did not come from the trusted proxy."""

        async def endpoint(request: Request) -> Response:
            try:
                identity = auth.page(request)
            except AuthError as err:
                return refused(None, "Refused", err.message, err.status)
            if identity is None:
                return to_login()
            try:
                response = await handler(request, identity)
            except BadParameter as err:
                response = refused(identity, "Bad request", str(err), 400, "the page's own links and forms are valid")
            except RPCError as err:  # Temporal away or overloaded in the middle of a page
                response = refused(identity, "Temporal unreachable", f"Temporal: {err.message}", 503)
            if identity.token is not None:  # a session opened for the proxy's user
                auth.set_cookie(request, response, identity.token, identity.session)
            return response

        return endpoint

    async def temporal(who: Identity) -> Client | HTMLResponse:
        try:
            return await operations.client()
        except ApiError as err:
            return refused(who, "Temporal unreachable", err.message, err.status)

    async def login_form(request: Request) -> Response:
        return render("login.html", title="Sign in", error=request.query_params.get("error"), user=None)

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
            return refused(who, "Refused", "the form is stale or forged (CSRF token)", 403)
        auth.sessions.revoke(request.cookies.get(COOKIE))
        response = to_login()
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=auth.secure(request))
        return response

    def no_params(request: Request, *allowed: str) -> None:
        for name in request.query_params:
            if name not in allowed:
                raise BadParameter(name, "this page takes " + (", ".join(allowed) if allowed else "no parameters"))

    async def home(request: Request, who: Identity) -> Response:
        """What matters now: problems, what awaits approval, every open run, the follow-ups."""
        no_params(request)
        client = await temporal(who)
        if isinstance(client, HTMLResponse):
            return client
        runs, cut = await console.open_runs(client, policy)
        pending = [pending_row(run) for run in runs if run.proposed is not None]
        followups = [f for f in (as_followup(r.workflow_type, r.view) for r in runs if r.view) if f is not None]
        return page(
            who,
            "Operations console",
            "home.html",
            runs=runs,
            pending=pending,
            problems=[(run, problem) for run in runs for problem in run.problems],
            followups=followups_section(followups),
            cut=console.OPEN_LIMIT if cut else None,
            now=datetime.now(UTC),
        )

    async def history(request: Request, who: Identity) -> Response:
        now = datetime.now(UTC)
        wanted = HistoryFilter.parse(request.query_params, now, tokens)
        client = await temporal(who)
        if isinstance(client, HTMLResponse):
            return client
        found = await console.closed_runs(client, wanted, policy, now)
        kinds = sorted({*console.runbook_docs(), *console.LABELS})
        return page(
            who,
            "History",
            "history.html",
            f=wanted,
            history=found,
            next_link=wanted.link(found.next_page, tokens, now) if found.next_page else None,
            runbooks=[(kind, console.runbook_label(kind)) for kind in kinds],
            severities=[s.value for s in Severity],
            outcomes=list(console.OUTCOMES),
            now=datetime.now(UTC),
        )

    async def run_page(request: Request, who: Identity) -> Response:
        """One run: `id` the workflow id, `run` which of its runs (ids are reused per target; without
        it, the newest), `done` the answer to the form just sent (sealed for this session)."""
        no_params(request, "id", "run", "done")
        workflow_id = request.query_params.get("id", "")
        run_id = request.query_params.get("run", "")
        if not workflow_id:
            return refused(who, "No such run", "id must be the workflow id of a runbook run", 404)
        if run_id and not RUN_ID.fullmatch(run_id):
            raise BadParameter("run", "a run id as the console's links carry it (a UUID)")
        client = await temporal(who)
        if isinstance(client, HTMLResponse):
            return client
        handle = client.get_workflow_handle(workflow_id, run_id=run_id or None)
        try:
            description = await handle.describe()
            view = await handle.query("view", result_type=dict, rpc_timeout=console.VIEW_TIMEOUT)
        except RPCError as err:
            return refused(who, "No such run", f"{workflow_id}: {err.message}", 404)
        except (WorkflowQueryFailedError, ValueError) as err:
            return refused(who, "No view", f"{workflow_id} has no operator view: {err}", 404)
        if not isinstance(view, dict):
            return refused(who, "No view", f"{workflow_id}: its view is not an object", 404)
        run = console.run_from(description, await description.memo(), view, policy)
        return page(who, title_of(run), "run.html", **(await run_context(run, view, who, request)))

    async def run_context(run: Run, view: dict[str, Any], who: Identity, request: Request) -> dict[str, Any]:
        csrf = who.session.csrf
        message = answer_shown(request.query_params.get("done", ""), who)
        followup = as_followup(run.workflow_type, view)
        typed = console.shown(run.workflow_type, view)
        readings = console.readings_of(view, policy)
        queries = [r.query for r in readings if r.query is not None]
        target = policy.services.get(run.service)
        region = str(view.get("region") or (target.region if target else "us-east-1"))
        charts = await console.charts_for(queries, region, read_points) if queries else []
        judged = console.judged_chart(view)
        plan = view.get("pending_approval")
        entries = console.timeline_of(view)
        calls = view.get("planned_calls")
        return {
            "run": run,
            "view": view,
            "message": message,
            "doc": console.runbook_docs().get(run.workflow_type),
            "steps": console.steps_of(run.workflow_type, view, run.open),
            "readings": readings,
            "charts": charts,
            "judged": judged,
            "facts": typed.facts if typed else [],
            "extra": render_followup(followup, csrf, message) if followup else extra_of(view),
            "followup": followup is not None,
            "plan": plan if isinstance(plan, dict) else None,
            "plan_id": (typed.plan_id if typed and typed.plan_id else None) or (plan or {}).get("plan_id"),
            "proposed": run.proposed,
            "plan_fields": console.plan_fields(plan) if isinstance(plan, dict) else {},
            "planned_calls": calls if isinstance(calls, list) else [],
            "needed": console.approvals_needed(plan, policy) if isinstance(plan, dict) else "",
            "acknowledge": run.open and run.status in ("awaiting_ack", "unpaged"),
            "decide": run.open,  # a closed run decides nothing; an open one is its id's newest
            "approvals": [t for t in entries if re.search(r"approv|reject|four eyes", str(t.get("event", "")))],
            "entries": entries,
            "links": links_of(run, view),
        }

    async def service_page(request: Request, who: Identity) -> Response:
        no_params(request)
        name = request.path_params["name"]
        target = policy.services.get(name)
        if target is None:
            return refused(who, "No such service", f"{name}: not a service of the policy", 404, ", ".join(services))
        client = await temporal(who)
        if isinstance(client, HTMLResponse):
            return client
        runs = await console.service_runs(client, name, policy)
        marks = console.change_marks(runs)
        charts = await console.charts_for(
            console.service_queries(policy, name), target.region, read_points, marks=marks
        )
        return page(
            who,
            f"Service {name}",
            "service.html",
            name=name,
            target=target,
            charts=charts,
            runs=[(run, console.changes_of(run)) for run in runs],
        )

    def bucket() -> Any:
        """The reports' bucket's client: the activities' (cached, made under a lock, with short
        timeouts), from the intake's own AWS configuration; never the CLI's emulator fallback."""
        from activities import _aws  # boto3 loads on the first report, not when the listener starts

        return _aws.client("s3", policy.reviews.bucket_region)

    async def reports(request: Request, who: Identity) -> Response:
        no_params(request)
        try:
            since = datetime.now(UTC).date() - timedelta(days=REPORTS_DAYS)
            rows = await console.aws_read(lambda: list_reports(policy.reviews, bucket(), since=since))
            error = None
        except ReportError as err:
            rows, error = [], str(err)
        return page(who, "Reports", "reports.html", reports=rows, error=error, days=REPORTS_DAYS)

    async def report(request: Request, who: Identity) -> Response:
        no_params(request)
        wanted = request.path_params["report"]
        if REPORT_CHART.fullmatch(wanted):
            return await chart(wanted)
        if not REPORT_ID.fullmatch(wanted):
            raise BadParameter("report", "a report id as `runbook reports` lists them (daily/2026-12-07)")
        try:
            text = await console.aws_read(lambda: read_report(policy.reviews, wanted, bucket(), errors="replace"))
        except ReportError as err:
            return refused(who, "No such report", str(err), 404)
        key = f"{REPORTS_PREFIX}{wanted}.md"
        return page(
            who, f"Report {wanted}", "report.html", html=report_html(text), bucket=policy.reviews.bucket, key=key
        )

    async def chart(name: str) -> Response:
        """A report's PNG chart, read from the bucket (the report's Markdown names it relatively)."""

        def read() -> bytes:
            answer = bucket().get_object(Bucket=policy.reviews.bucket, Key=f"{REPORTS_PREFIX}{name}")
            body: bytes = answer["Body"].read()
            return body

        try:
            body = await console.aws_read(read)
        except Exception:  # noqa: BLE001 - any failure to read is "not there" to the browser
            return Response("no such chart", 404, media_type="text/plain")
        return Response(body, media_type="image/png")

    def answer_shown(done: str, who: Identity) -> str | None:
        """The answer an action redirected with, only when this console sealed it for this session:
        a link cannot put words of its own on the console's page."""
        if not done:
            return None
        try:
            return tokens.open(answer_for(who), done).decode(errors="replace")
        except BadParameter:
            return None

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
                return refused(who, "Refused", "the form is stale or forged (CSRF token)", 403)
            workflow_id = str(form.get("id", ""))
            run_id = str(form.get("run", ""))  # the run the page showed: the action goes to that run's chain
            if run_id and not RUN_ID.fullmatch(run_id):
                raise BadParameter("run", "a run id as the console's pages carry it (a UUID)")
            fields = fields_of(form)
            try:
                message = (await operations.act(who.user, action, workflow_id, fields, run_id or None)).message
            except ApiError as err:
                message = f"refused: {err.message}"
            done = tokens.seal(answer_for(who), message[:MESSAGE].encode())
            # Back to the newest run under the id: the one acted on, or what it continued as.
            return RedirectResponse(f"/ui/incident?{urlencode({'id': workflow_id, 'done': done})}", 303)

        return endpoint

    return [
        Route("/ui/login", login_form, methods=["GET"]),
        Route("/ui/login", login, methods=["POST"]),
        Route("/ui/logout", signed_in(logout), methods=["POST"]),
        Route("/ui", signed_in(home), methods=["GET"]),
        Route("/ui/history", signed_in(history), methods=["GET"]),
        Route("/ui/incident", signed_in(run_page), methods=["GET"]),
        Route("/ui/services/{name}", signed_in(service_page), methods=["GET"]),
        Route("/ui/reports", signed_in(reports), methods=["GET"]),
        Route("/ui/reports/{report:path}", signed_in(report), methods=["GET"]),
        Route("/ui/acknowledge", signed_in(form_action("acknowledge", note_fields)), methods=["POST"]),
        Route("/ui/comment", signed_in(form_action("comment", comment_fields)), methods=["POST"]),
        Route("/ui/approve", signed_in(decide("approve", "comment")), methods=["POST"]),
        Route("/ui/reject", signed_in(decide("reject", "reason")), methods=["POST"]),
        Route("/ui/action/add", signed_in(form_action("add_action_item", add_fields)), methods=["POST"]),
        Route("/ui/action/done", signed_in(form_action("close_action_item", done_fields)), methods=["POST"]),
        Route("/ui/action/drop", signed_in(form_action("close_action_item", drop_fields)), methods=["POST"]),
    ]


def note_fields(form: Mapping[str, Any]) -> dict[str, Any]:
    return {"note": str(form.get("note", "")).strip() or None}


def comment_fields(form: Mapping[str, Any]) -> dict[str, Any]:
    return {"text": str(form.get("text", "")).strip()}


def pending_row(run: Run) -> dict[str, Any]:
    """The awaiting-approval table's row: an incident by its incident id, any other run by its
    workflow id."""
    view = run.view or {}
    return {
        "workflow_id": run.workflow_id,
        "label": view.get("id")
        if run.workflow_type == "IncidentResponseWorkflow" and view.get("id")
        else run.workflow_id,
        "workflow_type": run.workflow_type,
        "severity": run.severity,
        "service": run.service,
        "proposed": run.proposed,
    }


def title_of(run: Run) -> str:
    view = run.view or {}
    if run.workflow_type == "PostIncidentWorkflow" and view.get("incident_id"):
        return f"Follow-up of {view['incident_id']}"
    label = view.get("id") or run.workflow_id
    summary = run.summary if len(run.summary) <= TITLE_SUMMARY else run.summary[: TITLE_SUMMARY - 1] + "…"
    return f"{label}: {summary or run.runbook}"


def extra_of(view: Mapping[str, Any]) -> Markup | None:
    failover = view.get("failover")
    if not failover:
        return None
    link = f"/ui/incident?id={quote(str(failover), safe='')}"
    return Markup(
        '<p id="failover">The region is down: handed to <a href="{}">{}</a>, which confirms, checks readiness and '
        "asks its own approvers.</p>"
    ).format(link, failover)


def links_of(run: Run, view: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """Where else the run is: its PagerDuty incident, its follow-up (the post-mortem) or the
    incident it follows up, its failover, its report."""
    links: list[tuple[str, str | None]] = []
    pagerduty = view.get("pagerduty")
    if isinstance(pagerduty, dict) and pagerduty.get("html_url"):
        url = str(pagerduty["html_url"])
        label = f"PagerDuty incident {pagerduty.get('incident_id') or ''}".strip()
        # Linked only over https: a javascript: or data: URL from the view stays text.
        links.append((label, url) if url.startswith("https://") else (f"{label} ({url})", None))
    if run.workflow_type == "IncidentResponseWorkflow" and view.get("id") and not run.open:
        followup = postincident_workflow_id(str(view["id"]))
        links.append(("post-mortem and action items (follow-up run)", f"/ui/incident?id={quote(followup, safe='')}"))
    if view.get("incident_workflow_id"):
        links.append(("the incident", f"/ui/incident?id={quote(str(view['incident_workflow_id']), safe='')}"))
    if view.get("postmortem_uri"):
        links.append((f"post-mortem draft {view['postmortem_uri']}", "#followup"))
    for key in ("uri", "report_uri"):
        uri = str(view.get(key) or "")
        if uri.endswith(".md") and f"/{REPORTS_PREFIX}" in uri:
            links.append(("report", "/ui/reports/" + uri.split(f"/{REPORTS_PREFIX}", 1)[1].removesuffix(".md")))
    return links


def answer_for(who: Identity) -> str:
    """What an action's answer is sealed for: the session that sent the form."""
    return "answer\0" + who.session.csrf


def csrf_matches(offered: object, who: Identity) -> bool:
    return hmac.compare_digest(str(offered or "").encode(), who.session.csrf.encode())


if __name__ == "__main__":
    if sys.argv[1:2] != ["hash-password"] or len(sys.argv) != 3:
        sys.exit("usage: python -m intake.ui hash-password PASSWORD   (prints a line for the operators file)")
    print(hash_password(sys.argv[2]))
