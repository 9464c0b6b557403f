"""The PagerDuty emulator, driven by the real `pagerduty` clients over HTTPS.

The clients refuse plain-HTTP base URLs, so the emulator serves TLS with a self-signed
certificate and the clients verify against it. The fuzz tests go in-process instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pagerduty
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.testclient import TestClient

from devstack.net import free_port, wait_for_port
from devstack.pagerduty_emulator import EVENT_ACTIONS, SEVERITIES, create_app, ensure_self_signed_cert
from tests.conftest import serve_app

ROUTING_KEY = "R" + "0123456789abcdef0123456789abcde"  # 32 characters, like an integration key
API_TOKEN = "emulator-test-token"
FROM = "x@example.com"
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Tls:
    cert: Path
    key: Path
    context: ssl.SSLContext


@dataclass(frozen=True)
class Emulator:
    url: str
    tls: Tls

    def events(self, routing_key: str = ROUTING_KEY) -> pagerduty.EventsApiV2Client:
        return pagerduty.EventsApiV2Client(routing_key, base_url=self.url, verify=self.tls.context)

    def rest(self, token: str = API_TOKEN, default_from: str | None = FROM) -> pagerduty.RestApiV2Client:
        return pagerduty.RestApiV2Client(token, default_from=default_from, base_url=self.url, verify=self.tls.context)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.tls.context, timeout=10)

    def state(self) -> dict[str, Any]:
        with self.http() as client:
            response = client.get("/_emulator/state")
        response.raise_for_status()
        return response.json()


@contextlib.contextmanager
def serve(app: Starlette, tls: Tls) -> Iterator[str]:
    """Runs `app` under uvicorn with TLS in a background thread; yields its base URL."""
    with serve_app(
        app, lifespan="off", timeout_graceful_shutdown=1, ssl_certfile=str(tls.cert), ssl_keyfile=str(tls.key)
    ) as url:
        yield url


def timestamp() -> str:
    return datetime.now(UTC).isoformat()


def trigger(client: pagerduty.EventsApiV2Client, dedup_key: str | None, severity: str = "critical") -> str:
    return client.trigger(
        "Hybrid router unhealthy",
        "hybrid-router/eu-central-1",
        dedup_key=dedup_key,
        severity=severity,
        payload={"timestamp": timestamp()},
    )


def only_incident(rest: pagerduty.RestApiV2Client, dedup_key: str) -> dict[str, Any]:
    incidents = rest.list_all("/incidents", params={"incident_key": dedup_key})
    assert len(incidents) == 1, incidents
    return incidents[0]


def error_text(response: httpx.Response | Any) -> str:
    body = response.json()
    if "error" in body:
        return " ".join([body["error"]["message"], *body["error"]["errors"]])
    return " ".join([body["message"], *body["errors"]])


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    cert, key = ensure_self_signed_cert(tmp_path_factory.mktemp("pagerduty-tls"))
    return Tls(cert=cert, key=key, context=ssl.create_default_context(cafile=str(cert)))


@pytest.fixture(scope="module")
def served(tls: Tls) -> Iterator[Emulator]:
    with serve(create_app(api_token=API_TOKEN), tls) as url:
        yield Emulator(url=url, tls=tls)


@pytest.fixture
def emulator(served: Emulator) -> Emulator:
    with served.http() as client:
        client.post("/_emulator/reset").raise_for_status()
    return served


# --- Events API v2 ---------------------------------------------------------------------


def test_trigger_twice_with_one_dedup_key_is_one_incident_and_one_page(emulator: Emulator) -> None:
    events, rest = emulator.events(), emulator.rest()

    assert trigger(events, "incident/hybrid-router/eu-central-1") == "incident/hybrid-router/eu-central-1"
    assert trigger(events, "incident/hybrid-router/eu-central-1") == "incident/hybrid-router/eu-central-1"

    incident = only_incident(rest, "incident/hybrid-router/eu-central-1")
    assert incident["status"] == "triggered"
    assert incident["urgency"] == "high"
    assert incident["escalation_level"] == 1
    # PagerDuty folds repeated triggers into the one open alert; the emulator counts them.
    assert incident["alert_counts"] == {"all": 1, "triggered": 1, "resolved": 0}
    assert incident["trigger_count"] == 2
    state = emulator.state()
    assert [(p["incident_id"], p["level"], p["reason"]) for p in state["pages"]] == [(incident["id"], 1, "triggered")]
    assert [e["effect"] for e in state["events"]] == ["created incident", "merged into open incident"]
    assert all(e["received_at"].endswith("Z") for e in state["events"])


def test_incident_has_pagerduty_shape(emulator: Emulator) -> None:
    trigger(emulator.events(), "shape", severity="warning")
    rest = emulator.rest()
    listed = only_incident(rest, "shape")
    incident = rest.rget(f"/incidents/{listed['id']}")

    assert incident == listed
    assert len(incident["id"]) == 7 and incident["id"][0] == "P" and incident["id"].isupper()
    assert incident["type"] == "incident"
    assert incident["incident_number"] == 1
    assert incident["title"] == "Hybrid router unhealthy"
    assert incident["summary"] == "[#1] Hybrid router unhealthy"
    assert incident["incident_key"] == "shape"
    assert incident["urgency"] == "low"
    assert incident["self"] == f"{emulator.url}/incidents/{incident['id']}"
    assert incident["html_url"].startswith(emulator.url)
    assert incident["service"]["type"] == "service_reference"
    assert incident["escalation_policy"]["type"] == "escalation_policy_reference"
    assert incident["resolved_at"] is None
    for key in ("created_at", "updated_at", "last_status_change_at"):
        assert datetime.strptime(incident[key], "%Y-%m-%dT%H:%M:%SZ")
    # The real client can follow `self`, and the incident number works in place of the id.
    assert rest.rget(incident)["id"] == incident["id"]
    assert rest.rget("/incidents/1")["id"] == incident["id"]
    with emulator.http() as client:
        page = client.get(incident["html_url"])
    assert page.status_code == 200 and "Hybrid router unhealthy" in page.text


def test_acknowledge_and_resolve_events(emulator: Emulator) -> None:
    events, rest = emulator.events(), emulator.rest()
    trigger(events, "ack-resolve")
    incident_id = only_incident(rest, "ack-resolve")["id"]

    assert events.acknowledge("ack-resolve") == "ack-resolve"
    assert rest.rget(f"/incidents/{incident_id}")["status"] == "acknowledged"
    # A trigger while acknowledged joins the incident and pages nobody.
    trigger(events, "ack-resolve")
    assert events.resolve("ack-resolve") == "ack-resolve"
    incident = rest.rget(f"/incidents/{incident_id}")
    assert incident["status"] == "resolved"
    assert incident["resolved_at"] is not None
    assert incident["alert_counts"] == {"all": 1, "triggered": 0, "resolved": 1}

    # Follow-ups for a key without an open incident are accepted and dropped.
    events.acknowledge("ack-resolve")
    events.resolve("never-triggered")
    assert rest.rget(f"/incidents/{incident_id}")["status"] == "resolved"
    state = emulator.state()
    assert len(state["incidents"]) == 1
    assert len(state["pages"]) == 1
    assert [e["effect"] for e in state["events"]] == [
        "created incident",
        "acknowledged",
        "merged into open incident",
        "resolved",
        "dropped: no open incident",
        "dropped: no open incident",
    ]


def test_trigger_after_resolve_opens_a_second_incident(emulator: Emulator) -> None:
    events, rest = emulator.events(), emulator.rest()
    trigger(events, "reopen")
    events.resolve("reopen")
    trigger(events, "reopen")

    incidents = rest.list_all("/incidents", params={"incident_key": "reopen"})
    assert [(i["incident_number"], i["status"]) for i in incidents] == [(1, "resolved"), (2, "triggered")]
    assert [p["incident_id"] for p in emulator.state()["pages"]] == [i["id"] for i in incidents]


def test_trigger_without_dedup_key_gets_a_generated_one(emulator: Emulator) -> None:
    events, rest = emulator.events(), emulator.rest()
    first = trigger(events, None)
    second = trigger(events, None)

    assert first != second and len(first) == 32
    assert only_incident(rest, first)["incident_key"] == first
    assert len(emulator.state()["pages"]) == 2


def test_follow_ups_only_reach_incidents_of_the_same_routing_key(emulator: Emulator) -> None:
    trigger(emulator.events(), "shared-key")
    other = emulator.events("S" + ROUTING_KEY[1:])
    other.resolve("shared-key")
    assert only_incident(emulator.rest(), "shared-key")["status"] == "triggered"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"event_action": "trigger", "payload": {"source": "s", "severity": "critical"}},
            "payload.summary",
        ),
        (
            {"event_action": "trigger", "payload": {"summary": "s", "source": "s", "severity": "fatal"}},
            "payload.severity",
        ),
        ({"event_action": "trigger", "payload": {"summary": "s", "severity": "info"}}, "payload.source"),
        ({"event_action": "trigger"}, "payload"),
        ({"event_action": "explode", "dedup_key": "k"}, "event_action"),
        ({"dedup_key": "k"}, "event_action"),
        ({"event_action": "acknowledge"}, "dedup_key"),
        ({"event_action": "resolve", "dedup_key": ""}, "dedup_key"),
        ({"event_action": "resolve", "dedup_key": "k" * 256}, "dedup_key"),
        (
            {
                "event_action": "trigger",
                "payload": {"summary": "s", "source": "s", "severity": "info", "timestamp": "yesterday"},
            },
            "payload.timestamp",
        ),
        (
            {"event_action": "trigger", "payload": {"summary": "x" * 1025, "source": "s", "severity": "info"}},
            "payload.summary",
        ),
        ({"routing_key": "too-short", "event_action": "resolve", "dedup_key": "k"}, "routing_key"),
        ({"routing_key": None, "event_action": "resolve", "dedup_key": "k"}, "routing_key"),
    ],
)
def test_invalid_events_are_400_naming_the_field(emulator: Emulator, body: dict[str, Any], field: str) -> None:
    event = {"routing_key": ROUTING_KEY, **body}
    if event["routing_key"] is None:
        del event["routing_key"]
    with emulator.http() as client:
        response = client.post("/v2/enqueue", json=event)

    assert response.status_code == 400
    assert response.json()["status"] == "invalid event"
    assert response.json()["message"] == "Event object is invalid"
    assert f"'{field}'" in error_text(response)
    state = emulator.state()
    assert state["incidents"] == [] and state["events"] == [] and state["pages"] == []


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b"[1, 2]",
        b'"trigger"',
        b'{"event_action": NaN}',
        b"\xff\xfe\xfa",
        b"[" * 5000,
        b"[" * 100 + b"]" * 100,
        b'{"routing_key": "\\ud800"}',
        b'{"dedup_key": 1' + b"0" * 5000 + b"}",
    ],
)
def test_malformed_event_bodies_are_400(emulator: Emulator, raw: bytes) -> None:
    with emulator.http() as client:
        response = client.post("/v2/enqueue", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["status"] == "invalid event"
    assert emulator.state()["events"] == []


def test_real_client_sees_an_invalid_event_as_an_http_error(emulator: Emulator) -> None:
    with pytest.raises(pagerduty.HttpError) as raised:
        trigger(emulator.events(), "bad", severity="fatal")
    assert raised.value.response.status_code == 400
    assert "payload.severity" in raised.value.response.text
    assert emulator.state()["incidents"] == []


def test_unknown_routing_key_is_refused_when_keys_are_configured() -> None:
    app = create_app(routing_keys={ROUTING_KEY})
    event = {"event_action": "resolve", "dedup_key": "k"}
    with TestClient(app) as client:
        refused = client.post("/v2/enqueue", json={"routing_key": "X" * 32, **event})
        accepted = client.post("/v2/enqueue", json={"routing_key": ROUTING_KEY, **event})
    assert refused.status_code == 400 and "'routing_key'" in error_text(refused)
    assert accepted.status_code == 202


# --- REST API v2 -----------------------------------------------------------------------


def test_acknowledge_and_resolve_through_rest(emulator: Emulator) -> None:
    trigger(emulator.events(), "rest-status")
    rest = emulator.rest()
    incident_id = only_incident(rest, "rest-status")["id"]

    acknowledged = rest.rput(f"/incidents/{incident_id}", json={"type": "incident_reference", "status": "acknowledged"})
    assert acknowledged["status"] == "acknowledged"
    assert acknowledged["last_status_change_by"] == {
        "id": acknowledged["last_status_change_by"]["id"],
        "type": "user_reference",
        "summary": FROM,
    }
    # Repeating an update is harmless, as a retried activity needs it to be.
    assert rest.rput(f"/incidents/{incident_id}", json={"type": "incident", "status": "acknowledged"})["status"] == (
        "acknowledged"
    )
    resolved = rest.rput(f"/incidents/{incident_id}", json={"type": "incident_reference", "status": "resolved"})
    assert resolved["status"] == "resolved"
    assert rest.rput(f"/incidents/{incident_id}", json={"type": "incident", "status": "resolved"})["status"] == (
        "resolved"
    )

    response = rest.put(
        f"/incidents/{incident_id}", json={"incident": {"type": "incident_reference", "status": "acknowledged"}}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 1001
    assert len(emulator.state()["pages"]) == 1


def test_raising_the_escalation_level_pages_that_level(emulator: Emulator) -> None:
    events, rest = emulator.events(), emulator.rest()
    trigger(events, "escalate")
    incident_id = only_incident(rest, "escalate")["id"]

    escalated = rest.rput(f"/incidents/{incident_id}", json={"type": "incident_reference", "escalation_level": 2})
    assert escalated["escalation_level"] == 2
    assert rest.rget(f"/incidents/{incident_id}")["escalation_level"] == 2
    # The same level again pages nobody.
    rest.rput(f"/incidents/{incident_id}", json={"type": "incident_reference", "escalation_level": 2})
    # Escalating an acknowledged incident hands it on: it is triggered again.
    events.acknowledge("escalate")
    escalated = rest.rput(f"/incidents/{incident_id}", json={"type": "incident_reference", "escalation_level": 3})
    assert (escalated["escalation_level"], escalated["status"]) == (3, "triggered")

    # Handing it back down pages that level too.
    assert (
        rest.rput(f"/incidents/{incident_id}", json={"type": "incident", "escalation_level": 1})["escalation_level"]
        == 1
    )

    pages = emulator.state()["pages"]
    assert [(p["incident_id"], p["level"], p["reason"]) for p in pages] == [
        (incident_id, 1, "triggered"),
        (incident_id, 2, "escalated"),
        (incident_id, 3, "escalated"),
        (incident_id, 1, "reassigned"),
    ]


@pytest.mark.parametrize("level", [0, 4, -1, "2", 2.5, True, None, [2]])
def test_escalation_level_out_of_range_is_400(emulator: Emulator, level: Any) -> None:
    trigger(emulator.events(), "bad-level")
    rest = emulator.rest()
    incident_id = only_incident(rest, "bad-level")["id"]

    response = rest.put(
        f"/incidents/{incident_id}", json={"incident": {"type": "incident_reference", "escalation_level": level}}
    )
    assert response.status_code == 400
    assert "escalation_level" in error_text(response)
    assert rest.rget(f"/incidents/{incident_id}")["escalation_level"] == 1
    assert len(emulator.state()["pages"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "incident"),
        ({"incident": "acknowledged"}, "incident"),
        ({"incident": {"status": "acknowledged"}}, "incident.type"),
        ({"incident": {"type": "incident", "status": "triggered"}}, "incident.status"),
        ({"incident": {"type": "incident"}}, "incident.status"),
    ],
)
def test_invalid_incident_updates_are_400(emulator: Emulator, body: dict[str, Any], field: str) -> None:
    trigger(emulator.events(), "bad-update")
    rest = emulator.rest()
    incident_id = only_incident(rest, "bad-update")["id"]
    response = rest.put(f"/incidents/{incident_id}", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 2001
    assert f"'{field}'" in error_text(response)


def test_writes_without_from_are_400_naming_from(emulator: Emulator) -> None:
    trigger(emulator.events(), "no-from")
    rest = emulator.rest(default_from=None)
    incident_id = only_incident(rest, "no-from")["id"]  # reads need no From

    update = rest.put(f"/incidents/{incident_id}", json={"incident": {"type": "incident", "status": "resolved"}})
    note = rest.post(f"/incidents/{incident_id}/notes", json={"note": {"content": "hello"}})
    not_an_address = rest.post(
        f"/incidents/{incident_id}/notes", json={"note": {"content": "hello"}}, headers={"From": "nobody"}
    )

    for response in (update, note, not_an_address):
        assert response.status_code == 400
        assert "From" in error_text(response)
    assert rest.rget(f"/incidents/{incident_id}")["status"] == "triggered"
    assert rest.rget(f"/incidents/{incident_id}/notes") == []


def test_wrong_or_missing_token_is_401(emulator: Emulator) -> None:
    trigger(emulator.events(), "auth")
    with pytest.raises(pagerduty.HttpError) as raised:
        emulator.rest(token="not-the-token").list_all("/incidents")
    assert raised.value.response.status_code == 401
    assert raised.value.response.json()["error"]["code"] == 2006

    with emulator.http() as client:
        for headers in ({}, {"Authorization": f"Bearer {API_TOKEN}"}, {"Authorization": "Token token="}):
            response = client.get("/incidents", headers=headers)
            assert response.status_code == 401
            assert "Authorization" in error_text(response)


def test_notes(emulator: Emulator) -> None:
    trigger(emulator.events(), "notes")
    rest = emulator.rest()
    incident_id = only_incident(rest, "notes")["id"]

    note = rest.rpost(f"/incidents/{incident_id}/notes", json={"note": {"content": "Rolled back to revision 41"}})
    assert note["content"] == "Rolled back to revision 41"
    assert note["user"]["type"] == "user_reference" and note["user"]["summary"] == FROM
    assert note["id"].startswith("P") and note["created_at"].endswith("Z")
    raw = rest.post(f"/incidents/{incident_id}/notes", json={"note": {"content": "second"}})
    assert raw.status_code == 201

    assert [n["content"] for n in rest.rget(f"/incidents/{incident_id}/notes")] == [
        "Rolled back to revision 41",
        "second",
    ]
    [state_incident] = emulator.state()["incidents"]
    assert [n["content"] for n in state_incident["notes"]] == ["Rolled back to revision 41", "second"]

    for body, field in (({"note": {"content": "  "}}, "note.content"), ({"content": "x"}, "note")):
        response = rest.post(f"/incidents/{incident_id}/notes", json=body)
        assert response.status_code == 400 and f"'{field}'" in error_text(response)


def test_unknown_incident_is_404(emulator: Emulator) -> None:
    rest = emulator.rest()
    for response in (
        rest.get("/incidents/PNOSUCH"),
        rest.put("/incidents/PNOSUCH", json={"incident": {"type": "incident", "status": "resolved"}}),
        rest.get("/incidents/PNOSUCH/notes"),
        rest.post("/incidents/PNOSUCH/notes", json={"note": {"content": "x"}}),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == 2100
        assert "PNOSUCH" in error_text(response)
    with pytest.raises(pagerduty.HttpError):
        rest.rget("/incidents/PNOSUCH")


def test_listing_paginates_and_filters(emulator: Emulator) -> None:
    events, rest = emulator.events(), emulator.rest()
    for n in range(5):
        trigger(events, f"page-{n}")
    events.resolve("page-3")

    first = rest.get("/incidents", params={"limit": 2, "total": "true"}).json()
    assert (first["limit"], first["offset"], first["more"], first["total"]) == (2, 0, True, 5)
    assert [i["incident_key"] for i in first["incidents"]] == ["page-0", "page-1"]
    last = rest.get("/incidents", params={"limit": 2, "offset": 4}).json()
    assert (last["more"], last["total"], [i["incident_key"] for i in last["incidents"]]) == (False, None, ["page-4"])
    assert rest.get("/incidents").json()["limit"] == 25
    assert rest.get("/incidents", params={"limit": 500}).json()["limit"] == 100

    assert [i["incident_key"] for i in rest.list_all("/incidents", page_size=2)] == [f"page-{n}" for n in range(5)]
    assert [i["incident_key"] for i in rest.list_all("/incidents", params={"statuses": ["resolved"]})] == ["page-3"]
    open_ones = rest.list_all("/incidents", params={"statuses": ["triggered", "acknowledged"]})
    assert len(open_ones) == 4

    for params, field in (
        ({"limit": "many"}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 9990, "limit": 20}, "offset"),
        ({"total": "maybe"}, "total"),
        ({"statuses[]": "sleeping"}, "statuses[]"),
    ):
        response = rest.get("/incidents", params=params)
        assert response.status_code == 400 and f"'{field}'" in error_text(response), params


def test_unknown_routes_are_404_and_wrong_methods_405(emulator: Emulator) -> None:
    with emulator.http() as client:
        missing = client.get("/nothing/here")
        wrong_method = client.delete("/incidents/P123456", headers={"Authorization": f"Token token={API_TOKEN}"})
        get_enqueue = client.get("/v2/enqueue")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 2100
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "GET, HEAD, PUT"
    assert get_enqueue.status_code == 405 and "error" in get_enqueue.json()


# --- Fault injection -------------------------------------------------------------------


def test_injected_429_reaches_the_client_and_then_clears(emulator: Emulator) -> None:
    with emulator.http() as client:
        response = client.post("/_emulator/faults", json={"enqueue_status": 429, "count": 2})
    assert response.json() == {"enqueue_status": 429, "remaining": 2}
    events = emulator.events()
    # The client retries 429 forever by default; bound it as an activity must.
    events.retry[429] = 1
    events.max_http_attempts = 2
    events.sleep_timer = 0.01

    with pytest.raises(pagerduty.HttpError) as raised:
        trigger(events, "throttled")
    assert raised.value.response.status_code == 429
    assert emulator.state()["incidents"] == []

    trigger(events, "throttled")
    assert len(emulator.state()["incidents"]) == 1


def test_injected_500_is_retried_by_the_client(emulator: Emulator) -> None:
    with emulator.http() as client:
        client.post("/_emulator/faults", json={"enqueue_status": 500, "count": 1}).raise_for_status()
    events = emulator.events()
    events.sleep_timer = 0.01  # the client retries 500 twice on its own

    trigger(events, "flaky")
    state = emulator.state()
    assert len(state["incidents"]) == 1 and state["faults"] == {"enqueue_status": None, "remaining": 0}


def test_fault_settings_are_validated(emulator: Emulator) -> None:
    with emulator.http() as client:
        for body, field in (
            ({"enqueue_status": 418}, "enqueue_status"),
            ({"enqueue_status": 429.0}, "enqueue_status"),
            ({"enqueue_status": True}, "enqueue_status"),
            ({"enqueue_status": 429, "count": 0}, "count"),
            ({"enqueue_status": 429, "count": "3"}, "count"),
        ):
            response = client.post("/_emulator/faults", json=body)
            assert response.status_code == 400 and f"'{field}'" in error_text(response)
        client.post("/_emulator/faults", json={"enqueue_status": 503, "count": 5}).raise_for_status()
        cleared = client.post("/_emulator/faults", json={"enqueue_status": None})
    assert cleared.json() == {"enqueue_status": None, "remaining": 0}
    trigger(emulator.events(), "no-fault")


# --- Persistence and the command line --------------------------------------------------


def test_state_file_survives_a_restart(tls: Tls, tmp_path: Path) -> None:
    state_file = tmp_path / "pagerduty" / "state.json"
    with serve(create_app(state_file=state_file), tls) as url:
        first = Emulator(url=url, tls=tls)
        trigger(first.events(), "durable")
        rest = first.rest()
        incident_id = only_incident(rest, "durable")["id"]
        rest.rpost(f"/incidents/{incident_id}/notes", json={"note": {"content": "kept"}})
        rest.rput(f"/incidents/{incident_id}", json={"type": "incident_reference", "escalation_level": 2})
    assert json.loads(state_file.read_text())["incidents"][0]["id"] == incident_id
    assert sorted(p.name for p in state_file.parent.iterdir()) == ["state.json"]  # no temp files left

    with serve(create_app(state_file=state_file), tls) as url:
        second = Emulator(url=url, tls=tls)
        rest = second.rest()
        incident = rest.rget(f"/incidents/{incident_id}")
        assert (incident["status"], incident["escalation_level"]) == ("triggered", 2)
        assert incident["self"].startswith(url)
        assert [n["content"] for n in rest.rget(f"/incidents/{incident_id}/notes")] == ["kept"]
        # Still open after the restart: the trigger joins it; a new key gets the next number.
        trigger(second.events(), "durable")
        trigger(second.events(), "fresh")
        assert only_incident(rest, "durable")["trigger_count"] == 2
        assert only_incident(rest, "fresh")["incident_number"] == 2
        state = second.state()
        assert len(state["events"]) == 3 and len(state["pages"]) == 3


def test_unreadable_state_file_stops_the_emulator(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    state_file.write_text("{ truncated")
    with pytest.raises(ValueError, match="state.json"):
        create_app(state_file=state_file)


def test_command_line_serves_https_with_env_credentials(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, PAGERDUTY_ROUTING_KEY=ROUTING_KEY, PAGERDUTY_API_TOKEN=API_TOKEN)
    command = [
        sys.executable,
        "-m",
        "devstack.pagerduty_emulator",
        "--port",
        str(port),
        "--state-file",
        str(tmp_path / "state.json"),
        "--tls-dir",
        str(tmp_path / "tls"),
    ]
    proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        cert = tmp_path / "tls" / "cert.pem"
        tls = Tls(cert=cert, key=tmp_path / "tls" / "key.pem", context=ssl.create_default_context(cafile=str(cert)))
        emulator = Emulator(url=f"https://127.0.0.1:{port}", tls=tls)
        trigger(emulator.events(), "cli")
        with pytest.raises(pagerduty.HttpError):
            trigger(emulator.events("Z" * 32), "cli")  # only the configured key is accepted
        with pytest.raises(pagerduty.HttpError):
            emulator.rest(token="wrong").rget("/incidents/1")
        assert emulator.rest().rget("/incidents/1")["incident_key"] == "cli"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    assert f"listening on https://127.0.0.1:{port}" in stderr
    assert (tmp_path / "state.json").exists()


# --- Fuzzing: bad input is a 4xx, never a 5xx ------------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=15,
)
MISSING = object()


def field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a well-formed value, so that the fuzz gets past the first check; else junk or absent."""
    return st.sampled_from(range(10)).flatmap(lambda n: valid if n < 8 else json_values if n == 8 else st.just(MISSING))


def record(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(fields).map(lambda d: {k: v for k, v in d.items() if v is not MISSING})


payloads = record(
    summary=field(st.text(min_size=1, max_size=40)),
    source=field(st.text(min_size=1, max_size=20)),
    severity=field(st.sampled_from(SEVERITIES)),
    timestamp=field(st.sampled_from(["2024-05-01T10:00:00Z", "2015-07-17T08:42:58.315+0000"])),
    custom_details=field(st.dictionaries(st.text(max_size=8), json_values, max_size=3)),
    component=field(st.text(max_size=10)),
    links=field(st.lists(record(href=field(st.just("https://example.com")), text=field(st.text())), max_size=2)),
)
events_strategy = record(
    routing_key=field(st.sampled_from([ROUTING_KEY, "x" * 32])),
    event_action=field(st.sampled_from(EVENT_ACTIONS)),
    dedup_key=field(st.sampled_from(["fuzz-1", "fuzz-2"])),
    payload=field(payloads),
    client=field(st.text(max_size=10)),
)
updates = record(
    incident=field(
        record(
            type=field(st.sampled_from(["incident", "incident_reference"])),
            status=field(st.sampled_from(["acknowledged", "resolved", "triggered"])),
            escalation_level=field(st.integers(min_value=-1, max_value=5)),
        )
    )
)
notes = record(note=field(record(content=field(st.text(max_size=40)))))


def bodies(structured: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    junk = st.one_of(json_values.map(lambda value: json.dumps(value).encode()), st.binary(max_size=64))
    structured_json = structured.map(lambda value: json.dumps(value).encode())
    return st.sampled_from(range(10)).flatmap(lambda n: structured_json if n < 8 else junk)


headers_strategy = record(
    **{
        "Content-Type": st.just("application/json"),
        "Authorization": field(st.just("Token token=fuzz")).map(
            lambda v: v if v is MISSING or v == "Token token=fuzz" else "Token token="
        ),
        "From": field(st.just(FROM)).map(lambda v: v if v is MISSING or v == FROM else "nobody"),
    }
)
incident_ids = st.sampled_from(["{known}"] * 6 + ["1", "PNOSUCH", "99999999999999999999", "²", "P 1", "%00"])


@pytest.fixture(scope="module")
def fuzz_client() -> Iterator[TestClient]:
    with TestClient(create_app()) as client:
        yield client


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def incident_path(client: TestClient, template: str) -> str:
    """`{known}` becomes a new open incident, so that updates reach past the lookup."""
    if template != "{known}":
        return urllib.parse.quote(template, safe="")
    client.post(
        "/v2/enqueue",
        json={
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "payload": {"summary": "fuzz", "source": "fuzz", "severity": "info"},
        },
    ).raise_for_status()
    listing = client.get(
        "/incidents", params={"limit": 1, "statuses[]": "triggered"}, headers={"Authorization": "Token token=fuzz"}
    )
    return listing.json()["incidents"][0]["id"]


@FUZZ
@given(body=bodies(events_strategy))
def test_fuzz_enqueue_never_5xx(fuzz_client: TestClient, body: bytes) -> None:
    response = fuzz_client.post("/v2/enqueue", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code in (202, 400), response.text
    assert "errors" in response.json() or response.json()["status"] == "success"


@FUZZ
@given(body=bodies(updates), headers=headers_strategy, incident_id=incident_ids)
def test_fuzz_incident_update_never_5xx(
    fuzz_client: TestClient, body: bytes, headers: dict[str, str], incident_id: str
) -> None:
    path = f"/incidents/{incident_path(fuzz_client, incident_id)}"
    response = fuzz_client.put(path, content=body, headers=headers)
    assert response.status_code < 500, response.text
    assert ("incident" if response.status_code == 200 else "error") in response.json()


@FUZZ
@given(body=bodies(notes), headers=headers_strategy, incident_id=incident_ids)
def test_fuzz_note_creation_never_5xx(
    fuzz_client: TestClient, body: bytes, headers: dict[str, str], incident_id: str
) -> None:
    path = f"/incidents/{incident_path(fuzz_client, incident_id)}/notes"
    response = fuzz_client.post(path, content=body, headers=headers)
    assert response.status_code < 500, response.text
    assert ("note" if response.status_code == 201 else "error") in response.json()


@FUZZ
@given(
    params=st.lists(
        st.tuples(
            st.sampled_from(["limit", "offset", "total", "statuses[]", "statuses", "incident_key", "service_ids[]"]),
            st.text(max_size=12),
        ),
        max_size=5,
    ),
    body=bodies(st.fixed_dictionaries({"enqueue_status": json_values, "count": json_values})),
)
def test_fuzz_listing_and_emulator_endpoints_never_5xx(
    fuzz_client: TestClient, params: list[tuple[str, str]], body: bytes
) -> None:
    client = fuzz_client
    listing = client.get("/incidents", params=tuple(params), headers={"Authorization": "Token token=fuzz"})
    assert listing.status_code in (200, 400), listing.text
    faults = client.post("/_emulator/faults", content=body)
    assert faults.status_code in (200, 400), faults.text
    # Leave no fault armed for the other fuzz tests.
    client.post("/_emulator/faults", json={"enqueue_status": None}).raise_for_status()
