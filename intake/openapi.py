"""The intake's OpenAPI document, built from the same pydantic models that validate requests."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from intake.payloads import AlertmanagerWebhook, EventBridgeEvent, GenericAlert, PagerDutyWebhook

_REF = "#/components/schemas/{model}"

_ERRORS = {
    "400": "malformed JSON, or a malformed SNS message",
    "401": "no credentials (bearer token or signature)",
    "403": "wrong credentials, a forged signature, an unknown SNS topic, or the endpoint is disabled",
    "413": "the body is too large",
    "415": "wrong Content-Type",
    "422": "the payload does not match the schema (the fields are named), or no route takes the alerts",
    "503": "Temporal did not take the hand-off: retry after Retry-After seconds; nothing was lost",
}


def _operation(
    summary: str, schema: dict[str, Any] | None, security: str, content_type: str = "application/json", ok: str = "202"
) -> dict[str, Any]:
    responses = {ok: {"description": "handed to Temporal (or a duplicate delivery, already taken)"}}
    responses.update({code: {"description": text} for code, text in _ERRORS.items()})
    operation: dict[str, Any] = {"summary": summary, "responses": responses, "security": [{security: []}]}
    if schema is not None:
        operation["requestBody"] = {"required": True, "content": {content_type: {"schema": schema}}}
    return operation


@functools.cache
def openapi_document() -> dict[str, Any]:
    models: list[type[BaseModel]] = [AlertmanagerWebhook, EventBridgeEvent, GenericAlert, PagerDutyWebhook]
    refs, top = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    schema = {m.__name__: refs[(m, "validation")] for m in models}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "temporal-runbooks alert intake",
            "version": "1",
            "description": "Alert senders start or join incident workflows. 2xx only once Temporal took the alert.",
        },
        "paths": {
            "/v1/alerts/alertmanager": {
                "post": _operation(
                    "Prometheus Alertmanager webhook (payload version 4)", schema["AlertmanagerWebhook"], "bearer"
                )
            },
            "/v1/alerts/sns": {
                "post": _operation(
                    "Amazon SNS HTTP(S) delivery of CloudWatch alarm state changes (signature verified)",
                    {"type": "object", "description": "an SNS message: Notification or SubscriptionConfirmation"},
                    "snsSignature",
                    content_type="text/plain",
                )
            },
            "/v1/alerts/eventbridge": {
                "post": _operation(
                    "EventBridge 'CloudWatch Alarm State Change' or 'AWS Health Event' event (API destination)",
                    schema["EventBridgeEvent"],
                    "bearer",
                )
            },
            "/v1/webhooks/pagerduty": {
                "post": _operation(
                    "PagerDuty webhooks v3: acknowledgements, escalations, resolutions of runbook incidents",
                    schema["PagerDutyWebhook"],
                    "pagerdutySignature",
                )
            },
            "/v1/alerts": {"post": _operation("The generic alert", schema["GenericAlert"], "bearer")},
            "/healthz": {"get": {"summary": "the process is alive", "responses": {"200": {"description": "alive"}}}},
            "/readyz": {
                "get": {
                    "summary": "Temporal is reachable",
                    "responses": {"200": {"description": "ready"}, "503": {"description": "Temporal is not reachable"}},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics of the intake",
                    "responses": {"200": {"description": "text exposition format"}},
                }
            },
        },
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "snsSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-amz-sns-message-type",
                    "description": "verified from the message's own Signature and SigningCertURL",
                },
                "pagerdutySignature": {"type": "apiKey", "in": "header", "name": "X-PagerDuty-Signature"},
            },
        },
    }
