"""`make run`'s stack as a user meets it: it says where each part listens, names a taken
port, and Ctrl-C stops every child."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.net import free_port, port_in_use
from settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e

PORT_VARIABLES = (
    "TEMPORAL_PORT",
    "TEMPORAL_UI_PORT",
    "MOTO_PORT",
    "PAGERDUTY_EMULATOR_PORT",
    "DEMO_SERVICE_PORT",
    "INTAKE_PORT",
)


def stack_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "PAGERDUTY_", "AWS_", "INTAKE_"))}
    env.update({name: str(free_port()) for name in PORT_VARIABLES})
    env["RUNBOOK_DATA_DIR"] = str(data_dir)
    return env


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["MOTO_PORT"])))
        taken.listen()
        done = subprocess.run(
            [sys.executable, "-m", "devstack"], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
        )
    assert done.returncode != 0
    assert f"{env['MOTO_PORT']} (MOTO_PORT (AWS emulator))" in done.stderr
    assert not (tmp_path / "temporal.db").exists()  # nothing was started


def test_run_starts_every_part_and_ctrl_c_stops_them_all(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    stack = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 120
        assert stack.stdout is not None
        while time.monotonic() < deadline:
            line = stack.stdout.readline()
            output.append(line)
            if "Ctrl-C stops everything" in line or not line:
                break
        text = "".join(output)
        assert "local stack is up" in text, text
        for name in PORT_VARIABLES:
            assert env[name] in text, f"{name} missing from the summary:\n{text}"
            assert port_in_use("127.0.0.1", int(env[name])), name
        stack.send_signal(signal.SIGINT)
        rest, _ = stack.communicate(timeout=90)
    finally:
        if stack.poll() is None:
            stack.kill()
    assert stack.returncode == 0, rest
    assert "stopped." in rest
    for name in PORT_VARIABLES:
        assert not port_in_use("127.0.0.1", int(env[name])), f"{name} still taken after Ctrl-C"


def test_ctrl_c_during_start_up_leaves_nothing_running(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    stack = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not port_in_use("127.0.0.1", int(env["TEMPORAL_PORT"])):  # mid start-up: Temporal is up
            assert time.monotonic() < deadline and stack.poll() is None
            time.sleep(0.05)
        stack.send_signal(signal.SIGINT)
        output, _ = stack.communicate(timeout=90)
    finally:
        if stack.poll() is None:
            stack.kill()
    assert "stopped." in output, output
    for name in PORT_VARIABLES:
        assert not port_in_use("127.0.0.1", int(env[name])), f"{name} still taken after Ctrl-C during start-up"
