"""Test helpers that play Amazon SNS: a signing identity, message builders and `sign`.

The string to sign is built here independently of `intake.sns`, straight from the
field lists AWS documents, so the tests check the production code against the docs
rather than against itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

REGION = "eu-central-1"
ACCOUNT = "123456789012"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:runbook-alerts"

# Documented field order of the string to sign, per Type.
_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")


@dataclass(frozen=True)
class SigningIdentity:
    key: rsa.RSAPrivateKey
    cert_pem: bytes
    cert_url: str


def cert_url_for(cert_pem: bytes, region: str = REGION) -> str:
    """A SigningCertURL shaped like SNS's: a hex name under the regional endpoint."""
    digest = hashlib.sha256(cert_pem).hexdigest()[:32]
    return f"https://sns.{region}.amazonaws.com/SimpleNotificationService-{digest}.pem"


def make_identity(region: str = REGION, common_name: str | None = None) -> SigningIdentity:
    """A fresh RSA key and self-signed certificate, named like SNS's (or `common_name`)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name or f"sns.{region}.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    return SigningIdentity(key=key, cert_pem=pem, cert_url=cert_url_for(pem, region))


@cache
def identity() -> SigningIdentity:
    """The session's signing identity: RSA key generation is slow, so only once."""
    return make_identity()


def _canonical(message: Mapping[str, str]) -> bytes:
    keys = _NOTIFICATION_KEYS if message["Type"] == "Notification" else _CONFIRMATION_KEYS
    return "".join(f"{k}\n{message[k]}\n" for k in keys if k in message).encode()


def sign(
    message: Mapping[str, str],
    key: rsa.RSAPrivateKey | None = None,
    version: str = "2",
    *,
    cert_url: str | None = None,
) -> dict[str, str]:
    """A copy of `message` with Signature, SignatureVersion and SigningCertURL filled in.

    Version "1" signs with SHA1, anything else with SHA256 (so tests can label a
    message with a version the verifier must refuse).
    """
    key = key or identity().key
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signed = dict(message)
    signature = key.sign(_canonical(signed), padding.PKCS1v15(), algorithm)
    signed["SignatureVersion"] = version
    signed["Signature"] = base64.b64encode(signature).decode("ascii")
    signed["SigningCertURL"] = cert_url or identity().cert_url
    return signed


def _timestamp(at: datetime | None = None) -> str:
    # SNS writes UTC with milliseconds and a Z suffix.
    at = at or datetime.now(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _region_of(topic_arn: str) -> str:
    return topic_arn.split(":")[3]


def notification(
    topic_arn: str = TOPIC_ARN,
    message: str = "hello",
    subject: str | None = None,
    *,
    at: datetime | None = None,
) -> dict[str, str]:
    """An unsigned Notification as SNS POSTs it; Subject only when given, like SNS."""
    region = _region_of(topic_arn)
    body = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic_arn,
        "Message": message,
        "Timestamp": _timestamp(at),
        "UnsubscribeURL": (
            f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic_arn}:{uuid.uuid4()}"
        ),
    }
    if subject is not None:
        body["Subject"] = subject
    return body


def _confirmation(kind: str, topic_arn: str, text: str) -> dict[str, str]:
    region = _region_of(topic_arn)
    token = secrets.token_hex(64)
    return {
        "Type": kind,
        "MessageId": str(uuid.uuid4()),
        "Token": token,
        "TopicArn": topic_arn,
        "Message": text,
        "SubscribeURL": (
            f"https://sns.{region}.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={token}"
        ),
        "Timestamp": _timestamp(),
    }


def subscription_confirmation(topic_arn: str = TOPIC_ARN) -> dict[str, str]:
    text = (
        f"You have chosen to subscribe to the topic {topic_arn}.\n"
        "To confirm the subscription, visit the SubscribeURL included in this message."
    )
    return _confirmation("SubscriptionConfirmation", topic_arn, text)


def unsubscribe_confirmation(topic_arn: str = TOPIC_ARN) -> dict[str, str]:
    text = (
        f"You have chosen to deactivate subscription {topic_arn}:{uuid.uuid4()}.\n"
        "To cancel this operation and restore the subscription, "
        "visit the SubscribeURL included in this message."
    )
    return _confirmation("UnsubscribeConfirmation", topic_arn, text)


def cloudwatch_alarm_message(
    alarm_name: str = "demo-service-p95-latency",
    new_state: str = "ALARM",
    namespace: str = "AWS/ApplicationELB",
    metric: str = "TargetResponseTime",
    dimensions: Mapping[str, str] | None = None,
    *,
    region: str = REGION,
    account: str = ACCOUNT,
) -> str:
    """The JSON string CloudWatch puts in an SNS Message on an alarm state change."""
    old_state = "OK" if new_state != "OK" else "ALARM"
    changed = datetime.now(UTC)
    alarm = {
        "AlarmName": alarm_name,
        "AlarmDescription": f"{metric} out of bounds",
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": "2024-05-01T09:00:00.000+0000",
        "NewStateValue": new_state,
        "NewStateReason": (
            "Threshold Crossed: 3 out of the last 3 datapoints were greater than "
            "the threshold (0.5) (minimum 3 datapoints for OK -> ALARM transition)."
        ),
        # CloudWatch's own format here: milliseconds and a +0000 offset, not Z.
        "StateChangeTime": changed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{changed.microsecond // 1000:03d}+0000",
        "Region": "EU (Frankfurt)" if region == "eu-central-1" else region,
        "AlarmArn": f"arn:aws:cloudwatch:{region}:{account}:alarm:{alarm_name}",
        "OldStateValue": old_state,
        "OKActions": [],
        "AlarmActions": [f"arn:aws:sns:{region}:{account}:runbook-alerts"],
        "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": metric,
            "Namespace": namespace,
            "StatisticType": "Statistic",
            "Statistic": "AVERAGE",
            "Unit": None,
            "Dimensions": [{"value": v, "name": k} for k, v in (dimensions or {}).items()],
            "Period": 60,
            "EvaluationPeriods": 3,
            "DatapointsToAlarm": 3,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0.5,
            "TreatMissingData": "missing",
            "EvaluateLowSampleCountPercentile": "",
        },
    }
    return json.dumps(alarm)


def alarm_subject(alarm_name: str, new_state: str = "ALARM", region_name: str = "EU (Frankfurt)") -> str:
    """The Subject CloudWatch gives its SNS notifications."""
    return f'{new_state}: "{alarm_name}" in {region_name}'
