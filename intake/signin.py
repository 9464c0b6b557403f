"""The operator listener: the sign-in service, the operators' JSON API and the approval page.

A Starlette app of its own, served by `python -m intake` on OPERATOR_HOST:OPERATOR_PORT next to
(never on) the webhook listener; see `intake.sessions` for who is believed and why.

    POST /auth/login   {"user", "password"}       -> {"token", "user", "expires_at"}   (401: wrong)
                       (through the trusted proxy: its header's user, no password)
    POST /auth/logout  (Authorization: Bearer T)  -> the session is revoked at once
    GET  /auth/whoami  (Authorization: Bearer T)  -> {"user", "expires_at"}
    POST /api/v1/runs/{action}   action: acknowledge | approve | reject | comment | cancel
         {"workflow_id", "run_id"?, and the request's own fields: note, plan_id, comment, reason, text}
         -> 200 {"message", "status"}; 409 {"error"} refused by the runbook; 422 a field; 404 no run;
            503 Temporal unreachable (Retry-After)
    POST /api/v1/incidents  {"service", "severity", "summary", "region"?} -> {"incident_id", "workflow_id"}
    POST /api/v1/scaling    {"service", "plan"?, "reason"?} -> {"workflow_id"}
    POST /api/v1/failover   {"service", "to_region"?, "plan"?, "reason"?} -> {"workflow_id"}
    POST /api/v1/bedrock    {"region", "plan"?, "reason"?} -> {"workflow_id"}
    POST /api/v1/followup   {"workflow_id", "run_id"?} (a closed incident's run) -> {"workflow_id", "incident_id"}
    POST /api/v1/maintenance {"service", "start", "duration"?, "action", "revision"?, "count"?, "plan"?}
                            -> {"workflow_id"} (the window's run, waiting for its start)
    GET  /healthz, and the page under /ui

The API takes bearer tokens only (never the page's cookie), so a page on another site cannot
use a browser's session to call it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intake.limits import BodyTimeout
from intake.operations import ApiError, Operations
from intake.sessions import Auth, AuthError, Identity, Sessions, SigninConfig
from intake.ui import STYLE, ui_routes

MAX_BODY_BYTES = 64 * 1024  # every request of the operator listener: forms and JSON alike
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        (
            "default-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
            f"style-src 'sha256-{_STYLE_HASH}'; img-src 'self'"  # img: the reports' charts, from this listener
        ).encode(),
    ),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class OperatorGuard:
    """Every request of the operator listener: a body of at most MAX_BODY_BYTES (413 before the
    handler reads more: a 300 MB login form must not become 300 MB of memory), a body that
    arrives too slowly answered 408 (`intake.limits.BodyDeadline` times it), and on every
    answer the headers that keep the page out of frames, caches and other sites' hands."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + SECURITY_HEADERS}
            await send(message)

        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self.too_large(send_secured)
            return
        seen = 0
        answered = False

        async def receive_capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def send_tracked(message: Message) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send_secured(message)

        try:
            await self.app(scope, receive_capped, send_tracked)
        except _TooLarge:
            if not answered:
                await self.refuse(send_secured, 413, f"the body is larger than {self.limit} bytes")
        except BodyTimeout as err:  # a body that arrives too slowly (intake.limits)
            if not answered:
                await self.refuse(send_secured, 408, str(err))

    async def too_large(self, send: Send) -> None:
        await self.refuse(send, 413, f"the body is larger than {self.limit} bytes")

    async def refuse(self, send: Send, status: int, error: str) -> None:
        body = json.dumps({"error": error}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        # the rest of the body stays unread: the connection closes after this answer
        headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


async def json_body(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "Content-Type must be application/json")
    body = await request.body()  # at most MAX_BODY_BYTES: OperatorGuard cuts the rest off
    try:
        data = json.loads(body or b"{}")
    except ValueError as err:
        raise ApiError(400, f"the body is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def api(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except AuthError as err:
            headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
            if err.retry_after is not None:
                headers = {"Retry-After": str(err.retry_after)}
            return JSONResponse({"error": err.message}, err.status, headers=headers)
        except ApiError as err:
            return err.response()

    return endpoint


def session_body(identity: Identity) -> dict[str, str]:
    return {"user": identity.user, "expires_at": identity.session.expires_at.isoformat()}


def create_operator_app(config: SigninConfig, operations: Operations, sessions: Sessions | None = None) -> Starlette:
    auth = Auth(config, sessions)

    async def login(request: Request) -> Response:
        """A password from the operators file; or, through the trusted proxy, its user's word."""
        data = await json_body(request)
        user = auth.proxied_user(request)
        if user is None:
            user, password = data.get("user"), data.get("password")
            if not isinstance(user, str) or not user:
                raise ApiError(422, "user: required, a non-empty string", field="user")
            if not isinstance(password, str) or not password:
                raise ApiError(422, "password: required, a non-empty string", field="password")
            if not await auth.check_password(user, password, request.client.host if request.client else None):
                raise AuthError(401, "wrong name or password")
        token, session = auth.sessions.open(user)
        return JSONResponse({"token": token, **session_body(Identity(user, session))})

    async def logout(request: Request) -> Response:
        identity = auth.bearer(request)
        auth.sessions.revoke(request.headers["authorization"].partition(" ")[2].strip())
        return JSONResponse({"message": f"signed out {identity.user}"})

    async def whoami(request: Request) -> Response:
        return JSONResponse(session_body(auth.bearer(request)))

    async def run_action(request: Request) -> Response:
        identity = auth.bearer(request)
        data = await json_body(request)
        workflow_id, run_id = data.pop("workflow_id", None), data.pop("run_id", None)
        if not isinstance(workflow_id, str) or not workflow_id:
            raise ApiError(422, "workflow_id: required, the workflow id of the run to act on", field="workflow_id")
        if run_id is not None and (not isinstance(run_id, str) or not run_id):
            raise ApiError(422, "run_id: a run id of the run chain, if given", field="run_id")
        reply = await operations.act(identity.user, request.path_params["action"], workflow_id, data, run_id)
        return JSONResponse(reply.model_dump(mode="json"))

    async def incidents(request: Request) -> Response:
        identity = auth.bearer(request)
        return JSONResponse(await operations.open_incident(identity.user, await json_body(request)))

    async def scaling(request: Request) -> Response:
        identity = auth.bearer(request)
        return JSONResponse(await operations.trigger_scaling(identity.user, await json_body(request)))

    async def failover(request: Request) -> Response:
        identity = auth.bearer(request)
        return JSONResponse(await operations.trigger_failover(identity.user, await json_body(request)))

    async def followup(request: Request) -> Response:
        identity = auth.bearer(request)
        return JSONResponse(await operations.start_followup(identity.user, await json_body(request)))

    async def bedrock(request: Request) -> Response:
        identity = auth.bearer(request)
        return JSONResponse(await operations.trigger_bedrock(identity.user, await json_body(request)))

    async def maintenance(request: Request) -> Response:
        identity = auth.bearer(request)
        return JSONResponse(await operations.schedule_maintenance(identity.user, await json_body(request)))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"no such endpoint: {request.method} {request.url.path}"}, 404)

    routes = [
        Route("/auth/login", api(login), methods=["POST"]),
        Route("/auth/logout", api(logout), methods=["POST"]),
        Route("/auth/whoami", api(whoami), methods=["GET"]),
        Route("/api/v1/runs/{action}", api(run_action), methods=["POST"]),
        Route("/api/v1/incidents", api(incidents), methods=["POST"]),
        Route("/api/v1/scaling", api(scaling), methods=["POST"]),
        Route("/api/v1/failover", api(failover), methods=["POST"]),
        Route("/api/v1/followup", api(followup), methods=["POST"]),
        Route("/api/v1/bedrock", api(bedrock), methods=["POST"]),
        Route("/api/v1/maintenance", api(maintenance), methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        *ui_routes(auth, operations),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found}, middleware=[Middleware(OperatorGuard)])
    app.state.auth = auth
    return app
