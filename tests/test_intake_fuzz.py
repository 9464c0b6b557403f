"""Property-based: whatever arrives at any endpoint, the intake never answers 5xx for it: the
webhook listener's endpoints, and the operator listener's (sign-in, API, the page's forms).

The hand-off is a stand-in that accepts everything, so any 5xx here is the intake's own
failure on bad input (the real hand-off is exercised in test_intake.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import Alert, PagerDutyEvent, Policy
from intake import sns
from intake.app import create_app
from intake.handoff import Rejected
from intake.operations import ApiError, Operations
from intake.sessions import COOKIE, Sessions, SigninConfig, hash_password
from intake.signin import create_operator_app
from tests import sns_signing
from tests.identity import SIGNIN
from tests.test_intake import PD_SECRET, TOKEN, alertmanager, config_for, eventbridge, intake_policy, pd_signature

POLICY = intake_policy("fuzz-svc")


class AcceptingHandoff:
    task_queue = "fuzz"

    def __init__(self) -> None:
        self.taken: list[Any] = []

    async def alert(self, alert: Alert, sender: str, policy: Policy | None = None) -> str:
        self.taken.append(alert)
        return f"incident/{alert.service}/{alert.region}"

    async def batch(
        self,
        workflow_id: str,
        alerts: list[Alert],
        opened_by: str,
        start: bool,
        runbook: str = "incident",
        run_id: str | None = None,
    ) -> tuple[bool, str | None]:
        self.taken.extend(alerts)
        return True, "run" if start else None

    async def pagerduty_event(self, workflow_id: str, event: PagerDutyEvent) -> bool:
        self.taken.append(event)
        return True

    async def ready(self) -> str | None:
        return None


async def _never_confirm(url: str) -> None:
    return None


APP = create_app(
    config_for(POLICY),
    AcceptingHandoff(),  # type: ignore[arg-type]  # a duck-typed Handoff: keep its methods' signatures in step
    sns_verifier=sns.SnsVerifier(
        [sns_signing.TOPIC_ARN],
        sns.CertificateStore(preloaded={sns_signing.identity().cert_url: sns_signing.identity().cert_pem}),
    ),
    confirm_subscription=_never_confirm,
)
ENDPOINTS = [
    "/v1/alerts/alertmanager",
    "/v1/alerts/eventbridge",
    "/v1/alerts",
    "/v1/alerts/sns",
    "/v1/webhooks/pagerduty",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def mutations(valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid payload with some fields replaced by anything or removed."""
    keys = st.sampled_from(sorted(valid))
    replace = st.tuples(keys, json_values).map(lambda kv: {**valid, kv[0]: kv[1]})
    drop = keys.map(lambda k: {key: value for key, value in valid.items() if key != k})
    return replace | drop


VALID = {
    "/v1/alerts/alertmanager": alertmanager("fuzz-svc"),
    "/v1/alerts/eventbridge": eventbridge("fuzz-svc-alarm"),
    "/v1/alerts": {"service": "fuzz-svc", "summary": "x"},
    "/v1/alerts/sns": sns_signing.sign(
        sns_signing.notification(
            message=sns_signing.cloudwatch_alarm_message("fuzz-svc-x", "ALARM", "HybridRouting", "ErrorRate")
        )
    ),
    "/v1/webhooks/pagerduty": {
        "event": {
            "id": "e",
            "event_type": "incident.resolved",
            "resource_type": "incident",
            "occurred_at": "2026-11-22T10:00:00Z",
            "data": {"id": "P1", "type": "incident", "incident_key": "incident/a/b"},
        }
    },
}


async def post(path: str, body: bytes, content_type: str) -> httpx.Response:
    headers = {
        "content-type": content_type,
        "authorization": f"Bearer {TOKEN}",
        "x-pagerduty-signature": pd_signature(body, PD_SECRET),
    }
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
        return await http.post(path, content=body, headers=headers)


def check(path: str, body: bytes, content_type: str = "application/json") -> None:
    response = asyncio.run(post(path, body, content_type))
    assert response.status_code < 500, (path, body[:200], response.text)
    if response.status_code >= 400:
        assert response.json()["error"]  # says what was wrong


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    path=st.sampled_from(ENDPOINTS),
    body=st.binary(max_size=300),
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/xml"]),
)
def test_random_bytes_never_5xx(path: str, body: bytes, content_type: str) -> None:
    check(path, body, content_type)


@FUZZ
@given(path=st.sampled_from(ENDPOINTS), value=json_values)
def test_random_json_never_5xx(path: str, value: Any) -> None:
    check(path, json.dumps(value).encode(), "text/plain" if path.endswith("sns") else "application/json")


@FUZZ
@given(data=st.data(), path=st.sampled_from(ENDPOINTS))
def test_near_valid_payloads_never_5xx(data: st.DataObject, path: str) -> None:
    body = data.draw(mutations(VALID[path]))
    check(path, json.dumps(body).encode(), "text/plain" if path.endswith("sns") else "application/json")


# --------------------------------------------------------------------------- the operator listener
# The sign-in service's JSON endpoints and the approval page's forms, signed in (a real session,
# its CSRF token) and not. Temporal is a stand-in that has no runs and refuses incidents, so an
# input that passes every check ends in a 4xx too; a 5xx is the listener's own failure.


class NoTemporalHandoff(AcceptingHandoff):
    async def alert(self, alert: Alert, sender: str, policy: Policy | None = None, **extra: Any) -> str:
        raise Rejected("fuzz: no Temporal here")


class NoRunsOperations(Operations):
    async def client(self) -> Any:
        raise ApiError(404, "fuzz: no runs here")


SESSIONS = Sessions()
TOKEN_ALICE, SESSION_ALICE = SESSIONS.open("alice")
OPERATOR_APP = create_operator_app(
    SigninConfig(operators={"alice": hash_password("alice-password", rounds=1000)}),
    NoRunsOperations(NoTemporalHandoff(), SIGNIN, POLICY),  # type: ignore[arg-type]  # duck-typed Handoff
    SESSIONS,
)
# The throttle would answer every sign-in 429 after the fifth failure: fuzz the parsing behind it.
OPERATOR_APP.state.auth.throttle.limit = 10**9
JSON_ENDPOINTS = [
    "/auth/login",
    "/auth/logout",
    "/api/v1/incidents",
    *(f"/api/v1/runs/{action}" for action in ("acknowledge", "approve", "reject", "comment", "cancel", "nothing")),
]
FORM_ENDPOINTS = [
    "/ui/login",
    "/ui/logout",
    "/ui/approve",
    "/ui/reject",
    "/ui/acknowledge",
    "/ui/comment",
    *(f"/ui/action/{verb}" for verb in ("add", "done", "drop")),  # a follow-up's action items
]
FORM_FIELDS = {"user": "alice", "password": "alice-password", "csrf": SESSION_ALICE.csrf, "id": "incident/x/y"}
FORM_FIELDS.update(plan_id="p1", comment="ok", reason="no", owner="bob", text="t", due="14d", item="A1", evidence="e")
FORM_FIELDS.update(note="n")
VALID_OPERATOR = {
    "/auth/login": {"user": "alice", "password": "alice-password"},
    "/api/v1/incidents": {"service": "fuzz-svc", "severity": "sev2", "summary": "x"},
    "/api/v1/runs/approve": {"workflow_id": "incident/x/y", "plan_id": "p1", "comment": "ok"},
    "/api/v1/runs/acknowledge": {"workflow_id": "incident/x/y", "note": "n", "run_id": "r"},
}


async def operator_post(path: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=OPERATOR_APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://operators") as http:
        return await http.post(path, content=content, headers=headers)


def check_operator(path: str, body: bytes, content_type: str, signed_in: bool) -> None:
    headers = {"content-type": content_type}
    if signed_in:
        headers.update(authorization=f"Bearer {TOKEN_ALICE}", cookie=f"{COOKIE}={TOKEN_ALICE}")
    response = asyncio.run(operator_post(path, body, headers))
    assert response.status_code < 500, (path, body[:200], response.text)
    assert response.headers["x-frame-options"] == "DENY"  # the guard answered, whatever happened
    if response.status_code >= 400 and path.startswith(("/auth", "/api")):
        assert response.json()["error"]  # says what was wrong


form_values = st.text(max_size=30) | st.sampled_from(sorted(set(FORM_FIELDS.values())))
forms = st.dictionaries(st.sampled_from([*FORM_FIELDS, "x", ""]), form_values, max_size=6)


@FUZZ
@given(
    path=st.sampled_from(JSON_ENDPOINTS + FORM_ENDPOINTS),
    body=st.binary(max_size=300),
    content_type=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b", "text/plain", ""]
    ),
    signed_in=st.booleans(),
)
def test_operator_listener_random_bytes_never_5xx(path: str, body: bytes, content_type: str, signed_in: bool) -> None:
    check_operator(path, body, content_type, signed_in)


@FUZZ
@given(data=st.data(), path=st.sampled_from(JSON_ENDPOINTS), signed_in=st.booleans())
def test_operator_listener_json_never_5xx(data: st.DataObject, path: str, signed_in: bool) -> None:
    valid = VALID_OPERATOR.get(path)
    value = data.draw(json_values if valid is None else (mutations(valid) | json_values))
    check_operator(path, json.dumps(value).encode(), "application/json", signed_in)


@FUZZ
@given(path=st.sampled_from(FORM_ENDPOINTS), form=forms, signed_in=st.booleans(), multipart=st.booleans())
def test_approval_page_forms_never_5xx(path: str, form: dict[str, str], signed_in: bool, multipart: bool) -> None:
    if multipart:
        request = httpx.Request("POST", "http://x", files={k: (None, v) for k, v in form.items()})
        body, content_type = request.read(), request.headers.get("content-type", "multipart/form-data; boundary=b")
    else:
        body, content_type = urlencode(form).encode(), "application/x-www-form-urlencoded"
    check_operator(path, body, content_type, signed_in)
