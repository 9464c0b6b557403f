"""The operator listener's guard (issue 9): a body limit on every route, the page's forms and the
sign-in service included, and the headers that keep the page out of frames and caches."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
import pytest

from intake.signin import MAX_BODY_BYTES, SECURITY_HEADERS
from tests.test_intake import intake_policy
from tests.test_signin import NOWHERE, PASSWORDS, operator_app, serving


@pytest.fixture
def url() -> object:
    with serving(operator_app(NOWHERE, "q", intake_policy("svc"))) as served:
        yield served


def test_an_oversized_login_form_or_json_body_is_413_and_signs_nobody_in(url: str) -> None:
    huge = "x" * (MAX_BODY_BYTES + 1)
    with httpx.Client(base_url=url, timeout=10) as http:
        form = http.post("/ui/login", data={"user": "alice", "password": PASSWORDS["alice"], "pad": huge})
        assert form.status_code == 413 and str(MAX_BODY_BYTES) in form.json()["error"]
        assert "set-cookie" not in form.headers
        api = http.post("/auth/login", json={"user": "alice", "password": PASSWORDS["alice"], "pad": huge})
        assert api.status_code == 413 and "token" not in api.text
        # within the limit: signed in as ever
        assert http.post("/auth/login", json={"user": "alice", "password": PASSWORDS["alice"]}).status_code == 200


def test_a_chunked_body_that_grows_past_the_limit_is_cut_off(url: str) -> None:
    """No Content-Length to refuse up front: the guard counts what arrives and stops reading."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as raw:
        raw.sendall(
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 16384
        sent = 0
        try:
            while sent < MAX_BODY_BYTES * 8:
                raw.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except OSError:
            pass  # the server stopped reading and closed: that is the point
        answer = raw.recv(4096)
    assert b" 413 " in answer.split(b"\r\n", 1)[0], answer[:200]


def test_every_answer_carries_the_security_headers(url: str) -> None:
    with httpx.Client(base_url=url, timeout=10) as http:
        for response in (http.get("/ui/login"), http.get("/auth/whoami"), http.get("/nowhere")):
            for name, value in SECURITY_HEADERS:
                assert response.headers.get(name.decode()) == value.decode(), (response.url, name)
        csp = http.get("/ui/login").headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp


def test_failed_sign_ins_are_throttled_per_name_and_per_client(url: str) -> None:
    with httpx.Client(base_url=url, timeout=10) as http:
        for _ in range(5):
            assert http.post("/auth/login", json={"user": "alice", "password": "guess"}).status_code == 401
        throttled = http.post("/auth/login", json={"user": "alice", "password": PASSWORDS["alice"]})
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
        assert "too many failed sign-ins" in throttled.json()["error"]
        # the same client is held back for other names too (it made the failures)
        assert http.post("/auth/login", json={"user": "bob", "password": PASSWORDS["bob"]}).status_code == 429
        form = http.post("/ui/login", data={"user": "bob", "password": PASSWORDS["bob"]}, follow_redirects=False)
        assert form.status_code == 303 and "too+many" in form.headers["location"]


def test_the_throttle_forgets_after_its_window_and_stays_bounded() -> None:
    from datetime import UTC, datetime, timedelta

    from intake.sessions import Throttle

    now = [datetime(2026, 11, 24, tzinfo=UTC)]
    throttle = Throttle(limit=3, window=timedelta(minutes=5), size=100, clock=lambda: now[0])
    for _ in range(3):
        throttle.failed("name:alice", "client:10.0.0.1")
    wait = throttle.wait("name:alice")
    assert wait is not None and 0 < wait <= 301
    assert throttle.wait("name:bob", "client:10.0.0.2") is None  # others are not held back
    now[0] += timedelta(minutes=5, seconds=1)
    assert throttle.wait("name:alice", "client:10.0.0.1") is None  # the window passed
    for n in range(10_000):  # an attacker cycling through names and addresses
        throttle.failed(f"name:u{n}", f"client:10.1.{n // 256}.{n % 256}")
    assert len(throttle.failures) <= 100
    throttle.failed("name:carol")
    throttle.succeeded("name:carol")
    assert "name:carol" not in throttle.failures
