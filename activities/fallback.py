"""The other path: a page PagerDuty did not take is told to `PAGING_FALLBACK_URL`.

The body is Slack's incoming-webhook shape (`text`), which Slack, Mattermost, Rocket.Chat and
most chat gateways take, with the notice's fields beside it for anything else that reads JSON.
A retry may tell it twice (a webhook has no dedup key); the text carries the page's dedup key
so that people see it is the same page. Better twice than not at all: nobody was paged.
"""

from __future__ import annotations

import logging

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

import settings
from contracts import FallbackNotice, FallbackSent

log = logging.getLogger(__name__)


@activity.defn
def notify_fallback(notice: FallbackNotice) -> FallbackSent:
    url = settings.load().paging_fallback_url
    log.error("nobody paged for %s (%s): %s", notice.workflow_id, notice.dedup_key, notice.reason)
    if not url:
        return FallbackSent(sent=False, detail="no other path is configured (PAGING_FALLBACK_URL)")
    text = (
        f":rotating_light: NOBODY WAS PAGED: PagerDuty did not take the {notice.severity} page "
        f"{notice.dedup_key}: {notice.reason}\n{notice.summary}\n"
        f"See `runbook show {notice.workflow_id}`; the page is tried again at every escalation timer."
    )
    try:
        response = httpx.post(url, json={"text": text, **notice.model_dump()}, timeout=10)
    except httpx.HTTPError as err:
        raise ApplicationError(f"the fallback webhook did not answer: {err}") from err
    if response.status_code in (400, 401, 403, 404, 410, 413, 422):
        raise ApplicationError(
            f"the fallback webhook refused the notice: HTTP {response.status_code}",
            type="FallbackRefused",
            non_retryable=True,
        )
    if response.status_code >= 300:
        raise ApplicationError(f"the fallback webhook answered HTTP {response.status_code}")
    return FallbackSent(sent=True, detail=f"told {httpx.URL(url).host}")
