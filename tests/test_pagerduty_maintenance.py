"""PagerDuty maintenance windows: the emulator's endpoints driven by the real `pagerduty` REST
client over HTTPS, and the runbook's two activities against them (idempotent: a retry opens no
second window and ends nothing twice)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pagerduty
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import pagerduty as pd_activities
from contracts.maintenance import CloseWindow, OpenWindow
from devstack.pagerduty_emulator import create_app, service_id_of
from tests.test_pagerduty_emulator import (
    API_TOKEN,
    ROUTING_KEY,
    Emulator,
    Tls,
    error_text,
    serve,
    trigger,
)

SERVICE = service_id_of(ROUTING_KEY)  # the emulated service of the test integration


@pytest.fixture(scope="module")
def served(tls: Tls) -> Iterator[Emulator]:
    with serve(create_app(api_token=API_TOKEN), tls) as url:
        yield Emulator(url=url, tls=tls)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    import ssl

    from devstack.pagerduty_emulator import ensure_self_signed_cert

    cert, key = ensure_self_signed_cert(tmp_path_factory.mktemp("pd-maint-tls"))
    return Tls(cert=cert, key=key, context=ssl.create_default_context(cafile=str(cert)))


@pytest.fixture
def emulator(served: Emulator) -> Emulator:
    with served.http() as client:
        client.post("/_emulator/reset").raise_for_status()
    return served


def window_body(start: datetime, end: datetime, service: str = SERVICE, **extra: Any) -> dict[str, Any]:
    return {
        "maintenance_window": {
            "type": "maintenance_window",
            "start_time": start.isoformat(),
            "end_time": end.isoformat(),
            "description": "deploy revision 4",
            "services": [{"id": service, "type": "service_reference"}],
            **extra,
        }
    }


def test_a_window_is_created_listed_read_and_ended_in_pagerdutys_format(emulator: Emulator) -> None:
    rest = emulator.rest()
    now = datetime.now(UTC)
    created = rest.rpost("/maintenance_windows", json=window_body(now, now + timedelta(hours=1)))
    assert created["type"] == "maintenance_window" and created["id"].startswith("P")
    assert created["services"][0]["id"] == SERVICE and created["services"][0]["type"] == "service_reference"
    assert created["created_by"]["summary"] == "x@example.com" and created["sequence_number"] == 1
    assert created["self"].endswith(f"/maintenance_windows/{created['id']}")

    ongoing = rest.list_all("/maintenance_windows", params={"service_ids[]": [SERVICE], "filter": "ongoing"})
    assert [w["id"] for w in ongoing] == [created["id"]]
    assert rest.list_all("/maintenance_windows", params={"filter": "future"}) == []
    assert rest.list_all("/maintenance_windows", params={"service_ids[]": ["POTHER1"]}) == []
    assert rest.rget(f"/maintenance_windows/{created['id']}")["description"] == "deploy revision 4"

    later = (now + timedelta(hours=2)).isoformat()
    updated = rest.rput(
        f"/maintenance_windows/{created['id']}",
        json={"maintenance_window": {"type": "maintenance_window", "end_time": later}},
    )
    assert updated["end_time"] == datetime.fromisoformat(later).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert rest.delete(f"/maintenance_windows/{created['id']}").status_code == 204  # ends it now
    ended = rest.rget(f"/maintenance_windows/{created['id']}")
    assert datetime.fromisoformat(ended["end_time"].replace("Z", "+00:00")) <= datetime.now(UTC)
    assert [w["id"] for w in rest.list_all("/maintenance_windows", params={"filter": "past"})] == [created["id"]]
    again = rest.delete(f"/maintenance_windows/{created['id']}")
    assert again.status_code == 405 and "ended" in error_text(again)


def test_deleting_a_future_window_removes_it(emulator: Emulator) -> None:
    rest = emulator.rest()
    now = datetime.now(UTC)
    created = rest.rpost("/maintenance_windows", json=window_body(now + timedelta(hours=1), now + timedelta(hours=2)))
    assert rest.delete(f"/maintenance_windows/{created['id']}").status_code == 204
    assert rest.get(f"/maintenance_windows/{created['id']}").status_code == 404


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"end_time": "yesterday"}, "maintenance_window.end_time"),
        ({"services": []}, "maintenance_window.services"),
        ({"type": "incident"}, "maintenance_window.type"),
    ],
)
def test_invalid_windows_are_400_naming_the_field(emulator: Emulator, change: dict[str, Any], named: str) -> None:
    now = datetime.now(UTC)
    body = window_body(now, now + timedelta(hours=1))
    body["maintenance_window"].update(change)
    response = emulator.rest().post("/maintenance_windows", json=body)
    assert response.status_code == 400 and named in error_text(response)


def test_an_end_before_the_start_and_a_missing_from_are_refused(emulator: Emulator) -> None:
    now = datetime.now(UTC)
    backwards = emulator.rest().post("/maintenance_windows", json=window_body(now + timedelta(hours=1), now))
    assert backwards.status_code == 400 and "after its start_time" in error_text(backwards)
    anonymous = emulator.rest(default_from=None).post(
        "/maintenance_windows", json=window_body(now, now + timedelta(hours=1))
    )
    assert anonymous.status_code == 400 and "From" in error_text(anonymous)


def test_an_ongoing_window_suppresses_new_incidents_of_its_service_only(emulator: Emulator) -> None:
    rest = emulator.rest()
    now = datetime.now(UTC)
    window = rest.rpost("/maintenance_windows", json=window_body(now, now + timedelta(hours=1)))
    trigger(emulator.events(), "during-maintenance")
    assert rest.list_all("/incidents", params={"incident_key": "during-maintenance"}) == []
    effects = [e["effect"] for e in emulator.state()["events"]]
    assert effects == [f"suppressed: maintenance window {window['id']}"]
    other_key = "S" + "0123456789abcdef0123456789abcde"
    trigger(emulator.events(other_key), "another-service")  # another integration: another service
    assert len(rest.list_all("/incidents", params={"incident_key": "another-service"})) == 1
    rest.delete(f"/maintenance_windows/{window['id']}")
    trigger(emulator.events(), "after-maintenance")
    assert len(rest.list_all("/incidents", params={"incident_key": "after-maintenance"})) == 1


# --------------------------------------------------------------------------- the activities


@pytest.fixture
def pagerduty_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    for name, value in {
        "PAGERDUTY_API_URL": emulator.url,
        "PAGERDUTY_API_TOKEN": API_TOKEN,
        "PAGERDUTY_CA_BUNDLE": str(emulator.tls.cert),
        "PAGERDUTY_FROM": "runbooks@example.com",
        "PAGERDUTY_SERVICE_ID": SERVICE,
    }.items():
        monkeypatch.setenv(name, value)
    return emulator


def test_the_activities_open_one_window_and_end_it_once_however_often_retried(pagerduty_env: Emulator) -> None:
    now = datetime.now(UTC)
    key = f"maintenance/hybrid-router/{uuid.uuid4().hex[:8]}"
    request = OpenWindow(key=key, service_id=None, start=now, end=now + timedelta(hours=1), description="deploy 4")
    run = ActivityEnvironment().run
    first = run(pd_activities.open_maintenance_window, request)
    retried = run(pd_activities.open_maintenance_window, request)  # an activity retry
    assert first.created and not retried.created and retried.id == first.id and first.service_id == SERVICE
    other = run(pd_activities.open_maintenance_window, request.model_copy(update={"key": key + "-other"}))
    assert other.id != first.id  # another run's window is not taken for this one's

    closed = run(pd_activities.close_maintenance_window, CloseWindow(window_id=first.id))
    again = run(pd_activities.close_maintenance_window, CloseWindow(window_id=first.id))
    assert closed.closed and not again.closed
    state = pagerduty_env.state()
    assert state["windows_ended"] == [first.id]  # one DELETE, whatever the retries
    assert len([w for w in state["maintenance_windows"] if w["description"].endswith(f"ref: {key}")]) == 1


def test_no_pagerduty_service_is_a_configuration_error(
    pagerduty_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGERDUTY_SERVICE_ID", "")
    now = datetime.now(UTC)
    request = OpenWindow(key="k", service_id=None, start=now, end=now + timedelta(hours=1), description="d")
    with pytest.raises(ApplicationError) as refused:
        ActivityEnvironment().run(pd_activities.open_maintenance_window, request)
    assert refused.value.non_retryable and "PAGERDUTY_SERVICE_ID" in str(refused.value)


def test_the_real_client_raises_on_an_unknown_window(emulator: Emulator) -> None:
    with pytest.raises(pagerduty.Error):
        emulator.rest().rget("/maintenance_windows/PNOPE00")
