"""The local stack: Temporal dev server, AWS emulators, PagerDuty emulator, demo service, worker.

`make run` runs it in the foreground (`python -m devstack`); the end-to-end tests start the
same processes through `Stack`, on free ports, with the worker under their own control.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from contracts import SEARCH_ATTRIBUTES, PolicyError, load_policy_file
from contracts.identity import Issuer
from devstack.net import port_in_use, wait_for_http, wait_for_port
from devstack.pagerduty_emulator import service_id_of
from settings import PROJECT_ROOT
from signing import Signer, write_key

BIN = Path(sys.executable).parent
# The demo stack's PagerDuty credentials: any 32-character routing key and token will do.
DEMO_ROUTING_KEY = "R0UT1NGKEYDEM0LOCALSTACK00000001"
DEMO_API_TOKEN = "demo-pagerduty-token"
DEMO_INTAKE_TOKEN = "demo-intake-token"
DEMO_WEBHOOK_SECRET = "demo-webhook-secret"
DEMO_OPERATORS = ("demo-oncall", "demo-lead")
DEMO_OPERATOR_PASSWORD = "demo"
WORKER_READY = b"worker polling Temporal"  # worker.py logs it as it starts polling


class StackError(RuntimeError):
    pass


@dataclass
class StackConfig:
    host: str = "127.0.0.1"
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    moto_port: int = 5000
    lambda_port: int = 5001
    bedrock_port: int = 5002
    pagerduty_port: int = 8091
    demo_port: int = 8090
    intake_port: int = 8080
    operator_port: int = 8081
    worker_metrics_port: int = 9464  # the worker's Prometheus metrics (the SDK's and the runbooks')
    data_dir: Path = PROJECT_ROOT / ".data"
    policy: Path = PROJECT_ROOT / "policy" / "demo.yaml"
    metrics_interval: float = 5.0

    @classmethod
    def from_env(cls) -> StackConfig:
        env = os.environ
        defaults = cls()

        def port(name: str, default: int) -> int:
            raw = env.get(name, "")
            if not raw:
                return default
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise StackError(f"{name}={raw!r} is not a port number")
            return int(raw)

        return cls(
            host=env.get("STACK_HOST") or defaults.host,
            temporal_port=port("TEMPORAL_PORT", defaults.temporal_port),
            temporal_ui_port=port("TEMPORAL_UI_PORT", defaults.temporal_ui_port),
            moto_port=port("MOTO_PORT", defaults.moto_port),
            lambda_port=port("LAMBDA_EMULATOR_PORT", defaults.lambda_port),
            bedrock_port=port("BEDROCK_EMULATOR_PORT", defaults.bedrock_port),
            pagerduty_port=port("PAGERDUTY_EMULATOR_PORT", defaults.pagerduty_port),
            demo_port=port("DEMO_SERVICE_PORT", defaults.demo_port),
            intake_port=port("INTAKE_PORT", defaults.intake_port),
            operator_port=port("OPERATOR_PORT", defaults.operator_port),
            worker_metrics_port=port("WORKER_METRICS_PORT", defaults.worker_metrics_port),
            data_dir=Path(env.get("RUNBOOK_DATA_DIR") or defaults.data_dir),
            policy=Path(env.get("RUNBOOK_POLICY") or defaults.policy),
        )

    @property
    def temporal_address(self) -> str:
        return f"{self.host}:{self.temporal_port}"

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}"

    @property
    def pagerduty_url(self) -> str:
        return f"https://{self.host}:{self.pagerduty_port}"

    @property
    def pagerduty_tls_dir(self) -> Path:
        return self.data_dir / "pagerduty-tls"

    @property
    def intake_key(self) -> Path:
        return self.data_dir / "keys" / "intake.pem"

    @property
    def signin_key(self) -> Path:
        return self.data_dir / "keys" / "signin.pem"

    @property
    def composed_policy(self) -> Path:
        """The policy every process of the stack reads: `policy` plus the stack's `trust`."""
        return self.data_dir / "policy.yaml"

    def client_env(self) -> dict[str, str]:
        """What the worker and the CLI need to find every part of this stack."""
        return {
            "TEMPORAL_ADDRESS": self.temporal_address,
            "TEMPORAL_NAMESPACE": "default",  # the dev server's, whatever a TOML profile of the machine says
            "AWS_ENDPOINT_URL": self.url(self.moto_port),
            # boto3's per-service endpoint: Lambda calls go to the emulator of what moto lacks.
            "AWS_ENDPOINT_URL_LAMBDA": self.url(self.lambda_port),
            # ... and Bedrock's and IAM's (ListFoundationModels, InvokeModel, SimulatePrincipalPolicy)
            "AWS_ENDPOINT_URL_BEDROCK": self.url(self.bedrock_port),
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.url(self.bedrock_port),
            "AWS_ENDPOINT_URL_IAM": self.url(self.bedrock_port),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-central-1",
            # The PagerDuty clients accept https:// only: the emulator serves TLS with its own
            # self-signed certificate, which the worker trusts through PAGERDUTY_CA_BUNDLE.
            "PAGERDUTY_EVENTS_URL": self.pagerduty_url,
            "PAGERDUTY_API_URL": self.pagerduty_url,
            "PAGERDUTY_CA_BUNDLE": str(self.pagerduty_tls_dir / "cert.pem"),
            "PAGERDUTY_ROUTING_KEY": DEMO_ROUTING_KEY,
            "PAGERDUTY_API_TOKEN": DEMO_API_TOKEN,
            "PAGERDUTY_SERVICE_ID": service_id_of(DEMO_ROUTING_KEY),  # what a maintenance window silences
            "PLATFORM_URL": self.url(self.demo_port),
            "RUNBOOK_POLICY": str(self.composed_policy),
            "RUNBOOK_DATA_DIR": str(self.data_dir),
            "INTAKE_HOST": self.host,
            "INTAKE_PORT": str(self.intake_port),
            "INTAKE_ALERTMANAGER_TOKEN": DEMO_INTAKE_TOKEN,
            "INTAKE_EVENTBRIDGE_TOKEN": DEMO_INTAKE_TOKEN,
            "INTAKE_GENERIC_TOKEN": DEMO_INTAKE_TOKEN,
            "INTAKE_SNS_TOPICS": "arn:aws:sns:eu-central-1:123456789012:runbook-alerts",
            "PAGERDUTY_WEBHOOK_SECRETS": DEMO_WEBHOOK_SECRET,
            "APPROVAL_OPERATORS_FILE": str(self.data_dir / "operators.json"),
            "INTAKE_SIGNING_KEY": str(self.intake_key),
            "SIGNIN_SIGNING_KEY": str(self.signin_key),
            "OPERATOR_HOST": self.host,
            "OPERATOR_PORT": str(self.operator_port),
            "WORKER_METRICS_ADDRESS": f"{self.host}:{self.worker_metrics_port}",
            "RUNBOOK_SIGNIN_URL": self.url(self.operator_port),
        }


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path
    _pump: threading.Thread | None = None


@dataclass
class Stack:
    config: StackConfig
    echo: bool = False  # copy children's output to this terminal (the worker's, at least)
    children: list[Child] = field(default_factory=list)
    # Set by a signal handler: start-up stops at the next step. (Raising from the handler
    # could land between starting a child and recording it, and orphan that child.)
    interrupted: threading.Event = field(default_factory=threading.Event)

    def checkpoint(self) -> None:
        if self.interrupted.is_set():
            raise KeyboardInterrupt

    # ------------------------------------------------------------------ parts

    def check_ports(self) -> None:
        c = self.config
        ports = {
            "TEMPORAL_PORT (Temporal frontend)": c.temporal_port,
            "TEMPORAL_UI_PORT (Temporal web UI)": c.temporal_ui_port,
            "MOTO_PORT (AWS emulator)": c.moto_port,
            "LAMBDA_EMULATOR_PORT (Lambda emulator)": c.lambda_port,
            "BEDROCK_EMULATOR_PORT (Bedrock and IAM emulator)": c.bedrock_port,
            "PAGERDUTY_EMULATOR_PORT (PagerDuty emulator)": c.pagerduty_port,
            "DEMO_SERVICE_PORT (demo hybrid-router service)": c.demo_port,
            "INTAKE_PORT (alert intake)": c.intake_port,
            "OPERATOR_PORT (sign-in service and approval page)": c.operator_port,
            "WORKER_METRICS_PORT (worker's Prometheus metrics)": c.worker_metrics_port,
        }
        taken = [f"{port} ({name})" for name, port in ports.items() if port_in_use(c.host, port)]
        if taken:
            raise StackError(
                f"port(s) already in use on {c.host}: {', '.join(taken)}. "
                "Stop what uses them (another `make run`?) or set the named variable to a free port."
            )

    def prepare_identity(self) -> None:
        """The intake's and the sign-in service's keys (made once, then kept in the data folder),
        and the composed policy that trusts them, which the worker, the intake and the CLI read."""
        c = self.config
        intake, signin = _signer(c.intake_key, "intake"), _signer(c.signin_key, "signin")
        try:
            source = yaml.safe_load(c.policy.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise StackError(f"the policy {c.policy} cannot be read: {err}") from None
        trust = dict(source.get("trust") or {})  # keys the policy lists itself stay trusted
        for role, signer in (("intake", intake), ("operators", signin)):
            listed = list(trust.get(role) or [])
            trust[role] = listed if signer.public_key in listed else [*listed, signer.public_key]
        composed = {**source, "trust": trust, **_failover_probing(source, c.url(c.demo_port))}
        c.composed_policy.parent.mkdir(parents=True, exist_ok=True)
        c.composed_policy.write_text(
            f"# Written by the local stack at every start: {c.policy} with the stack's own keys\n"
            f"# ({c.intake_key.parent}) under trust and its failover probes on the demo service's\n"
            f"# port. Edit that file, not this one.\n" + yaml.safe_dump(composed, sort_keys=False)
        )
        try:
            load_policy_file(c.composed_policy)
        except PolicyError as err:
            raise StackError(f"the policy {c.policy}: {err}") from None

    def start_temporal(self) -> None:
        c = self.config
        c.data_dir.mkdir(parents=True, exist_ok=True)
        self.spawn(
            "temporal",
            [
                str(BIN / "temporal"),
                "server",
                "start-dev",
                "--ip",
                c.host,
                "--port",
                str(c.temporal_port),
                "--ui-port",
                str(c.temporal_ui_port),
                "--db-filename",
                str(c.data_dir / "temporal.db"),
                "--log-level",
                "warn",
                # measured (DESIGN.md): WAL keeps the SQLite file as fast as memory, and the
                # transfer poll rate bounds every hand-off
                "--sqlite-pragma",
                "journal_mode=wal",
                "--sqlite-pragma",
                "synchronous=normal",
                "--dynamic-config-value",
                "history.transferProcessorMaxPollRPS=1000",
                *[arg for key in SEARCH_ATTRIBUTES for arg in ("--search-attribute", f"{key.name}=Keyword")],
            ],
        )
        wait_for_port(c.host, c.temporal_port, timeout=60)

    def start_moto(self) -> None:
        c = self.config
        env = {"MOTO_RECORDER_FILEPATH": str(c.data_dir / "moto-recording.jsonl")}
        # moto's server with its Route 53 change journal fixed, so a second failover passes (aws_emulator.py)
        argv = [sys.executable, "-m", "devstack.aws_emulator", "-H", c.host, "-p", str(c.moto_port)]
        self.spawn("aws-emulator", argv, env=env)
        wait_for_http(f"{c.url(c.moto_port)}/moto-api/", timeout=60)

    def start_lambda_emulator(self) -> None:
        """Lambda's provisioned concurrency, which moto lacks, with the demo's function seeded."""
        from devstack import aws_seed
        from devstack.lambda_emulator import STATUS_PATH

        c = self.config
        functions = c.data_dir / "lambda-functions.json"
        functions.write_text(json.dumps(aws_seed.lambda_functions(), indent=2))
        self.spawn(
            "lambda-emulator",
            [
                sys.executable,
                "-m",
                "devstack.lambda_emulator",
                "--host",
                c.host,
                "--port",
                str(c.lambda_port),
                "--functions",
                str(functions),
                "--recording",
                str(c.data_dir / "lambda-recording.jsonl"),
            ],
        )
        wait_for_http(f"{c.url(c.lambda_port)}{STATUS_PATH}", timeout=30)

    def start_bedrock_emulator(self) -> None:
        """Bedrock and IAM's policy simulation, which moto lacks; `runbook demo break|deny bedrock` sets its faults."""
        from devstack.bedrock_emulator import STATUS_PATH

        c = self.config
        argv = [sys.executable, "-m", "devstack.bedrock_emulator", "--host", c.host, "--port", str(c.bedrock_port)]
        self.spawn("bedrock-emulator", argv)
        wait_for_http(f"{c.url(c.bedrock_port)}{STATUS_PATH}", timeout=30)

    def seed_aws(self) -> None:
        from devstack import aws_seed

        saved = dict(os.environ)
        os.environ.update(self.config.client_env())
        try:
            aws_seed.seed()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def start_pagerduty(self) -> None:
        c = self.config
        self.spawn(
            "pagerduty-emulator",
            [
                sys.executable,
                "-m",
                "devstack.pagerduty_emulator",
                "--host",
                c.host,
                "--port",
                str(c.pagerduty_port),
                "--state-file",
                str(c.data_dir / "pagerduty.json"),
                "--tls-dir",
                str(c.pagerduty_tls_dir),
            ],
        )
        wait_for_port(c.host, c.pagerduty_port, timeout=30)

    def start_demo_service(self) -> None:
        c = self.config
        self.spawn(
            "demo-service",
            [
                sys.executable,
                "-m",
                "devstack.demo_service",
                "--host",
                c.host,
                "--port",
                str(c.demo_port),
                "--metrics-interval",
                str(c.metrics_interval),
            ],
        )
        wait_for_port(c.host, c.demo_port, timeout=30)

    def start_worker(self, ready_within: float = 60) -> Child:
        """The worker, once it says it polls Temporal (its log's "worker polling Temporal"
        line, written after it connected and registered the search attributes): a caller's
        update or signal right after is taken at once, not left waiting on a worker still
        importing and connecting (a slow, busy machine took longer than an update's limit)."""
        log_path = self.config.data_dir / "logs" / "worker.log"
        start = log_path.stat().st_size if log_path.exists() else 0  # the log is appended to at each start
        child = self.spawn("worker", [sys.executable, str(PROJECT_ROOT / "worker.py")], echo=True)
        level = logging.getLevelName(os.environ.get("LOG_LEVEL", "INFO"))
        if isinstance(level, int) and level > logging.INFO:
            return child  # the line is an INFO one: a quieter worker never writes it
        deadline = time.monotonic() + ready_within
        while WORKER_READY not in _read_from(log_path, start):
            if child.process.poll() is not None:
                self.stop_child(child)
                raise StackError(
                    f"the worker exited with code {child.process.returncode} before it polled; see {log_path}"
                )
            if time.monotonic() > deadline:
                self.stop_child(child)  # a late one would be a second worker beside the next start's
                raise TimeoutError(f"the worker did not poll Temporal within {ready_within:.0f}s; see {log_path}")
            self.checkpoint()
            time.sleep(0.1)
        return child

    def apply_schedules(self) -> None:
        """`runbook schedules apply`, as production runs it on deploy: the policy's routine runs
        become Temporal Schedules (a second start changes nothing)."""
        env = {**os.environ, **self.config.client_env()}
        done = subprocess.run(
            [sys.executable, "-m", "runbook_cli.main", "schedules", "apply"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"runbook schedules apply failed: {done.stderr.strip()}")
        for line in done.stdout.splitlines():
            print(f"[schedules] {line}", flush=True)

    def start_intake(self) -> Child:
        from intake.sessions import hash_password

        operators = self.config.data_dir / "operators.json"
        if not operators.exists():  # the demo operators sign in with "demo" (page and `runbook login`)
            operators.write_text(json.dumps({name: hash_password(DEMO_OPERATOR_PASSWORD) for name in DEMO_OPERATORS}))
        child = self.spawn("intake", [sys.executable, "-m", "intake"], echo=True)
        wait_for_http(f"{self.config.url(self.config.intake_port)}/healthz", timeout=30)
        wait_for_http(f"{self.config.url(self.config.operator_port)}/healthz", timeout=30)
        return child

    def start(self, with_worker: bool = True) -> None:
        """Everything, in dependency order; on any failure what was started is stopped."""
        steps: list[Callable[[], object]] = [
            self.check_ports,
            self.prepare_identity,
            self.start_temporal,
            self.start_moto,
            self.seed_aws,
            self.start_lambda_emulator,
            self.start_bedrock_emulator,
            self.start_pagerduty,
            self.start_demo_service,
            *([self.start_worker] if with_worker else []),
            self.apply_schedules,
            self.start_intake,
        ]
        try:
            for step in steps:
                self.checkpoint()
                step()
            self.checkpoint()
        except BaseException:
            self.stop()
            raise

    # ------------------------------------------------------------------ processes

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, echo: bool = False) -> Child:
        log_dir = self.config.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        full_env = {**os.environ, **self.config.client_env(), **(env or {}), "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            argv,
            cwd=PROJECT_ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the stack, which stops children in order
        )
        child = Child(name=name, process=process, log_path=log_path)
        assert process.stdout is not None
        child._pump = threading.Thread(
            target=_pump, args=(process.stdout, log_path, name if (echo and self.echo) else None), daemon=True
        )
        child._pump.start()
        self.children.append(child)
        return child

    def child(self, name: str) -> Child:
        for child in self.children:
            if child.name == name and child.process.poll() is None:
                return child
        raise KeyError(name)

    def exited(self) -> Child | None:
        for child in self.children:
            if child.process.poll() is not None:
                return child
        return None

    def stop_child(self, child: Child, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if child.process.poll() is None:
            try:
                os.killpg(child.process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                child.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
        if child._pump is not None:
            child._pump.join(timeout=2)
        if child in self.children:
            self.children.remove(child)

    def stop(self) -> None:
        """Reverse order: the worker first, so it never sees Temporal vanish under it."""
        for child in reversed(list(self.children)):
            self.stop_child(child)

    def summary(self) -> str:
        c = self.config
        rows = [
            ("Temporal frontend", c.temporal_address),
            ("Temporal web UI", c.url(c.temporal_ui_port)),
            ("AWS emulator (moto)", c.url(c.moto_port)),
            ("Lambda emulator (AWS_ENDPOINT_URL_LAMBDA)", c.url(c.lambda_port)),
            ("Bedrock and IAM emulator (AWS_ENDPOINT_URL_BEDROCK, _IAM)", c.url(c.bedrock_port)),
            ("PagerDuty emulator", f"{c.pagerduty_url}  (self-signed: {c.pagerduty_tls_dir / 'cert.pem'})"),
            ("demo hybrid-router service", c.url(c.demo_port)),
            ("alert intake (bearer token demo-intake-token)", f"{c.url(c.intake_port)}  (API: /openapi.json)"),
            ("sign-in service (`runbook login`; demo-oncall / demo-lead, password demo)", c.url(c.operator_port)),
            ("approval page", f"{c.url(c.operator_port)}/ui"),
            ("worker", f"task queue {os.environ.get('RUNBOOK_TASK_QUEUE', 'runbooks')}, policy {c.policy}"),
            ("worker metrics (Prometheus)", f"{c.url(c.worker_metrics_port)}/metrics"),
            ("policy with the stack's keys (RUNBOOK_POLICY)", str(c.composed_policy)),
            ("data (SQLite, emulator state)", str(c.data_dir)),
            ("logs", str(c.data_dir / "logs")),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"  {name:<{width}}  {where}" for name, where in rows)


# Where policy/demo.yaml expects the demo service (DEMO_SERVICE_PORT's default).
DEMO_SERVICE_DEFAULT_URL = "http://127.0.0.1:8090"


def _failover_probing(source: dict[str, Any], demo_url: str) -> dict[str, Any]:
    """The policy's failover section with its health URLs on the demo service where the stack runs
    it: the worker probes them, so on another port (the end-to-end tests' free ports) they must
    move along. Links only people follow (the status page) stay as written. Nothing to change: {}."""
    failover = source.get("failover")
    if not isinstance(failover, dict) or demo_url == DEMO_SERVICE_DEFAULT_URL:
        return {}
    services = {}
    for name, target in (failover.get("services") or {}).items():
        for key in ("health_urls", "region_checks"):
            urls = target.get(key) if isinstance(target, dict) else None
            if isinstance(urls, dict):
                target = {**target, key: {region: _moved(url, demo_url) for region, url in urls.items()}}
        services[name] = target
    return {"failover": {**failover, "services": services}}


def _moved(url: object, demo_url: str) -> object:
    if isinstance(url, str) and (url == DEMO_SERVICE_DEFAULT_URL or url.startswith(DEMO_SERVICE_DEFAULT_URL + "/")):
        return demo_url + url[len(DEMO_SERVICE_DEFAULT_URL) :]
    return url


def _signer(path: Path, issuer: Issuer) -> Signer:
    """The key at `path`, made there first if there is none."""
    if not path.exists():
        write_key(path)
    try:
        return Signer.from_file(path, issuer)
    except (ValueError, OSError) as err:
        raise StackError(f"{err} (remove {path} and the stack makes a new key)") from None


def _read_from(path: Path, offset: int) -> bytes:
    """What the log at `path` holds past `offset` (nothing yet: b"")."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read()
    except FileNotFoundError:
        return b""


def _pump(stream: IO[bytes], log_path: Path, prefix: str | None) -> None:
    with log_path.open("ab") as log:
        for line in iter(stream.readline, b""):
            log.write(line)
            log.flush()
            if prefix is not None:
                sys.stdout.write(f"[{prefix}] {line.decode(errors='replace')}")
                sys.stdout.flush()


def run_foreground() -> int:
    """`make run`: start everything, say where it listens, stop everything on Ctrl-C."""
    try:
        config = StackConfig.from_env()
    except StackError as err:
        print(f"make run: {err}", file=sys.stderr)
        return 2
    stack = Stack(config, echo=True)
    stopping = stack.interrupted

    def on_signal(*_: object) -> None:
        stopping.set()

    # Handlers for both: a stack started from a script may have inherited SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    print("starting the local stack ...", flush=True)
    try:
        stack.start()
        print(f"local stack is up:\n{stack.summary()}", flush=True)
        print(
            "try: .venv/bin/runbook login --as demo-oncall   (password demo), then "
            ".venv/bin/runbook demo break hybrid-router   (the README walks through an incident)"
        )
        print("Ctrl-C stops everything.", flush=True)
        while not stopping.is_set():
            dead = stack.exited()
            if dead is not None:
                print(
                    f"{dead.name} exited with code {dead.process.returncode}; see {dead.log_path}. Stopping the stack.",
                    file=sys.stderr,
                )
                return 1
            stopping.wait(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    except (StackError, TimeoutError) as err:
        print(f"make run: {err}", file=sys.stderr)
        return 1
    finally:
        print("stopping the local stack ...", flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan children
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        print("stopped.", flush=True)
