"""Fixtures shared by the whole suite: real processes on loopback, each on a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.net import free_port, wait_for_http

VENV_BIN = Path(sys.executable).parent


@dataclass
class MotoServer:
    url: str
    recording: Path

    def aws_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-central-1",
        }


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def own_moto_server(directory: Path) -> Iterator[MotoServer]:
    """The AWS emulator over HTTP; its request recorder lets tests count API calls."""
    port = free_port()
    recording = directory / "recording.jsonl"
    env = dict(os.environ, MOTO_RECORDER_FILEPATH=str(recording))
    proc = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/moto-api/", timeout=60)
        yield MotoServer(url=url, recording=recording)
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with own_moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


def point_boto3_at(server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """boto3 in this process, for the test, at `server`."""
    for key, value in server.aws_env().items():
        monkeypatch.setenv(key, value)
    return server


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """Points boto3 in this process at the session's emulator."""
    return point_boto3_at(moto_server, monkeypatch)


# --------------------------------------------------------------------------- Temporal

from collections.abc import AsyncIterator  # noqa: E402

from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from contracts import SEARCH_ATTRIBUTES  # noqa: E402

# Keeps back-to-back hand-offs fast on the dev server (DESIGN.md, measured figures).
DEV_SERVER_ARGS = [
    "--dynamic-config-value",
    "history.transferProcessorMaxPollRPS=1000",
    "--sqlite-pragma",
    "journal_mode=wal",
    "--sqlite-pragma",
    "synchronous=normal",
]


@contextlib.asynccontextmanager
async def time_skipping_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(VENV_BIN / "temporal-test-server"),
    )
    from worker import ensure_search_attributes

    await ensure_search_attributes(env.client, "default")
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="module")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """One time-skipping server per test module. Shared by the whole session, a server stopped
    skipping for good after some of the incident tests (an update racing a run's end leaves the
    Java test server holding a time-skipping lock, as far as we could tell): every later test
    that waits on a timer then hung until pytest-timeout."""
    async with time_skipping_server() as env:
        yield env


@pytest.fixture
async def own_time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server for one test (about a second to start). After a run closes with
    work in flight (terminated mid-activity, or ended right after an update), the test server
    holds its clock for about 30 s before the next skip: a test that skips several times after
    another test on a shared server waited 30 s per skip (90 s for the escalation ladder)."""
    async with time_skipping_server() as env:
        yield env


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(VENV_BIN / "temporal"),
        dev_server_extra_args=DEV_SERVER_ARGS,
        search_attributes=SEARCH_ATTRIBUTES,
    )
    try:
        yield env
    finally:
        await env.shutdown()


# --------------------------------------------------------------------------- HTTP servers

import contextlib  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import uvicorn  # noqa: E402


@contextlib.contextmanager
def serve_app(app: object, **uvicorn_options: object) -> Iterator[str]:
    """Serves an ASGI app with uvicorn in a thread on a free loopback port; yields its URL."""
    port = free_port()
    options = {"host": "127.0.0.1", "port": port, "log_level": "warning", "access_log": False, **uvicorn_options}
    server = uvicorn.Server(uvicorn.Config(app, **options))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, name=f"asgi-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start")
        time.sleep(0.02)
    scheme = "https" if "ssl_certfile" in uvicorn_options else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
