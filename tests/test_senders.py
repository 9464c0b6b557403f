"""What real senders send besides the alerts the runbooks use (issue 9, section 5), over HTTP
into the intake on the dev server: answered 2xx and said, never a 4xx the sender would retry
or give up on the endpoint for, and never a page where CloudWatch holds the alarm back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from temporalio.testing import WorkflowEnvironment

from contracts import Policy
from intake import normalize
from intake.payloads import EventBridgeEvent
from tests import sns_signing
from tests.policies import default_policy, demo_policy
from tests.test_intake import (
    PD_SECRET,
    Intake,
    alertmanager,
    aws_health,
    eventbridge,
    intake_policy,
    pagerduty_webhook,
    pd_signature,
    running_intake,
)


@pytest.fixture
async def intake(dev_env: WorkflowEnvironment) -> AsyncIterator[Intake]:
    async with running_intake(dev_env) as running:
        yield running


async def post_pagerduty(intake: Intake, delivery: dict) -> tuple[int, dict]:
    body = json.dumps(delivery).encode()
    response = await intake.post(
        "/v1/webhooks/pagerduty", body, token=None, **{"x-pagerduty-signature": pd_signature(body, PD_SECRET)}
    )
    return response.status_code, response.json()


async def test_pagerduty_events_the_runbooks_do_not_use_are_2xx_whatever_their_shape(intake: Intake) -> None:
    # PagerDuty's own test event carries no event.data.id; neither do role or responder events.
    ping = {
        "event": {
            "id": "01DEN4HPBQAXWBKYUWSJTYP8TQ",
            "event_type": "pagey.ping",
            "resource_type": "pagey",
            "occurred_at": "2026-11-22T10:00:00.000Z",
            "agent": None,
            "client": None,
            "data": {"message": "Hello from your friend Pagey!", "type": "ping"},
        }
    }
    status, answer = await post_pagerduty(intake, ping)
    assert status == 202 and "pagey.ping" in answer["ignored"]
    role = {"event": {"id": "r1", "event_type": "incident.responder.added", "data": {"type": "incident_responder"}}}
    status, answer = await post_pagerduty(intake, role)
    assert status == 202 and "ignored" in answer
    # the events the runbooks use are still validated strictly, and a forgery is still refused
    broken = pagerduty_webhook(f"{intake.workflow_id()}#INC-1")
    del broken["event"]["data"]["id"]
    status, answer = await post_pagerduty(intake, broken)
    assert status == 422 and "event.data.id" in answer["error"]
    body = json.dumps(ping).encode()
    forged = await intake.post("/v1/webhooks/pagerduty", body, token=None, **{"x-pagerduty-signature": "v1=00"})
    assert forged.status_code == 403


async def test_eventbridge_events_other_than_alarm_state_changes_are_2xx_ignored(intake: Intake) -> None:
    change = {
        "version": "0",
        "id": "c1",
        "detail-type": "CloudWatch Alarm Configuration Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2026-11-22T10:00:00Z",
        "region": "eu-central-1",
        "resources": [],
        "detail": {"alarmName": f"{intake.service}-p95", "operation": "update"},
    }
    abuse = {**aws_health(), "detail-type": "AWS Health Abuse Event"}
    assert (await intake.post("/v1/alerts/eventbridge", abuse)).status_code == 202
    response = await intake.post("/v1/alerts/eventbridge", change)
    assert (
        response.status_code == 202
        and "neither an alarm state change nor an AWS Health event" in response.json()["ignored"]
    )
    assert not await intake.exists()
    unauthenticated = await intake.post("/v1/alerts/eventbridge", change, token="wrong")
    assert unauthenticated.status_code == 403  # ignoring comes after the sender is known


async def test_an_alarm_whose_actions_cloudwatch_suppressed_or_muted_pages_nobody(intake: Intake) -> None:
    suppressed = eventbridge(f"{intake.service}-p95")
    suppressed["detail"]["state"]["actionsSuppressedBy"] = "Alarm"
    suppressed["detail"]["state"]["actionsSuppressedReason"] = "Alarm is in OK state"
    response = await intake.post("/v1/alerts/eventbridge", suppressed)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 0 and "suppressed by Alarm" in response.json()["not_paged"]
    muted = eventbridge(f"{intake.service}-p95")
    muted["detail"]["muteDetail"] = {"mutedBy": ["arn:aws:cloudwatch:eu-central-1:123456789012:alarm-mute-rule:m"]}
    response = await intake.post("/v1/alerts/eventbridge", muted)
    assert response.status_code == 202 and "muted" in response.json()["not_paged"]
    assert not await intake.exists()
    # the same alarm, not held back: an incident
    response = await intake.post("/v1/alerts/eventbridge", eventbridge(f"{intake.service}-p95"))
    assert response.status_code == 202 and response.json()["accepted"] == 1 and await intake.exists()


async def test_alertmanager_truncated_alerts_are_said_in_the_answer(intake: Intake) -> None:
    payload = alertmanager(intake.service)
    payload["truncatedAlerts"] = 3
    response = await intake.post("/v1/alerts/alertmanager", payload)
    assert response.status_code == 202, response.text
    assert response.json()["truncated_alerts"] == 3 and "left out 3 alert(s)" in response.json()["warning"]
    assert response.json()["accepted"] == 2


def test_a_metric_math_alarm_through_sns_routes_by_namespace_like_eventbridge() -> None:
    """CloudWatch's SNS message for a metric-math alarm names its metrics under Trigger.Metrics."""
    alarm = json.loads(sns_signing.cloudwatch_alarm_message("math-alarm", "ALARM", "HybridRouting", "ErrorRate"))
    alarm["Trigger"] = {
        "Metrics": [
            {
                "Id": "m1",
                "MetricStat": {
                    "Metric": {
                        "Dimensions": [{"value": "hybrid-router", "name": "Service"}],
                        "MetricName": "ErrorRate",
                        "Namespace": "HybridRouting",
                    },
                    "Period": 60,
                    "Stat": "Average",
                },
                "ReturnData": False,
            },
            {"Expression": "m1 * 100", "Id": "e1", "Label": "error percent", "ReturnData": True},
        ],
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 5.0,
        "EvaluationPeriods": 3,
    }
    [incoming] = normalize.from_cloudwatch_alarm(alarm, "m-1")
    assert (incoming.namespace, incoming.metric) == ("HybridRouting", "ErrorRate")
    assert incoming.labels["Service"] == "hybrid-router"
    policy = intake_policy("svc-a")
    routed = normalize.route(policy, incoming, datetime.now(UTC))
    assert routed is not None and routed[1].name == "metrics" and routed[0].service == "svc-a"


@pytest.mark.parametrize("policy", [default_policy, demo_policy], ids=["default", "demo"])
def test_the_shipped_policies_send_an_aws_health_issue_in_the_primary_region_to_the_failover(
    policy: Callable[[], Policy],
) -> None:
    """An open issue in the primary's region triggers the failover (which still confirms with
    its own probes); one elsewhere matches no failover route; a closed one resolves, a
    scheduled change not yet begun is no alert."""
    shipped = policy()
    [incoming] = normalize.from_eventbridge_event(EventBridgeEvent.model_validate(aws_health("eu-central-1")))
    assert incoming.region == "eu-central-1" and incoming.fingerprint is not None
    assert incoming.summary.startswith("AWS Health ECS AWS_ECS_OPERATIONAL_ISSUE in eu-central-1: Current severity")
    routed = normalize.route(shipped, incoming, datetime.now(UTC))
    assert routed is not None and routed[1].runbook == "failover" and routed[0].service == "hybrid-router"
    assert routed[0].status == "firing"

    elsewhere = normalize.from_eventbridge_event(EventBridgeEvent.model_validate(aws_health("ap-south-1")))
    assert normalize.route(shipped, elsewhere[0], datetime.now(UTC)) is None
    [closed] = normalize.from_eventbridge_event(EventBridgeEvent.model_validate(aws_health(status="closed")))
    assert closed.status == "resolved" and closed.fingerprint == incoming.fingerprint
    assert normalize.from_eventbridge_event(EventBridgeEvent.model_validate(aws_health(status="upcoming"))) == []

    # the Route 53 health check of the primary's record, alarmed in CloudWatch
    alarm = eventbridge("hybrid-router-primary-health")
    metric = alarm["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]
    metric.update(namespace="AWS/Route53", name="HealthCheckStatus", dimensions={"HealthCheckId": "hc-eu"})
    alarm["region"] = "us-east-1"
    [check] = normalize.from_eventbridge_event(EventBridgeEvent.model_validate(alarm))
    routed = normalize.route(shipped, check, datetime.now(UTC))
    assert routed is not None and routed[1].name == "primary-record-health-check"
    assert routed[1].runbook == "failover" and routed[0].service == "hybrid-router"
