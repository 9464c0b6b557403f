"""Every sender's payload becomes `Incoming` alerts; `route` turns one into a runbook's `Alert`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from contracts import Alert, Policy, Route, Severity
from intake.payloads import AlertmanagerWebhook, AwsHealthEvent, EventBridgeAlarmEvent, EventBridgeEvent, GenericAlert

_REGION_IN_ARN = re.compile(r"^arn:aws[a-z-]*:cloudwatch:([a-z0-9-]+):")


@dataclass(frozen=True)
class Incoming:
    """One alert as its sender described it, before routing."""

    source: str
    name: str
    status: Literal["firing", "resolved"]
    summary: str
    labels: dict[str, str] = field(default_factory=dict)
    severity_label: str | None = None
    region: str | None = None
    namespace: str | None = None
    metric: str | None = None
    kind: str | None = None
    delivery_id: str | None = None
    fingerprint: str | None = None


# --------------------------------------------------------------------------- senders


def from_alertmanager(payload: AlertmanagerWebhook) -> list[Incoming]:
    alerts = []
    for alert in payload.alerts:
        labels = {**payload.commonLabels, **alert.labels}
        name = labels.get("alertname", "alert")
        summary = alert.annotations.get("summary") or alert.annotations.get("description") or name
        alerts.append(
            Incoming(
                source="alertmanager",
                name=name,
                status=alert.status,
                summary=summary,
                labels=labels,
                severity_label=labels.get("severity"),
                region=labels.get("region"),
                kind=labels.get("kind"),
                # The same alert in the same state is the same delivery, however often sent.
                delivery_id=f"alertmanager:{alert.fingerprint}:{alert.status}:{alert.startsAt.isoformat()}",
                fingerprint=f"alertmanager:{alert.fingerprint}",
            )
        )
    return alerts


def not_paged(event: EventBridgeAlarmEvent) -> str | None:
    """Why CloudWatch itself holds this alarm's actions back (suppressed by another alarm or a
    wait or extension period, or muted by a mute rule); None when it does not."""
    suppressed = getattr(event.detail.state, "actionsSuppressedBy", None)
    if suppressed:
        reason = getattr(event.detail.state, "actionsSuppressedReason", None) or ""
        return f"alarm actions suppressed by {suppressed}" + (f": {reason}" if reason else "")
    mute = getattr(event.detail, "muteDetail", None)
    if mute:
        rules = mute.get("mutedBy") if isinstance(mute, dict) else None
        return "alarm muted" + (f" by {rules}" if rules else "")
    return None


def from_eventbridge(event: EventBridgeAlarmEvent) -> list[Incoming]:
    state = event.detail.state.value
    if state == "INSUFFICIENT_DATA":
        return []  # not an alert either way
    if state == "ALARM" and not_paged(event) is not None:
        return []  # CloudWatch holds the actions back: recorded in the answer, nobody paged
    namespace, metric, dimensions = _first_metric(event.detail.configuration)
    return [
        Incoming(
            source="eventbridge",
            name=event.detail.alarmName,
            status="firing" if state == "ALARM" else "resolved",
            summary=f"{event.detail.alarmName}: {event.detail.state.reason or state}"[:1024],
            labels={"alarm_name": event.detail.alarmName, **dimensions},
            region=event.region,
            namespace=namespace,
            metric=metric,
            delivery_id=f"eventbridge:{event.id}",
            fingerprint=f"alarm:{event.region}:{event.detail.alarmName}",
        )
    ]


def from_aws_health(event: AwsHealthEvent) -> list[Incoming]:
    """An AWS Health event: an open issue fires, a closed one resolves it; a scheduled change
    that has not begun (`upcoming`) is no alert yet. The affected region is `eventRegion`
    (the event's own `region` is where it was delivered)."""
    detail = event.detail
    if detail.statusCode == "upcoming":
        return []
    region = detail.eventRegion or event.region
    described = next((d.latestDescription for d in detail.eventDescription if d.latestDescription), "")
    headline = described.strip().splitlines()[0] if described.strip() else detail.statusCode
    return [
        Incoming(
            source="eventbridge",
            name=detail.eventTypeCode,
            status="firing" if detail.statusCode == "open" else "resolved",
            summary=f"AWS Health {detail.service} {detail.eventTypeCode} in {region}: {headline}"[:1024],
            labels={
                "aws_health_service": detail.service,
                "event_type_code": detail.eventTypeCode,
                "event_type_category": detail.eventTypeCategory,
                **({"event_scope": detail.eventScopeCode} if detail.eventScopeCode else {}),
            },
            region=region,
            kind=detail.eventTypeCategory,
            delivery_id=f"eventbridge:{event.id}",
            fingerprint=f"health:{detail.eventArn}",
        )
    ]


def from_eventbridge_event(event: EventBridgeEvent) -> list[Incoming]:
    """What the EventBridge endpoint takes: a CloudWatch alarm's state change or an AWS Health event."""
    inner = event.root
    return from_aws_health(inner) if isinstance(inner, AwsHealthEvent) else from_eventbridge(inner)


def from_cloudwatch_alarm(alarm: dict[str, Any], message_id: str) -> list[Incoming]:
    """A CloudWatch alarm as SNS carries it (the JSON inside the notification's Message)."""
    state = str(alarm.get("NewStateValue", ""))
    if state not in ("ALARM", "OK"):
        return []
    raw_trigger = alarm.get("Trigger")
    trigger: dict[str, Any] = raw_trigger if isinstance(raw_trigger, dict) else {}
    namespace, metric, dimensions = _sns_metric(trigger)
    match = _REGION_IN_ARN.match(str(alarm.get("AlarmArn", "")))
    name = str(alarm["AlarmName"])
    region = match.group(1) if match else None
    return [
        Incoming(
            source="sns",
            name=name,
            status="firing" if state == "ALARM" else "resolved",
            summary=f"{name}: {alarm.get('NewStateReason') or state}"[:1024],
            labels={"alarm_name": name, **dimensions},
            region=region,
            namespace=namespace,
            metric=metric,
            delivery_id=f"sns:{message_id}",
            fingerprint=f"alarm:{region}:{name}",
        )
    ]


def from_generic(alert: GenericAlert) -> list[Incoming]:
    return [
        Incoming(
            source="generic",
            name=alert.kind or alert.summary,
            status=alert.status,
            summary=alert.summary,
            labels={**alert.labels, "service": alert.service},
            severity_label=alert.severity,
            region=alert.region,
            kind=alert.kind,
            delivery_id=f"generic:{alert.id}" if alert.id else None,
            fingerprint=f"generic:{alert.fingerprint}" if alert.fingerprint else None,
        )
    ]


def _first_metric(configuration: dict[str, Any]) -> tuple[str | None, str | None, dict[str, str]]:
    metrics = configuration.get("metrics")
    for entry in metrics if isinstance(metrics, list) else []:
        stat = entry.get("metricStat") if isinstance(entry, dict) else None
        metric = stat.get("metric") if isinstance(stat, dict) else None
        if isinstance(metric, dict):
            raw_dims = metric.get("dimensions")
            dims: dict[str, Any] = raw_dims if isinstance(raw_dims, dict) else {}
            return (
                _str_or_none(metric.get("namespace")),
                _str_or_none(metric.get("name")),
                {str(k): str(v) for k, v in dims.items()},
            )
    return None, None, {}


def _sns_dimensions(listed: Any) -> dict[str, str]:
    """SNS lists dimensions as [{"name": ..., "value": ...}] (some senders capitalise the keys)."""
    dimensions: dict[str, str] = {}
    for item in listed if isinstance(listed, list) else []:
        if isinstance(item, dict):
            name, value = item.get("name", item.get("Name")), item.get("value", item.get("Value"))
            if name is not None:
                dimensions[str(name)] = str(value)
    return dimensions


def _sns_metric(trigger: dict[str, Any]) -> tuple[str | None, str | None, dict[str, str]]:
    """The alarm's metric as SNS carries it: at the top of `Trigger` for a single-metric alarm,
    under `Trigger.Metrics[].MetricStat.Metric` for a metric-math one (the first metric read),
    so a namespace or metric route matches through SNS as it does through EventBridge."""
    if trigger.get("Namespace") is not None or trigger.get("MetricName") is not None:
        return (
            _str_or_none(trigger.get("Namespace")),
            _str_or_none(trigger.get("MetricName")),
            _sns_dimensions(trigger.get("Dimensions")),
        )
    metrics = trigger.get("Metrics")
    for entry in metrics if isinstance(metrics, list) else []:
        stat = entry.get("MetricStat") if isinstance(entry, dict) else None
        metric = stat.get("Metric") if isinstance(stat, dict) else None
        if isinstance(metric, dict):
            return (
                _str_or_none(metric.get("Namespace")),
                _str_or_none(metric.get("MetricName")),
                _sns_dimensions(metric.get("Dimensions")),
            )
    return None, None, {}


def _str_or_none(value: Any) -> str | None:
    return str(value) if value is not None else None


# --------------------------------------------------------------------------- routing


def _matches(route: Route, alert: Incoming) -> bool:
    match = route.match
    if match.source is not None and match.source != alert.source:
        return False
    if any(alert.labels.get(key) != value for key, value in match.labels.items()):
        return False
    if match.alarm_name is not None and not re.search(match.alarm_name, alert.name):
        return False
    if match.namespace is not None and match.namespace != alert.namespace:
        return False
    if match.region is not None and match.region != alert.region:
        return False
    return match.metric is None or match.metric == alert.metric


def _severity(policy: Policy, route: Route, alert: Incoming) -> Severity | None:
    if route.severity is not None:
        return route.severity
    label = (alert.severity_label or "").strip()
    if label.upper() in Severity.__members__:
        return Severity(label.upper())
    return policy.severity_labels.get(label.lower())


# What one alert's labels may carry into a run. Routing reads them all first; the run keeps
# them only to show. Without a cap, one Alertmanager request of 1000 alerts that share 40 KiB
# of common labels put 40 MB into one incident's history.
MAX_LABELS_BYTES = 2048
_FIRST_LABELS = ("alertname", "alarm_name", "severity", "service", "region", "kind")


def cap_labels(labels: dict[str, str], budget: int = MAX_LABELS_BYTES) -> dict[str, str]:
    """The labels within `budget` characters (keys cut to 128, values to 256), the ones that
    name the alert first; when some are left out, `labels_left_out` says how many."""
    kept: dict[str, str] = {}
    used = 0
    ordered = [k for k in _FIRST_LABELS if k in labels] + [k for k in labels if k not in _FIRST_LABELS]
    for key in ordered:
        short_key, value = key[:128], labels[key][:256]
        if used + len(short_key) + len(value) > budget:
            break
        kept[short_key] = value
        used += len(short_key) + len(value)
    if len(kept) < len(labels):
        kept["labels_left_out"] = str(len(labels) - len(kept))
    return kept


def route(policy: Policy, alert: Incoming, received_at: datetime) -> tuple[Alert, Route] | None:
    """The first route that matches and names a known service; None: no route takes it."""
    for candidate in policy.routes:
        if not _matches(candidate, alert):
            continue
        service = candidate.service or alert.labels.get("service")
        if service not in policy.services:
            continue
        if candidate.runbook == "scaling" and (policy.scaling is None or service not in policy.scaling.limits):
            continue  # a service that is never scaled: a later route may still take the alert
        if candidate.runbook == "failover" and (policy.failover is None or service not in policy.failover.services):
            continue  # a service that never fails over: likewise
        region = candidate.region or policy.services[service].region
        if candidate.runbook == "bedrock" and (policy.bedrock is None or region not in policy.bedrock.regions):
            continue  # a region whose Bedrock use the policy does not know: likewise
        routed = Alert(
            source=alert.source,
            service=service,
            region=region,
            summary=(alert.summary or alert.name or f"{alert.source} alert")[:1024],
            severity=_severity(policy, candidate, alert),
            status=alert.status,
            kind=candidate.kind or alert.kind,
            labels=cap_labels(alert.labels),
            raised_by=alert.source,
            received_at=received_at,
            delivery_id=alert.delivery_id[:512] if alert.delivery_id else None,
            fingerprint=alert.fingerprint[:512] if alert.fingerprint else None,
        )
        return routed, candidate
    return None
