"""client.py: the Temporal connection from Temporal's environment configuration, and the
CLI's light imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from client import DEFAULT_ADDRESS, DEFAULT_NAMESPACE, TemporalConfigError, load_config
from settings import PROJECT_ROOT


@pytest.fixture
def no_profiles(tmp_path: Path) -> dict[str, str]:
    """An environment whose TOML file is empty, so that the machine's own profiles stay out."""
    empty = tmp_path / "temporal.toml"
    empty.write_text("")
    return {"TEMPORAL_CONFIG_FILE": str(empty)}


def test_nothing_set_is_the_local_stack(no_profiles: dict[str, str]) -> None:
    config = load_config(no_profiles)
    assert (config.address, config.namespace) == (DEFAULT_ADDRESS, DEFAULT_NAMESPACE) == ("127.0.0.1:7233", "default")
    assert "tls" not in config.connect_args and "api_key" not in config.connect_args
    assert config.describe() == "127.0.0.1:7233 (namespace default, profile default, no TLS)"


def test_variables_for_temporal_cloud_with_an_api_key(no_profiles: dict[str, str]) -> None:
    config = load_config(
        {
            **no_profiles,
            "TEMPORAL_ADDRESS": "eu-central-1.aws.api.temporal.io:7233",
            "TEMPORAL_NAMESPACE": "runbooks.a1b2c",
            "TEMPORAL_API_KEY": "secret-key",
        }
    )
    assert config.connect_args["target_host"] == "eu-central-1.aws.api.temporal.io:7233"
    assert config.connect_args["namespace"] == "runbooks.a1b2c"
    assert config.connect_args["api_key"] == "secret-key" and config.connect_args["tls"] is True
    assert "secret-key" not in config.describe() and "API key" in config.describe()


def test_a_toml_profile_for_mtls_and_variables_over_it(tmp_path: Path) -> None:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_text("CERT")
    key.write_text("KEY")
    toml = tmp_path / "temporal.toml"
    toml.write_text(f"""
[profile.default]
address = "127.0.0.1:7233"

[profile.prod]
address = "temporal.internal:7233"
namespace = "runbooks"

[profile.prod.tls]
client_cert_path = "{cert}"
client_key_path = "{key}"
server_name = "temporal.internal"
""")
    config = load_config({"TEMPORAL_CONFIG_FILE": str(toml), "TEMPORAL_PROFILE": "prod"})
    assert (config.address, config.namespace, config.profile) == ("temporal.internal:7233", "runbooks", "prod")
    tls = config.connect_args["tls"]
    assert isinstance(tls, TLSConfig) and tls.client_cert == b"CERT" and tls.client_private_key == b"KEY"
    assert tls.domain == "temporal.internal" and config.security == "mTLS"
    overridden = load_config(
        {"TEMPORAL_CONFIG_FILE": str(toml), "TEMPORAL_PROFILE": "prod", "TEMPORAL_NAMESPACE": "runbooks-staging"}
    )
    assert overridden.namespace == "runbooks-staging" and overridden.address == "temporal.internal:7233"
    assert load_config({"TEMPORAL_CONFIG_FILE": str(toml)}).security == "no TLS"  # the default profile


def test_configuration_errors_name_the_variable_or_file(tmp_path: Path, no_profiles: dict[str, str]) -> None:
    with pytest.raises(TemporalConfigError, match="TEMPORAL_CONFIG_FILE=.*no such file"):
        load_config({"TEMPORAL_CONFIG_FILE": str(tmp_path / "missing.toml")})
    with pytest.raises(TemporalConfigError, match="profile 'nope'"):
        load_config({**no_profiles, "TEMPORAL_PROFILE": "nope"})
    with pytest.raises(TemporalConfigError, match="missing.pem"):
        load_config(
            {
                **no_profiles,
                "TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "missing.pem"),
                "TEMPORAL_TLS_CLIENT_KEY_PATH": str(tmp_path / "missing.key"),
            }
        )
    broken = tmp_path / "broken.toml"
    broken.write_text("[profile.default\naddress = ")
    with pytest.raises(TemporalConfigError, match="broken.toml"):
        load_config({"TEMPORAL_CONFIG_FILE": str(broken)})


def test_the_cli_imports_no_activity_worker_or_demo_code() -> None:
    """`runbook` is a thin client: boto3, the activities, the worker and the local stack stay unloaded."""
    probe = "import json, sys, runbook_cli.main; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert not loaded & {"boto3", "botocore", "activities", "worker", "devstack", "pagerduty"}, loaded
    assert "client" in loaded


def test_nothing_in_production_code_imports_devstack_at_import_time() -> None:
    probe = (
        "import json, sys, worker, intake.app, intake.__main__, runbook_cli.main, activities, workflows; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    assert not any(name.split(".")[0] == "devstack" for name in json.loads(done.stdout))


def test_runbook_demo_finds_the_local_stack_from_any_directory(tmp_path: Path) -> None:
    """devstack/ is not in the installed package; `runbook demo` loads it from the source tree."""
    runbook = Path(sys.executable).parent / "runbook"
    done = subprocess.run(
        [str(runbook), "demo", "break", "no-such-service"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert "unknown service 'no-such-service'" in done.stderr


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://signin.example.com", "use https"),
        ("ftp://signin.example.com", r"not an http\(s\) URL"),
        ("https://signin.example.com", None),
        ("http://127.0.0.1:8081", None),
    ],
)
def test_the_cli_sends_a_password_or_token_over_the_network_only_with_tls(
    url: str, problem: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runbook_cli.main import CliError, signin_url

    monkeypatch.setenv("RUNBOOK_SIGNIN_URL", url)
    if problem is None:
        assert signin_url() == url
    else:
        with pytest.raises(CliError, match=problem):
            signin_url()
