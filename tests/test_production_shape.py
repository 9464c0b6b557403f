"""The production shape, checked offline: docker-compose.yml by Debian's docker-compose (its
`config -q` validates the file against the compose spec without an engine), the image's
Dockerfile against the package pyproject.toml installs, and the Kubernetes manifests of
deploy/k8s against the schemas bundled with `kubernetes-validate` (no cluster, no network)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"  # the schemas checked against (policy/v1 and autoscaling/v2 are GA since 1.21/1.23)

# What `docker compose up` stops without (the `${VAR:?message}` of docker-compose.yml).
REQUIRED = ("PLATFORM_URL", "PLATFORM_ADMIN_TOKEN", "PAGERDUTY_ROUTING_KEY", "PAGERDUTY_API_TOKEN", "PAGERDUTY_FROM")

# Code that is not the production package: the local stack, the benches, the tests.
NOT_PRODUCTION = {"devstack", "bench", "tests"}


def require_docker_compose() -> str:
    """Debian's docker-compose (1.29); the test is skipped without it (failed under CI)."""
    path = shutil.which("docker-compose")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is missing; .ci/run installs it (Debian package docker-compose)")
        pytest.skip("needs Debian's docker-compose (apt-get install docker-compose)")
    return path


def compose_config(compose_file: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED and not k.startswith("COMPOSE_")}
    return subprocess.run(
        [require_docker_compose(), "-f", str(compose_file), "config", "-q"],
        env={**clean, **env},
        cwd=compose_file.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_file_is_valid_with_the_required_variables_set() -> None:
    result = compose_config(ROOT / "docker-compose.yml", {name: "x" for name in REQUIRED})
    assert result.returncode == 0, result.stderr


def test_compose_file_stops_without_a_required_variable() -> None:
    env = {name: "x" for name in REQUIRED if name != "PAGERDUTY_ROUTING_KEY"}
    result = compose_config(ROOT / "docker-compose.yml", env)
    assert result.returncode != 0
    assert "PAGERDUTY_ROUTING_KEY" in result.stderr


def test_compose_validation_catches_a_broken_file(tmp_path: Path) -> None:
    """The check can fail: a wrong depends_on condition is refused."""
    text = (ROOT / "docker-compose.yml").read_text()
    broken = text.replace("condition: service_completed_successfully", "condition: service_finished", 1)
    assert broken != text
    (tmp_path / "docker-compose.yml").write_text(broken)
    result = compose_config(tmp_path / "docker-compose.yml", {name: "x" for name in REQUIRED})
    assert result.returncode != 0
    assert "service_finished" in result.stderr


def test_compose_runs_maintained_images_in_order() -> None:
    services = compose()["services"]
    images = {name: s.get("image", "") for name, s in services.items()}
    assert not any("auto-setup" in image for image in images.values()), "temporalio/auto-setup is deprecated"
    # pinned, and the schema set-up's admin-tools of the server's own version
    server = images["temporal"]
    assert re.fullmatch(r"temporalio/server:\d+\.\d+\.\d+", server)
    version = server.split(":")[1]
    assert images["temporal-schema"] == images["temporal-namespace"] == f"temporalio/admin-tools:{version}"

    def waits_for(service: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[service]["depends_on"].items()}

    assert waits_for("temporal-schema") == {"postgresql": "service_healthy"}
    assert waits_for("temporal") == {"temporal-schema": "service_completed_successfully"}
    assert waits_for("temporal-namespace") == {"temporal": "service_healthy"}
    assert waits_for("temporal-ui") == {"temporal": "service_healthy"}
    for app in ("worker", "intake"):
        assert waits_for(app) == {"temporal-namespace": "service_completed_successfully"}
        assert services[app]["build"] == "."


def test_compose_health_checks_use_what_the_images_contain() -> None:
    """temporalio/server holds temporal-server and busybox (no temporal CLI, no curl); the
    project's image holds Python (no curl)."""
    services = compose()["services"]
    assert services["temporal"]["healthcheck"]["test"][:2] == ["CMD", "nc"]
    for app in ("worker", "intake"):
        assert services[app]["healthcheck"]["test"][:3] == ["CMD", "python", "-c"]
    for service in services.values():
        assert "curl" not in str(service.get("healthcheck", {}))


def test_compose_setup_registers_the_search_attributes_the_code_uses() -> None:
    services = compose()["services"]
    listed = services["temporal-namespace"]["environment"]["SEARCH_ATTRIBUTES"].split(",")
    assert sorted(listed) == sorted(key.name for key in SEARCH_ATTRIBUTES)
    script = (ROOT / "deploy" / "temporal" / "namespace.sh").read_text()
    assert "search-attribute create" in script and "--type Keyword" in script
    for name in ("schema.sh", "namespace.sh"):
        result = subprocess.run(["sh", "-n", str(ROOT / "deploy" / "temporal" / name)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def dockerfile_copies() -> set[str]:
    """The top-level files and directories the Dockerfile COPYs into the image."""
    sources: set[str] = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words and words[0].upper() == "COPY":
            args = [w for w in words[1:] if not w.startswith("--")]
            sources.update(Path(src).parts[0] for src in args[:-1])
    return sources


def test_image_installs_only_the_production_package() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {name.split(".")[0] for name in setuptools["packages"]}
    modules = {f"{name}.py" for name in setuptools["py-modules"]}
    assert not packages & NOT_PRODUCTION, "the installed package lists local-stack or test code"
    copied = dockerfile_copies()
    assert not copied & NOT_PRODUCTION, f"the image copies {copied & NOT_PRODUCTION}"
    # everything `pip install .` needs, and nothing else but the default policy and the human runbooks (the console)
    assert copied == packages | modules | {"pyproject.toml", "README.md", "policy", "runbooks"}
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "secrets" in ignored and ".venv" in ignored


def test_image_is_broken_by_copying_the_local_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The check can fail: a Dockerfile that copies devstack/ is caught."""
    (tmp_path / "Dockerfile").write_text((ROOT / "Dockerfile").read_text() + "COPY devstack ./devstack\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert "devstack" in dockerfile_copies()


# --- Kubernetes ------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Validation must not fetch schemas: any connection attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access during manifest validation")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


def validate(doc: dict[str, Any]) -> None:
    import kubernetes_validate  # type: ignore[import-untyped]

    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_manifests_are_valid_kubernetes(no_network: None) -> None:
    docs = manifests()
    kinds = sorted({doc["kind"] for _, doc in docs})
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    for name, doc in docs:
        try:
            validate(doc)
        except Exception as err:
            pytest.fail(f"{name}: {getattr(err, 'message', err)}")


def test_manifest_validation_catches_a_broken_manifest(no_network: None) -> None:
    """The check can fail: a misspelt field, and a wrong type, are refused."""
    import kubernetes_validate

    deployment = next(doc for name, doc in manifests() if name == "worker.yaml:Deployment/runbooks-worker")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"]["httpGett"] = container["livenessProbe"].pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    deployment = next(doc for name, doc in manifests() if name == "worker.yaml:Deployment/runbooks-worker")
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == kind}


def test_deployments_have_probes_resources_and_a_disruption_budget() -> None:
    deployments = by_kind("Deployment")
    assert set(deployments) == {"runbooks-worker", "runbooks-intake"}
    budgets = by_kind("PodDisruptionBudget").values()
    budgeted = {doc["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for doc in budgets}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        for probe in ("readinessProbe", "livenessProbe"):
            assert probe in container, f"{name} has no {probe}"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert "memory" in container["resources"]["limits"]
        assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] in budgeted
    intake = deployments["runbooks-intake"]["spec"]["template"]["spec"]["containers"][0]
    assert intake["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert intake["livenessProbe"]["httpGet"]["path"] == "/healthz"
    worker = deployments["runbooks-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert worker["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    (hpa,) = by_kind("HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "runbooks-worker"


def test_probed_paths_exist_in_the_intake() -> None:
    app = (ROOT / "intake" / "app.py").read_text()
    for path in ("/readyz", "/healthz"):
        assert f'Route("{path}"' in app


def test_secrets_are_referenced_not_committed() -> None:
    assert not by_kind("Secret")
    referenced: set[str] = set()
    for deployment in by_kind("Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        referenced |= {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        for container in pod["containers"]:
            referenced |= {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
            referenced |= {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", []) if "valueFrom" in e}
    assert referenced == {"runbooks-worker-tls", "runbooks-worker-env", "runbooks-intake-tls", "runbooks-intake-env"}


def test_policy_config_map_is_the_default_policy() -> None:
    (config_map,) = (doc for name, doc in by_kind("ConfigMap").items() if name == "runbooks-policy")
    assert config_map["data"]["default.yaml"] == (ROOT / "policy" / "default.yaml").read_text(), (
        "deploy/k8s/policy.yaml differs from policy/default.yaml: remake it (README, Production shape)"
    )
