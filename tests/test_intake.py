"""The alert intake over HTTP into incident workflows on the dev server.

Each sender's documented payload shapes, firing and resolved; signatures; sender retries;
bad input that never starts anything; a storm; Temporal going away and coming back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts import IncidentView, Policy, Route, RouteMatch, Severity
from devstack.stack import Stack, StackConfig
from intake import sns
from intake.app import IntakeConfig, create_app
from intake.handoff import Handoff
from tests import sns_signing
from tests.conftest import serve_app
from tests.fakes import eventually
from tests.identity import INTAKE, signing_client
from tests.policies import default_policy
from tests.test_incident_workflow import HISTORIES, FakePlatform
from workflows.incident_response import IncidentResponseWorkflow

TOKEN = "intake-test-token"
PD_SECRET = "pd-webhook-secret"
REGION = "eu-central-1"
# A sender's tries of one delivery: a 503 (a hand-off past its limit) is tried again after its
# Retry-After, as real senders do; past these it counts as the answer.
ATTEMPTS = 6


def intake_policy(*services: str) -> Policy:
    """The default policy with `services` as targets and routes of the shipped kinds."""
    base = default_policy()
    target = base.services["hybrid-router"]
    first = services[0]
    routes = [
        Route(
            name="down",
            match=RouteMatch(labels={"alertname": "HybridRouterDown"}),
            service=first,
            severity=Severity.P0,
            kind="hybrid-router-down",
        ),
        Route(name="alarms", match=RouteMatch(alarm_name=f"^{first}-"), service=first),
        Route(name="metrics", match=RouteMatch(namespace="HybridRouting"), service=first),
        Route(name="by-service-label", match=RouteMatch()),
    ]
    # no scaling section: its limits name the default's services, which this policy drops
    replaced = {"services": {s: target for s in services}, "routes": routes, "scaling": None, "failover": None}
    return base.model_copy(update=replaced)


@dataclass
class Intake:
    url: str
    client: Client
    policy: Policy
    service: str
    confirmed: list[str]

    def workflow_id(self, service: str | None = None) -> str:
        return f"incident/{service or self.service}/{REGION}"

    async def post(self, path: str, body: Any, token: str | None = TOKEN, **headers: str | bytes) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"content-type": "application/json", **headers}
        if token is not None:
            sent["authorization"] = f"Bearer {token}"
        async with httpx.AsyncClient(timeout=30) as http:
            # a header may be raw bytes (a non-ASCII signature): httpx sends them as they are, but
            # its annotation takes all-str or all-bytes mappings only
            return await http.post(f"{self.url}{path}", content=content, headers=sent)  # type: ignore[arg-type]

    async def view(self, service: str | None = None) -> Any:
        handle = self.client.get_workflow_handle(self.workflow_id(service))
        return await handle.query(IncidentResponseWorkflow.view)

    async def until(self, check: Any, service: str | None = None) -> Any:
        # the timeline: classified, so summary and severity are set; not started yet is "not yet"
        return await eventually(
            lambda: self.view(service), lambda view: bool(view.timeline) and check(view), "never reached"
        )

    async def keep_history(self, name: str, service: str | None = None) -> None:
        """With RECORD_HISTORIES=1, the run's history becomes a replay fixture (kept if it exists)."""
        path = HISTORIES / f"{name}.json"
        if os.environ.get("RECORD_HISTORIES") and not path.exists():
            history = await self.client.get_workflow_handle(self.workflow_id(service)).fetch_history()
            path.write_text(history.to_json())

    async def exists(self, service: str | None = None) -> bool:
        query = f"WorkflowId = '{self.workflow_id(service)}'"
        return bool([w async for w in self.client.list_workflows(query)])


def config_for(policy: Policy, **overrides: Any) -> IntakeConfig:
    defaults = dict(
        alertmanager_token=TOKEN,
        eventbridge_token=TOKEN,
        generic_token=TOKEN,
        sns_topics=[sns_signing.TOPIC_ARN],
        pagerduty_secrets=[PD_SECRET],
    )
    return IntakeConfig(policy=policy, **(defaults | overrides))


def verifier() -> sns.SnsVerifier:
    identity = sns_signing.identity()
    store = sns.CertificateStore(preloaded={identity.cert_url: identity.cert_pem})
    return sns.SnsVerifier([sns_signing.TOPIC_ARN], store)


@pytest.fixture
async def intake(dev_env: WorkflowEnvironment) -> AsyncIterator[Intake]:
    async with running_intake(dev_env) as running:
        yield running


@contextlib.asynccontextmanager
async def running_intake(dev_env: WorkflowEnvironment) -> AsyncIterator[Intake]:
    """The intake over HTTP, a worker and a fresh target's policy, on the dev server."""
    service = f"hr-{uuid.uuid4().hex[:8]}"
    policy = intake_policy(service, f"{service}-b")
    fake = FakePlatform(policy)
    task_queue = f"intake-{uuid.uuid4()}"
    confirmed: list[str] = []

    async def confirm(url: str) -> None:
        confirmed.append(url)

    target = dev_env.client.service_client.config.target_host
    handoff = Handoff(lambda: Client.connect(target, data_converter=pydantic_data_converter), task_queue, INTAKE)
    app = create_app(config_for(policy), handoff, sns_verifier=verifier(), confirm_subscription=confirm)
    async with Worker(
        dev_env.client, task_queue=task_queue, workflows=[IncidentResponseWorkflow], activities=fake.activities()
    ):
        with serve_app(app) as url:
            yield Intake(url=url, client=dev_env.client, policy=policy, service=service, confirmed=confirmed)


# --------------------------------------------------------------------------- payloads


def alertmanager(service: str, status: str = "firing", fingerprints: tuple[str, ...] = ("a1", "b2")) -> dict:
    """Alertmanager's webhook payload, version 4, as its documentation gives it."""
    alerts = [
        {
            "status": status,
            "labels": {
                "alertname": "HybridRouterHighLatency",
                "service": service,
                "severity": "critical",
                "instance": f"10.0.0.{i}:9090",
            },
            "annotations": {"summary": "P95 latency above 2 s", "description": "hybrid router slow"},
            "startsAt": "2026-11-22T10:00:00.000Z",
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-22T10:20:00.000Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=...",
            "fingerprint": fingerprint,
        }
        for i, fingerprint in enumerate(fingerprints)
    ]
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HybridRouterHighLatency"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "runbooks",
        "groupLabels": {"alertname": "HybridRouterHighLatency"},
        "commonLabels": {"alertname": "HybridRouterHighLatency", "service": service},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }


def eventbridge(alarm: str, state: str = "ALARM", event_id: str | None = None) -> dict:
    """An EventBridge "CloudWatch Alarm State Change" event, as AWS documents it."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2026-11-22T10:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{alarm}"],
        "detail": {
            "alarmName": alarm,
            "state": {"value": state, "reason": "Threshold Crossed", "timestamp": "2026-11-22T10:00:00.000+0000"},
            "previousState": {"value": "OK", "reason": "", "timestamp": "2026-11-22T09:00:00.000+0000"},
            "configuration": {
                "description": "p95 latency",
                "metrics": [
                    {
                        "id": "m1",
                        "metricStat": {
                            "metric": {
                                "namespace": "HybridRouting",
                                "name": "LatencyP95",
                                "dimensions": {"Service": "x"},
                            },
                            "period": 60,
                            "stat": "Maximum",
                        },
                        "returnData": True,
                    }
                ],
            },
        },
    }


def aws_health(region: str = REGION, status: str = "open", service: str = "ECS", event_id: str | None = None) -> dict:
    """An EventBridge "AWS Health Event", as AWS documents it (delivered in us-east-1; the
    affected region is `detail.eventRegion`)."""
    code = f"AWS_{service}_OPERATIONAL_ISSUE"
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "AWS Health Event",
        "source": "aws.health",
        "account": "123456789012",
        "time": "2026-12-04T09:01:22Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventArn": f"arn:aws:health:{region}::event/{service}/{code}/{code}_7f35c8ae",
            "service": service,
            "eventTypeCode": code,
            "eventTypeCategory": "issue",
            "eventScopeCode": "PUBLIC",
            "communicationId": "01b0993207d81a09dcd552ebd1e633e36cf1f09a-1",
            "startTime": "Fri, 04 Dec 2026 08:02:51 GMT",
            "lastUpdatedTime": "Fri, 04 Dec 2026 09:01:22 GMT",
            "statusCode": status,
            "eventRegion": region,
            "eventDescription": [
                {
                    "language": "en_US",
                    "latestDescription": f"Current severity level: Degraded\n\n[Increased Error Rates] We are "
                    f"investigating increased error rates for {service} in the {region} Region.",
                }
            ],
            "affectedAccount": "123456789012",
            "page": "1",
            "totalPages": "1",
        },
    }


def pagerduty_webhook(
    incident_key: str, event_type: str = "incident.acknowledged", event_id: str = "ev-1", incident_id: str = "PFAKE01"
) -> dict:
    """A PagerDuty webhooks v3 delivery, as PagerDuty documents it."""
    return {
        "event": {
            "id": event_id,
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "agent": {"id": "PLH1HKV", "summary": "Tenex Engineer", "type": "user_reference"},
            "client": {"name": "PagerDuty"},
            "data": {
                "id": incident_id,
                "type": "incident",
                "number": 2,
                "status": "acknowledged",
                "incident_key": incident_key,
                "title": "hybrid router down",
                "urgency": "high",
            },
        }
    }


def odd_metrics(service: str) -> dict:
    """A valid alarm event whose optional configuration has an unexpected shape."""
    event = eventbridge(f"{service}-odd")
    event["detail"]["configuration"] = {"metrics": 5}
    event["detail"]["state"]["value"] = "INSUFFICIENT_DATA"
    return event


def pd_signature(body: bytes, *secrets: str) -> str:
    return ",".join(f"v1={hmac.new(s.encode(), body, hashlib.sha256).hexdigest()}" for s in secrets)


def retry_after(response: httpx.Response) -> float:
    """The seconds a 503's Retry-After asks a sender to wait (bounded: 1 s when it names none)."""
    try:
        return min(max(float(response.headers.get("retry-after", "1")), 0.1), 10.0)
    except ValueError:
        return 1.0


# --------------------------------------------------------------------------- senders


async def test_alertmanager_group_opens_one_incident_and_a_retry_changes_nothing(intake: Intake) -> None:
    first = await intake.post("/v1/alerts/alertmanager", alertmanager(intake.service))
    assert first.status_code == 202, first.text
    assert first.json()["accepted"] == 2 and first.json()["incidents"] == [intake.workflow_id()]
    view = await intake.until(lambda v: v.alert_count == 2 and v.severity is not None)
    assert view.severity == Severity.P0  # severity label "critical" through the policy's severity_labels

    retry = await intake.post("/v1/alerts/alertmanager", alertmanager(intake.service))
    assert retry.status_code == 202 and retry.json()["duplicates"] == 2

    resolved = await intake.post("/v1/alerts/alertmanager", alertmanager(intake.service, "resolved"))
    assert resolved.status_code == 202 and resolved.json()["accepted"] == 2
    view = await intake.until(lambda v: v.alert_count == 4)
    assert [e.event for e in view.timeline].count("alert resolved") == 2
    await intake.keep_history("batch_alertmanager_group_fired_and_cleared")  # opened by an `alert_batch`


async def test_eventbridge_alarm_and_its_ok(intake: Intake) -> None:
    alarm = f"{intake.service}-p95-latency"
    response = await intake.post("/v1/alerts/eventbridge", eventbridge(alarm))
    assert response.status_code == 202, response.text
    view = await intake.until(lambda v: v.alert_count == 1)
    assert view.summary.startswith(alarm)
    insufficient = await intake.post("/v1/alerts/eventbridge", eventbridge(alarm, "INSUFFICIENT_DATA"))
    assert insufficient.status_code == 202 and insufficient.json()["accepted"] == 0
    ok = await intake.post("/v1/alerts/eventbridge", eventbridge(alarm, "OK"))
    assert ok.status_code == 202
    view = await intake.until(lambda v: v.alert_count == 2)
    events = [e.event for e in view.timeline]
    # a lean incident still awaiting acknowledgement then records that its condition cleared (on_clear)
    assert events[-1] == "alert resolved" or events[-2:] == ["alert resolved", "condition cleared"], events


async def test_sns_cloudwatch_alarm_signed_v1_and_v2(intake: Intake) -> None:
    alarm = f"{intake.service}-errors"
    for version in ("1", "2"):
        message = sns_signing.sign(
            sns_signing.notification(
                message=sns_signing.cloudwatch_alarm_message(alarm, "ALARM", "HybridRouting", "ErrorRate"),
                subject=sns_signing.alarm_subject(alarm),
            ),
            version=version,
        )
        response = await intake.post("/v1/alerts/sns", message, token=None, **{"content-type": "text/plain"})
        assert response.status_code == 202, response.text
        again = await intake.post("/v1/alerts/sns", message, token=None, **{"content-type": "text/plain"})
        assert again.status_code == 202 and again.json()["duplicates"] == 1
    await intake.until(lambda v: v.alert_count == 2)


async def test_sns_subscription_is_confirmed_and_forgeries_are_refused(intake: Intake) -> None:
    confirmation = sns_signing.sign(sns_signing.subscription_confirmation())
    response = await intake.post("/v1/alerts/sns", confirmation, token=None, **{"content-type": "text/plain"})
    assert response.status_code == 200 and intake.confirmed == [confirmation["SubscribeURL"]]

    alarm = sns_signing.cloudwatch_alarm_message(f"{intake.service}-x", "ALARM", "HybridRouting", "ErrorRate")
    good = sns_signing.sign(sns_signing.notification(message=alarm))
    forged = {
        "tampered": {**good, "Message": alarm.replace("ALARM", "OK")},
        "wrong certificate host": sns_signing.sign(
            sns_signing.notification(message=alarm), cert_url="https://sns.evil.example.com/cert.pem"
        ),
        "unknown topic": sns_signing.sign(
            sns_signing.notification(topic_arn="arn:aws:sns:eu-central-1:999999999999:other", message=alarm)
        ),
        "unknown signature version": sns_signing.sign(sns_signing.notification(message=alarm), version="3"),
    }
    for name, message in forged.items():
        refused = await intake.post("/v1/alerts/sns", message, token=None, **{"content-type": "text/plain"})
        assert 400 <= refused.status_code < 500, (name, refused.text)
    assert not await intake.exists(f"{intake.service}-x")


async def test_pagerduty_acknowledgement_reaches_the_incident(intake: Intake) -> None:
    opened = await intake.post("/v1/alerts", {"service": intake.service, "summary": "down", "severity": "P0"})
    assert opened.status_code == 202, opened.text
    view = await intake.until(lambda v: v.status.value == "awaiting_ack")
    assert view.pagerduty.dedup_key == f"{intake.workflow_id()}#{view.id}"  # one PagerDuty incident per incident

    late = json.dumps(pagerduty_webhook(intake.workflow_id(), "incident.resolved", "ev-0", "POLD999")).encode()
    response = await intake.post(
        "/v1/webhooks/pagerduty", late, token=None, **{"x-pagerduty-signature": pd_signature(late, PD_SECRET)}
    )
    assert response.status_code == 202  # about an earlier PagerDuty incident of the target: the runbook ignores it

    body = json.dumps(pagerduty_webhook(view.pagerduty.dedup_key)).encode()
    unsigned = await intake.post("/v1/webhooks/pagerduty", body, token=None)
    tampered = await intake.post(
        "/v1/webhooks/pagerduty",
        body.replace(b"Tenex", b"Mallory"),
        token=None,
        **{"x-pagerduty-signature": pd_signature(body, PD_SECRET)},
    )
    assert (unsigned.status_code, tampered.status_code) == (401, 403)

    rotated = pd_signature(body, "old-secret", PD_SECRET)  # two signatures while PagerDuty rotates
    response = await intake.post("/v1/webhooks/pagerduty", body, token=None, **{"x-pagerduty-signature": rotated})
    assert response.status_code == 202 and response.json()["signalled"] == intake.workflow_id()
    view = await intake.until(lambda v: v.acknowledged_by is not None)
    assert view.acknowledged_by == "Tenex Engineer (PagerDuty)" and view.status.value != "resolved"

    again = await intake.post("/v1/webhooks/pagerduty", body, token=None, **{"x-pagerduty-signature": rotated})
    assert again.status_code == 200 and again.json() == {"duplicate": "ev-1"}
    foreign = json.dumps(pagerduty_webhook("d3640fbd41094207a1c11e58e46b1662", event_id="ev-2")).encode()
    ignored = await intake.post(
        "/v1/webhooks/pagerduty", foreign, token=None, **{"x-pagerduty-signature": pd_signature(foreign, PD_SECRET)}
    )
    assert ignored.status_code == 202 and "ignored" in ignored.json()
    await intake.client.get_workflow_handle(intake.workflow_id()).terminate("test done")


async def test_a_resolved_alert_before_approval_means_no_remediation(intake: Intake) -> None:
    fire = {"id": "g-1", "service": intake.service, "summary": "down", "severity": "P0"}
    assert (await intake.post("/v1/alerts", fire)).status_code == 202
    await intake.until(lambda v: v.status.value == "awaiting_ack")
    handle = signing_client(intake.client).get_workflow_handle(intake.workflow_id())  # as the sign-in service signs
    from contracts import Acknowledge

    await handle.execute_update(IncidentResponseWorkflow.acknowledge, Acknowledge(by="alice"))
    await intake.until(lambda v: v.pending_approval is not None)
    clear = {"id": "g-2", "service": intake.service, "summary": "recovered", "status": "resolved"}
    assert (await intake.post("/v1/alerts", clear)).status_code == 202
    view = await intake.until(lambda v: any(e.event == "proposal withdrawn" for e in v.timeline))
    assert view.remediation is None and view.pending_approval is None
    assert view.status.value == "verifying"  # checks whether the service recovered; acts on nothing
    await handle.terminate("test done")


async def test_a_resolved_alert_never_opens_an_incident(intake: Intake) -> None:
    response = await intake.post("/v1/alerts/alertmanager", alertmanager(intake.service, "resolved"))
    assert response.status_code == 202, response.text
    assert response.json()["resolved_without_open_incident"] == 2 and response.json()["incidents"] == []
    assert not await intake.exists()


async def test_the_condition_clears_only_when_every_alert_that_fired_resolved(intake: Intake) -> None:
    assert (await intake.post("/v1/alerts/alertmanager", alertmanager(intake.service))).status_code == 202
    await intake.until(lambda v: v.status.value == "awaiting_ack")
    handle = signing_client(intake.client).get_workflow_handle(intake.workflow_id())  # as the sign-in service signs
    from contracts import Acknowledge

    await handle.execute_update(IncidentResponseWorkflow.acknowledge, Acknowledge(by="alice"))
    await intake.until(lambda v: v.pending_approval is not None)
    one = alertmanager(intake.service, "resolved", fingerprints=("a1",))
    assert (await intake.post("/v1/alerts/alertmanager", one)).status_code == 202
    view = await intake.until(lambda v: v.alert_count == 3)
    assert view.pending_approval is not None  # b2 still fires
    other = alertmanager(intake.service, "resolved", fingerprints=("b2",))
    assert (await intake.post("/v1/alerts/alertmanager", other)).status_code == 202
    view = await intake.until(lambda v: any(e.event == "proposal withdrawn" for e in v.timeline))
    assert view.remediation is None
    await handle.terminate("test done")


async def test_a_firing_alert_after_its_run_closed_opens_a_new_one(intake: Intake) -> None:
    """The intake aims a target's next alerts at the run its last hand-over reached (a plain
    signal, cheaper for the server in a storm); once that run has closed, the next firing alert
    still opens a new run (signal-with-start), and is not lost or refused."""
    fire = {"id": "c-1", "service": intake.service, "summary": "down", "severity": "P0"}
    assert (await intake.post("/v1/alerts", fire)).status_code == 202
    await intake.until(lambda v: v.alert_count == 1)
    handle = intake.client.get_workflow_handle(intake.workflow_id())
    first_run = (await handle.describe()).run_id
    assert (await intake.post("/v1/alerts", {**fire, "id": "c-2"})).status_code == 202
    await intake.until(lambda v: v.alert_count == 2)
    assert (await handle.describe()).run_id == first_run  # joined the run it knew

    await handle.terminate("closed for the test")
    assert (await intake.post("/v1/alerts", {**fire, "id": "c-3"})).status_code == 202
    latest = await intake.client.get_workflow_handle(intake.workflow_id()).describe()
    assert latest.run_id != first_run and latest.status == WorkflowExecutionStatus.RUNNING
    await intake.until(lambda v: v.alert_count == 1)  # the new run has the alert
    assert (await intake.post("/v1/alerts", {**fire, "id": "c-4"})).status_code == 202
    await intake.until(lambda v: v.alert_count == 2)  # and the next joins it
    assert (await intake.client.get_workflow_handle(intake.workflow_id()).describe()).run_id == latest.run_id
    await intake.client.get_workflow_handle(intake.workflow_id()).terminate("test done")


# --------------------------------------------------------------------------- bad input


async def test_bad_requests_are_refused_naming_the_problem_and_start_nothing(intake: Intake) -> None:
    good = {"service": intake.service, "summary": "down"}
    cases = [
        ("no token", await intake.post("/v1/alerts", good, token=None), 401, "Authorization"),
        ("wrong token", await intake.post("/v1/alerts", good, token="nope"), 403, "bearer token"),
        ("content type", await intake.post("/v1/alerts", good, **{"content-type": "text/xml"}), 415, "Content-Type"),
        (
            "malformed",
            await intake.post(
                "/v1/alerts",
                b'{"service": ',
            ),
            400,
            "not valid JSON",
        ),
        ("schema", await intake.post("/v1/alerts", {"service": intake.service}), 422, "summary"),
        ("wrong status", await intake.post("/v1/alerts", {**good, "status": "burning"}), 422, "status"),
        ("unrouted", await intake.post("/v1/alerts", {**good, "service": "unknown-service"}), 422, "no route"),
        ("too large", await intake.post("/v1/alerts", {**good, "summary": "x" * 2_000_000}), 413, "larger"),
        (
            "alertmanager version",
            await intake.post("/v1/alerts/alertmanager", {**alertmanager(intake.service), "version": "3"}),
            422,
            "version",
        ),
        ("odd metrics", await intake.post("/v1/alerts/eventbridge", odd_metrics(intake.service)), 202, ""),
        (
            "pd signature not ascii",
            await intake.post(
                "/v1/webhooks/pagerduty", b"{}", token=None, **{"x-pagerduty-signature": "v1=\u00e9".encode()}
            ),
            403,
            "match",
        ),
    ]
    for name, response, status, words in cases:
        assert response.status_code == status, (name, response.text)
        if status >= 400:
            assert words in response.json()["error"], (name, response.json())
    assert not await intake.exists()
    nameless = alertmanager(intake.service)
    for alert in nameless["alerts"]:
        alert["labels"]["alertname"], alert["annotations"] = "", {}
    nameless["commonLabels"] = {}
    assert (await intake.post("/v1/alerts/alertmanager", nameless)).status_code == 202  # named by its sender
    await intake.until(lambda v: v.summary == "alertmanager alert")

    metrics = httpx.get(f"{intake.url}/metrics").text
    assert 'intake_alerts_rejected_total{reason="schema",source="generic"} 2.0' in metrics
    assert 'intake_alerts_rejected_total{reason="unrouted",source="generic"} 1.0' in metrics


async def test_health_readiness_and_the_openapi_document(intake: Intake) -> None:
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{intake.url}/healthz")).json() == {"status": "alive"}
        assert (await http.get(f"{intake.url}/readyz")).status_code == 200
        document = (await http.get(f"{intake.url}/openapi.json")).json()
        for path in ("/ui", "/ui/login", "/auth/whoami"):  # the page and sign-in are on the operator listener
            assert (await http.get(f"{intake.url}{path}")).status_code == 404, path
    assert set(document["paths"]) >= {
        "/v1/alerts/alertmanager",
        "/v1/alerts/sns",
        "/v1/alerts/eventbridge",
        "/v1/webhooks/pagerduty",
        "/v1/alerts",
    }
    reference = document["paths"]["/v1/alerts"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    generic = document["components"]["schemas"][reference["$ref"].rsplit("/", 1)[-1]]
    assert {"service", "summary"} <= set(generic["required"])
    assert "503" in document["paths"]["/v1/alerts/sns"]["post"]["responses"]


# --------------------------------------------------------------------------- storm


async def test_a_storm_of_alerts_for_a_hundred_targets_is_a_hundred_incidents(dev_env: WorkflowEnvironment) -> None:
    services = [f"storm-{uuid.uuid4().hex[:6]}-{n:03d}" for n in range(100)]
    policy = intake_policy(*services)
    task_queue = f"storm-{uuid.uuid4()}"
    target = dev_env.client.service_client.config.target_host
    handoff = Handoff(lambda: Client.connect(target, data_converter=pydantic_data_converter), task_queue, INTAKE)
    app = create_app(config_for(policy), handoff)
    per_target = 20
    alerts = [
        {"id": f"{s}-{i}", "service": s, "summary": f"alert {i}", "severity": "P2"}
        for i in range(per_target)
        for s in services
    ]
    async with Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[IncidentResponseWorkflow],
        activities=FakePlatform(policy).activities(),
    ):
        with serve_app(app, timeout_keep_alive=30) as url:
            limits = httpx.Limits(max_connections=50)
            async with httpx.AsyncClient(timeout=60, limits=limits) as http:
                gate = asyncio.Semaphore(50)

                async def send(alert: dict) -> int:
                    # as a real sender does: a connection dropped (a keep-alive closed under it on a loaded
                    # machine) is delivered again, and so is a 503 (a hand-off past its limit on a busy
                    # machine), after its Retry-After; the intake is idempotent on the alert's id, which
                    # the exact per-target counts below check
                    async with gate:
                        for attempt in range(ATTEMPTS):
                            last = attempt == ATTEMPTS - 1
                            try:
                                response = await http.post(
                                    f"{url}/v1/alerts", json=alert, headers={"authorization": f"Bearer {TOKEN}"}
                                )
                            except httpx.TransportError:
                                if last:
                                    raise
                                await asyncio.sleep(0.2)
                                continue
                            if response.status_code == 503 and not last:
                                await asyncio.sleep(retry_after(response))
                                continue
                            return response.status_code
                        raise AssertionError("unreachable")

                statuses = await asyncio.gather(*(send(a) for a in alerts))
                assert statuses.count(202) == len(alerts), {s: statuses.count(s) for s in set(statuses)}
                # the storm again, as senders retrying: nothing changes
                retried = await asyncio.gather(*(send(a) for a in alerts[:500]))
                assert set(retried) == {202}

        query = f"WorkflowType = 'IncidentResponseWorkflow' AND TaskQueue = '{task_queue}'"

        async def listed() -> list[WorkflowExecution]:
            return [w async for w in dev_env.client.list_workflows(query)]

        workflows = await eventually(
            listed, lambda found: len(found) >= 100, "the runs listed", every=0.1, shown=lambda found: len(found)
        )
        assert len(workflows) == 100

        # every alert was accepted (202) before this; a run may still be applying its last signals,
        # and a worker still busy with them may answer a query late (on a loaded 2-core machine)
        async def views() -> list[IncidentView]:
            return await asyncio.gather(
                *(
                    dev_env.client.get_workflow_handle(w.id).query(
                        IncidentResponseWorkflow.view, rpc_timeout=timedelta(seconds=30)
                    )
                    for w in workflows
                )
            )

        counts = await eventually(
            views,
            lambda counts: sum(v.alert_count for v in counts) >= len(alerts),
            "every alert counted",
            timeout=120,
            every=0.5,
            shown=lambda counts: sum(v.alert_count for v in counts),
        )
        assert sum(v.alert_count for v in counts) == len(alerts)
        assert {v.alert_count for v in counts} == {per_target}
        await asyncio.gather(*(dev_env.client.get_workflow_handle(w.id).terminate("storm test") for w in workflows))


# --------------------------------------------------------------------------- Temporal away


@pytest.fixture
def own_temporal(tmp_path: Path) -> Iterator[Stack]:
    from devstack.net import free_port

    stack = Stack(StackConfig(temporal_port=free_port(), temporal_ui_port=free_port(), data_dir=tmp_path))
    stack.start_temporal()
    yield stack
    stack.stop()


async def test_temporal_down_is_503_and_the_retried_deliveries_all_arrive(own_temporal: Stack) -> None:
    address = own_temporal.config.temporal_address
    service = f"away-{uuid.uuid4().hex[:6]}"
    policy = intake_policy(service)
    task_queue = f"away-{uuid.uuid4()}"
    handoff = Handoff(lambda: Client.connect(address, data_converter=pydantic_data_converter), task_queue, INTAKE)
    app = create_app(config_for(policy), handoff)
    alerts = [{"id": f"d-{i}", "service": service, "summary": f"alert {i}"} for i in range(5)]
    headers = {"authorization": f"Bearer {TOKEN}"}
    with serve_app(app) as url:
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.post(f"{url}/v1/alerts", json=alerts[0], headers=headers)).status_code == 202

            own_temporal.stop_child(own_temporal.child("temporal"))
            down = [await http.post(f"{url}/v1/alerts", json=a, headers=headers) for a in alerts[1:]]
            assert {r.status_code for r in down} == {503}
            assert all(r.headers.get("retry-after") for r in down)
            assert "retry" in down[0].json()["error"]
            assert (await http.get(f"{url}/readyz")).status_code == 503

            own_temporal.start_temporal()  # same SQLite file
            await eventually(
                lambda: http.get(f"{url}/readyz"),
                lambda ready: ready.status_code == 200,
                "the intake ready again",
                every=0.5,
                shown=lambda ready: ready.text,
            )
            # the senders retry every delivery, including the one that already got through
            again = [await http.post(f"{url}/v1/alerts", json=a, headers=headers) for a in alerts]
            assert [r.status_code for r in again] == [202] * 5, [r.text for r in again]

    client = await Client.connect(address, data_converter=pydantic_data_converter)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[IncidentResponseWorkflow],
        activities=FakePlatform(policy).activities(),
    ):
        handle = client.get_workflow_handle(f"incident/{service}/{REGION}")
        view = await eventually(
            lambda: handle.query(IncidentResponseWorkflow.view),
            lambda view: view.alert_count >= 5,
            "the alerts counted",
            every=0.1,
            shown=lambda view: view.alert_count,
        )
        assert view.alert_count == 5  # every alert once: none lost, the retried first one not doubled
        await handle.terminate("test done")
