"""The alert intake, as a sender: a review that found a critical breach hands it over like any
monitoring system does (the generic endpoint, its bearer token). The intake routes it by the
policy, signs it and opens or joins the service's incident; the worker holds no signing key.

The alert's id is the review's: a retry (or a second run over the same week) is the same
delivery, which the intake takes once.
"""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

import settings
from contracts.reviews import RaisedAlert, ReviewAlert

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
KIND = "performance-review-breach"


def generic_alert(alert: ReviewAlert) -> dict[str, object]:
    return {
        "id": f"review:{alert.review}",
        "fingerprint": f"review:{alert.review}",
        "service": alert.service,
        "region": alert.region,
        "summary": alert.summary[:1024],
        "severity": alert.severity,
        "kind": KIND,
        "labels": {"review": alert.review, "report": alert.report, "raised_by": "schedule/performance-review"},
    }


@activity.defn
async def raise_review_alert(alert: ReviewAlert) -> RaisedAlert:
    config = settings.load()
    if not config.intake_alert_token:
        raise ApplicationError(
            "INTAKE_GENERIC_TOKEN is not set: the worker cannot hand the critical breach to the intake",
            type="IntakeNotConfigured",
            non_retryable=True,
        )
    url = f"{config.intake_url.rstrip('/')}/v1/alerts"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.post(
                url, json=generic_alert(alert), headers={"Authorization": f"Bearer {config.intake_alert_token}"}
            )
    except httpx.HTTPError as err:
        raise ApplicationError(f"POST {url}: {err}", type="IntakeUnreachable") from err
    try:
        answer = response.json()
    except ValueError:
        answer = {"body": response.text[:500]}
    if response.status_code >= 500 or response.status_code == 429:
        raise ApplicationError(f"POST {url}: {response.status_code} {answer}", type="IntakeUnavailable")
    if response.status_code >= 400:  # refused: the token, the payload or no route; another try cannot help
        raise ApplicationError(
            f"the intake refused the review's alert: {response.status_code} {answer}",
            type="IntakeRefused",
            non_retryable=True,
        )
    return RaisedAlert(status=response.status_code, answer=answer if isinstance(answer, dict) else {"answer": answer})
