"""PagerDuty: pages through the Events API v2, incident work through the REST API v2.

Both clients retry on their own, 429 without limit and with a blocking sleep. Here they
get at most one short retry, so an activity returns and Temporal's retry policy decides.
"""

from __future__ import annotations

import functools
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import httpx2
import pagerduty
from temporalio import activity
from temporalio.exceptions import ApplicationError

import settings
from contracts import (
    EscalateRequest,
    NoteRequest,
    PageAndNote,
    PagerDutyRef,
    PagerDutySync,
    PagerDutySynced,
    PageRequest,
)
from contracts.maintenance import CloseWindow, OpenWindow, PagerDutyWindow, WindowClosed

TRANSIENT = (429, 500, 502, 503, 504)

Client = TypeVar("Client", bound=pagerduty.ApiClient)


def _bounded(client: Client) -> Client:
    client.retry = {status: 1 for status in TRANSIENT}
    client.max_http_attempts = 1
    client.max_network_attempts = 0
    client.sleep_timer = 0.5
    client.timeout = 20
    return client


def _tls(config: settings.Settings) -> dict[str, Any]:
    if not config.pagerduty_ca_bundle:
        return {}
    return {"verify": _trusting(config.pagerduty_ca_bundle)}


@functools.lru_cache(maxsize=4)
def _trusting(ca_bundle: str) -> ssl.SSLContext:
    """One context per CA file for every client and thread (a context is safe to share and
    costs memory: one per activity thread added megabytes)."""
    return ssl.create_default_context(cafile=ca_bundle)


# One client per activity thread and configuration: its connection stays open, so a page
# does not wait on a TLS handshake (requests sessions are not shared between threads).
_per_thread = threading.local()


def _cached(key: tuple[str, ...], build: Callable[[], Client]) -> Client:
    clients: dict[tuple[str, ...], pagerduty.ApiClient] = _per_thread.__dict__.setdefault("clients", {})
    if key not in clients:
        clients[key] = _bounded(build())
    # the key's first part ("events", "rest") names the kind of client that `build` makes
    return cast(Client, clients[key])


def events_client() -> pagerduty.EventsApiV2Client:
    config = settings.load()
    if not config.pagerduty_routing_key:
        raise ApplicationError("PAGERDUTY_ROUTING_KEY is not set", type="Configuration", non_retryable=True)
    key = ("events", config.pagerduty_routing_key, config.pagerduty_events_url, config.pagerduty_ca_bundle)
    return _cached(
        key,
        lambda: pagerduty.EventsApiV2Client(
            config.pagerduty_routing_key, base_url=config.pagerduty_events_url, **_tls(config)
        ),
    )


def rest_client() -> pagerduty.RestApiV2Client:
    config = settings.load()
    if not config.pagerduty_api_token:
        raise ApplicationError("PAGERDUTY_API_TOKEN is not set", type="Configuration", non_retryable=True)
    key = (
        "rest",
        config.pagerduty_api_token,
        config.pagerduty_from,
        config.pagerduty_api_url,
        config.pagerduty_ca_bundle,
    )
    return _cached(
        key,
        lambda: pagerduty.RestApiV2Client(
            config.pagerduty_api_token,
            default_from=config.pagerduty_from,
            base_url=config.pagerduty_api_url,
            **_tls(config),
        ),
    )


def _rejected(status: int, body: str, action: str) -> ApplicationError:
    """400-class answers are final (PagerDuty says never retry them); 429 and 5xx are not."""
    return ApplicationError(
        f"{action}: HTTP {status}: {body[:300]}",
        type=f"PagerDutyHTTP{status}",
        non_retryable=status not in TRANSIENT,
    )


def _failure(err: pagerduty.Error, action: str) -> ApplicationError:
    response = getattr(err, "response", None)
    if response is None:
        return ApplicationError(f"{action}: {err}", type="PagerDutyUnreachable")
    return _rejected(response.status_code, response.text, action)


def _checked(response: httpx2.Response, action: str) -> dict[str, Any]:
    if not response.is_success:
        raise _rejected(response.status_code, response.text, action)
    body: dict[str, Any] = response.json()  # PagerDuty's REST API answers with a JSON object
    return body


@activity.defn
def trigger_page(request: PageRequest) -> str:
    """Idempotent by `dedup_key`: a retried trigger joins the open incident, no second page."""
    return _trigger(request)


# The Events API v2's limits: a trigger over them is refused (400) and nobody is paged. The
# summary is the documented 1024 characters; the source and each detail are cut well short of
# the 512 KB an event may weigh, so an alert of any size still pages.
MAX_SUMMARY = 1024
MAX_SOURCE = 255
MAX_DETAIL = 8 * 1024
MAX_DETAILS = 64 * 1024
CUT = " [...]"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(CUT)] + CUT


def fit_page(request: PageRequest) -> PageRequest:
    """The page within PagerDuty's limits: long texts cut (and marked), never refused."""
    details: dict[str, str] = {}
    room = MAX_DETAILS
    for key, value in request.details.items():
        key, value = _cut(key, 256), _cut(value, MAX_DETAIL)
        if len(key) + len(value) > room:
            details["(truncated)"] = f"{len(request.details) - len(details)} more detail(s) left out: too long"
            break
        details[key], room = value, room - len(key) - len(value)
    return request.model_copy(
        update={
            "summary": _cut(request.summary, MAX_SUMMARY),
            "source": _cut(request.source, MAX_SOURCE),
            "details": details,
        }
    )


def _trigger(request: PageRequest) -> str:
    client = events_client()
    request = fit_page(request)
    try:
        return client.trigger(
            request.summary,
            request.source,
            dedup_key=request.dedup_key,
            severity=request.severity,
            custom_details=dict(request.details),
            # the time the page was asked for, not when a retry got through
            payload={"timestamp": activity.info().scheduled_time.isoformat()},
        )
    except pagerduty.Error as err:
        raise _failure(err, "trigger") from err


@activity.defn
def acknowledge_page(dedup_key: str) -> str:
    try:
        return events_client().acknowledge(dedup_key)
    except pagerduty.Error as err:
        raise _failure(err, "acknowledge") from err


@activity.defn
def resolve_page(dedup_key: str) -> str:
    try:
        return events_client().resolve(dedup_key)
    except pagerduty.Error as err:
        raise _failure(err, "resolve") from err


@activity.defn
def find_pagerduty_incident(dedup_key: str) -> PagerDutyRef:
    """PagerDuty opens the incident after accepting the event; until it shows, retry."""
    return _find(dedup_key)


def _find(dedup_key: str) -> PagerDutyRef:
    client = rest_client()
    params: dict[str, str | int | list[str]] = {
        "incident_key": dedup_key,
        "statuses[]": ["triggered", "acknowledged"],
        "limit": 25,
    }
    try:
        body = _checked(client.get("/incidents", params=params), "list incidents")
    except pagerduty.Error as err:
        raise _failure(err, "list incidents") from err
    incidents = body.get("incidents", [])
    if not incidents:
        raise ApplicationError(f"no open PagerDuty incident with key {dedup_key} yet", type="NotYetOpen")
    newest = max(incidents, key=lambda i: i.get("incident_number", 0))
    return PagerDutyRef(
        dedup_key=dedup_key,
        incident_id=newest["id"],
        html_url=newest.get("html_url"),
        escalation_level=int(newest.get("escalation_level") or 1),
    )


@activity.defn
def add_pagerduty_note(request: NoteRequest) -> str:
    """Notes have no idempotency key in PagerDuty; a marker line lets a retry find its note."""
    return _add_note(request)


def _add_note(request: NoteRequest) -> str:
    client = rest_client()
    marker = f"ref: {request.note_key}"
    path = f"/incidents/{request.incident_id}/notes"
    try:
        existing = _checked(client.get(path), "list notes").get("notes", [])
        for note in existing:
            if note.get("content", "").rstrip().endswith(marker):
                return str(note["id"])
        created = _checked(client.post(path, json={"note": {"content": f"{request.content}\n\n{marker}"}}), "add note")
    except pagerduty.Error as err:
        raise _failure(err, "add note") from err
    return str(created["note"]["id"])


@activity.defn
def escalate_pagerduty_incident(request: EscalateRequest) -> None:
    """Setting the level is idempotent: a retry asks for the level it already has."""
    client = rest_client()
    body = {"incident": {"type": "incident_reference", "escalation_level": request.level}}
    try:
        _checked(client.put(f"/incidents/{request.incident_id}", json=body), "escalate")
    except pagerduty.Error as err:
        raise _failure(err, "escalate") from err


@activity.defn
def page_and_note(request: PageAndNote) -> PagerDutyRef:
    """The page, the PagerDuty incident it opened, and the initial notification on it.

    Each part is idempotent (dedup key, incident key, note marker), so a retry after any of
    them repeats nothing. Until PagerDuty shows the incident the activity fails and retries;
    the page itself went out on the first attempt.
    """
    _trigger(request.page)
    activity.heartbeat("paged")
    ref = _find(request.page.dedup_key)
    assert ref.incident_id is not None
    _add_note(NoteRequest(incident_id=ref.incident_id, note_key=request.note_key, content=request.note))
    return ref


@activity.defn
def sync_pagerduty(request: PagerDutySync) -> PagerDutySynced:
    """Notes in order, then the acknowledgement or resolution.

    A retry re-sends the whole batch: notes are found by their marker, acknowledge and resolve
    are idempotent by dedup key. A note PagerDuty refuses for good (its incident is gone) is
    reported, not retried, and does not hold back the acknowledgement or resolution.
    """
    added, refused = 0, []
    if request.incident_id is not None:
        for note in request.notes:
            try:
                _add_note(NoteRequest(incident_id=request.incident_id, note_key=note.note_key, content=note.content))
                added += 1
            except ApplicationError as err:
                if not err.non_retryable:
                    raise
                refused.append(f"note {note.note_key}: {err}")
    action = "resolve" if request.resolve else "acknowledge" if request.acknowledge else None
    if action is not None:
        client = events_client()
        try:
            client.resolve(request.dedup_key) if request.resolve else client.acknowledge(request.dedup_key)
        except pagerduty.Error as err:
            raise _failure(err, action) from err
    return PagerDutySynced(notes_added=added, refused=refused)


# --- maintenance windows (REST API v2 `/maintenance_windows`)


def _window(found: dict[str, Any], created: bool) -> PagerDutyWindow:
    services = found.get("services") or [{}]
    return PagerDutyWindow(
        id=found["id"],
        service_id=services[0].get("id", "?"),
        start=found["start_time"],
        end=found["end_time"],
        html_url=found.get("html_url"),
        created=created,
    )


def _marker(key: str) -> str:
    return f"ref: {key}"


@activity.defn
def open_maintenance_window(request: OpenWindow) -> PagerDutyWindow:
    """PagerDuty opens no incident for the service while the window lasts. Idempotent: the
    description ends with the run's marker, and an open window with it is the one a previous
    attempt made (PagerDuty has no idempotency key for this call)."""
    client = rest_client()
    service_id = request.service_id or settings.load().pagerduty_service_id
    if not service_id:
        raise ApplicationError(
            "no PagerDuty service for the window: maintenance.pagerduty_services lacks the service "
            "and PAGERDUTY_SERVICE_ID is not set",
            type="Configuration",
            non_retryable=True,
        )
    marker = _marker(request.key)
    try:
        params: dict[str, str | int | list[str]] = {"service_ids[]": [service_id], "filter": "open", "limit": 100}
        listed = _checked(client.get("/maintenance_windows", params=params), "list maintenance windows")
        for found in listed.get("maintenance_windows", []):
            if str(found.get("description", "")).rstrip().endswith(marker):
                return _window(found, created=False)
        body = {
            "maintenance_window": {
                "type": "maintenance_window",
                "start_time": request.start.isoformat(),
                "end_time": request.end.isoformat(),
                "description": f"{request.description}\n{marker}",
                "services": [{"id": service_id, "type": "service_reference"}],
            }
        }
        created = _checked(client.post("/maintenance_windows", json=body), "open maintenance window")
    except pagerduty.Error as err:
        raise _failure(err, "open maintenance window") from err
    return _window(created["maintenance_window"], created=True)


@activity.defn
def close_maintenance_window(request: CloseWindow) -> WindowClosed:
    """Ends the window now (PagerDuty's DELETE ends an ongoing window and removes a future one).
    A retry finds it ended or gone and makes no second call."""
    client = rest_client()
    path = f"/maintenance_windows/{request.window_id}"
    try:
        response = client.get(path)
        if response.status_code == 404:
            return WindowClosed(window_id=request.window_id, closed=False, detail="gone already")
        found = _checked(response, "read maintenance window")["maintenance_window"]
        end = datetime.fromisoformat(found["end_time"].replace("Z", "+00:00"))
        if end <= datetime.now(UTC):
            return WindowClosed(window_id=request.window_id, closed=False, detail=f"ended at {end:%H:%M:%S} UTC")
        deleted = client.delete(path)
        if not deleted.is_success and deleted.status_code != 404:
            raise _rejected(deleted.status_code, deleted.text, "close maintenance window")
    except pagerduty.Error as err:
        raise _failure(err, "close maintenance window") from err
    return WindowClosed(window_id=request.window_id, closed=True, detail="closed")
