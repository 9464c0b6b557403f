"""PagerDuty webhooks v3: the signature over the raw body, and the event it carries."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from contracts import PagerDutyEvent
from intake.payloads import PagerDutyWebhook

# What people do in PagerDuty that the incident workflow wants to hear about.
SIGNALLED = {
    "incident.acknowledged",
    "incident.unacknowledged",
    "incident.escalated",
    "incident.reassigned",
    "incident.delegated",
    "incident.resolved",
}


def signature_valid(body: bytes, header: str | None, secrets: Sequence[str]) -> bool:
    """`X-PagerDuty-Signature: v1=<hex>[,v1=<hex>]`: any listed signature by any of our secrets.

    Two signatures arrive while PagerDuty rotates a secret; two secrets here let us rotate ours.
    """
    if not header or not secrets:
        return False
    offered = [part.strip()[3:] for part in header.split(",") if part.strip().startswith("v1=")]
    expected = [hmac.new(secret.encode(), body, hashlib.sha256).hexdigest() for secret in secrets]
    found = False
    for signature in offered:
        for candidate in expected:
            # no early exit: the time taken must not say which comparison came close
            found |= hmac.compare_digest(signature.lower().encode(), candidate.encode())
    return found


def incident_event(webhook: PagerDutyWebhook) -> tuple[str, PagerDutyEvent] | None:
    """(workflow id, event) for an incident event of ours; None for anything else.

    Our pages carry `incident/{service}/{region}#INC-...` as their key (older runs: without
    the `#INC-...`); the part before `#` is the incident workflow's id.
    """
    event = webhook.event
    key = (event.data.incident_key or "").split("#", 1)[0]
    if event.event_type not in SIGNALLED or event.data.type != "incident" or not key.startswith("incident/"):
        return None
    agent = (event.agent.summary or event.agent.id) if event.agent else None
    return key, PagerDutyEvent(
        event_id=event.id,
        event_type=event.event_type,  # type: ignore[arg-type]  # checked against SIGNALLED above
        incident_id=event.data.id,
        agent=agent or "PagerDuty",
        occurred_at=event.occurred_at,
        incident_key=event.data.incident_key,
    )
