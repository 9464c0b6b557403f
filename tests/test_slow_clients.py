"""Slow and greedy clients against `python -m intake` itself, both listeners (issue 9): a 300 MB
login form costs no memory, a request head or body that does not arrive in time is cut off, and
each listener takes a bounded number of connections."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack.net import free_port, wait_for_http
from intake.limits import ListenerLimits, ListenerLimitsError
from intake.signin import MAX_BODY_BYTES
from settings import PROJECT_ROOT
from signing import write_key
from tests.conftest import _stop
from tests.test_signin import PASSWORDS, operators

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
# How late past its deadline a cut-off may come on a slow, busy machine: the upper bounds prove
# "cut off, not left hanging", the lower ones that the deadline is the one configured.
LATE = 10.0
MAX_CONNECTIONS = 8


@dataclass
class Intake:
    proc: subprocess.Popen[bytes]
    webhooks: tuple[str, int]
    operators: tuple[str, int]

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Intake]:
    tmp = tmp_path_factory.mktemp("intake")
    (tmp / "operators.json").write_text(json.dumps(operators()))
    (tmp / "none.toml").write_text("")
    for name in ("intake.pem", "signin.pem"):
        write_key(tmp / name)
    port, operator_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTAKE_", "SIGNIN_", "APPROVAL_", "OPERATOR_"))}
    env.update(
        APPROVAL_OPERATORS_FILE=str(tmp / "operators.json"),
        TEMPORAL_CONFIG_FILE=str(tmp / "none.toml"),
        TEMPORAL_ADDRESS="127.0.0.1:1",
        INTAKE_SIGNING_KEY=str(tmp / "intake.pem"),
        SIGNIN_SIGNING_KEY=str(tmp / "signin.pem"),
        INTAKE_PORT=str(port),
        OPERATOR_PORT=str(operator_port),
        INTAKE_GENERIC_TOKEN="generic-token",
        INTAKE_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        INTAKE_BODY_TIMEOUT=str(BODY_TIMEOUT),
        OPERATOR_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
    )
    proc = subprocess.Popen([sys.executable, "-m", "intake"], env=env, cwd=PROJECT_ROOT)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        wait_for_http(f"http://127.0.0.1:{operator_port}/healthz", timeout=60)
        yield Intake(proc, ("127.0.0.1", port), ("127.0.0.1", operator_port))
    finally:
        _stop(proc)


def closed_after(raw: socket.socket, limit: float) -> tuple[float, bytes]:
    """Reads until the server closes; how long that took and what it said (fails past `limit`)."""
    started = time.monotonic()
    raw.settimeout(limit)
    said = b""
    try:
        while chunk := raw.recv(65536):
            said += chunk
    except TimeoutError:
        pytest.fail(f"still open after {limit} s; said {said[:200]!r}")
    except ConnectionResetError:
        pass
    return time.monotonic() - started, said


def answer(raw: socket.socket) -> bytes:
    """One whole answer (head and Content-Length body) from a kept-alive connection."""
    said = b""
    while b"\r\n\r\n" not in said:
        said += raw.recv(65536)
    head, _, body = said.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
    while len(body) < length:
        body += raw.recv(65536)
    return said


def status(said: bytes) -> int:
    return int(said.split(b" ", 2)[1]) if said.startswith(b"HTTP/1.1 ") else 0


# --------------------------------------------------------------------------- oversized bodies


def flood(address: tuple[str, int], head: bytes, total: int, chunked: bool = False) -> bytes:
    """Sends `head` and up to `total` body bytes, as fast as the server takes them; its answer."""
    with socket.create_connection(address, timeout=10) as raw:
        raw.sendall(head)
        block, sent = b"x" * (1 << 20), 0
        try:
            while sent < total:
                raw.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block)
                sent += len(block)
        except OSError:
            pass  # the server answered and closed: it stopped reading, which is the point
        return closed_after(raw, 10)[1]


def test_a_300_mb_login_form_or_json_body_is_refused_without_growing_the_process(intake: Intake) -> None:
    """Issue 9: a 300 MB unauthenticated login form grew the intake to 391 MB."""
    size = 300 * 1024 * 1024
    before = intake.rss_kib()
    form = flood(
        intake.operators,
        b"POST /ui/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {size}\r\n\r\n".encode()
        + b"user=alice&password=",
        size,
    )
    assert status(form) == 413 and str(MAX_BODY_BYTES).encode() in form, form[:300]
    assert b"set-cookie" not in form.lower()
    chunked = flood(
        intake.operators,
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        size,
        chunked=True,
    )
    assert status(chunked) == 413 and b"token" not in chunked, chunked[:300]
    multipart = flood(
        intake.operators,
        b"POST /ui/login HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b'34\r\n--b\r\nContent-Disposition: form-data; name="user"\r\n\r\n\r\n',
        size,
        chunked=True,
    )
    assert status(multipart) == 413, multipart[:300]
    grown = intake.rss_kib() - before
    print(f"RSS {before} KiB before, grown by {grown} KiB after three 300 MB bodies")
    assert grown < 20 * 1024, f"the intake grew by {grown} KiB"
    with httpx.Client(base_url=f"http://{intake.operators[0]}:{intake.operators[1]}", timeout=10) as http:
        assert http.post("/auth/login", json={"user": "alice", "password": PASSWORDS["alice"]}).status_code == 200


# --------------------------------------------------------------------------- slow heads


@pytest.mark.parametrize("listener", ["webhooks", "operators"])
def test_a_client_that_sends_its_headers_a_byte_at_a_time_is_cut_off(intake: Intake, listener: str) -> None:
    """Slowloris: every byte arrives well within any idle timeout, the head never ends."""
    address = getattr(intake, listener)
    head = b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 10_000
    with socket.create_connection(address, timeout=10) as raw:
        started = time.monotonic()
        closed = False
        for byte in head:
            try:
                raw.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.05)
            if time.monotonic() - started > HEADER_TIMEOUT + LATE:
                break
        took, said = closed_after(raw, HEADER_TIMEOUT + LATE)
        took = time.monotonic() - started
    print(f"{listener}: a byte-a-time head cut off after {took:.2f} s")
    assert closed or said.startswith(b"HTTP/1.1 408"), said[:200]
    assert HEADER_TIMEOUT - 0.1 < took < HEADER_TIMEOUT + LATE


@pytest.mark.parametrize("listener", ["webhooks", "operators"])
def test_half_a_request_head_then_silence_is_cut_off(intake: Intake, listener: str) -> None:
    with socket.create_connection(getattr(intake, listener), timeout=10) as raw:
        started = time.monotonic()
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        took, said = closed_after(raw, HEADER_TIMEOUT + LATE)
    assert status(said) == 408 and HEADER_TIMEOUT - 0.1 < time.monotonic() - started < HEADER_TIMEOUT + LATE
    print(f"{listener}: half a head cut off after {took:.2f} s")


def test_a_connection_that_never_speaks_is_cut_off(intake: Intake) -> None:
    with socket.create_connection(intake.operators, timeout=10) as raw:
        took, said = closed_after(raw, HEADER_TIMEOUT + LATE)
    assert status(said) == 408 and took < HEADER_TIMEOUT + LATE


def test_a_kept_alive_connection_gets_the_deadline_for_its_next_head_too(intake: Intake) -> None:
    with socket.create_connection(intake.operators, timeout=10) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status(answer(raw)) == 200
        time.sleep(HEADER_TIMEOUT + 0.5)  # idle: uvicorn's keep-alive (5 s) lets it wait
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status(answer(raw)) == 200
        started = time.monotonic()
        raw.sendall(b"GET /healthz HTTP/1.1\r\n")  # and now half a head
        took, said = closed_after(raw, HEADER_TIMEOUT + LATE)
    assert status(said) == 408 and HEADER_TIMEOUT - 0.1 < time.monotonic() - started < HEADER_TIMEOUT + LATE


# --------------------------------------------------------------------------- large heads


@pytest.mark.parametrize("chunk", [1 << 20, 512], ids=["at-once", "in-pieces"])
@pytest.mark.parametrize("listener", ["webhooks", "operators"])
def test_a_request_head_over_16_kib_is_431_and_one_under_it_is_served(
    intake: Intake, listener: str, chunk: int
) -> None:
    """INTAKE_MAX_HEADER_BYTES (16 KiB by default) counts the request line and headers as the
    parser reads them, whether they come in one piece or many."""
    address = getattr(intake, listener)
    for padding, expected in ((15_000, 200), (17_000, 431)):
        head = f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: {'a' * padding}\r\n\r\n".encode()
        with socket.create_connection(address, timeout=10) as raw:
            for start in range(0, len(head), chunk):
                raw.sendall(head[start : start + chunk])
            said = answer(raw) if expected == 200 else closed_after(raw, 5)[1]
        assert status(said) == expected, said[:300]
        if expected == 431:
            assert b"larger than 16384 bytes" in said


def test_a_header_that_never_ends_is_431_at_the_limit_not_at_the_deadline(intake: Intake) -> None:
    """The parser is never fed more of a head than the limit: an endless header value is
    refused as soon as it passes 16 KiB, not held (and joined up) until the deadline."""
    with socket.create_connection(intake.webhooks, timeout=10) as raw:
        started = time.monotonic()
        raw.sendall(b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 40_000)
        took, said = closed_after(raw, HEADER_TIMEOUT + 3)
    assert status(said) == 431 and time.monotonic() - started < HEADER_TIMEOUT, said[:200]


@pytest.mark.parametrize("listener", ["webhooks", "operators"])
def test_blank_lines_after_an_answer_start_the_head_deadline(intake: Intake, listener: str) -> None:
    """llhttp skips blank lines between requests without a callback; they still count as the
    start of the next head, so a client cannot hold the connection with them."""
    with socket.create_connection(getattr(intake, listener), timeout=10) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status(answer(raw)) == 200
        started = time.monotonic()
        raw.sendall(b"\r\n")
        took, said = closed_after(raw, HEADER_TIMEOUT + 10)
    assert status(said) == 408 and HEADER_TIMEOUT - 0.1 < time.monotonic() - started


def test_a_body_that_ends_after_its_early_answer_leaves_the_connection_under_keep_alive(intake: Intake) -> None:
    """A refusal answered before the body came (a wrong token); the rest of the body then
    arrives: the connection is idle, and uvicorn's keep-alive (5 s) closes it."""
    with socket.create_connection(intake.webhooks, timeout=10) as raw:
        raw.sendall(
            b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10\r\n\r\n{}"
        )
        assert status(answer(raw)) == 403
        raw.sendall(b"12345678")  # the rest of the body, after the answer
        started = time.monotonic()
        took, said = closed_after(raw, 5 + 10)
    assert said == b"" and time.monotonic() - started > 4


# --------------------------------------------------------------------------- slow bodies


def slow_body(address: tuple[str, int], head: bytes) -> tuple[float, bytes]:
    """A head promising 1000 bytes, then a byte every 0.1 s: the server answers within its body
    timeout and closes."""
    with socket.create_connection(address, timeout=10) as raw:
        raw.sendall(head)
        started = time.monotonic()
        raw.setblocking(False)
        said = b""
        while time.monotonic() - started < BODY_TIMEOUT + LATE:
            try:
                said += raw.recv(65536)
                if said:
                    break
            except BlockingIOError:
                pass
            try:
                raw.send(b"x")
            except OSError:
                break
            time.sleep(0.1)
        raw.setblocking(True)
        took, rest = closed_after(raw, BODY_TIMEOUT + LATE)
        return time.monotonic() - started, said + rest


@pytest.mark.parametrize(
    ("listener", "head"),
    [
        (
            "webhooks",
            b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer generic-token\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        ),
        (
            "operators",
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        ),
        (
            "operators",
            b"POST /ui/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 1000\r\n\r\n",
        ),
    ],
    ids=["alert", "auth-login", "ui-login"],
)
def test_a_body_that_trickles_in_is_408_within_the_body_timeout(intake: Intake, listener: str, head: bytes) -> None:
    took, said = slow_body(getattr(intake, listener), head)
    print(f"{listener}: a trickling body answered {status(said)} after {took:.2f} s")
    assert status(said) == 408 and b"did not arrive within" in said, said[:300]
    assert BODY_TIMEOUT - 0.1 < took < BODY_TIMEOUT + LATE
    if listener == "operators":  # answered by the guard: the page's headers too
        assert b"x-frame-options: DENY" in said


# --------------------------------------------------------------------------- how many at once


def test_the_operator_listener_takes_a_bounded_number_of_connections(intake: Intake) -> None:
    idle = [socket.create_connection(intake.operators, timeout=10) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.1)
        with socket.create_connection(intake.operators, timeout=10) as raw:
            raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status(raw.recv(65536)) == 503
        for conn in idle:  # the silent ones are cut off by the head deadline
            closed_after(conn, HEADER_TIMEOUT + LATE)
    finally:
        for conn in idle:
            conn.close()
    time.sleep(0.1)
    with httpx.Client(timeout=10) as http:
        assert http.get(f"http://{intake.operators[0]}:{intake.operators[1]}/healthz").status_code == 200


def test_limits_come_from_the_environment_and_bad_values_name_their_variable() -> None:
    limits = ListenerLimits.from_env(
        "OPERATOR",
        100,
        {"INTAKE_HEADER_TIMEOUT": "2.5", "INTAKE_BODY_TIMEOUT": "7", "OPERATOR_MAX_CONNECTIONS": "12"},
    )
    assert (limits.header_timeout, limits.body_timeout, limits.max_connections) == (2.5, 7.0, 12)
    assert ListenerLimits.from_env("INTAKE", 1000, {}).max_connections == 1000
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ListenerLimitsError, match="INTAKE_BODY_TIMEOUT"):
            ListenerLimits.from_env("INTAKE", 1000, {"INTAKE_BODY_TIMEOUT": bad})
