"""The demo platform's Bedrock client and its circuit breaker, calling the stack's Bedrock emulator
over HTTP with boto3 (AWS_ENDPOINT_URL_BEDROCK_RUNTIME), and `runbook demo break|deny|heal bedrock`."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from starlette.testclient import TestClient

from devstack import demo
from devstack.bedrock_emulator import STATUS_PATH
from devstack.demo_service import (
    BEDROCK_COMPONENT,
    FALLBACKS,
    BedrockTraffic,
    CircuitBreaker,
    Deployment,
    PlatformState,
    create_app,
    system_status,
)
from tests.test_bedrock_activities import emulator_url, faults

__all__ = ["emulator_url"]  # the module's fixture, shared


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def runtime(emulator_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    yield boto3.client("bedrock-runtime", region_name="eu-central-1", endpoint_url=emulator_url)
    faults(emulator_url, bedrock="ok", deny=False)


def invocations(url: str) -> int:
    with urllib.request.urlopen(url + STATUS_PATH, timeout=10) as answer:
        calls: dict[str, int] = json.loads(answer.read())["calls"]
    return calls.get("InvokeModel", 0)


async def test_the_breaker_opens_after_five_failures_serves_the_fallback_and_closes_half_open(
    runtime: Any, emulator_url: str
) -> None:
    clock = Clock()
    traffic = BedrockTraffic(runtime, CircuitBreaker(reset_after=10, clock=clock), PlatformState())
    assert await traffic.request_once() == "bedrock" and traffic.breaker.state == "closed"
    faults(emulator_url, bedrock="down")
    answers = [await traffic.request_once() for _ in range(5)]
    assert all(answer in FALLBACKS for answer in answers)
    assert traffic.breaker.state == "open" and traffic.breaker.consecutive_failures == 5
    assert "InternalServerException" in (traffic.breaker.last_error or "")
    calls = invocations(emulator_url)
    assert await traffic.request_once() in FALLBACKS  # open: the fallback answers, Bedrock is not called
    assert invocations(emulator_url) == calls
    body, status = traffic.health()
    assert status == 503 and body["status"] == "unhealthy" and "5 consecutive failed calls" in body["reason"]
    assert traffic.breaker.fallback_rate_pct > 80
    faults(emulator_url, bedrock="ok")
    clock.now = 10.0  # half-open: one trial call, which succeeds
    assert await traffic.request_once() == "bedrock" and traffic.breaker.state == "closed"
    assert traffic.health()[1] == 200


async def test_a_failed_trial_call_opens_it_again_at_once(runtime: Any, emulator_url: str) -> None:
    clock = Clock()
    traffic = BedrockTraffic(runtime, CircuitBreaker(reset_after=10, clock=clock), PlatformState())
    faults(emulator_url, bedrock="down")
    for _ in range(5):
        await traffic.request_once()
    clock.now = 10.0
    await traffic.request_once()
    assert traffic.breaker.state == "open" and traffic.breaker.consecutive_failures == 6


async def test_a_denied_role_fails_the_calls_too(runtime: Any, emulator_url: str) -> None:
    traffic = BedrockTraffic(runtime, CircuitBreaker(), PlatformState())
    faults(emulator_url, deny=True)
    for _ in range(5):
        await traffic.request_once()
    assert traffic.breaker.state == "open" and "AccessDeniedException" in (traffic.breaker.last_error or "")


async def test_standard_routing_does_not_call_bedrock(runtime: Any, emulator_url: str) -> None:
    platform = PlatformState(hybrid_routing_enabled=False)
    traffic = BedrockTraffic(runtime, CircuitBreaker(), platform)
    calls = invocations(emulator_url)
    assert await traffic.request_once() == "standard routing"
    assert invocations(emulator_url) == calls and traffic.breaker.fallback_rate_pct == 0.0


def test_an_open_breaker_degrades_the_platform_only_with_hybrid_routing() -> None:
    good = Deployment(task_definition="td:1", image="img:1", fault=None, error=None, observed_at=0.0, tasks=2)
    assert system_status(good, True, "open") == "degraded"
    assert system_status(good, False, "open") == "healthy"
    assert system_status(good, True, "closed") == "healthy"


def test_the_component_and_re_enabling_resets_the_breaker() -> None:
    app = create_app(admin_token=None, publish=False)
    with TestClient(app) as client:
        breaker: CircuitBreaker = app.state.bedrock.breaker
        assert client.get(f"/health/component/{BEDROCK_COMPONENT}").status_code == 200
        for _ in range(5):
            breaker.failed("InternalServerException: down")
        shown = client.get(f"/health/component/{BEDROCK_COMPONENT}")
        assert shown.status_code == 503 and shown.json()["circuit_breaker"]["state"] == "open"
        client.post("/admin/emergency/disable-hybrid-routing", json={"reason": "t"})
        assert breaker.state == "open"  # switching off changes nothing of the breaker
        client.post("/admin/emergency/enable-hybrid-routing", json={"reason": "t"})
        assert breaker.state == "closed" and breaker.fallback_rate_pct == 0.0


def test_runbook_demo_break_deny_heal_bedrock(emulator_url: str) -> None:
    assert demo.set_bedrock_faults(emulator_url, bedrock="down")["bedrock"] == "down"
    assert demo.set_bedrock_faults(emulator_url, deny=True)["denied"]
    healed = demo.set_bedrock_faults(emulator_url, bedrock="ok", deny=False)
    assert healed["bedrock"] == "ok" and not healed["denied"]
