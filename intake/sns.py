"""Amazon SNS HTTP/S intake: signature verification and CloudWatch alarm decoding.

SNS POSTs a JSON document of type Notification, SubscriptionConfirmation or
UnsubscribeConfirmation. Nothing in it may be trusted until its signature has been
checked against the certificate named by SigningCertURL, and that URL may be trusted
only when it points at an SNS host over https. The order of checks in
`SnsVerifier.verify` is chosen so that a forged message costs no network request:
shape, topic, signature version and certificate URL are all checked before the
certificate is fetched.

Reasons carried by `SnsError.reason` (stable, for metrics and HTTP mapping):

- ``missing-field``: a required field is absent, or not a string
- ``unknown-type``: ``Type`` is not one of the three SNS message types
- ``unknown-topic``: ``TopicArn`` is not in the configured allow-list
- ``unknown-signature-version``: ``SignatureVersion`` is not "1" or "2"
- ``bad-signature``: ``Signature`` is not base64, or does not verify
- ``cert-url``: ``SigningCertURL`` is not https, has credentials/port/query, or no .pem path
- ``cert-host``: ``SigningCertURL``'s host does not match the SNS host pattern
- ``cert-fetch``: the certificate could not be downloaded (transient: answer 5xx so SNS retries)
- ``bad-cert``: the downloaded bytes are not a PEM certificate with an RSA key
- ``stale-message``: ``Timestamp`` is unparseable or outside ``max_age`` (only when enabled)
- ``bad-message``: the Notification's ``Message`` is not a CloudWatch alarm
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import json
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Regional SNS endpoints, including the China partition's `.amazonaws.com.cn`.
DEFAULT_HOST_PATTERN: Final = r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"
# Whom SNS signing certificates are issued to (CN): sns.amazonaws.com, or per region.
DEFAULT_SUBJECT_PATTERN: Final = r"^sns(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$"
DEFAULT_CERT_TTL: Final = timedelta(hours=24)  # a rotated certificate is fetched again within a day

# Allow-list entry that accepts every topic. For the local demo only: in production it
# lets anyone with an AWS account subscribe their own topic to the intake and page us.
ANY_TOPIC: Final = "*"

NOTIFICATION: Final = "Notification"
SUBSCRIPTION_CONFIRMATION: Final = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION: Final = "UnsubscribeConfirmation"

# Keys of the string to sign, per Type, in the byte order AWS documents.
# Subject is optional and only signed when the message carries it.
_CONFIRMATION_KEYS: Final = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
_SIGNED_KEYS: Final[dict[str, tuple[str, ...]]] = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIPTION_CONFIRMATION: _CONFIRMATION_KEYS,
    UNSUBSCRIBE_CONFIRMATION: _CONFIRMATION_KEYS,
}
_OPTIONAL_SIGNED_KEYS: Final = frozenset({"Subject"})
_ENVELOPE_KEYS: Final = ("SignatureVersion", "Signature", "SigningCertURL")

_HASHES: Final[dict[str, Callable[[], hashes.HashAlgorithm]]] = {
    "1": hashes.SHA1,  # SNS's default; weak, but it is what most topics still send
    "2": hashes.SHA256,
}

# A signing certificate is ~2 KiB; anything far larger is not one.
_MAX_CERT_BYTES: Final = 64 * 1024
_FETCH_TIMEOUT_S: Final = 5.0
_DEFAULT_CACHE_SIZE: Final = 32


class SnsError(ValueError):
    """A message that must not be acted on; `reason` is a short machine string."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _required_str(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    if value is None:
        raise SnsError("missing-field", f"SNS message has no {key!r} field")
    if not isinstance(value, str):
        kind = type(value).__name__
        raise SnsError("missing-field", f"SNS field {key!r} is {kind}, not a string")
    return value


def _message_type(message: Mapping[str, Any]) -> str:
    kind = _required_str(message, "Type")
    if kind not in _SIGNED_KEYS:
        known = sorted(_SIGNED_KEYS)
        raise SnsError("unknown-type", f"SNS message Type {kind!r} is not one of {known}")
    return kind


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The canonical bytes SNS signs: "Key\\nValue\\n" for each signed key of the Type."""
    kind = _message_type(message)
    parts: list[str] = []
    for key in _SIGNED_KEYS[kind]:
        # JSON null is treated as absent: that is how some relays render a missing Subject.
        if key in _OPTIONAL_SIGNED_KEYS and message.get(key) is None:
            continue
        parts.append(f"{key}\n{_required_str(message, key)}\n")
    return "".join(parts).encode("utf-8")


def _check_shape(message: Mapping[str, Any]) -> str:
    """Every field verification needs is a string; returns the Type."""
    if not isinstance(message, Mapping):
        kind = type(message).__name__
        raise SnsError("missing-field", f"SNS body is a JSON {kind}, not an object")
    kind = _message_type(message)
    for key in _SIGNED_KEYS[kind] + _ENVELOPE_KEYS:
        if key in _OPTIONAL_SIGNED_KEYS and message.get(key) is None:
            continue
        _required_str(message, key)
    return kind


FetchResult = bytes | Awaitable[bytes]
Fetch = Callable[[str], FetchResult]


async def fetch_https(url: str) -> bytes:
    """Default certificate download: short timeout, no redirects, size-capped."""
    # Redirects are refused because the host check applies to the URL we were given;
    # following one would let the certificate come from anywhere.
    async with httpx.AsyncClient(timeout=_FETCH_TIMEOUT_S, follow_redirects=False) as client:
        async with client.stream("GET", url) as response:
            response.raise_for_status()
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > _MAX_CERT_BYTES:
                    raise ValueError(f"certificate at {url} is larger than {_MAX_CERT_BYTES} bytes")
            return bytes(body)


def _parse_certificate(url: str, pem: bytes, subject: re.Pattern[str] | None = None) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise SnsError("bad-cert", f"SigningCertURL {url} gave no PEM certificate") from exc
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        raise SnsError("bad-cert", f"certificate at {url} does not hold an RSA key")
    if subject is not None:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
        if not any(subject.fullmatch(name) for name in names):
            raise SnsError("bad-cert", f"certificate at {url} is issued to {names or 'nobody'}, not to SNS")
    return cert


class CertificateStore:
    """SNS signing certificates by URL: URL checked first, then fetched once and cached.

    `fetch` may be sync or async and returns the PEM bytes; the default is `fetch_https`.
    `preloaded` maps URL -> PEM for tests and air-gapped deployments; those URLs must
    still pass the URL check, and are never evicted or fetched.
    """

    def __init__(
        self,
        host_pattern: str | re.Pattern[str] = DEFAULT_HOST_PATTERN,
        fetch: Fetch | None = None,
        preloaded: Mapping[str, bytes] | None = None,
        *,
        cache_size: int = _DEFAULT_CACHE_SIZE,
        subject_pattern: str = DEFAULT_SUBJECT_PATTERN,
        ttl: timedelta = DEFAULT_CERT_TTL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._host = re.compile(host_pattern) if isinstance(host_pattern, str) else host_pattern
        self._subject = re.compile(subject_pattern)
        self._fetch = fetch or fetch_https
        self._cache_size = cache_size
        self._ttl, self._clock = ttl, clock
        self._cache: OrderedDict[str, tuple[x509.Certificate, datetime]] = OrderedDict()
        self._pending: dict[str, asyncio.Task[x509.Certificate]] = {}
        self._preloaded: dict[str, x509.Certificate] = {}
        # Parsed eagerly so a bad PEM or URL in configuration fails at startup, not at 3 a.m.
        for url, pem in (preloaded or {}).items():
            self.check_url(url)
            self._preloaded[url] = _parse_certificate(url, pem, self._subject)

    def check_url(self, url: str) -> None:
        """Raise SnsError unless `url` is https on an SNS host with a .pem path."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise SnsError("cert-url", f"SigningCertURL {url!r} is not a URL") from exc
        if parts.scheme != "https":
            raise SnsError("cert-url", f"SigningCertURL {url!r} is not https")
        # Credentials in the authority are how `https://sns.x.amazonaws.com@evil/` and
        # backslash variants smuggle a trusted-looking name past naive parsers.
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise SnsError("cert-url", f"SigningCertURL {url!r} carries credentials")
        if port not in (None, 443):
            raise SnsError("cert-url", f"SigningCertURL {url!r} uses port {port}")
        host = parts.hostname or ""
        if not self._host.fullmatch(host):
            raise SnsError("cert-host", f"SigningCertURL host {host!r} is not an SNS host")
        if parts.query or parts.fragment or not parts.path.endswith(".pem"):
            raise SnsError("cert-url", f"SigningCertURL {url!r} is not a .pem file")

    async def get(self, url: str) -> x509.Certificate:
        """The certificate at `url`; checks the URL before any fetch."""
        self.check_url(url)
        if (cert := self._preloaded.get(url)) is not None:
            return cert
        if (cached := self._cache.get(url)) is not None:
            cert, fetched_at = cached
            if self._clock() - fetched_at < self._ttl:
                self._cache.move_to_end(url)
                return cert
            del self._cache[url]  # stale: fetched again below
        # Concurrent deliveries for one URL share a single download.
        task = self._pending.get(url)
        if task is None:
            task = asyncio.ensure_future(self._load(url))
            self._pending[url] = task
            task.add_done_callback(lambda done: self._settle(url, done))
        # Shielded: one cancelled request must not cancel the download others await.
        return await asyncio.shield(task)

    async def _load(self, url: str) -> x509.Certificate:
        try:
            result = self._fetch(url)
            pem = await result if inspect.isawaitable(result) else result
        except Exception as exc:  # any transport failure is the same to the caller
            raise SnsError("cert-fetch", f"could not fetch SigningCertURL {url}: {exc}") from exc
        cert = _parse_certificate(url, pem, self._subject)
        self._cache[url] = (cert, self._clock())
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return cert

    def _settle(self, url: str, task: asyncio.Task[x509.Certificate]) -> None:
        self._pending.pop(url, None)
        # Mark a failure as seen, so a download whose waiters all left logs no warning.
        if not task.cancelled():
            task.exception()


def _parse_timestamp(value: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError as exc:
        raise SnsError("stale-message", f"SNS Timestamp {value!r} is not ISO 8601") from exc
    if stamp.tzinfo is None:
        raise SnsError("stale-message", f"SNS Timestamp {value!r} has no time zone")
    return stamp


class SnsVerifier:
    """Verifies SNS HTTP/S messages against an allow-list of topic ARNs.

    `allowed_topics` holds TopicArns; the single entry "*" (ANY_TOPIC) accepts any
    topic and is meant for the local demo only. An empty collection rejects everything.

    `max_age` (off by default here; the intake sets an hour) rejects messages whose
    Timestamp is further than that from now, in either direction, so an old signed message
    cannot be replayed. SNS keeps the original Timestamp when it retries a delivery, so
    max_age must exceed the subscription's delivery-retry window, or retries of a genuine
    alarm will be refused. `signature_versions`: the versions accepted ("2" only: SHA256).
    """

    def __init__(
        self,
        allowed_topics: Collection[str],
        certificates: CertificateStore,
        *,
        max_age: timedelta | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        signature_versions: Collection[str] = ("1", "2"),
    ) -> None:
        self._topics = frozenset(allowed_topics)
        self._versions = frozenset(signature_versions)
        self._certificates = certificates
        self._max_age = max_age
        self._clock = clock

    async def verify(self, message: Mapping[str, Any]) -> None:
        """Return if `message` is genuine SNS for an allowed topic; raise SnsError if not."""
        _check_shape(message)
        self._check_topic(message["TopicArn"])
        algorithm = self._hash_for(message["SignatureVersion"])
        if message["SignatureVersion"] not in self._versions:
            raise SnsError(
                "unknown-signature-version",
                f"SignatureVersion {message['SignatureVersion']!r} is not accepted (only {sorted(self._versions)})",
            )
        signature = _decode_signature(message["Signature"])
        self._check_age(message["Timestamp"])
        cert = await self._certificates.get(message["SigningCertURL"])
        _verify_signature(cert, signature, string_to_sign(message), algorithm)

    def _check_topic(self, topic_arn: str) -> None:
        if ANY_TOPIC in self._topics or topic_arn in self._topics:
            return
        raise SnsError("unknown-topic", f"TopicArn {topic_arn!r} is not an allowed topic")

    @staticmethod
    def _hash_for(version: str) -> hashes.HashAlgorithm:
        if version not in _HASHES:
            raise SnsError(
                "unknown-signature-version",
                f"SignatureVersion {version!r} is not one of {sorted(_HASHES)}",
            )
        return _HASHES[version]()

    def _check_age(self, timestamp: str) -> None:
        if self._max_age is None:
            return
        skew = abs(self._clock() - _parse_timestamp(timestamp))
        if skew > self._max_age:
            raise SnsError("stale-message", f"SNS Timestamp {timestamp} is {skew} away from now")


def _decode_signature(value: str) -> bytes:
    try:
        signature = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SnsError("bad-signature", "SNS Signature is not valid base64") from exc
    if not signature:
        raise SnsError("bad-signature", "SNS Signature is empty")
    return signature


def _verify_signature(cert: x509.Certificate, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm) -> None:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):  # CertificateStore already refuses these
        raise SnsError("bad-cert", "signing certificate does not hold an RSA key")
    try:
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    except InvalidSignature as exc:
        raise SnsError("bad-signature", "SNS Signature does not match the message") from exc


def cloudwatch_alarm(message: Mapping[str, Any]) -> dict[str, Any]:
    """Decode the CloudWatch alarm state change carried as JSON in a Notification's Message.

    Call only after `SnsVerifier.verify`: this checks the alarm's shape, not its origin.
    """
    kind = message.get("Type", NOTIFICATION)
    if kind != NOTIFICATION:
        raise SnsError("bad-message", f"a {kind} carries no CloudWatch alarm")
    body = message.get("Message")
    if not isinstance(body, str):
        raise SnsError("bad-message", "SNS Notification has no string 'Message' field")
    try:
        alarm = json.loads(body)
    except json.JSONDecodeError as exc:
        raise SnsError("bad-message", f"SNS Message is not JSON: {exc.msg} at {exc.pos}") from exc
    if not isinstance(alarm, dict):
        kind = type(alarm).__name__
        raise SnsError("bad-message", f"SNS Message is a JSON {kind}, not an object")
    for key in ("AlarmName", "NewStateValue"):
        if not isinstance(alarm.get(key), str) or not alarm[key]:
            raise SnsError("bad-message", f"CloudWatch alarm has no {key!r} string")
    return alarm
