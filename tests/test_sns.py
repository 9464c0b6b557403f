"""SNS HTTP/S intake: signature verification, certificate URL checks, CloudWatch decoding."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from intake import sns
from intake.sns import (
    CertificateStore,
    SnsError,
    SnsVerifier,
    cloudwatch_alarm,
    string_to_sign,
)
from tests.sns_signing import (
    TOPIC_ARN,
    alarm_subject,
    cert_url_for,
    cloudwatch_alarm_message,
    identity,
    make_identity,
    notification,
    sign,
    subscription_confirmation,
    unsubscribe_confirmation,
)

OTHER_TOPIC = "arn:aws:sns:eu-central-1:123456789012:other-alerts"


class CountingFetch:
    """An async fetch serving fixed PEMs by URL and recording every call."""

    def __init__(self, pems: dict[str, bytes] | None = None) -> None:
        self.pems = pems if pems is not None else {identity().cert_url: identity().cert_pem}
        self.calls: list[str] = []

    async def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        await asyncio.sleep(0)  # let concurrent callers pile up behind the first
        try:
            return self.pems[url]
        except KeyError:
            raise httpx.HTTPStatusError(
                "404", request=httpx.Request("GET", url), response=httpx.Response(404)
            ) from None


@pytest.fixture
def fetch() -> CountingFetch:
    return CountingFetch()


@pytest.fixture
def verifier(fetch: CountingFetch) -> SnsVerifier:
    return SnsVerifier([TOPIC_ARN, OTHER_TOPIC], CertificateStore(fetch=fetch))


async def rejects(verifier: SnsVerifier, message: dict, reason: str) -> SnsError:
    with pytest.raises(SnsError) as caught:
        await verifier.verify(message)
    assert caught.value.reason == reason, str(caught.value)
    return caught.value


# --- string to sign -----------------------------------------------------------------


def test_string_to_sign_notification_with_subject() -> None:
    message = {
        "Type": "Notification",
        "MessageId": "4d4dc071-ddbf-465d-bba8-08f81c89da64",
        "TopicArn": TOPIC_ARN,
        "Subject": "My subject",
        "Message": "line one\nline two",
        "Timestamp": "2019-01-31T04:37:04.321Z",
        "SignatureVersion": "1",
        "UnsubscribeURL": "https://sns.eu-central-1.amazonaws.com/?Action=Unsubscribe",
    }
    assert string_to_sign(message) == (
        b"Message\nline one\nline two\n"
        b"MessageId\n4d4dc071-ddbf-465d-bba8-08f81c89da64\n"
        b"Subject\nMy subject\n"
        b"Timestamp\n2019-01-31T04:37:04.321Z\n"
        b"TopicArn\narn:aws:sns:eu-central-1:123456789012:runbook-alerts\n"
        b"Type\nNotification\n"
    )


@pytest.mark.parametrize("subject", ["absent", None])
def test_string_to_sign_notification_without_subject(subject: str | None) -> None:
    message: dict[str, str | None] = {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": TOPIC_ARN,
        "Message": "ünïcode",
        "Timestamp": "2019-01-31T04:37:04.321Z",
    }
    if subject is None:
        message["Subject"] = None  # some relays render a missing Subject as null
    assert (
        string_to_sign(message)
        == (
            "Message\nünïcode\nMessageId\nm-1\nTimestamp\n2019-01-31T04:37:04.321Z\n"
            f"TopicArn\n{TOPIC_ARN}\nType\nNotification\n"
        ).encode()
    )


@pytest.mark.parametrize("kind", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
def test_string_to_sign_confirmations(kind: str) -> None:
    message = {
        "Type": kind,
        "MessageId": "m-2",
        "Token": "233abc",
        "TopicArn": TOPIC_ARN,
        "Message": "You have chosen...",
        "SubscribeURL": "https://sns.eu-central-1.amazonaws.com/?Action=ConfirmSubscription&Token=233abc",
        "Timestamp": "2019-01-31T19:25:13.719Z",
        "Subject": "not signed for confirmations",
    }
    assert (
        string_to_sign(message)
        == (
            "Message\nYou have chosen...\nMessageId\nm-2\n"
            "SubscribeURL\nhttps://sns.eu-central-1.amazonaws.com/?Action=ConfirmSubscription&Token=233abc\n"
            "Timestamp\n2019-01-31T19:25:13.719Z\nToken\n233abc\n"
            f"TopicArn\n{TOPIC_ARN}\nType\n{kind}\n"
        ).encode()
    )


def test_string_to_sign_names_missing_field_and_unknown_type() -> None:
    message = notification()
    del message["MessageId"]
    with pytest.raises(SnsError, match="MessageId") as caught:
        string_to_sign(message)
    assert caught.value.reason == "missing-field"
    with pytest.raises(SnsError, match="Bogus") as caught:
        string_to_sign({**notification(), "Type": "Bogus"})
    assert caught.value.reason == "unknown-type"


# --- accepted messages --------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("subject", [None, 'ALARM: "latency" in EU (Frankfurt)'])
async def test_valid_notification_accepted(
    verifier: SnsVerifier, fetch: CountingFetch, version: str, subject: str | None
) -> None:
    message = sign(notification(message="hello\nworld", subject=subject), version=version)
    assert ("Subject" in message) == (subject is not None)
    await verifier.verify(message)
    assert fetch.calls == [identity().cert_url]


@pytest.mark.parametrize("build", [subscription_confirmation, unsubscribe_confirmation])
@pytest.mark.parametrize("version", ["1", "2"])
async def test_confirmations_accepted(verifier: SnsVerifier, build, version: str) -> None:
    await verifier.verify(sign(build(), version=version))


async def test_round_trips_through_json(verifier: SnsVerifier) -> None:
    # What the HTTP handler will do: the body is JSON text, with \n escaped inside strings.
    body = json.dumps(sign(notification(message='{"a": "b\\n"}\r\n', subject="s\nt")))
    await verifier.verify(json.loads(body))


async def test_any_topic_wildcard(fetch: CountingFetch) -> None:
    verifier = SnsVerifier(["*"], CertificateStore(fetch=fetch))
    await verifier.verify(sign(notification(topic_arn="arn:aws:sns:us-east-1:999999999999:anything")))


# --- tampering ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Message", "hello world!"),
        ("Subject", "ALARM: something else"),
        ("Timestamp", "2030-01-01T00:00:00.000Z"),
        ("MessageId", "00000000-0000-0000-0000-000000000000"),
        ("TopicArn", OTHER_TOPIC),  # allowed, but not the topic it was signed for
    ],
)
@pytest.mark.parametrize("version", ["1", "2"])
async def test_tampered_notification_rejected(verifier: SnsVerifier, field: str, value: str, version: str) -> None:
    message = sign(notification(subject="original"), version=version)
    message[field] = value
    await rejects(verifier, message, "bad-signature")


async def test_subject_added_or_removed_rejected(verifier: SnsVerifier) -> None:
    without = sign(notification())
    await rejects(verifier, {**without, "Subject": "injected"}, "bad-signature")
    with_subject = sign(notification(subject="kept"))
    del with_subject["Subject"]
    await rejects(verifier, with_subject, "bad-signature")


@pytest.mark.parametrize("field", ["Token", "SubscribeURL", "Message"])
async def test_tampered_confirmation_rejected(verifier: SnsVerifier, field: str) -> None:
    message = sign(subscription_confirmation())
    message[field] += "x"
    await rejects(verifier, message, "bad-signature")


async def test_version_relabelled_rejected(verifier: SnsVerifier) -> None:
    # A SHA1 signature presented as version 2 (and back) must not verify.
    v1 = sign(notification(), version="1")
    await rejects(verifier, {**v1, "SignatureVersion": "2"}, "bad-signature")
    v2 = sign(notification(), version="2")
    await rejects(verifier, {**v2, "SignatureVersion": "1"}, "bad-signature")


async def test_signed_by_another_key_rejected(verifier: SnsVerifier) -> None:
    await rejects(verifier, sign(notification(), key=make_identity().key), "bad-signature")


@pytest.mark.parametrize("signature", ["not base64!", "QUJD=Rw==", ""])
async def test_signature_not_base64_rejected_without_fetch(
    verifier: SnsVerifier, fetch: CountingFetch, signature: str
) -> None:
    message = {**sign(notification()), "Signature": signature}
    await rejects(verifier, message, "bad-signature")
    assert fetch.calls == []


# --- certificate URL ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://sns.evil.com/SimpleNotificationService-abc.pem", "cert-host"),
        ("https://amazonaws.com.evil.com/SimpleNotificationService-abc.pem", "cert-host"),
        ("https://sns.eu-central-1.amazonaws.com.evil.com/cert.pem", "cert-host"),
        ("https://sns.eu-central-1.amazonaws.com.cn.evil.com/cert.pem", "cert-host"),
        ("https://evilsns.eu-central-1.amazonaws.com/cert.pem", "cert-host"),
        ("https://s3.amazonaws.com/sns.eu-central-1.amazonaws.com/cert.pem", "cert-host"),
        ("https://sns.eu_central.amazonaws.com/cert.pem", "cert-host"),
        ("https://127.0.0.1/cert.pem", "cert-host"),
        ("http://sns.eu-central-1.amazonaws.com/SimpleNotificationService-abc.pem", "cert-url"),
        ("ftp://sns.eu-central-1.amazonaws.com/cert.pem", "cert-url"),
        ("//sns.eu-central-1.amazonaws.com/cert.pem", "cert-url"),
        ("https://sns.eu-central-1.amazonaws.com@evil.com/cert.pem", "cert-url"),
        ("https://evil.com\\@sns.eu-central-1.amazonaws.com/cert.pem", "cert-url"),
        ("https://sns.eu-central-1.amazonaws.com:8443/cert.pem", "cert-url"),
        ("https://sns.eu-central-1.amazonaws.com:99999/cert.pem", "cert-url"),
        ("https://sns.eu-central-1.amazonaws.com/cert.txt", "cert-url"),
        ("https://sns.eu-central-1.amazonaws.com/cert.pem?x=1", "cert-url"),
        ("https://sns.eu-central-1.amazonaws.com/cert.pem#frag", "cert-url"),
        ("not a url", "cert-url"),
    ],
)
async def test_bad_cert_url_rejected_before_fetch(
    verifier: SnsVerifier, fetch: CountingFetch, url: str, reason: str
) -> None:
    message = sign(notification(), cert_url=url)
    error = await rejects(verifier, message, reason)
    assert "SigningCertURL" in str(error)
    assert fetch.calls == []


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123abcd.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-0123abcd.pem",
        "https://SNS.EU-CENTRAL-1.AMAZONAWS.COM/SimpleNotificationService-0123abcd.pem",
        "https://sns.eu-central-1.amazonaws.com:443/SimpleNotificationService-0123abcd.pem",
    ],
)
def test_sns_cert_urls_pass_the_check(url: str) -> None:
    CertificateStore().check_url(url)


@pytest.mark.parametrize("pattern", [r"sns\.test", re.compile(r"sns\.test")])
async def test_custom_host_pattern(pattern: str | re.Pattern[str]) -> None:
    url = "https://sns.test/SimpleNotificationService-local.pem"
    fetch = CountingFetch({url: identity().cert_pem})
    verifier = SnsVerifier([TOPIC_ARN], CertificateStore(pattern, fetch=fetch))
    await verifier.verify(sign(notification(), cert_url=url))
    # The custom pattern replaces the default; it does not widen it.
    await rejects(verifier, sign(notification()), "cert-host")


async def test_preloaded_certificate_needs_no_fetch() -> None:
    def no_network(url: str) -> bytes:
        raise AssertionError(f"fetched {url}")

    store = CertificateStore(fetch=no_network, preloaded={identity().cert_url: identity().cert_pem})
    await SnsVerifier([TOPIC_ARN], store).verify(sign(notification()))


def test_preloaded_url_is_still_checked() -> None:
    with pytest.raises(SnsError) as caught:
        CertificateStore(preloaded={"https://sns.evil.com/c.pem": identity().cert_pem})
    assert caught.value.reason == "cert-host"


# --- topic, version, fields ---------------------------------------------------------


async def test_unknown_topic_rejected_without_fetch(verifier: SnsVerifier, fetch: CountingFetch) -> None:
    topic = "arn:aws:sns:eu-central-1:210987654321:someone-elses-topic"
    error = await rejects(verifier, sign(notification(topic_arn=topic)), "unknown-topic")
    assert topic in str(error)
    assert fetch.calls == []


async def test_empty_allow_list_rejects_everything(fetch: CountingFetch) -> None:
    await rejects(SnsVerifier([], CertificateStore(fetch=fetch)), sign(notification()), "unknown-topic")


@pytest.mark.parametrize("version", ["3", "0", "", "1.0", "SHA256"])
async def test_unknown_signature_version_rejected(verifier: SnsVerifier, fetch: CountingFetch, version: str) -> None:
    error = await rejects(verifier, sign(notification(), version=version), "unknown-signature-version")
    assert "SignatureVersion" in str(error)
    assert fetch.calls == []


@pytest.mark.parametrize(
    "field",
    ["Type", "Message", "MessageId", "Timestamp", "TopicArn", "Signature", "SignatureVersion", "SigningCertURL"],
)
async def test_missing_notification_field_named(verifier: SnsVerifier, fetch: CountingFetch, field: str) -> None:
    message = sign(notification())
    del message[field]
    error = await rejects(verifier, message, "missing-field")
    assert repr(field) in str(error)
    assert fetch.calls == []


@pytest.mark.parametrize("field", ["Token", "SubscribeURL"])
async def test_missing_confirmation_field_named(verifier: SnsVerifier, field: str) -> None:
    message = sign(subscription_confirmation())
    del message[field]
    error = await rejects(verifier, message, "missing-field")
    assert repr(field) in str(error)


async def test_non_string_field_named(verifier: SnsVerifier) -> None:
    message = {**sign(notification()), "SignatureVersion": 2}
    error = await rejects(verifier, message, "missing-field")
    assert "'SignatureVersion'" in str(error) and "int" in str(error)


async def test_body_not_an_object(verifier: SnsVerifier) -> None:
    await rejects(verifier, [notification()], "missing-field")  # type: ignore[arg-type]


async def test_unknown_type_rejected(verifier: SnsVerifier) -> None:
    await rejects(verifier, sign({**notification(), "Type": "Notice"}), "unknown-type")


# --- certificate cache and fetching ----------------------------------------------------


async def test_fetch_called_once_per_url(verifier: SnsVerifier, fetch: CountingFetch) -> None:
    for _ in range(3):
        await verifier.verify(sign(notification()))
    await verifier.verify(sign(subscription_confirmation()))
    assert fetch.calls == [identity().cert_url]


async def test_concurrent_verifications_share_one_fetch(verifier: SnsVerifier, fetch: CountingFetch) -> None:
    await asyncio.gather(*(verifier.verify(sign(notification())) for _ in range(10)))
    assert fetch.calls == [identity().cert_url]


async def test_each_url_fetched_separately_and_cache_is_bounded() -> None:
    pem = identity().cert_pem
    urls = [f"https://sns.eu-central-1.amazonaws.com/SimpleNotificationService-{i}.pem" for i in range(3)]
    fetch = CountingFetch(dict.fromkeys(urls, pem))
    verifier = SnsVerifier([TOPIC_ARN], CertificateStore(fetch=fetch, cache_size=2))
    for url in urls:
        await verifier.verify(sign(notification(), cert_url=url))
    assert fetch.calls == urls
    await verifier.verify(sign(notification(), cert_url=urls[2]))  # still cached
    await verifier.verify(sign(notification(), cert_url=urls[0]))  # evicted: least recently used
    assert fetch.calls == [*urls, urls[0]]


async def test_sync_fetch_function_supported() -> None:
    calls: list[str] = []

    def fetch(url: str) -> bytes:
        calls.append(url)
        return identity().cert_pem

    verifier = SnsVerifier([TOPIC_ARN], CertificateStore(fetch=fetch))
    await verifier.verify(sign(notification()))
    await verifier.verify(sign(notification()))
    assert calls == [identity().cert_url]


async def test_fetch_failure_is_not_cached(verifier: SnsVerifier, fetch: CountingFetch) -> None:
    saved, fetch.pems = fetch.pems, {}
    await rejects(verifier, sign(notification()), "cert-fetch")
    fetch.pems = saved
    await verifier.verify(sign(notification()))
    assert fetch.calls == [identity().cert_url, identity().cert_url]


def _ec_certificate_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-rsa")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("pem", [b"<html>not a certificate</html>", _ec_certificate_pem()])
async def test_bad_certificate_rejected(pem: bytes) -> None:
    fetch = CountingFetch({identity().cert_url: pem})
    await rejects(SnsVerifier([TOPIC_ARN], CertificateStore(fetch=fetch)), sign(notification()), "bad-cert")


class _MockedAsyncClient(httpx.AsyncClient):
    handler: httpx.MockTransport

    def __init__(self, **kwargs) -> None:
        super().__init__(transport=self.handler, **kwargs)


@pytest.fixture
def https_server(monkeypatch: pytest.MonkeyPatch):
    """Routes the default fetch's httpx client to an in-process handler."""
    requests: list[httpx.Request] = []

    def install(respond):
        def handler(request: httpx.Request) -> httpx.Response:
            requests.append(request)
            return respond(request)

        monkeypatch.setattr(_MockedAsyncClient, "handler", httpx.MockTransport(handler), raising=False)
        monkeypatch.setattr(sns.httpx, "AsyncClient", _MockedAsyncClient)
        return requests

    return install


async def test_default_fetch_gets_certificate(https_server) -> None:
    requests = https_server(lambda request: httpx.Response(200, content=identity().cert_pem))
    await SnsVerifier([TOPIC_ARN], CertificateStore()).verify(sign(notification()))
    assert [str(r.url) for r in requests] == [identity().cert_url]


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(404),
        httpx.Response(302, headers={"Location": "https://evil.com/cert.pem"}),
        httpx.Response(200, content=b"x" * (65 * 1024)),
    ],
)
async def test_default_fetch_refuses_errors_redirects_and_huge_bodies(https_server, response) -> None:
    requests = https_server(lambda request: response)
    await rejects(SnsVerifier([TOPIC_ARN], CertificateStore()), sign(notification()), "cert-fetch")
    assert len(requests) == 1  # the redirect was not followed


# --- timestamp freshness (optional) ----------------------------------------------------


async def test_max_age_off_by_default(verifier: SnsVerifier) -> None:
    await verifier.verify(sign(notification(at=datetime(2015, 6, 3, tzinfo=UTC))))


@pytest.mark.parametrize(
    ("age", "accepted"),
    [(timedelta(minutes=5), True), (timedelta(hours=2), False), (-timedelta(hours=2), False)],
)
async def test_max_age(fetch: CountingFetch, age: timedelta, accepted: bool) -> None:
    now = datetime(2025, 1, 1, 12, tzinfo=UTC)
    verifier = SnsVerifier([TOPIC_ARN], CertificateStore(fetch=fetch), max_age=timedelta(hours=1), clock=lambda: now)
    message = sign(notification(at=now - age))
    if accepted:
        await verifier.verify(message)
    else:
        await rejects(verifier, message, "stale-message")
        assert fetch.calls == []


# --- CloudWatch alarm -----------------------------------------------------------------


async def test_cloudwatch_alarm_end_to_end(verifier: SnsVerifier) -> None:
    body = cloudwatch_alarm_message(
        "demo-service-5xx",
        "ALARM",
        "AWS/ApplicationELB",
        "HTTPCode_Target_5XX_Count",
        {"LoadBalancer": "app/demo/0123456789abcdef", "TargetGroup": "targetgroup/demo/fedcba"},
    )
    message = sign(notification(message=body, subject=alarm_subject("demo-service-5xx")), version="1")
    await verifier.verify(message)
    alarm = cloudwatch_alarm(message)
    assert alarm["AlarmName"] == "demo-service-5xx"
    assert alarm["NewStateValue"] == "ALARM"
    assert alarm["Trigger"]["Namespace"] == "AWS/ApplicationELB"
    assert alarm["Trigger"]["MetricName"] == "HTTPCode_Target_5XX_Count"
    assert {d["name"]: d["value"] for d in alarm["Trigger"]["Dimensions"]} == {
        "LoadBalancer": "app/demo/0123456789abcdef",
        "TargetGroup": "targetgroup/demo/fedcba",
    }


@pytest.mark.parametrize(
    ("message", "named"),
    [
        ({"Type": "Notification", "Message": "CPU is high"}, "not JSON"),
        ({"Type": "Notification", "Message": "[1, 2]"}, "list"),
        ({"Type": "Notification", "Message": '"ALARM"'}, "str"),
        ({"Type": "Notification", "Message": '{"NewStateValue": "ALARM"}'}, "AlarmName"),
        ({"Type": "Notification", "Message": '{"AlarmName": "a"}'}, "NewStateValue"),
        ({"Type": "Notification", "Message": '{"AlarmName": "a", "NewStateValue": 3}'}, "NewStateValue"),
        ({"Type": "Notification"}, "Message"),
        (subscription_confirmation(), "SubscriptionConfirmation"),
    ],
)
def test_cloudwatch_alarm_errors(message: dict, named: str) -> None:
    with pytest.raises(SnsError, match=named) as caught:
        cloudwatch_alarm(message)
    assert caught.value.reason == "bad-message"


# --- cross-check against moto's SNS signer -----------------------------------------------


def _moto_post(subject: str | None) -> tuple[dict, bytes]:
    from moto import mock_aws
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import Subscription, sns_backends

    with mock_aws():
        backend = sns_backends[DEFAULT_ACCOUNT_ID]["eu-central-1"]
        topic = backend.create_topic("runbook-alerts")
        subscription = Subscription(DEFAULT_ACCOUNT_ID, topic, "https://intake.example/sns", "https")
        post = subscription.get_post_data("moto says hi", "moto-message-1", subject)
        key_name = post["SigningCertURL"].rsplit("/", 1)[1]
        return post, backend._message_public_keys[key_name]


async def test_moto_signature_verifies() -> None:
    post, pem = _moto_post(subject=None)
    verifier = SnsVerifier([post["TopicArn"]], CertificateStore(preloaded={post["SigningCertURL"]: pem}))
    await verifier.verify(post)


async def test_moto_signature_with_subject_fails_as_documented() -> None:
    # moto leaves Subject out of the string to sign; AWS signs it when present (see
    # shared/DESIGN.md). So moto's Subject-bearing notifications must fail here: that is
    # moto's gap, not something to relax in production code.
    post, pem = _moto_post(subject="hello")
    verifier = SnsVerifier([post["TopicArn"]], CertificateStore(preloaded={post["SigningCertURL"]: pem}))
    await rejects(verifier, post, "bad-signature")


def test_helper_cert_url_looks_like_sns() -> None:
    assert re.fullmatch(
        r"https://sns\.eu-central-1\.amazonaws\.com/SimpleNotificationService-[0-9a-f]{32}\.pem",
        cert_url_for(identity().cert_pem),
    )


# --- replays and the certificate's details (issue 9) ---------------------------------


async def test_the_intakes_verifier_refuses_a_message_signed_over_an_hour_ago(fetch: CountingFetch) -> None:
    from intake.app import IntakeConfig, sns_max_age
    from tests.policies import default_policy

    config = IntakeConfig.from_env(default_policy())
    assert config.sns_max_age == timedelta(hours=1)  # on by default
    verifier = SnsVerifier([TOPIC_ARN], CertificateStore(fetch=fetch), max_age=config.sns_max_age)
    await verifier.verify(sign(notification(at=datetime.now(UTC) - timedelta(minutes=50))))  # a late retry
    old = sign(notification(at=datetime(2024, 5, 1, tzinfo=UTC)))  # validly signed, in 2024
    assert "away from now" in str(await rejects(verifier, old, "stale-message"))
    assert sns_max_age("off") is None and sns_max_age("90m") == timedelta(minutes=90)
    with pytest.raises(ValueError, match="INTAKE_SNS_MAX_AGE"):
        sns_max_age("soon")


async def test_signature_version_2_only_refuses_sha1(fetch: CountingFetch) -> None:
    strict = SnsVerifier([TOPIC_ARN], CertificateStore(fetch=fetch), signature_versions=("2",))
    await strict.verify(sign(notification(), version="2"))
    await rejects(strict, sign(notification(), version="1"), "unknown-signature-version")


async def test_a_certificate_not_issued_to_sns_is_refused() -> None:
    imposter = make_identity(common_name="sns.amazonaws.com.evil.example")
    verifier = SnsVerifier([TOPIC_ARN], CertificateStore(fetch=CountingFetch({imposter.cert_url: imposter.cert_pem})))
    error = await rejects(verifier, sign(notification(), imposter.key, cert_url=imposter.cert_url), "bad-cert")
    assert "not to SNS" in str(error)


async def test_certificates_are_fetched_again_after_their_ttl(fetch: CountingFetch) -> None:
    now = [datetime(2026, 11, 23, tzinfo=UTC)]
    store = CertificateStore(fetch=fetch, ttl=timedelta(hours=24), clock=lambda: now[0])
    verifier = SnsVerifier([TOPIC_ARN], store)
    await verifier.verify(sign(notification()))
    now[0] += timedelta(hours=23)
    await verifier.verify(sign(notification()))
    assert len(fetch.calls) == 1  # cached
    now[0] += timedelta(hours=2)
    await verifier.verify(sign(notification()))
    assert len(fetch.calls) == 2  # past its TTL: fetched again (a rotated certificate is picked up)
