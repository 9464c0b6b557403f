"""`make run`'s stack as a user meets it: it says where each part listens, names a taken
port, makes its signing keys once and a policy that trusts them, and Ctrl-C stops every child."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from contracts import load_policy_file
from devstack import aws_seed
from devstack.net import free_port, port_in_use
from devstack.stack import Stack, StackConfig
from settings import PROJECT_ROOT
from signing import Signer

pytestmark = pytest.mark.e2e

PORT_VARIABLES = (
    "TEMPORAL_PORT",
    "TEMPORAL_UI_PORT",
    "MOTO_PORT",
    "LAMBDA_EMULATOR_PORT",
    "PAGERDUTY_EMULATOR_PORT",
    "DEMO_SERVICE_PORT",
    "INTAKE_PORT",
    "OPERATOR_PORT",
)


def stack_env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TEMPORAL_", "PAGERDUTY_", "AWS_", "INTAKE_", "OPERATOR_", "APPROVAL_", "SIGNIN_"))
    }
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
        assert f"http://127.0.0.1:{env['OPERATOR_PORT']}/ui" in text  # the approval page, on the operator listener
        lambda_ = boto3.client(
            "lambda",
            region_name="eu-central-1",
            endpoint_url=f"http://127.0.0.1:{env['LAMBDA_EMULATOR_PORT']}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        seeded = lambda_.get_function_configuration(FunctionName=aws_seed.LAMBDA_FUNCTION, Qualifier="live")
        assert seeded["FunctionArn"].endswith(f":function:{aws_seed.LAMBDA_FUNCTION}:live")
        keys = [tmp_path / "keys" / "intake.pem", tmp_path / "keys" / "signin.pem"]
        assert all(stat.S_IMODE(key.stat().st_mode) == 0o600 for key in keys)
        trust = load_policy_file(tmp_path / "policy.yaml").trust
        assert trust.intake == [Signer.from_file(keys[0], "intake").public_key]
        assert trust.operators == [Signer.from_file(keys[1], "signin").public_key]
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


def test_the_keys_are_made_once_and_the_composed_policy_trusts_them(tmp_path: Path) -> None:
    """No process needed: the keys and the policy every process of the stack reads."""
    source = tmp_path / "mine.yaml"
    policy = yaml.safe_load((PROJECT_ROOT / "policy" / "demo.yaml").read_text())
    rotating = Signer.generate("signin").public_key
    source.write_text(yaml.safe_dump({**policy, "trust": {"operators": [rotating]}}))  # a key of its own stays
    config = StackConfig(data_dir=tmp_path / "data", policy=source)
    stack = Stack(config)

    stack.prepare_identity()
    intake, signin = Signer.from_file(config.intake_key, "intake"), Signer.from_file(config.signin_key, "signin")
    composed = load_policy_file(config.composed_policy)
    assert composed.trust.intake == [intake.public_key]
    assert composed.trust.operators == [rotating, signin.public_key]
    assert composed.services.keys() == load_policy_file(source).services.keys()
    env = config.client_env()
    assert env["RUNBOOK_POLICY"] == str(config.composed_policy)
    assert env["INTAKE_SIGNING_KEY"] == str(config.intake_key) and env["SIGNIN_SIGNING_KEY"] == str(config.signin_key)
    assert env["RUNBOOK_SIGNIN_URL"] == f"http://127.0.0.1:{config.operator_port}"

    stack.prepare_identity()  # a restart keeps the keys: sessions' and runs' trust stay valid
    assert Signer.from_file(config.intake_key, "intake").public_key == intake.public_key
    assert load_policy_file(config.composed_policy).trust == composed.trust


def test_the_lambda_emulator_serves_the_demo_function_where_the_stack_points_boto3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One step of the stack: boto3 given the stack's environment sends Lambda calls to the emulator
    (moto has no provisioned concurrency), which knows the function the demo policy scales."""
    config = StackConfig(moto_port=free_port(), lambda_port=free_port(), data_dir=tmp_path)
    env = config.client_env()
    assert env["AWS_ENDPOINT_URL_LAMBDA"] == f"http://127.0.0.1:{config.lambda_port}"
    assert env["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{config.moto_port}"  # every other service: moto
    for key, value in env.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    stack = Stack(config)
    try:
        stack.start_lambda_emulator()
        lambda_ = boto3.client("lambda", region_name=aws_seed.PRIMARY_REGION)
        name, qualifier = aws_seed.LAMBDA_FUNCTION, aws_seed.LAMBDA_QUALIFIER
        assert lambda_.get_function_configuration(FunctionName=name, Qualifier=qualifier)["State"] == "Active"
        put = lambda_.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier=qualifier, ProvisionedConcurrentExecutions=5
        )
        assert put["Status"] == "IN_PROGRESS"
        with pytest.raises(ClientError) as err:
            lambda_.get_provisioned_concurrency_config(FunctionName="not-seeded", Qualifier=qualifier)
        assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    finally:
        stack.stop()
    recorded = [json.loads(line) for line in (tmp_path / "lambda-recording.jsonl").read_text().splitlines()]
    assert [entry["operation"] for entry in recorded] == ["PutProvisionedConcurrencyConfig"]
    assert not port_in_use("127.0.0.1", config.lambda_port)


def test_the_failover_probes_follow_the_demo_service_to_its_port(tmp_path: Path) -> None:
    """The worker probes the policy's failover health URLs: on another DEMO_SERVICE_PORT (the
    end-to-end tests' free ports) the composed policy points them there; links stay as written."""
    source = load_policy_file(PROJECT_ROOT / "policy" / "demo.yaml")
    assert source.failover is not None
    assert source.failover.services["hybrid-router"].health_urls == {
        "eu-central-1": "http://127.0.0.1:8090/region/eu-central-1/health",
        "us-west-2": "http://127.0.0.1:8090/region/us-west-2/health",
    }

    moved = StackConfig(data_dir=tmp_path / "moved", demo_port=free_port())
    Stack(moved).prepare_identity()
    composed = load_policy_file(moved.composed_policy)
    assert composed.failover is not None
    demo = moved.url(moved.demo_port)
    assert composed.failover.services["hybrid-router"].health_urls == {
        "eu-central-1": f"{demo}/region/eu-central-1/health",
        "us-west-2": f"{demo}/region/us-west-2/health",
    }
    assert composed.failover.services["hybrid-router"].region_checks == {
        "eu-central-1": f"{demo}/region/eu-central-1/canary",
        "us-west-2": f"{demo}/region/us-west-2/canary",
    }
    assert composed.failover.confirm_for == source.failover.confirm_for
    assert composed.communication.status_page == source.communication.status_page

    default = StackConfig(data_dir=tmp_path / "default")
    Stack(default).prepare_identity()
    assert load_policy_file(default.composed_policy).failover == source.failover


def test_the_demo_operators_are_the_two_approvers_a_failover_and_its_failback_need() -> None:
    """The walk-through: demo-oncall triggers and approves, demo-lead approves (critical risk, two
    distinct approvers, four eyes: the opener may be one of them, not both); the failback alike."""
    from devstack.stack import DEMO_OPERATORS

    policy = load_policy_file(PROJECT_ROOT / "policy" / "demo.yaml")
    for action in ("region_failover", "region_failback"):
        rule = policy.rule_for(action)
        assert policy.risk_of(action).value == "critical", action
        assert rule.required == 2 and rule.four_eyes, action
        assert policy.members(rule) == set(DEMO_OPERATORS), action


def test_free_ports_come_from_below_the_ephemeral_range_and_never_twice() -> None:
    """What the OS hands out for bind(0) (the Temporal dev server's own listeners, outgoing
    connections) can never be one of the stack's ports, and no two of them are the same."""
    from devstack import net

    ports = [net.free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(15000 <= port < net._ephemeral_start() for port in ports), ports
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert net.port_in_use("127.0.0.1", taken.getsockname()[1])
