"""Property-based: whatever arrives at any endpoint, the intake never answers 5xx for it.

The hand-off is a stand-in that accepts everything, so any 5xx here is the intake's own
failure on bad input (the real hand-off is exercised in test_intake.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import Alert, PagerDutyEvent, Policy
from intake import sns
from intake.app import create_app
from tests import sns_signing
from tests.test_intake import PD_SECRET, TOKEN, alertmanager, config_for, eventbridge, intake_policy, pd_signature

POLICY = intake_policy("fuzz-svc")


class AcceptingHandoff:
    task_queue = "fuzz"

    def __init__(self) -> None:
        self.taken: list[Any] = []

    async def alert(self, alert: Alert, sender: str, policy: Policy | None = None) -> str:
        self.taken.append(alert)
        return f"incident/{alert.service}/{alert.region}"

    async def resolution(self, alert: Alert) -> str | None:
        self.taken.append(alert)
        return f"incident/{alert.service}/{alert.region}"

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
