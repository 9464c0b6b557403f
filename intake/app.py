"""The alert intake: a thin ASGI app. It verifies, normalises, routes and hands to Temporal.

No runbook logic. Every answer is 2xx only after Temporal accepted the hand-off; a Temporal
that cannot be reached is a 503 with Retry-After, so senders retry and nothing is lost. Bad
input is a 4xx whose body names what was wrong, and never starts a workflow.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contracts import Alert, Duration, Policy
from intake import normalize, sns
from intake.coalesce import Coalescer
from intake.handoff import Deliveries, Handoff, Rejected, Runbook, Unavailable
from intake.holds import MaintenanceHolds
from intake.limits import BodyTimeout
from intake.normalize import Incoming
from intake.openapi import openapi_document
from intake.pagerduty_webhook import SIGNALLED, incident_event, signature_valid
from intake.payloads import AlertmanagerWebhook, EventBridgeAlarmEvent, EventBridgeEvent, GenericAlert, PagerDutyWebhook

log = logging.getLogger("intake")
_DURATION: TypeAdapter[timedelta] = TypeAdapter(Duration)
RETRY_AFTER_SECONDS = 5


@dataclass
class IntakeConfig:
    policy: Policy
    alertmanager_token: str = ""
    eventbridge_token: str = ""
    generic_token: str = ""
    sns_topics: Sequence[str] = ()
    sns_cert_host_pattern: str = sns.DEFAULT_HOST_PATTERN
    pagerduty_secrets: Sequence[str] = ()
    max_body_bytes: int = 1024 * 1024
    # An SNS message signed longer ago than this is refused: an old signed message cannot be
    # replayed (a retried one within it is a duplicate). Longer than the topic's retry window.
    sns_max_age: timedelta | None = timedelta(hours=1)
    sns_v2_only: bool = False  # accept SignatureVersion 2 (SHA256) only
    # Seconds an idle target's lane waits for more alerts while the intake is busy (intake.coalesce);
    # 0: only what arrives during a hand-over is coalesced.
    coalesce_window: float = 0.005
    # Hand-overs of alerts to Temporal under way at once (intake.coalesce); what waits coalesces.
    max_handovers: int = 8

    @classmethod
    def from_env(cls, policy: Policy) -> IntakeConfig:
        env = os.environ

        def listed(name: str) -> list[str]:
            return [item.strip() for item in env.get(name, "").split(",") if item.strip()]

        return cls(
            policy=policy,
            alertmanager_token=env.get("INTAKE_ALERTMANAGER_TOKEN", ""),
            eventbridge_token=env.get("INTAKE_EVENTBRIDGE_TOKEN", ""),
            generic_token=env.get("INTAKE_GENERIC_TOKEN", ""),
            sns_topics=listed("INTAKE_SNS_TOPICS"),
            sns_cert_host_pattern=env.get("INTAKE_SNS_CERT_HOST_PATTERN") or sns.DEFAULT_HOST_PATTERN,
            pagerduty_secrets=listed("PAGERDUTY_WEBHOOK_SECRETS"),
            max_body_bytes=int(env.get("INTAKE_MAX_BODY_BYTES") or 1024 * 1024),
            sns_max_age=sns_max_age(env.get("INTAKE_SNS_MAX_AGE") or "1h"),
            sns_v2_only=env.get("INTAKE_SNS_SIGNATURE_V2_ONLY", "").lower() in ("1", "true", "yes", "on"),
            coalesce_window=coalesce_window(env.get("INTAKE_COALESCE_WINDOW_MS") or "5"),
            max_handovers=max_handovers(env.get("INTAKE_MAX_HANDOVERS") or "8"),
        )


def coalesce_window(text: str) -> float:
    """INTAKE_COALESCE_WINDOW_MS: milliseconds, 0 to 1000."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1000:
        raise ValueError(f"INTAKE_COALESCE_WINDOW_MS={text!r} is not a number of milliseconds from 0 to 1000")
    return value / 1000


def max_handovers(text: str) -> int:
    """INTAKE_MAX_HANDOVERS: a whole number from 1 to 1000."""
    if not (text.strip().isdigit() and 1 <= int(text) <= 1000):
        raise ValueError(f"INTAKE_MAX_HANDOVERS={text!r} is not a whole number from 1 to 1000")
    return int(text)


def sns_max_age(text: str) -> timedelta | None:
    """INTAKE_SNS_MAX_AGE: a duration ("1h", "90m"), or "off"."""
    if text.strip().lower() == "off":
        return None
    try:
        return _DURATION.validate_python(text)
    except ValidationError:
        raise ValueError(f"INTAKE_SNS_MAX_AGE={text!r} is not a duration such as 1h or 90m (or off)") from None


class Refusal(Exception):
    """A request refused before anything was handed over."""

    def __init__(
        self, status: int, reason: str, message: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.headers, self.extra = status, reason, message, headers, extra

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.message, "reason": self.reason, **self.extra}, self.status, headers=self.headers
        )


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.received = Counter(
            "intake_alerts_received", "Alerts received, by sender", ["source"], registry=self.registry
        )
        self.accepted = Counter(
            "intake_alerts_accepted", "Alerts Temporal accepted", ["source"], registry=self.registry
        )
        self.rejected = Counter(
            "intake_alerts_rejected",
            "Requests or alerts refused, by reason",
            ["source", "reason"],
            registry=self.registry,
        )
        self.deduplicated = Counter(
            "intake_alerts_deduplicated",
            "Sender retries of a delivery already taken",
            ["source"],
            registry=self.registry,
        )
        self.handovers = Counter(
            "intake_handovers",
            "Signals to Temporal carrying alerts (several alerts of one target coalesce into one)",
            registry=self.registry,
        )
        self.handoff = Histogram(
            "intake_handoff_seconds",
            "Hand-over latency to Temporal",
            ["source"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )


# --------------------------------------------------------------------------- request checks


def require_bearer(request: Request, token: str, variable: str) -> None:
    if not token:
        raise Refusal(403, "disabled", f"this endpoint is disabled: {variable} is not set")
    header = request.headers.get("authorization", "")
    if not header:
        raise Refusal(
            401, "unauthenticated", "missing Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"}
        )
    scheme, _, offered = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(offered.strip().encode(), token.encode()):
        raise Refusal(403, "forbidden", "the bearer token is not valid for this endpoint")


def require_content_type(request: Request, allowed: Sequence[str]) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in allowed:
        raise Refusal(
            415, "content-type", f"Content-Type must be {' or '.join(allowed)}, not {media_type or 'missing'}"
        )


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refusal(413, "too-large", f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refusal(413, "too-large", f"the body is larger than {limit} bytes")
            chunks.append(chunk)
    except BodyTimeout as err:  # the listener's body deadline (intake.limits.BodyDeadline)
        raise Refusal(408, "body-timeout", str(err), headers={"Connection": "close"}) from None
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as err:
        raise Refusal(400, "malformed", f"the body is not valid JSON: {str(err)[:200]}") from None


def validate(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        fields = [
            {"field": ".".join(str(part) for part in e["loc"]) or "(body)", "problem": e["msg"]}
            for e in err.errors(include_url=False, include_input=False)[:20]
        ]
        names = ", ".join(f["field"] for f in fields)
        raise Refusal(
            422, "schema", f"the payload does not match the {model.__name__} schema: {names}", fields=fields
        ) from None


# --------------------------------------------------------------------------- what senders send besides


def eventbridge_ignored(data: Any) -> str | None:
    """Events other than alarm state changes (a rule on `source` alone sends configuration
    changes too): 2xx ignored, or the API destination's dead-letter queue fills."""
    if not isinstance(data, dict):
        return None  # not an event at all: validation says what is wrong
    kind, source = data.get("detail-type"), data.get("source")
    if isinstance(kind, str) and isinstance(source, str) and (source, kind) not in EVENTBRIDGE_TAKEN:
        return f"{source} {kind!r} is neither an alarm state change nor an AWS Health event"
    return None


# The EventBridge events the runbooks use: (source, detail-type).
EVENTBRIDGE_TAKEN = frozenset({("aws.cloudwatch", "CloudWatch Alarm State Change"), ("aws.health", "AWS Health Event")})


def eventbridge_remarks(payload: EventBridgeEvent) -> dict[str, Any]:
    event = payload.root
    if not isinstance(event, EventBridgeAlarmEvent):
        return {}
    reason = normalize.not_paged(event) if event.detail.state.value == "ALARM" else None
    return {"not_paged": f"{event.detail.alarmName}: {reason}"} if reason else {}


def alertmanager_remarks(webhook: AlertmanagerWebhook) -> dict[str, Any]:
    if not webhook.truncatedAlerts:
        return {}
    return {
        "truncated_alerts": webhook.truncatedAlerts,
        "warning": f"Alertmanager left out {webhook.truncatedAlerts} alert(s) of this group (max_alerts); "
        "they were not received",
    }


# --------------------------------------------------------------------------- the app


def create_app(
    config: IntakeConfig,
    handoff: Handoff,
    sns_verifier: sns.SnsVerifier | None = None,
    confirm_subscription: Callable[[str], Awaitable[None]] | None = None,
) -> Starlette:
    """The webhook listener's app. It serves no page, sign-in or operator API: those are on the
    operator listener (`intake.signin`), so this port can face the senders alone."""
    metrics = Metrics()
    deliveries = Deliveries()
    coalescer = Coalescer(
        handoff, window=config.coalesce_window, counted=metrics.handovers.inc, max_in_flight=config.max_handovers
    )
    holds = MaintenanceHolds(handoff, config.policy)
    verifier = sns_verifier or sns.SnsVerifier(
        config.sns_topics,
        sns.CertificateStore(host_pattern=config.sns_cert_host_pattern),
        max_age=config.sns_max_age,
        signature_versions=("2",) if config.sns_v2_only else ("1", "2"),
    )
    subscribe_host = re.compile(config.sns_cert_host_pattern)

    async def confirm_by_get(url: str) -> None:
        # SubscribeURL is where SNS asks us to GET; only AWS's own hosts, never an arbitrary URL.
        parsed = httpx.URL(url)
        if (
            parsed.scheme != "https"
            or parsed.port not in (None, 443)
            or not subscribe_host.fullmatch(parsed.host or "")
        ):
            raise Refusal(403, "subscribe-url", f"SubscribeURL host {parsed.host!r} is not an SNS host")
        async with httpx.AsyncClient(timeout=5) as http:
            (await http.get(url)).raise_for_status()

    confirm = confirm_subscription or confirm_by_get

    async def hand_over(source: str, incoming: list[Incoming], remarks: dict[str, Any] | None = None) -> JSONResponse:
        """Routes each alert and hands the new ones to Temporal, coalesced with whatever else
        arrives for their targets (`intake.coalesce`); 202 once all are taken."""
        received_at = datetime.now(UTC)
        duplicates, unrouted, routed = 0, [], []
        for alert in incoming:
            metrics.received.labels(source).inc()
            if alert.delivery_id is not None and alert.delivery_id in deliveries:
                metrics.deduplicated.labels(source).inc()
                duplicates += 1
                continue
            try:
                found = normalize.route(config.policy, alert, received_at)
            except ValidationError as err:
                problem = err.errors()[0]["msg"]
                raise Refusal(422, "schema", f"the alert {alert.name!r} cannot be normalised: {problem}") from None
            if found is None:
                metrics.rejected.labels(source, "unrouted").inc()
                unrouted.append({"name": alert.name, "labels": alert.labels})
                continue
            routed.append((found[0], found[1].runbook))

        held: list[str] = []  # the window of each alert a maintenance window took

        async def timed(alert: Alert, runbook: Runbook) -> str | None:
            started = time.perf_counter()
            window = await holds.holder(alert) if runbook == "incident" else None
            # held by a maintenance window: recorded on its run, no incident (a window that has
            # just closed takes no signal: the alert then opens its incident after all)
            taken = False
            if window is not None:
                async with coalescer.slot():  # counted with the lanes' hand-overs
                    taken, _ = await handoff.batch(window, [alert], f"intake/{source}", start=False)
            if window is not None and taken:
                held.append(window)
                joined: str | None = None
            else:
                joined = await coalescer.hand_over(alert, f"intake/{source}", runbook)
            metrics.handoff.labels(source).observe(time.perf_counter() - started)
            return joined

        outcomes = await asyncio.gather(*(timed(*taken) for taken in routed), return_exceptions=True)
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        unavailable = [failure for failure in failures if not isinstance(failure, Rejected)]
        if unavailable:
            metrics.rejected.labels(source, "temporal-unavailable").inc()
            log.warning("%s: %s", source, unavailable[0])
            raise Refusal(
                503,
                "temporal-unavailable",
                f"{unavailable[0]}; retry later",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        if failures:
            raise Refusal(422, "temporal-rejected", str(failures[0]))
        incidents = {joined for joined in outcomes if isinstance(joined, str)}
        no_incident = sum(1 for joined in outcomes if joined is None) - len(held)
        for handed, _ in routed:
            metrics.accepted.labels(source).inc()
            if handed.delivery_id is not None:
                deliveries.add(handed.delivery_id)
        body = {
            "accepted": len(routed),
            "duplicates": duplicates,
            "unrouted": unrouted,
            "incidents": sorted(incidents),
            "resolved_without_open_incident": no_incident,
            **({"held_by_maintenance": sorted(set(held))} if held else {}),
            **(remarks or {}),
        }
        if unrouted and not routed and not duplicates and not remarks:
            raise Refusal(422, "unrouted", "no route of the policy takes these alerts", unrouted=unrouted)
        return JSONResponse(body, 202)

    def endpoint(source: str, handler: Callable[[Request], Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except Refusal as refusal:
                if refusal.reason not in ("unrouted", "temporal-unavailable"):
                    metrics.rejected.labels(source, refusal.reason).inc()
                return refusal.response()

        return run

    def json_sender(
        source: str,
        token: Callable[[], str],
        variable: str,
        model: type[BaseModel],
        to_incoming: Callable[[Any], list[Incoming]],
        ignored: Callable[[Any], str | None] = lambda data: None,
        remarks: Callable[[Any], dict[str, Any]] = lambda payload: {},
    ) -> Callable[[Request], Awaitable[Response]]:
        """`ignored`: why a payload the runbooks do not use is answered 2xx untouched (a 4xx would
        make the sender retry it, or give up on the endpoint); `remarks`: what the answer adds."""

        async def receive(request: Request) -> Response:
            require_bearer(request, token(), variable)
            require_content_type(request, ["application/json"])
            data = parse_json(await read_body(request, config.max_body_bytes))
            reason = ignored(data)
            if reason is not None:
                metrics.received.labels(source).inc()
                return JSONResponse({"ignored": reason}, 202)
            payload = validate(model, data)
            said = remarks(payload)
            if said:
                log.info("%s: %s", source, said)
            return await hand_over(source, to_incoming(payload), said)

        return receive

    async def receive_sns(request: Request) -> Response:
        require_content_type(request, ["text/plain", "application/json"])  # SNS posts text/plain
        message = parse_json(await read_body(request, config.max_body_bytes))
        if not isinstance(message, dict):
            raise Refusal(400, "malformed", "the SNS message must be a JSON object")
        try:
            await verifier.verify(message)
        except sns.SnsError as err:
            if err.reason == "cert-fetch":  # ours to retry, not the sender's fault: SNS resends on 5xx
                raise Refusal(
                    503, "sns-cert-fetch", str(err), headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
                ) from None
            forged = ("bad-signature", "cert-host", "cert-url", "bad-cert", "unknown-topic", "stale-message")
            raise Refusal(403 if err.reason in forged else 400, f"sns-{err.reason}", str(err)) from None
        kind = message.get("Type")
        if kind == "SubscriptionConfirmation":
            try:
                await confirm(str(message["SubscribeURL"]))
            except Refusal:
                raise
            except Exception as err:  # noqa: BLE001 - SNS resends the confirmation; say why it failed
                raise Refusal(
                    503,
                    "subscribe-failed",
                    f"could not confirm the subscription: {err}",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                ) from None
            log.info("confirmed SNS subscription to %s", message.get("TopicArn"))
            return JSONResponse({"confirmed": message.get("TopicArn")}, 200)
        if kind != "Notification":
            return JSONResponse({"ignored": kind}, 200)
        try:
            alarm = sns.cloudwatch_alarm(message)
        except sns.SnsError as err:
            raise Refusal(422, f"sns-{err.reason}", str(err)) from None
        return await hand_over("sns", normalize.from_cloudwatch_alarm(alarm, str(message["MessageId"])))

    async def receive_pagerduty(request: Request) -> Response:
        body = await read_body(request, config.max_body_bytes)
        header = request.headers.get("x-pagerduty-signature")
        if not config.pagerduty_secrets:
            raise Refusal(403, "disabled", "this endpoint is disabled: PAGERDUTY_WEBHOOK_SECRETS is not set")
        if not header:
            raise Refusal(401, "unauthenticated", "missing X-PagerDuty-Signature")
        if not signature_valid(body, header, config.pagerduty_secrets):
            raise Refusal(403, "bad-signature", "X-PagerDuty-Signature does not match the body")
        require_content_type(request, ["application/json"])
        data = parse_json(body)
        event = data.get("event") if isinstance(data, dict) else None
        event_type = event.get("event_type") if isinstance(event, dict) else None
        if isinstance(event, dict) and event_type not in SIGNALLED:
            # pagey.ping, and role, conference-bridge, custom-field, responder events: not ours,
            # whatever their shape. A 4xx would make PagerDuty give up on the subscription.
            metrics.received.labels("pagerduty").inc()
            return JSONResponse({"ignored": f"{event_type or 'an event'} is not one the runbooks use"}, 202)
        webhook = validate(PagerDutyWebhook, data)
        metrics.received.labels("pagerduty").inc()
        if webhook.event.id in deliveries:
            metrics.deduplicated.labels("pagerduty").inc()
            return JSONResponse({"duplicate": webhook.event.id}, 200)
        found = incident_event(webhook)
        if found is None:
            return JSONResponse({"ignored": f"{webhook.event.event_type} is not for a runbook incident"}, 202)
        workflow_id, event = found
        started = time.perf_counter()
        try:
            signalled = await handoff.pagerduty_event(workflow_id, event)
        except Unavailable as err:
            metrics.rejected.labels("pagerduty", "temporal-unavailable").inc()
            raise Refusal(
                503, "temporal-unavailable", f"{err}; retry later", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
            ) from None
        except Rejected as err:
            raise Refusal(422, "temporal-rejected", str(err)) from None
        metrics.handoff.labels("pagerduty").observe(time.perf_counter() - started)
        deliveries.add(webhook.event.id)
        if not signalled:
            return JSONResponse({"ignored": f"no running incident {workflow_id}"}, 202)
        metrics.accepted.labels("pagerduty").inc()
        return JSONResponse({"signalled": workflow_id, "event": event.event_type}, 202)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        problem = await handoff.ready()
        if problem is not None:
            return JSONResponse(
                {"status": "not ready", "temporal": problem}, 503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
            )
        return JSONResponse({"status": "ready", "temporal": "reachable"})

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"no such endpoint: {request.method} {request.url.path}"}, 404)

    routes = [
        Route(
            "/v1/alerts/alertmanager",
            endpoint(
                "alertmanager",
                json_sender(
                    "alertmanager",
                    lambda: config.alertmanager_token,
                    "INTAKE_ALERTMANAGER_TOKEN",
                    AlertmanagerWebhook,
                    normalize.from_alertmanager,
                    remarks=alertmanager_remarks,
                ),
            ),
            methods=["POST"],
        ),
        Route(
            "/v1/alerts/eventbridge",
            endpoint(
                "eventbridge",
                json_sender(
                    "eventbridge",
                    lambda: config.eventbridge_token,
                    "INTAKE_EVENTBRIDGE_TOKEN",
                    EventBridgeEvent,
                    normalize.from_eventbridge_event,
                    ignored=eventbridge_ignored,
                    remarks=eventbridge_remarks,
                ),
            ),
            methods=["POST"],
        ),
        Route(
            "/v1/alerts",
            endpoint(
                "generic",
                json_sender(
                    "generic",
                    lambda: config.generic_token,
                    "INTAKE_GENERIC_TOKEN",
                    GenericAlert,
                    normalize.from_generic,
                ),
            ),
            methods=["POST"],
        ),
        Route("/v1/alerts/sns", endpoint("sns", receive_sns), methods=["POST"]),
        Route("/v1/webhooks/pagerduty", endpoint("pagerduty", receive_pagerduty), methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found})
    app.state.metrics = metrics
    return app
