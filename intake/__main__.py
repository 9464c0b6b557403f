"""`python -m intake`: two listeners in one process, one asyncio loop.

- the webhook listener (INTAKE_HOST:INTAKE_PORT, default 127.0.0.1:8080): the alert senders'
  endpoints only (`intake.app`); it may face the internet.
- the operator listener (OPERATOR_HOST:OPERATOR_PORT, default 127.0.0.1:8081): sign-in, the
  operators' API and the approval page (`intake.signin`); behind the operators' proxy.

Two signing keys, each a PEM file that `python -m signing generate PATH` makes: INTAKE_SIGNING_KEY
(the intake's: alerts and PagerDuty events) and SIGNIN_SIGNING_KEY (the sign-in service's:
operators' actions). The workers' policy lists their public keys under `trust`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

import settings
from client import TemporalConfigError, connect, load_config
from contracts import Policy, PolicyError, load_policy_file
from contracts.identity import Issuer
from intake.app import IntakeConfig, create_app
from intake.handoff import Handoff
from intake.limits import ListenerLimits, ListenerLimitsError
from intake.operations import Operations
from intake.sessions import SigninConfig, SigninConfigError
from intake.signin import create_operator_app
from signing import Signer, SigningKeyError

log = logging.getLogger("intake")


def signer_from_env(variable: str, issuer: Issuer) -> Signer:
    """The signing key named by `variable`; the start stops, naming it, if there is none."""
    path = os.environ.get(variable, "")
    if not path:
        sys.exit(
            f"intake: {variable} is not set: the path of the {issuer} signing key "
            "(make one with `python -m signing generate PATH`, and list the public key it prints "
            f"under trust.{'intake' if issuer == 'intake' else 'operators'} in the workers' policy)"
        )
    hint = "make a key with `python -m signing generate PATH`"
    try:
        return Signer.from_file(Path(path), issuer)
    except SigningKeyError as err:
        problem = str(err)
    except OSError as err:
        problem = f"cannot read {path}: {err.strerror or err}"
    sys.exit(f"intake: {variable}: {problem}" + ("" if "python -m signing generate" in problem else f" ({hint})"))


def warn_untrusted(policy: Policy, intake: Signer, signin: Signer) -> None:
    """Only the workers' policy counts, but a stack that shares one file should list both keys."""
    pairs = ((intake, policy.trust.intake, "intake"), (signin, policy.trust.operators, "operators"))
    for signer, listed, where in pairs:
        if signer.public_key not in listed:
            log.warning(
                "the policy's trust.%s does not list this process's %s key %s: workers reading this policy "
                "will refuse what it signs",
                where,
                signer.issuer,
                signer.key_id,
            )


class Listener(uvicorn.Server):
    """A uvicorn server that leaves signals to `serve` (two servers cannot both own them)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(servers: list[Listener]) -> None:
    """Every listener until a signal, or until one of them stops; then all of them, gracefully."""

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    stop()
    await asyncio.gather(*tasks)


def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    config = settings.load()
    try:
        policy = load_policy_file(config.policy_path)
    except PolicyError as err:
        sys.exit(f"intake: {err}")
    try:
        temporal = load_config()  # a broken Temporal configuration stops the start, not every request
    except TemporalConfigError as err:
        sys.exit(f"intake: {err}")
    try:
        signin = SigninConfig.from_env()
    except SigninConfigError as err:
        sys.exit(f"intake: {err}")
    intake_key = signer_from_env("INTAKE_SIGNING_KEY", "intake")
    signin_key = signer_from_env("SIGNIN_SIGNING_KEY", "signin")
    warn_untrusted(policy, intake_key, signin_key)

    handoff = Handoff(lambda: connect(temporal), config.task_queue, intake_key)
    try:
        intake_config = IntakeConfig.from_env(policy)
    except ValueError as err:  # a variable that cannot be used names itself
        sys.exit(f"intake: {err}")
    webhooks = create_app(intake_config, handoff)
    operators = create_operator_app(signin, Operations(handoff, signin_key, policy))
    host, port = os.environ.get("INTAKE_HOST", "127.0.0.1"), int(os.environ.get("INTAKE_PORT", "8080"))
    operator_host = os.environ.get("OPERATOR_HOST", "127.0.0.1")
    operator_port = int(os.environ.get("OPERATOR_PORT", "8081"))
    try:  # slow and greedy clients: head and body deadlines, header size, connections (intake.limits)
        webhook_limits = ListenerLimits.from_env("INTAKE", default_connections=1000)
        operator_limits = ListenerLimits.from_env("OPERATOR", default_connections=100)
    except ListenerLimitsError as err:
        sys.exit(f"intake: {err}")
    servers = [
        Listener(webhook_limits.uvicorn_config(webhooks, host=host, port=port, log_level="warning", access_log=False)),
        # The operator listener judges proxies by their own address: uvicorn must not swap in the
        # address a proxy forwards for, nor the scheme it says (its proxy_headers).
        Listener(
            operator_limits.uvicorn_config(
                operators,
                host=operator_host,
                port=operator_port,
                proxy_headers=False,
                log_level="warning",
                access_log=False,
            )
        ),
    ]
    log.info("alert intake listening on http://%s:%d (Temporal %s)", host, port, temporal.describe())
    log.info(
        "sign-in service, operators' API and approval page on http://%s:%d (page: /ui; %s)",
        operator_host,
        operator_port,
        f"trusted header {signin.trusted_header} from {', '.join(sorted(signin.trusted_proxies))}"
        if signin.trusted_header
        else "password sign-in",
    )
    # uvloop where it installs (Linux, macOS): the event loop is a good part of the intake's CPU
    # per alert in a storm (bench/intake_storm.py); asyncio's own loop elsewhere.
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve(servers))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    main()
