"""What each alert sender posts, as documented by the sender; validated before anything else.

Unknown extra fields are allowed (senders add fields over time); missing or mistyped
required ones are refused with the field named.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


class Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --------------------------------------------------------------------------- Alertmanager


class AlertmanagerAlert(Lenient):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str | None = None
    fingerprint: str = Field(min_length=1, max_length=256)


class AlertmanagerWebhook(Lenient):
    """Alertmanager's webhook payload, version 4: one notification of a group of alerts."""

    version: Literal["4"]
    groupKey: str
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str | None = None
    alerts: list[AlertmanagerAlert] = Field(min_length=1, max_length=1000)


# --------------------------------------------------------------------------- EventBridge


class AlarmState(Lenient):
    value: Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
    reason: str = ""
    timestamp: datetime | None = None


class AlarmDetail(Lenient):
    alarmName: str = Field(min_length=1, max_length=255)
    state: AlarmState
    previousState: AlarmState | None = None
    configuration: dict[str, Any] = Field(default_factory=dict)


class EventBridgeAlarmEvent(Lenient):
    """An EventBridge "CloudWatch Alarm State Change" event, as an API destination sends it."""

    version: str = "0"
    id: str = Field(min_length=1, max_length=128)
    detail_type: Literal["CloudWatch Alarm State Change"] = Field(alias="detail-type")
    source: Literal["aws.cloudwatch"]
    account: str
    time: datetime
    region: str = Field(min_length=1)
    resources: list[str] = Field(default_factory=list)
    detail: AlarmDetail


class HealthDescription(Lenient):
    language: str = "en_US"
    latestDescription: str = ""


class AwsHealthDetail(Lenient):
    eventArn: str = Field(min_length=1, max_length=1600)
    service: str = Field(min_length=1, max_length=128)
    eventTypeCode: str = Field(min_length=1, max_length=256)
    eventTypeCategory: str = Field(min_length=1, max_length=64)  # issue, accountNotification, scheduledChange, ...
    eventScopeCode: str | None = None  # PUBLIC, ACCOUNT_SPECIFIC, NONE
    statusCode: Literal["open", "closed", "upcoming"]
    eventRegion: str | None = None  # the affected region (the event's `region` is where it was delivered)
    eventDescription: list[HealthDescription] = Field(default_factory=list, max_length=20)


class AwsHealthEvent(Lenient):
    """An EventBridge "AWS Health Event", as an API destination sends it."""

    version: str = "0"
    id: str = Field(min_length=1, max_length=128)
    detail_type: Literal["AWS Health Event"] = Field(alias="detail-type")
    source: Literal["aws.health"]
    account: str
    time: datetime
    region: str = Field(min_length=1)
    resources: list[str] = Field(default_factory=list)
    detail: AwsHealthDetail


class EventBridgeEvent(
    RootModel[Annotated[EventBridgeAlarmEvent | AwsHealthEvent, Field(discriminator="detail_type")]]
):
    """What the EventBridge endpoint takes, told apart by `detail-type`."""


# --------------------------------------------------------------------------- generic


class GenericAlert(BaseModel):
    """The documented generic alert, for senders with no endpoint of their own.

    `id` makes a retry of the same delivery change nothing; without it every POST counts.
    `severity` is P0-P3 or a label of the policy's `severity_labels` (critical, warning, ...).
    """

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, min_length=1, max_length=256)
    service: str = Field(min_length=1, max_length=128)
    summary: str = Field(min_length=1, max_length=1024)
    status: Literal["firing", "resolved"] = "firing"
    severity: str | None = Field(default=None, max_length=32)
    kind: str | None = Field(default=None, max_length=128)
    # Which alert this is across firing and resolved; a resolved one clears only its own.
    fingerprint: str | None = Field(default=None, min_length=1, max_length=256)
    region: str | None = Field(default=None, max_length=64)
    labels: dict[str, str] = Field(default_factory=dict)


# --------------------------------------------------------------------------- PagerDuty


class PagerDutyReference(Lenient):
    id: str | None = None
    summary: str | None = None
    type: str | None = None


class PagerDutyWebhookData(Lenient):
    id: str
    type: str
    incident_key: str | None = None
    status: str | None = None
    title: str | None = None


class PagerDutyWebhookEvent(Lenient):
    id: str = Field(min_length=1, max_length=128)
    event_type: str
    resource_type: str
    occurred_at: datetime
    agent: PagerDutyReference | None = None
    data: PagerDutyWebhookData


class PagerDutyWebhook(Lenient):
    """PagerDuty webhooks v3: one event per delivery."""

    event: PagerDutyWebhookEvent
