"""The sign-in service on the operator listener: sessions, the trusted proxy, cookies, the
operators' API acting on a real incident on the dev server, and the CLI's session file."""

from __future__ import annotations

import contextlib
import io
import json
import os
import ssl
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts import Alert, IncidentStatus, Policy, Severity
from devstack.net import free_port
from devstack.pagerduty_emulator import ensure_self_signed_cert
from intake.app import create_app
from intake.handoff import Handoff
from intake.limits import BodyDeadline, ListenerLimits, guarded_protocol
from intake.operations import Operations
from intake.sessions import COOKIE, Sessions, SigninConfig, hash_password
from intake.signin import create_operator_app
from runbook_cli.main import CliError, parser, run
from settings import PROJECT_ROOT
from signing import Signer, write_key
from starter import open_or_join_incident
from tests.conftest import serve_app
from tests.fakes import FakePlatform, eventually
from tests.identity import INTAKE, OTHER, SIGNIN
from tests.test_intake import config_for, intake_policy
from workflows.incident_response import IncidentResponseWorkflow

PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "mallory": "mallory-password"}
NOWHERE = "127.0.0.1:1"  # a Temporal address for apps whose test never reaches Temporal


def operators() -> dict[str, str]:
    return {name: hash_password(password, rounds=1000) for name, password in PASSWORDS.items()}


def connecting(target: str) -> Callable[[], Any]:
    """A Temporal connection, made in the loop that serves the app (serve_app's thread)."""
    return lambda: Client.connect(target, data_converter=pydantic_data_converter)


def operator_app(
    target: str,
    task_queue: str,
    policy: Policy,
    signer: Signer = SIGNIN,
    sessions: Sessions | None = None,
    **config: Any,
) -> Starlette:
    """The operator listener's app as `python -m intake` builds it, with the test keys."""
    handoff = Handoff(connecting(target), task_queue, INTAKE)
    signin = SigninConfig(operators=operators(), **config)
    return create_operator_app(signin, Operations(handoff, signer, policy), sessions)


@contextlib.contextmanager
def serving(app: Starlette, **options: Any) -> Iterator[str]:
    """As `python -m intake` serves it: without uvicorn's proxy headers, with its listener limits."""
    limits = ListenerLimits(max_connections=100)
    with serve_app(
        BodyDeadline(app, limits.body_timeout),
        proxy_headers=False,
        http=guarded_protocol(limits),
        timeout_keep_alive=limits.keep_alive,
        limit_concurrency=limits.max_connections,
        **options,
    ) as url:
        yield url


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


async def login(http: httpx.AsyncClient, user: str, password: str | None = None) -> httpx.Response:
    return await http.post("/auth/login", json={"user": user, "password": password or PASSWORDS[user]})


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------- sessions


async def test_login_whoami_logout_and_logout_revokes_at_once() -> None:
    clock = Clock()
    app = operator_app(NOWHERE, "unused", intake_policy("svc"), sessions=Sessions(clock=clock))
    with serving(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            wrong = await login(http, "bob", "guess")
            assert wrong.status_code == 401 and wrong.json()["error"] == "wrong name or password"
            nobody = await login(http, "nobody", "guess")
            assert nobody.status_code == 401 and nobody.json()["error"] == "wrong name or password"
            missing = await http.post("/auth/login", json={"user": "bob"})
            assert missing.status_code == 422 and missing.json()["field"] == "password"

            signed = await login(http, "bob")
            assert signed.status_code == 200, signed.text
            token = signed.json()["token"]
            assert signed.json()["user"] == "bob"
            expires = datetime.fromisoformat(signed.json()["expires_at"])
            assert expires - clock.now == timedelta(hours=8)
            assert (await http.get("/auth/whoami", headers=bearer(token))).json()["user"] == "bob"
            other = (await login(http, "bob")).json()["token"]
            assert other != token  # a session per sign-in

            out = await http.post("/auth/logout", headers=bearer(token))
            assert out.status_code == 200 and "bob" in out.json()["message"]
            revoked = await http.get("/auth/whoami", headers=bearer(token))
            assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]
            assert (await http.get("/auth/whoami", headers=bearer(other))).status_code == 200  # only that one

            clock.now += timedelta(hours=8, seconds=1)
            expired = await http.get("/auth/whoami", headers=bearer(other))
            assert expired.status_code == 401 and "expired" in expired.json()["error"]
            anonymous = await http.get("/auth/whoami")
            assert anonymous.status_code == 401 and "Authorization: Bearer" in anonymous.json()["error"]


def test_only_a_digest_of_each_token_is_kept_and_each_session_has_its_csrf_token() -> None:
    sessions = Sessions()
    token, session = sessions.open("bob")
    kept = vars(sessions)["_sessions"]
    assert token not in kept and token not in json.dumps([str(s) for s in kept.values()])
    assert sessions.get(token) == session and sessions.get(token + "x") is None
    _, again = sessions.open("bob")
    assert again.csrf != session.csrf  # per session, not per person (the page's forms: test_approval_page)


async def test_the_webhook_listener_serves_no_page_sign_in_or_api() -> None:
    app = create_app(config_for(intake_policy("svc")), Handoff(connecting(NOWHERE), "unused", INTAKE))
    forged = {"x-forwarded-user": "demo-lead"}
    with serve_app(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            for method, path in [
                ("GET", "/ui"),
                ("GET", "/ui/login"),
                ("POST", "/ui/approve"),
                ("POST", "/auth/login"),
                ("GET", "/auth/whoami"),
                ("POST", "/api/v1/runs/approve"),
                ("POST", "/api/v1/incidents"),
            ]:
                answer = await http.request(method, path, headers=forged, json={"workflow_id": "x"})
                assert answer.status_code == 404, (method, path, answer.text)
                assert "no such endpoint" in answer.json()["error"]


async def test_a_trusted_header_is_believed_only_from_the_trusted_proxies() -> None:
    header = {"x-forwarded-user": "bob"}
    elsewhere = operator_app(
        NOWHERE, "unused", intake_policy("svc"), trusted_header="X-Forwarded-User", trusted_proxies={"192.0.2.7"}
    )
    with serving(elsewhere) as url:  # the test's 127.0.0.1 is not the proxy here
        async with httpx.AsyncClient(base_url=url) as http:
            for method, path in [
                ("GET", "/ui"),
                ("POST", "/ui/approve"),
                ("POST", "/auth/login"),
                ("GET", "/auth/whoami"),
                ("POST", "/api/v1/runs/approve"),
            ]:
                answer = await http.request(method, path, headers=header, json={"workflow_id": "x"})
                assert answer.status_code == 403, (method, path, answer.text)
                assert "APPROVAL_TRUSTED_PROXIES" in answer.text and "127.0.0.1" in answer.text
                assert COOKIE not in answer.headers.get("set-cookie", "")

    proxied = operator_app(NOWHERE, "unused", intake_policy("svc"), trusted_header="X-Forwarded-User")
    with serving(proxied) as url:  # default proxies: 127.0.0.1 and ::1
        async with httpx.AsyncClient(base_url=url) as http:
            page = await http.get("/ui/incident", headers=header)  # no id: an error page, but signed in
            assert '<b id="user">bob</b>' in page.text
            assert COOKIE in page.headers["set-cookie"]  # a session of its own, for its CSRF token
            again = await http.get("/ui/incident", headers=header)
            assert "set-cookie" not in again.headers  # the same session
            token = (await http.post("/auth/login", headers=header, json={})).json()["token"]
            assert (await http.get("/auth/whoami", headers=bearer(token))).json()["user"] == "bob"
        async with httpx.AsyncClient(base_url=url) as http:  # no header, no cookie: the sign-in form
            assert (await http.get("/ui")).headers["location"] == "/ui/login"
            assert (await http.get("/auth/whoami")).status_code == 401


def cookie_of(response: httpx.Response) -> str:
    (line,) = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}=")]
    return line.lower()


async def test_cookies_are_http_only_strict_and_secure_behind_a_tls_proxy(tmp_path: Path) -> None:
    form = {"user": "bob", "password": PASSWORDS["bob"]}
    tls = {"x-forwarded-proto": "https"}
    policy = intake_policy("svc")
    with serving(operator_app(NOWHERE, "unused", policy)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            plain = cookie_of(await http.post("/ui/login", data=form))
            assert "httponly" in plain and "samesite=strict" in plain and "secure" not in plain
            proxied = cookie_of(await http.post("/ui/login", data=form, headers=tls))
            assert "secure" in proxied and "httponly" in proxied and "samesite=strict" in proxied
    with serving(operator_app(NOWHERE, "unused", policy, trusted_proxies={"192.0.2.7"})) as url:
        async with httpx.AsyncClient(base_url=url) as http:  # not the proxy: its X-Forwarded-Proto means nothing
            assert "secure" not in cookie_of(await http.post("/ui/login", data=form, headers=tls))
    with serving(operator_app(NOWHERE, "unused", policy, secure_cookies=True)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            assert "secure" in cookie_of(await http.post("/ui/login", data=form))
    cert, key = ensure_self_signed_cert(tmp_path, ("127.0.0.1",))
    with serving(operator_app(NOWHERE, "unused", policy), ssl_certfile=str(cert), ssl_keyfile=str(key)) as url:
        trust = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(base_url=url, verify=trust) as http:  # TLS all the way
            assert "secure" in cookie_of(await http.post("/ui/login", data=form))


# --------------------------------------------------------------------------- the API on a real incident


@dataclass
class Incident:
    handle: WorkflowHandle
    policy: Policy
    task_queue: str
    target: str
    client: Client

    async def view(self) -> Any:
        return await self.handle.query(IncidentResponseWorkflow.view)


@pytest.fixture
async def incident(dev_env: WorkflowEnvironment) -> AsyncIterator[Incident]:
    """An incident awaiting acknowledgement, opened by an alert the intake signed."""
    service = f"si-{uuid.uuid4().hex[:8]}"
    policy = intake_policy(service)
    task_queue = f"signin-{uuid.uuid4()}"
    async with Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[IncidentResponseWorkflow],
        activities=FakePlatform(policy).activities(),
    ):
        alert = Alert(
            source="test",
            service=service,
            region="eu-central-1",
            summary="down",
            severity=Severity.P0,
            received_at=datetime.now(UTC),
        )
        handle = await open_or_join_incident(dev_env.client, alert, "intake/test", task_queue, INTAKE)
        await eventually(
            lambda: handle.query(IncidentResponseWorkflow.view),
            lambda view: view.status == IncidentStatus.AWAITING_ACK,
            "the incident never awaited its acknowledgement",
            shown=lambda view: view.status,
        )
        target = dev_env.client.service_client.config.target_host
        yield Incident(handle=handle, policy=policy, task_queue=task_queue, target=target, client=dev_env.client)
        if (await handle.describe()).status == 1:  # still running
            await handle.terminate("test done")


async def test_the_api_acts_in_the_signed_in_name_and_its_refusals_change_nothing(incident: Incident) -> None:
    clock = Clock()
    sessions = Sessions(clock=clock)
    app = operator_app(incident.target, incident.task_queue, incident.policy, sessions=sessions)
    ack = {"workflow_id": incident.handle.id, "note": "on it"}
    with serving(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            alice = (await login(http, "alice")).json()["token"]
            expiring = (await login(http, "alice")).json()["token"]
            revoked = (await login(http, "alice")).json()["token"]
            await http.post("/auth/logout", headers=bearer(revoked))
            mallory = (await login(http, "mallory")).json()["token"]

            refusals = {
                "no token": (await http.post("/api/v1/runs/acknowledge", json=ack), 401, "Authorization"),
                "revoked": (
                    await http.post("/api/v1/runs/acknowledge", json=ack, headers=bearer(revoked)),
                    401,
                    "revoked",
                ),
                "no workflow": (
                    await http.post("/api/v1/runs/acknowledge", json={"note": "x"}, headers=bearer(alice)),
                    422,
                    "workflow_id",
                ),
                "by": (
                    await http.post("/api/v1/runs/acknowledge", json={**ack, "by": "bob"}, headers=bearer(alice)),
                    422,
                    "by",
                ),
                "unknown field": (
                    await http.post("/api/v1/runs/acknowledge", json={**ack, "nope": 1}, headers=bearer(alice)),
                    422,
                    "nope",
                ),
                "missing field": (
                    await http.post(
                        "/api/v1/runs/reject", json={"workflow_id": incident.handle.id}, headers=bearer(alice)
                    ),
                    422,
                    "plan_id",
                ),
                "unknown run": (
                    await http.post(
                        "/api/v1/runs/acknowledge",
                        json={**ack, "workflow_id": "incident/nope/x"},
                        headers=bearer(alice),
                    ),
                    404,
                    "no run incident/nope/x",
                ),
                "unknown action": (
                    await http.post("/api/v1/runs/escalate", json=ack, headers=bearer(alice)),
                    404,
                    "no such action",
                ),
                "not a responder": (
                    await http.post("/api/v1/runs/acknowledge", json=ack, headers=bearer(mallory)),
                    409,
                    "mallory may not acknowledge",
                ),
                "form content": (
                    await http.post("/api/v1/runs/acknowledge", data=ack, headers=bearer(alice)),
                    415,
                    "application/json",
                ),
            }
            clock.now += timedelta(hours=9)
            refusals["expired"] = (
                await http.post("/api/v1/runs/acknowledge", json=ack, headers=bearer(expiring)),
                401,
                "expired",
            )
            for name, (answer, status, words) in refusals.items():
                assert answer.status_code == status, (name, answer.text)
                assert words in answer.json()["error"] or words == answer.json().get("field"), (name, answer.json())
            view = await incident.view()
            assert view.acknowledged_by is None and view.status == IncidentStatus.AWAITING_ACK  # nothing changed

            alice = (await login(http, "alice")).json()["token"]  # the clock moved on: a fresh session
            done = await http.post("/api/v1/runs/acknowledge", json=ack, headers=bearer(alice))
            assert done.status_code == 200, done.text
            assert done.json()["message"] == "acknowledged by alice" and done.json()["status"]
    view = await incident.view()
    assert view.acknowledged_by == "alice"
    (entry,) = [e for e in view.timeline if e.event == "acknowledged"]
    assert entry.actor == "alice" and entry.key_id == SIGNIN.key_id  # the audit names the key that signed


async def test_a_sign_in_key_the_policy_does_not_trust_is_refused_by_the_runbook(incident: Incident) -> None:
    app = operator_app(incident.target, incident.task_queue, incident.policy, signer=OTHER)
    with serving(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            token = (await login(http, "alice")).json()["token"]
            answer = await http.post(
                "/api/v1/runs/acknowledge", json={"workflow_id": incident.handle.id}, headers=bearer(token)
            )
    assert answer.status_code == 409 and "does not trust" in answer.json()["error"]
    assert (await incident.view()).acknowledged_by is None


async def test_incidents_are_opened_in_the_signed_in_name(incident: Incident) -> None:
    app = operator_app(incident.target, incident.task_queue, incident.policy)
    service = next(iter(incident.policy.services))
    with serving(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            token = (await login(http, "bob")).json()["token"]
            unknown = await http.post(
                "/api/v1/incidents",
                json={"service": "nope", "severity": "P1", "summary": "x"},
                headers=bearer(token),
            )
            assert unknown.status_code == 422 and unknown.json()["field"] == "service"
            assert "'nope' is not in the policy" in unknown.json()["error"]
            bad = await http.post(
                "/api/v1/incidents", json={"service": service, "severity": "P9", "summary": "x"}, headers=bearer(token)
            )
            assert bad.status_code == 422 and bad.json()["field"] == "severity"
            joined = await http.post(
                "/api/v1/incidents",
                json={"service": service, "severity": "P0", "summary": "still down"},
                headers=bearer(token),
            )
            assert joined.status_code == 200, joined.text
    view = await incident.view()
    assert joined.json() == {"incident_id": view.id, "workflow_id": incident.handle.id}  # joined the open one
    view = await eventually(
        incident.view, lambda view: view.alert_count >= 2, "the second alert never counted", shown=repr
    )
    assert view.alert_count == 2  # the second alert, signed by the intake in bob's name, was taken


async def test_temporal_unreachable_is_503_with_retry_after() -> None:
    app = operator_app(f"127.0.0.1:{free_port()}", "unused", intake_policy("svc"))
    with serving(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            token = (await login(http, "alice")).json()["token"]
            answer = await http.post("/api/v1/runs/acknowledge", json={"workflow_id": "x"}, headers=bearer(token))
    assert answer.status_code == 503 and answer.headers["retry-after"]
    assert "not reachable" in answer.json()["error"]


# --------------------------------------------------------------------------- the CLI's session


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI with no TOML profile and its session under a config home of its own."""
    empty = tmp_path / "temporal.toml"
    empty.write_text("")
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(empty))
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("RUNBOOK_SESSION_FILE", raising=False)
    monkeypatch.delenv("RUNBOOK_OPERATOR", raising=False)
    return tmp_path / "config" / "runbook" / "session.json"


async def runbook(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    await run(parser().parse_args(argv))
    return capsys.readouterr().out


async def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> CliError:
    with pytest.raises(CliError) as caught:
        await runbook(capsys, *argv)
    return caught.value


async def sign_in(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, user: str, password: str | None = None
) -> str:
    monkeypatch.setattr("sys.stdin", io.StringIO((password or PASSWORDS[user]) + "\n"))
    return await runbook(capsys, "login", "--as", user, "--password-stdin")


async def test_cli_login_keeps_its_session_0600_and_acts_only_as_who_signed_in(
    incident: Incident, cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", incident.target)
    err = await refused(capsys, "ack", incident.handle.id)
    assert err.code == 2 and "runbook login" in str(err)  # no session: nothing asked of anyone

    with serving(operator_app(incident.target, incident.task_queue, incident.policy)) as url:
        monkeypatch.setenv("RUNBOOK_SIGNIN_URL", url)
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        err = await refused(capsys, "login", "--as", "alice", "--password-stdin")
        assert err.code == 2 and "no password" in str(err) and not cli_env.exists()
        monkeypatch.setattr("sys.stdin", io.StringIO("guess\n"))
        err = await refused(capsys, "login", "--as", "alice", "--password-stdin")
        assert err.code == 2 and "wrong name or password" in str(err) and not cli_env.exists()

        assert "signed in as alice" in await sign_in(capsys, monkeypatch, "alice")
        assert stat.S_IMODE(cli_env.stat().st_mode) == 0o600
        assert stat.S_IMODE(cli_env.parent.stat().st_mode) == 0o700
        stored = json.loads(cli_env.read_text())
        assert set(stored) == {"url", "user", "token", "expires_at"} and stored["user"] == "alice"
        assert (await runbook(capsys, "whoami")).startswith("alice")

        err = await refused(capsys, "ack", incident.handle.id, "--as", "bob")
        assert err.code == 2 and "--as bob" in str(err) and "signed in as alice" in str(err)
        assert (await incident.view()).acknowledged_by is None  # refused before anything was sent

        assert "acknowledged by alice" in await runbook(capsys, "ack", incident.handle.id, "--as", "alice")
        assert (await incident.view()).acknowledged_by == "alice"

        assert "signed out alice" in await runbook(capsys, "logout")
        assert not cli_env.exists()
        async with httpx.AsyncClient(base_url=url) as http:  # the token is revoked, not only forgotten
            assert (await http.get("/auth/whoami", headers=bearer(stored["token"]))).status_code == 401
        err = await refused(capsys, "whoami")
        assert err.code == 2 and "runbook login" in str(err)

        await sign_in(capsys, monkeypatch, "alice")
        cli_env.write_text(json.dumps({**json.loads(cli_env.read_text()), "expires_at": "2020-01-01T00:00:00+00:00"}))
        err = await refused(capsys, "comment", incident.handle.id, "--text", "hello")
        assert err.code == 2 and "expired" in str(err) and "runbook login" in str(err)
    assert not any(e.event == "comment" for e in (await incident.view()).timeline)


async def test_cli_without_a_sign_in_service_says_so(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_SIGNIN_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    with pytest.raises(CliError) as caught:
        await run(parser().parse_args(["login", "--as", "alice", "--password-stdin"]))
    assert caught.value.code == 3 and "cannot reach the sign-in service" in str(caught.value)


# --------------------------------------------------------------------------- start-up


def test_the_intake_refuses_to_start_without_its_signing_keys(tmp_path: Path) -> None:
    operators_file = tmp_path / "operators.json"
    operators_file.write_text(json.dumps(operators()))
    good = tmp_path / "good.pem"
    write_key(good)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("INTAKE_", "SIGNIN_", "APPROVAL_", "TEMPORAL_"))}
    base.update(APPROVAL_OPERATORS_FILE=str(operators_file), TEMPORAL_CONFIG_FILE=str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    cases = {
        "INTAKE_SIGNING_KEY": ({"SIGNIN_SIGNING_KEY": str(good)}, "is not set"),
        "SIGNIN_SIGNING_KEY": (
            {"INTAKE_SIGNING_KEY": str(good), "SIGNIN_SIGNING_KEY": str(tmp_path / "missing.pem")},
            "does not exist",
        ),
    }
    for variable, (keys, problem) in cases.items():
        done = subprocess.run(
            [sys.executable, "-m", "intake"],
            env={**base, **keys},
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0, done.stderr
        assert variable in done.stderr and problem in done.stderr and "python -m signing generate" in done.stderr
    unreadable = subprocess.run(
        [sys.executable, "-m", "intake"],
        env={**base, "INTAKE_SIGNING_KEY": str(garbage), "SIGNIN_SIGNING_KEY": str(good)},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unreadable.returncode != 0 and "INTAKE_SIGNING_KEY" in unreadable.stderr
    assert "not a PEM private key" in unreadable.stderr and "python -m signing generate" in unreadable.stderr
