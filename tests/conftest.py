"""Fixtures shared by the whole suite: real processes on loopback, each on a free port."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """The AWS emulator over HTTP; its request recorder lets tests count API calls."""
    port = free_port()
    recording = tmp_path_factory.mktemp("moto") / "recording.jsonl"
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


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """Points boto3 in this process at the emulator."""
    for key, value in moto_server.aws_env().items():
        monkeypatch.setenv(key, value)
    return moto_server
