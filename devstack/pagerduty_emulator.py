"""A PagerDuty emulator that the real `pagerduty` client library talks to unchanged.

It speaks the wire format of the two APIs the runbooks use, on one address:

- Events API v2: `POST /v2/enqueue` (trigger, acknowledge, resolve; dedup by `dedup_key`).
- REST API v2, the incident slice: `GET /incidents`, `GET|PUT /incidents/{id}`,
  `GET|POST /incidents/{id}/notes`, with `Authorization: Token token=...`, the `From`
  header on writes, classic pagination and `{"error": {...}}` bodies.
- REST API v2, maintenance windows: `GET|POST /maintenance_windows` (filters `service_ids[]`,
  `filter` past|future|ongoing|open|all, `query`), `GET|PUT|DELETE /maintenance_windows/{id}`
  (DELETE ends an ongoing window and removes a future one, as PagerDuty does). While a window
  of its service is ongoing, a trigger opens no incident (the event is recorded as suppressed).

What a person would have seen is recorded for tests and the demo under `/_emulator/`: every
accepted event, and every PAGE (a notification to one level of the escalation policy):
one when an incident opens (level 1), one each time its escalation level changes.

The `pagerduty` client refuses any base URL that is not https://, so to use it against
the emulator serve TLS (`--tls-dir DIR` makes a self-signed certificate there) and give
the client `verify=ssl.create_default_context(cafile=DIR/cert.pem)` (or set
SSL_CERT_FILE). Plain HTTP stays the default for curl and in-process tests.

    python -m devstack.pagerduty_emulator --host 127.0.0.1 --port 8091 \
        [--state-file PATH] [--tls-dir DIR] [--routing-key KEY ...] [--api-token TOKEN]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import html
import ipaddress
import json
import logging
import os
import secrets
import string
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger(__name__)

EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
STATUSES = ("triggered", "acknowledged", "resolved")
OPEN_STATUSES = frozenset({"triggered", "acknowledged"})
HIGH_URGENCY_SEVERITIES = frozenset({"critical", "error"})

# Limits PagerDuty documents; the emulator rejects what PagerDuty would not accept, so
# code that works here does not trip over them in production.
ROUTING_KEY_LENGTH = 32
MAX_DEDUP_KEY_CHARS = 255
MAX_SUMMARY_CHARS = 1024
MAX_EVENT_BYTES = 512 * 1024
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
MAX_PAGINATION_WINDOW = 10_000
MAX_NOTES_PER_INCIDENT = 2000

# Emulator's own bounds: a REST body cap, a nesting cap so that re-serialising what we
# stored can never hit the recursion limit, and a cap on the recorded events so that a
# long demo's state file (rewritten on every change) stays small.
MAX_REST_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 64
MAX_RECORDED_EVENTS = 10_000

FAULT_STATUSES = (429, 500, 502, 503, 504)
ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
STATE_FORMAT = 1
_ID_ALPHABET = string.ascii_uppercase + string.digits
# What the page behind html_url shows.
_PAGE_FIELDS = ("incident_number", "status", "urgency", "escalation_level", "incident_key", "created_at")


Handler = Callable[[Request], Awaitable[Response]]


class EmulatorError(Exception):
    """A request the emulator refuses; carries the response to send."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


# --- Wire helpers ----------------------------------------------------------------------


def _rest_error(status: int, message: str, code: int, errors: Sequence[str] = (), **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "code": code, "errors": list(errors)}},
        status_code=status,
        headers=headers or None,
    )


def _invalid_input(*errors: str) -> EmulatorError:
    return EmulatorError(_rest_error(400, "Invalid Input Provided", 2001, errors))


def _invalid_event(*errors: str) -> EmulatorError:
    return EmulatorError(
        JSONResponse(
            {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)},
            status_code=400,
        )
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def _parse_json(body: bytes) -> Any:
    """The decoded body, or ValueError: anything we could not store and echo back is refused."""
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from None
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        # Lone surrogates decode fine but cannot be encoded again as UTF-8.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("body contains invalid Unicode (lone surrogates)") from None
    return value


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None if it is larger than `limit` (read no further than that)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _now() -> datetime:
    return datetime.now(UTC)


def _pd_time(moment: datetime) -> str:
    """PagerDuty's own timestamps: ISO 8601, UTC, whole seconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _precise_time(moment: datetime) -> str:
    """The emulator's records: milliseconds, so that events within one second stay apart."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stable_id(seed: str) -> str:
    """A PagerDuty-style id (P + 6 uppercase alphanumerics) that is the same on every run."""
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return "P" + "".join(_ID_ALPHABET[byte % len(_ID_ALPHABET)] for byte in digest[:6])


def _random_id(taken: set[str] | dict[str, Any]) -> str:
    while True:
        candidate = "P" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))
        if candidate not in taken:
            return candidate


def _is_iso8601(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


# --- State -----------------------------------------------------------------------------


class EmulatorState:
    """Incidents, accepted events and pages; saved atomically after each change.

    Incidents are stored as plain JSON-ready dicts (the state file is their dump) and
    rendered to PagerDuty's shape per request, because `self` and `html_url` depend on the
    address the client used.
    """

    def __init__(self, path: Path | None, escalation_levels: int) -> None:
        self.path = path
        self.escalation_levels = escalation_levels
        self.incidents: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.pages: list[dict[str, Any]] = []
        self.next_incident_number = 1
        self.windows: dict[str, dict[str, Any]] = {}  # maintenance windows by id
        self.ended_windows: list[str] = []  # ids a DELETE ended or removed, in order (tests count them)
        self.next_window_number = 1
        # Faults are for one test's next few calls: never persisted, cleared by reset.
        self.fault_status: int | None = None
        self.fault_count = 0
        if path is not None and path.exists():
            self._load(path)

    # Persistence

    def _load(self, path: Path) -> None:
        # A state file we cannot read is a reason to stop, not to start empty and
        # silently overwrite it on the first change.
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != STATE_FORMAT:
                raise ValueError(f"unknown state format {data.get('format')!r}")
            incidents = data["incidents"]
            self.incidents = {incident["id"]: incident for incident in incidents}
            self.events = list(data["events"])
            self.pages = list(data["pages"])
            self.next_incident_number = int(data["next_incident_number"])
            self.windows = {window["id"]: window for window in data.get("maintenance_windows", [])}
            self.next_window_number = int(data.get("next_window_number", len(self.windows) + 1))
            self.ended_windows = list(data.get("windows_ended", []))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"cannot load PagerDuty emulator state from {path}: {exc}") from exc

    def save(self) -> None:
        if self.path is None:
            return
        data = {
            "format": STATE_FORMAT,
            "next_incident_number": self.next_incident_number,
            "incidents": list(self.incidents.values()),
            "events": self.events,
            "pages": self.pages,
            "maintenance_windows": list(self.windows.values()),
            "next_window_number": self.next_window_number,
            "windows_ended": self.ended_windows,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise

    def reset(self) -> None:
        self.incidents.clear()
        self.events.clear()
        self.pages.clear()
        self.next_incident_number = 1
        self.windows.clear()
        self.ended_windows.clear()
        self.next_window_number = 1
        self.fault_status = None
        self.fault_count = 0
        self.save()

    # Maintenance windows

    def window_covering(self, service_id: str, at: datetime) -> dict[str, Any] | None:
        for window in self.windows.values():
            if service_id in window["service_ids"] and _window_phase(window, at) == "ongoing":
                return window
        return None

    # Faults

    def take_fault(self) -> int | None:
        if self.fault_status is None or self.fault_count <= 0:
            return None
        self.fault_count -= 1
        status = self.fault_status
        if self.fault_count == 0:
            self.fault_status = None
        return status

    # Incidents

    def open_incident(self, routing_key: str, dedup_key: str) -> dict[str, Any] | None:
        # Follow-up events only reach the open alert of the same integration (routing key).
        for incident in reversed(self.incidents.values()):
            if (
                incident["incident_key"] == dedup_key
                and incident["routing_key"] == routing_key
                and incident["status"] in OPEN_STATUSES
            ):
                return incident
        return None

    def find(self, incident_id: str) -> dict[str, Any] | None:
        incident = self.incidents.get(incident_id)
        if incident is None and incident_id.isascii() and incident_id.isdigit():
            # PagerDuty also accepts the incident number in place of the id.
            number = int(incident_id)
            incident = next((i for i in self.incidents.values() if i["incident_number"] == number), None)
        return incident

    def page(self, incident: dict[str, Any], level: int, reason: str, at: datetime) -> None:
        self.pages.append(
            {
                "incident_id": incident["id"],
                "incident_key": incident["incident_key"],
                "level": level,
                "at": _precise_time(at),
                "reason": reason,
            }
        )

    def set_status(self, incident: dict[str, Any], status: str, by: dict[str, Any], at: datetime) -> None:
        incident["status"] = status
        incident["last_status_change_at"] = _pd_time(at)
        incident["last_status_change_by"] = by
        incident["updated_at"] = _pd_time(at)
        if status == "resolved":
            incident["resolved_at"] = _pd_time(at)

    def create_incident(self, event: dict[str, Any], dedup_key: str, at: datetime) -> dict[str, Any]:
        payload = event["payload"]
        stamp = _pd_time(at)
        incident: dict[str, Any] = {
            "id": _random_id(self.incidents),
            "incident_number": self.next_incident_number,
            "title": payload["summary"],
            "status": "triggered",
            "incident_key": dedup_key,
            "routing_key": event["routing_key"],
            "severity": payload["severity"],
            "urgency": "high" if payload["severity"] in HIGH_URGENCY_SEVERITIES else "low",
            "created_at": stamp,
            "updated_at": stamp,
            "last_status_change_at": stamp,
            "last_status_change_by": _service_ref(event["routing_key"]),
            "resolved_at": None,
            "escalation_level": 1,
            "trigger_count": 1,
            "notes": [],
        }
        self.next_incident_number += 1
        self.incidents[incident["id"]] = incident
        self.page(incident, 1, "triggered", at)
        return incident

    def record_event(
        self, event: dict[str, Any], at: datetime, dedup_key: str, incident: dict[str, Any] | None, effect: str
    ) -> None:
        self.events.append(
            {
                "received_at": _precise_time(at),
                "event": event,
                "dedup_key": dedup_key,
                "incident_id": incident["id"] if incident is not None else None,
                "effect": effect,
            }
        )
        if len(self.events) > MAX_RECORDED_EVENTS:
            del self.events[: len(self.events) - MAX_RECORDED_EVENTS]


# --- Rendering -------------------------------------------------------------------------


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def service_id_of(routing_key: str) -> str:
    """The emulated PagerDuty service of an integration (routing key): one per key, as on PagerDuty."""
    return _stable_id(f"service:{routing_key}")


def _service_ref(routing_key: str, base: str | None = None) -> dict[str, Any]:
    service_id = service_id_of(routing_key)
    ref: dict[str, Any] = {
        "id": service_id,
        "type": "service_reference",
        "summary": f"Emulated service (routing key ...{routing_key[-4:]})",
    }
    if base is not None:
        ref["self"] = f"{base}/services/{service_id}"
    return ref


def _escalation_policy_ref(levels: int, base: str) -> dict[str, Any]:
    policy_id = _stable_id("escalation-policy")
    return {
        "id": policy_id,
        "type": "escalation_policy_reference",
        "summary": f"Emulated escalation policy ({levels} levels)",
        "self": f"{base}/escalation_policies/{policy_id}",
    }


def _user_ref(email: str) -> dict[str, Any]:
    return {"id": _stable_id(f"user:{email}"), "type": "user_reference", "summary": email}


def render_incident(incident: dict[str, Any], base: str, escalation_levels: int) -> dict[str, Any]:
    resolved = incident["status"] == "resolved"
    last_change_by = dict(incident["last_status_change_by"])
    if last_change_by.get("type") == "service_reference":
        last_change_by = _service_ref(incident["routing_key"], base)
    return {
        "id": incident["id"],
        "type": "incident",
        "summary": f"[#{incident['incident_number']}] {incident['title']}",
        "self": f"{base}/incidents/{incident['id']}",
        "html_url": f"{base}/_emulator/incidents/{incident['id']}",
        "incident_number": incident["incident_number"],
        "title": incident["title"],
        "description": incident["title"],
        "status": incident["status"],
        "incident_key": incident["incident_key"],
        "urgency": incident["urgency"],
        "created_at": incident["created_at"],
        "updated_at": incident["updated_at"],
        "last_status_change_at": incident["last_status_change_at"],
        "last_status_change_by": last_change_by,
        "resolved_at": incident["resolved_at"],
        "service": _service_ref(incident["routing_key"], base),
        "escalation_policy": _escalation_policy_ref(escalation_levels, base),
        # Emulator extension: PagerDuty accepts escalation_level on update but does not
        # show it; the runbooks' tests want to read it back.
        "escalation_level": incident["escalation_level"],
        # Repeated triggers with one dedup_key land on one alert (PagerDuty logs them as
        # trigger log entries), so `all` stays 1; trigger_count (an emulator extension)
        # counts the triggers that were merged into this incident.
        "alert_counts": {"all": 1, "triggered": 0 if resolved else 1, "resolved": 1 if resolved else 0},
        "trigger_count": incident["trigger_count"],
    }


def render_note(note: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": note["id"],
        "user": _user_ref(note["user_email"]),
        "content": note["content"],
        "created_at": note["created_at"],
    }


# --- Events API v2 ---------------------------------------------------------------------


def _validate_optional_string(container: dict[str, Any], key: str, label: str, errors: list[str]) -> None:
    if key in container and container[key] is not None and not isinstance(container[key], str):
        errors.append(f"'{label}' must be a string")


def _validate_object_list(event: dict[str, Any], key: str, required: str, errors: list[str]) -> None:
    items = event.get(key)
    if items is None:
        return
    if not isinstance(items, list):
        errors.append(f"'{key}' must be an array of objects")
        return
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(f"'{key}[{index}]' must be an object")
        elif not isinstance(item.get(required), str) or not item[required]:
            errors.append(f"'{key}[{index}].{required}' is required and must be a string")


def _validate_payload(payload: Any, errors: list[str]) -> None:
    if payload is None:
        errors.append("'payload' is missing; trigger events need payload.summary, payload.source and payload.severity")
        return
    if not isinstance(payload, dict):
        errors.append("'payload' must be an object")
        return
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errors.append("'payload.summary' is missing or not a non-empty string")
    elif len(summary) > MAX_SUMMARY_CHARS:
        errors.append(f"'payload.summary' is longer than {MAX_SUMMARY_CHARS} characters")
    source = payload.get("source")
    if not isinstance(source, str) or not source.strip():
        errors.append("'payload.source' is missing or not a non-empty string")
    if payload.get("severity") not in SEVERITIES:
        errors.append("'payload.severity' must be one of: " + ", ".join(SEVERITIES))
    timestamp = payload.get("timestamp")
    if timestamp is not None and not (isinstance(timestamp, str) and _is_iso8601(timestamp)):
        errors.append("'payload.timestamp' must be an ISO 8601 date-time string")
    for key in ("component", "group", "class"):
        _validate_optional_string(payload, key, f"payload.{key}", errors)
    details = payload.get("custom_details")
    if details is not None and not isinstance(details, dict):
        errors.append("'payload.custom_details' must be an object")


def validate_event(event: Any, routing_keys: frozenset[str] | None) -> list[str]:
    """Everything wrong with an Events API v2 alert event, each naming its field."""
    if not isinstance(event, dict):
        return ["The event must be a JSON object"]
    errors: list[str] = []
    routing_key = event.get("routing_key")
    if routing_key is None:
        errors.append("'routing_key' is missing")
    elif not isinstance(routing_key, str):
        errors.append("'routing_key' must be a string")
    elif len(routing_key) != ROUTING_KEY_LENGTH:
        errors.append(f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)")
    elif routing_keys is not None and routing_key not in routing_keys:
        errors.append("'routing_key' is not the integration key of any service")
    action = event.get("event_action")
    if not isinstance(action, str) or action not in EVENT_ACTIONS:
        errors.append("'event_action' must be one of: " + ", ".join(EVENT_ACTIONS))
    dedup_key = event.get("dedup_key")
    if dedup_key is None:
        if action in ("acknowledge", "resolve"):
            errors.append(f"'dedup_key' is required for {action} events")
    elif not isinstance(dedup_key, str) or not dedup_key:
        errors.append("'dedup_key' must be a non-empty string")
    elif len(dedup_key) > MAX_DEDUP_KEY_CHARS:
        errors.append(f"'dedup_key' is longer than {MAX_DEDUP_KEY_CHARS} characters")
    if action == "trigger":
        _validate_payload(event.get("payload"), errors)
        _validate_optional_string(event, "client", "client", errors)
        _validate_optional_string(event, "client_url", "client_url", errors)
        _validate_object_list(event, "links", "href", errors)
        _validate_object_list(event, "images", "src", errors)
    return errors


def _fault_response(status: int) -> JSONResponse:
    if status == 429:
        message = "Requests for this service are arriving too quickly. Please retry later."
        body = {"status": "throttle event", "message": message}
    else:
        body = {"status": "error", "message": f"Injected fault: the emulator answers {status} to this event"}
    return JSONResponse(body, status_code=status)


def apply_event(state: EmulatorState, event: dict[str, Any], at: datetime) -> str:
    """Applies a valid event; returns its dedup_key (generated for a trigger without one)."""
    action = event["event_action"]
    routing_key = event["routing_key"]
    dedup_key = event.get("dedup_key") or uuid.uuid4().hex
    incident = state.open_incident(routing_key, dedup_key)
    quiet = state.window_covering(_service_ref(routing_key)["id"], at)
    if action == "trigger":
        if incident is None and quiet is not None:
            effect = f"suppressed: maintenance window {quiet['id']}"
        elif incident is None:
            incident = state.create_incident(event, dedup_key, at)
            effect = "created incident"
        else:
            # Deduplicated: no new incident, no new page, whatever the status.
            incident["trigger_count"] += 1
            incident["updated_at"] = _pd_time(at)
            effect = "merged into open incident"
    elif incident is None:
        # PagerDuty drops acknowledge/resolve for a key with no open alert.
        effect = "dropped: no open incident"
    elif action == "acknowledge":
        if incident["status"] == "triggered":
            state.set_status(incident, "acknowledged", _service_ref(routing_key), at)
            effect = "acknowledged"
        else:
            effect = "dropped: already acknowledged"
    else:
        state.set_status(incident, "resolved", _service_ref(routing_key), at)
        effect = "resolved"
    state.record_event(event, at, dedup_key, incident, effect)
    state.save()
    return dedup_key


# --- Maintenance windows ---------------------------------------------------------------

WINDOW_FILTERS = ("past", "future", "ongoing", "open", "all")


def _parse_time(value: Any, label: str, errors: list[str]) -> datetime | None:
    if not isinstance(value, str) or not _is_iso8601(value.replace("Z", "+00:00")):
        errors.append(f"'{label}' is required and must be an ISO 8601 time")
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        errors.append(f"'{label}' must carry a time zone")
        return None
    return moment.astimezone(UTC)


def _window_phase(window: dict[str, Any], at: datetime) -> str:
    start = datetime.fromisoformat(window["start_time"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(window["end_time"].replace("Z", "+00:00"))
    if end <= at:
        return "past"
    return "future" if start > at else "ongoing"


def _window_matches(window: dict[str, Any], wanted: str, at: datetime) -> bool:
    phase = _window_phase(window, at)
    return wanted == "all" or phase == wanted or (wanted == "open" and phase in ("ongoing", "future"))


def render_window(window: dict[str, Any], base: str) -> dict[str, Any]:
    services = []
    for service_id in window["service_ids"]:
        services.append(
            {
                "id": service_id,
                "type": "service_reference",
                "summary": f"Emulated service {service_id}",
                "self": f"{base}/services/{service_id}",
                "html_url": f"{base}/service-directory/{service_id}",
            }
        )
    return {
        "id": window["id"],
        "type": "maintenance_window",
        "summary": window["description"] or f"Maintenance window {window['sequence_number']}",
        "self": f"{base}/maintenance_windows/{window['id']}",
        "html_url": f"{base}/maintenance_windows#/show/{window['id']}",
        "sequence_number": window["sequence_number"],
        "start_time": window["start_time"],
        "end_time": window["end_time"],
        "description": window["description"],
        "services": services,
        "teams": [],
        "created_by": _user_ref(window["created_by"]),
    }


def _validate_window(body: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
    """The fields of a new window (`existing` None) or of an update, checked as PagerDuty does."""
    window = body.get("maintenance_window")
    if not isinstance(window, dict):
        raise _invalid_input("'maintenance_window' is required and must be an object")
    errors: list[str] = []
    if window.get("type") not in ("maintenance_window", "maintenance_window_reference"):
        errors.append("'maintenance_window.type' must be 'maintenance_window'")
    fields: dict[str, Any] = {}
    for key in ("start_time", "end_time"):
        if key in window or existing is None:
            moment = _parse_time(window.get(key), f"maintenance_window.{key}", errors)
            if moment is not None:
                fields[key] = moment
    description = window.get("description", "" if existing is None else existing["description"])
    if not isinstance(description, str) or len(description) > 10_000:
        errors.append("'maintenance_window.description' must be a string of at most 10000 characters")
    fields["description"] = description
    if "services" in window or existing is None:
        services = window.get("services")
        ids = [s.get("id") for s in services if isinstance(s, dict)] if isinstance(services, list) else []
        if not ids or not all(isinstance(i, str) and i for i in ids) or len(ids) != len(services or []):
            errors.append("'maintenance_window.services' must list at least one service reference with an id")
        else:
            fields["service_ids"] = ids
    if errors:
        raise _invalid_input(*errors)
    start = fields.get("start_time") or datetime.fromisoformat(existing["start_time"].replace("Z", "+00:00"))  # type: ignore[index]
    end = fields.get("end_time") or datetime.fromisoformat(existing["end_time"].replace("Z", "+00:00"))  # type: ignore[index]
    if end <= start:
        raise _invalid_input("'maintenance_window.end_time' must be after its start_time")
    if "end_time" in fields and end <= _now():
        raise _invalid_input("'maintenance_window.end_time' must be in the future")
    return fields


# --- REST API v2 -----------------------------------------------------------------------


def _check_token(request: Request, api_token: str | None) -> None:
    prefix = "Token token="
    header = request.headers.get("authorization", "")
    if not header.startswith(prefix) or not header[len(prefix) :].strip():
        raise EmulatorError(
            _rest_error(
                401, "Authentication failed", 2006, ["The Authorization header must be 'Token token=<API key>'"]
            )
        )
    if api_token is not None and header[len(prefix) :] != api_token:
        raise EmulatorError(_rest_error(401, "Authentication failed", 2006, ["The API key is not valid"]))


def _requester(request: Request) -> str:
    # PagerDuty wants the email address of a user of the account; any address will do here.
    sender = request.headers.get("from", "").strip()
    if "@" not in sender:
        raise _invalid_input("The 'From' header is required on this request and must be the email address of a user")
    return sender


async def _read_json(request: Request, limit: int, invalid: Callable[..., Exception], what: str) -> Any:
    """The body as JSON; too large or malformed is `invalid`, in the caller's error format."""
    body = await _read_body(request, limit)
    if body is None:
        raise invalid(f"{what} is larger than {limit} bytes")
    try:
        return _parse_json(body)
    except ValueError as exc:
        raise invalid(str(exc)) from None


async def _json_body(request: Request) -> dict[str, Any]:
    value = await _read_json(request, MAX_REST_BODY_BYTES, _invalid_input, "The request body")
    if not isinstance(value, dict):
        raise _invalid_input("The request body must be a JSON object")
    return value


def _query_int(request: Request, name: str, default: int, minimum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid_input(f"'{name}' must be an integer") from None
    if value < minimum:
        raise _invalid_input(f"'{name}' must be at least {minimum}")
    return value


def _query_list(request: Request, name: str) -> list[str]:
    # The client appends [] to list parameters; accept the bare name too.
    return request.query_params.getlist(f"{name}[]") + request.query_params.getlist(name)


def _validate_update(body: dict[str, Any], escalation_levels: int) -> dict[str, Any]:
    update = body.get("incident")
    if not isinstance(update, dict):
        raise _invalid_input("'incident' is required and must be an object")
    errors: list[str] = []
    if update.get("type") not in ("incident", "incident_reference"):
        errors.append("'incident.type' must be 'incident' or 'incident_reference'")
    status = update.get("status")
    if status is not None and status not in ("acknowledged", "resolved"):
        errors.append("'incident.status' must be 'acknowledged' or 'resolved'")
    level = update.get("escalation_level")
    if level is not None and (
        not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= escalation_levels
    ):
        errors.append(f"'incident.escalation_level' must be an integer from 1 to {escalation_levels}")
    if status is None and level is None and not errors:
        errors.append("Nothing to update: give 'incident.status' or 'incident.escalation_level'")
    if errors:
        raise _invalid_input(*errors)
    return update


# --- Application -----------------------------------------------------------------------


def create_app(
    state_file: Path | None = None,
    routing_keys: set[str] | None = None,
    api_token: str | None = None,
    escalation_levels: int = 3,
) -> Starlette:
    """The emulator as an ASGI app.

    routing_keys None accepts any 32-character key; api_token None accepts any token.
    """
    if escalation_levels < 1:
        raise ValueError("escalation_levels must be at least 1")
    known_keys = frozenset(routing_keys) if routing_keys is not None else None
    state = EmulatorState(state_file, escalation_levels)

    def incident_or_404(incident_id: str) -> dict[str, Any]:
        incident = state.find(incident_id)
        if incident is None:
            raise EmulatorError(_rest_error(404, "Not Found", 2100, [f"Incident {incident_id} not found"]))
        return incident

    async def enqueue(request: Request) -> Response:
        fault = state.take_fault()
        if fault is not None:
            return _fault_response(fault)
        event = await _read_json(request, MAX_EVENT_BYTES, _invalid_event, "The event")
        errors = validate_event(event, known_keys)
        if errors:
            raise _invalid_event(*errors)
        dedup_key = apply_event(state, event, _now())
        return JSONResponse(
            {"status": "success", "message": "Event processed", "dedup_key": dedup_key}, status_code=202
        )

    async def list_incidents(request: Request) -> Response:
        _check_token(request, api_token)
        limit = min(_query_int(request, "limit", DEFAULT_PAGE_SIZE, 1), MAX_PAGE_SIZE)
        offset = _query_int(request, "offset", 0, 0)
        if offset + limit > MAX_PAGINATION_WINDOW:
            raise _invalid_input(f"'offset' + 'limit' must not exceed {MAX_PAGINATION_WINDOW}")
        total_param = request.query_params.get("total", "false")
        if total_param not in ("true", "false"):
            raise _invalid_input("'total' must be true or false")
        statuses = _query_list(request, "statuses")
        unknown = [s for s in statuses if s not in STATUSES]
        if unknown:
            raise _invalid_input(f"'statuses[]' must be among {', '.join(STATUSES)}; got {', '.join(unknown)}")
        service_ids = _query_list(request, "service_ids")
        incident_key = request.query_params.get("incident_key")

        matching = [
            incident
            for incident in sorted(state.incidents.values(), key=lambda i: i["incident_number"])
            if (not statuses or incident["status"] in statuses)
            and (incident_key is None or incident["incident_key"] == incident_key)
            and (not service_ids or _service_ref(incident["routing_key"])["id"] in service_ids)
        ]
        page = matching[offset : offset + limit]
        base = _base_url(request)
        return JSONResponse(
            {
                "incidents": [render_incident(i, base, escalation_levels) for i in page],
                "limit": limit,
                "offset": offset,
                "more": offset + len(page) < len(matching),
                "total": len(matching) if total_param == "true" else None,
            }
        )

    async def get_incident(request: Request) -> Response:
        _check_token(request, api_token)
        incident = incident_or_404(request.path_params["incident_id"])
        return JSONResponse({"incident": render_incident(incident, _base_url(request), escalation_levels)})

    async def update_incident(request: Request) -> Response:
        _check_token(request, api_token)
        requester = _requester(request)
        incident = incident_or_404(request.path_params["incident_id"])
        update = _validate_update(await _json_body(request), escalation_levels)
        status: str | None = update.get("status")
        level: int | None = update.get("escalation_level")
        at = _now()
        by = _user_ref(requester)

        if incident["status"] == "resolved":
            if status != "resolved" or (level is not None and level != incident["escalation_level"]):
                raise EmulatorError(
                    _rest_error(
                        400,
                        "Incident Already Resolved",
                        1001,
                        [f"Incident {incident['id']} is resolved; it can no longer be acknowledged or escalated"],
                    )
                )
        else:
            # Repeating an update changes nothing, so a retried activity is harmless.
            changed = False
            if level is not None and level != incident["escalation_level"]:
                reason = "escalated" if level > incident["escalation_level"] else "reassigned"
                incident["escalation_level"] = level
                state.page(incident, level, reason, at)
                # Escalating hands the incident to new responders: an acknowledged one
                # becomes triggered again until one of them acknowledges it.
                if incident["status"] == "acknowledged":
                    state.set_status(incident, "triggered", by, at)
                changed = True
            if status is not None and status != incident["status"]:
                state.set_status(incident, status, by, at)
                changed = True
            if changed:
                incident["updated_at"] = _pd_time(at)
                state.save()
        return JSONResponse({"incident": render_incident(incident, _base_url(request), escalation_levels)})

    async def list_notes(request: Request) -> Response:
        _check_token(request, api_token)
        incident = incident_or_404(request.path_params["incident_id"])
        return JSONResponse({"notes": [render_note(note) for note in incident["notes"]]})

    async def create_note(request: Request) -> Response:
        _check_token(request, api_token)
        requester = _requester(request)
        incident = incident_or_404(request.path_params["incident_id"])
        body = await _json_body(request)
        note = body.get("note")
        if not isinstance(note, dict):
            raise _invalid_input("'note' is required and must be an object")
        content = note.get("content")
        if not isinstance(content, str) or not content.strip():
            raise _invalid_input("'note.content' is required and must be a non-empty string")
        if len(incident["notes"]) >= MAX_NOTES_PER_INCIDENT:
            raise _invalid_input(f"An incident can have at most {MAX_NOTES_PER_INCIDENT} notes")
        stored = {
            "id": _random_id({n["id"] for n in incident["notes"]}),
            "user_email": requester,
            "content": content,
            "created_at": _pd_time(_now()),
        }
        incident["notes"].append(stored)
        state.save()
        return JSONResponse({"note": render_note(stored)}, status_code=201)

    def window_or_404(window_id: str) -> dict[str, Any]:
        window = state.windows.get(window_id)
        if window is None:
            raise EmulatorError(_rest_error(404, "Not Found", 2100, [f"Maintenance window {window_id} not found"]))
        return window

    async def list_windows(request: Request) -> Response:
        _check_token(request, api_token)
        limit = min(_query_int(request, "limit", DEFAULT_PAGE_SIZE, 1), MAX_PAGE_SIZE)
        offset = _query_int(request, "offset", 0, 0)
        wanted = request.query_params.get("filter", "all") or "all"
        if wanted not in WINDOW_FILTERS:
            raise _invalid_input(f"'filter' must be one of {', '.join(WINDOW_FILTERS)}")
        service_ids = _query_list(request, "service_ids")
        text = request.query_params.get("query", "").lower()
        now = _now()
        matching = [
            window
            for window in sorted(state.windows.values(), key=lambda w: w["sequence_number"])
            if _window_matches(window, wanted, now)
            and (not service_ids or set(service_ids) & set(window["service_ids"]))
            and (not text or text in window["description"].lower())
        ]
        page = matching[offset : offset + limit]
        base = _base_url(request)
        return JSONResponse(
            {
                "maintenance_windows": [render_window(w, base) for w in page],
                "limit": limit,
                "offset": offset,
                "more": offset + len(page) < len(matching),
                "total": None,
            }
        )

    async def create_window(request: Request) -> Response:
        _check_token(request, api_token)
        requester = _requester(request)
        fields = _validate_window(await _json_body(request), None)
        window = {
            "id": _random_id(state.windows),
            "sequence_number": state.next_window_number,
            "start_time": _pd_time(fields["start_time"]),
            "end_time": _pd_time(fields["end_time"]),
            "description": fields["description"],
            "service_ids": fields["service_ids"],
            "created_by": requester,
        }
        state.next_window_number += 1
        state.windows[window["id"]] = window
        state.save()
        return JSONResponse({"maintenance_window": render_window(window, _base_url(request))}, status_code=201)

    async def get_window(request: Request) -> Response:
        _check_token(request, api_token)
        window = window_or_404(request.path_params["window_id"])
        return JSONResponse({"maintenance_window": render_window(window, _base_url(request))})

    async def update_window(request: Request) -> Response:
        _check_token(request, api_token)
        window = window_or_404(request.path_params["window_id"])
        if _window_phase(window, _now()) == "past":
            raise _invalid_input("A maintenance window that has ended cannot be updated")
        fields = _validate_window(await _json_body(request), window)
        for key in ("start_time", "end_time"):
            if key in fields:
                window[key] = _pd_time(fields[key])
        window["description"] = fields["description"]
        window["service_ids"] = fields.get("service_ids", window["service_ids"])
        state.save()
        return JSONResponse({"maintenance_window": render_window(window, _base_url(request))})

    async def delete_window(request: Request) -> Response:
        _check_token(request, api_token)
        window = window_or_404(request.path_params["window_id"])
        now = _now()
        phase = _window_phase(window, now)
        if phase == "past":
            raise EmulatorError(
                _rest_error(405, "Method Not Allowed", 2015, ["A maintenance window that has ended cannot be deleted"])
            )
        if phase == "future":
            del state.windows[window["id"]]
        else:
            window["end_time"] = _pd_time(now)
        state.ended_windows.append(window["id"])
        state.save()
        return Response(status_code=204)

    # Inspection, fault injection and the page behind html_url: not PagerDuty's API.

    async def inspect_state(request: Request) -> Response:
        base = _base_url(request)
        incidents = []
        for incident in sorted(state.incidents.values(), key=lambda i: i["incident_number"]):
            rendered = render_incident(incident, base, escalation_levels)
            rendered["notes"] = [render_note(note) for note in incident["notes"]]
            incidents.append(rendered)
        return JSONResponse(
            {
                "incidents": incidents,
                "events": state.events,
                "pages": state.pages,
                "maintenance_windows": [render_window(w, base) for w in state.windows.values()],
                "windows_ended": state.ended_windows,
                "faults": {"enqueue_status": state.fault_status, "remaining": state.fault_count},
            }
        )

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"status": "reset"})

    async def set_faults(request: Request) -> Response:
        body = await _json_body(request)
        status = body.get("enqueue_status")
        count = body.get("count", 1)
        errors: list[str] = []
        # type() rather than ==: 429.0 and true compare equal to numbers but are not statuses.
        if status is not None and (type(status) is not int or status not in FAULT_STATUSES):
            errors.append("'enqueue_status' must be null or one of " + ", ".join(map(str, FAULT_STATUSES)))
        if type(count) is not int or count < 1:
            errors.append("'count' must be a positive integer")
        if errors:
            raise _invalid_input(*errors)
        state.fault_status = status
        state.fault_count = count if status is not None else 0
        return JSONResponse({"enqueue_status": state.fault_status, "remaining": state.fault_count})

    async def incident_page(request: Request) -> Response:
        incident = state.find(request.path_params["incident_id"])
        if incident is None:
            return HTMLResponse("<h1>Incident not found</h1>", status_code=404)
        rendered = render_incident(incident, _base_url(request), escalation_levels)
        rows = "".join(
            f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(rendered[key]))}</td></tr>" for key in _PAGE_FIELDS
        )
        notes = "".join(
            "<li>" + html.escape(f"{note['created_at']} {note['user_email']}: {note['content']}") + "</li>"
            for note in incident["notes"]
        )
        return HTMLResponse(
            f"<!doctype html><title>{html.escape(rendered['summary'])}</title>"
            f"<h1>{html.escape(rendered['summary'])}</h1><table>{rows}</table><h2>Notes</h2><ul>{notes}</ul>"
        )

    async def emulator_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, EmulatorError)
        return exc.response

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 404:
            return _rest_error(404, "Not Found", 2100, [f"No such endpoint: {request.method} {request.url.path}"])
        if exc.status_code == 405:
            allowed = headers.get("Allow", "")
            return _rest_error(
                405, "Method Not Allowed", 2015, [f"{request.method} is not allowed here; use {allowed}"], **headers
            )
        return _rest_error(exc.status_code, str(exc.detail), 2000, [], **headers)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("PagerDuty emulator failed on %s %s", request.method, request.url.path)
        return _rest_error(500, "An internal error has occurred.", 2000)

    endpoints: dict[str, dict[str, Handler]] = {
        "/v2/enqueue": {"POST": enqueue},
        "/incidents": {"GET": list_incidents},
        "/incidents/{incident_id}": {"GET": get_incident, "PUT": update_incident},
        "/incidents/{incident_id}/notes": {"GET": list_notes, "POST": create_note},
        "/maintenance_windows": {"GET": list_windows, "POST": create_window},
        "/maintenance_windows/{window_id}": {"GET": get_window, "PUT": update_window, "DELETE": delete_window},
        "/_emulator/state": {"GET": inspect_state},
        "/_emulator/reset": {"POST": reset},
        "/_emulator/faults": {"POST": set_faults},
        "/_emulator/incidents/{incident_id}": {"GET": incident_page},
    }
    app = Starlette(
        routes=[Route(path, _dispatch(handlers), methods=ANY_METHOD) for path, handlers in endpoints.items()],
        exception_handlers={EmulatorError: emulator_error, HTTPException: http_error, Exception: server_error},
    )
    app.state.emulator = state
    return app


def _dispatch(handlers: dict[str, Handler]) -> Handler:
    """One route per path choosing the handler by method, so that a known path with the
    wrong method gets 405 with a complete Allow header, never 404."""
    allowed = sorted({*handlers, *(["HEAD"] if "GET" in handlers else [])})

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        handler = handlers.get(method)
        if handler is None:
            raise HTTPException(status_code=405, headers={"Allow": ", ".join(allowed)})
        return await handler(request)

    return endpoint


# --- TLS for the real client -----------------------------------------------------------


def ensure_self_signed_cert(directory: Path, hosts: Sequence[str] = ("127.0.0.1", "localhost")) -> tuple[Path, Path]:
    """(cert.pem, key.pem) in `directory`, made once: a self-signed certificate for `hosts`.

    The certificate is its own trust anchor: clients verify against cert.pem.
    """
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    # cryptography comes with moto[server] in the stack extra; only TLS needs it.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PagerDuty emulator")])
    alt_names: list[x509.GeneralName] = []
    for host in dict.fromkeys([*hosts, "127.0.0.1", "localhost"]):
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    now = _now()
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


# --- Command line ----------------------------------------------------------------------


def _env_routing_keys() -> set[str] | None:
    raw = os.environ.get("PAGERDUTY_ROUTING_KEY", "")
    keys = {key.strip() for key in raw.split(",") if key.strip()}
    return keys or None


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m devstack.pagerduty_emulator", description="PagerDuty emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--state-file", type=Path, default=None, help="keep incidents across restarts in this file")
    parser.add_argument(
        "--routing-key",
        action="append",
        default=None,
        help="accept only this routing key (repeatable); default: PAGERDUTY_ROUTING_KEY, else any 32-character key",
    )
    parser.add_argument(
        "--api-token", default=None, help="REST API token to require; default: PAGERDUTY_API_TOKEN, else any token"
    )
    parser.add_argument("--escalation-levels", type=int, default=3)
    parser.add_argument(
        "--tls-dir", type=Path, default=None, help="serve HTTPS with a self-signed cert.pem/key.pem kept here"
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    routing_keys = set(args.routing_key) if args.routing_key else _env_routing_keys()
    api_token = args.api_token if args.api_token is not None else (os.environ.get("PAGERDUTY_API_TOKEN") or None)
    app = create_app(args.state_file, routing_keys, api_token, args.escalation_levels)

    ssl_options: dict[str, Any] = {}
    scheme = "http"
    if args.tls_dir is not None:
        cert, key = ensure_self_signed_cert(args.tls_dir, (args.host,))
        ssl_options = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
        scheme = "https"
    log.info(
        "PagerDuty emulator listening on %s://%s:%d "
        "(state file: %s; TLS certificate: %s; routing keys: %s; API token: %s)",
        scheme,
        args.host,
        args.port,
        args.state_file or "none, in memory",
        ssl_options.get("ssl_certfile", "none"),
        f"{len(routing_keys)} configured" if routing_keys else "any",
        "configured" if api_token else "any",
    )
    # Clients keep TLS connections alive and may never answer the close; the handlers are
    # quick, so waiting longer than a moment for them only delays a restart.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        **ssl_options,
    )


if __name__ == "__main__":
    main()
