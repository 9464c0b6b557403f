"""The platform's own API: component health, system status and the emergency switch."""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

import settings
from contracts import (
    EmergencySwitchRequest,
    HealthReading,
    HealthRequest,
    RemediationAction,
    RemediationRecord,
    SystemStatus,
)
from contracts.bedrock import BreakerReading

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("reason") or body.get("status") or body)[:200]
    return str(body)[:200]


@activity.defn
async def check_component_health(request: HealthRequest) -> HealthReading:
    """An unreachable or failing endpoint is a reading ("unhealthy"), not an activity failure."""
    url = f"{settings.load().platform_url}/health/component/{request.component}"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.get(url)
    except httpx.HTTPError as err:
        return HealthReading(component=request.component, healthy=False, detail=f"unreachable: {err!r}")
    healthy = response.status_code == 200 and _detail(response) == "healthy"
    return HealthReading(
        component=request.component,
        healthy=healthy,
        status_code=response.status_code,
        detail=f"HTTP {response.status_code}: {_detail(response)}",
    )


@activity.defn
async def check_system_status() -> SystemStatus:
    url = f"{settings.load().platform_url}/admin/health/system-status"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.get(url)
        body = response.json()
    except (httpx.HTTPError, ValueError) as err:
        return SystemStatus(healthy=False, detail=f"system status unreadable: {err!r}")
    status = body.get("status", "unknown") if isinstance(body, dict) else "unknown"
    routing = body.get("hybrid_routing", "unknown") if isinstance(body, dict) else "unknown"
    return SystemStatus(
        healthy=response.status_code == 200 and status == "healthy",
        hybrid_routing=str(routing),
        detail=f"HTTP {response.status_code}: status {status}, hybrid routing {routing}",
    )


@activity.defn
async def set_hybrid_routing(request: EmergencySwitchRequest) -> RemediationRecord:
    """The emergency switch; the platform treats a repeat as a no-op, so retries are safe."""
    config = settings.load()
    verb = "enable" if request.hybrid_routing_enabled else "disable"
    url = f"{config.platform_url}/admin/emergency/{verb}-hybrid-routing"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.post(
                url,
                headers={"Authorization": f"Bearer {config.platform_admin_token}"},
                json={"reason": request.reason},
            )
    except httpx.HTTPError as err:
        raise ApplicationError(f"{verb} hybrid routing: {err!r}", type="PlatformUnreachable") from err
    if not response.is_success:  # a redirect is not a switched platform either
        raise ApplicationError(
            f"{verb} hybrid routing: HTTP {response.status_code}: {_detail(response)}",
            type=f"HTTP{response.status_code}",
            # 429 and 5xx may pass; any other 4xx (bad token, bad request) will not.
            non_retryable=response.status_code < 500 and response.status_code != 429,
        )
    body = response.json() if response.content else {}
    changed = bool(body.get("changed", True)) if isinstance(body, dict) else True
    return RemediationRecord(
        action=RemediationAction.EMERGENCY_SWITCH,
        changed=changed,
        detail=f"hybrid routing {verb}d" + ("" if changed else " (it already was)"),
    )


BEDROCK_COMPONENT = "bedrock-client"


@activity.defn
async def read_bedrock_breaker() -> BreakerReading:
    """The platform's circuit breaker in front of Bedrock (`circuit_breakers.bedrock` of its
    system status), hybrid routing, and the `bedrock-client` health component. A platform that
    does not answer is a reading ("unknown"), not an activity failure."""
    base = settings.load().platform_url
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            status = await http.get(f"{base}/admin/health/system-status")
            component = await http.get(f"{base}/health/component/{BEDROCK_COMPONENT}")
        body = status.json()
    except (httpx.HTTPError, ValueError) as err:
        return BreakerReading(state="unknown", detail=f"system status unreadable: {err!r}")
    if not isinstance(body, dict):
        return BreakerReading(state="unknown", detail=f"system status is not an object: {str(body)[:200]}")
    breaker = (body.get("circuit_breakers") or {}).get("bedrock") or {}
    rate = breaker.get("fallback_rate_pct")
    return BreakerReading(
        state=str(breaker.get("state", "unknown")),
        consecutive_failures=int(breaker.get("consecutive_failures", 0)),
        fallback_rate_pct=float(rate) if isinstance(rate, int | float) else None,
        hybrid_routing=str(body.get("hybrid_routing", "unknown")),
        platform_healthy=status.status_code == 200 and body.get("status") == "healthy",
        component_healthy=component.status_code == 200 and _detail(component) == "healthy",
        detail=f"HTTP {status.status_code}: status {body.get('status', 'unknown')}; "
        f"{BEDROCK_COMPONENT}: HTTP {component.status_code} {_detail(component)}",
    )
