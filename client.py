"""The one place that connects to Temporal: the worker, the intake and the CLI all come here.

Where to connect comes from Temporal's environment configuration (`temporalio.envconfig`),
the same variables and TOML profiles the `temporal` CLI and every Temporal SDK read:
TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS and the
TEMPORAL_TLS_* certificate variables, TEMPORAL_GRPC_META_*, and a profile (TEMPORAL_PROFILE,
default `default`) of a TOML file (TEMPORAL_CONFIG_FILE, default
~/.config/temporalio/temporal.toml). The variables override the profile. What nothing sets
falls back to the local stack's server: 127.0.0.1:7233, namespace `default`, no TLS.

Every client uses the pydantic data converter: the contracts are pydantic models.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfigProfile
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_NAMESPACE = "default"


class TemporalConfigError(ValueError):
    """The Temporal connection settings cannot be used; the message names the variable or file."""


@dataclass(frozen=True)
class TemporalConfig:
    """Where and how to connect: the keyword arguments of `Client.connect`, resolved."""

    address: str
    namespace: str
    profile: str
    connect_args: Mapping[str, Any]

    @property
    def security(self) -> str:
        tls = self.connect_args.get("tls")
        if "api_key" in self.connect_args:
            return "API key" + ("" if tls else ", no TLS")
        if isinstance(tls, TLSConfig) and tls.client_cert:
            return "mTLS"
        return "TLS" if tls else "no TLS"

    def describe(self) -> str:
        """For logs and error messages: never the key or certificates themselves."""
        return f"{self.address} (namespace {self.namespace}, profile {self.profile}, {self.security})"


def load_config(env: Mapping[str, str] | None = None) -> TemporalConfig:
    """The connection the environment (and the TOML profile it names) asks for."""
    env = dict(os.environ if env is None else env)
    profile = env.get("TEMPORAL_PROFILE") or "default"
    config_file = env.get("TEMPORAL_CONFIG_FILE")
    if config_file and not Path(config_file).expanduser().is_file():  # envconfig would ignore it silently
        raise TemporalConfigError(f"TEMPORAL_CONFIG_FILE={config_file}: no such file")
    try:
        args: dict[str, Any] = dict(ClientConfigProfile.load(override_env_vars=env).to_client_connect_config())
    except OSError as err:  # a certificate or key file named by TEMPORAL_TLS_* or the profile's [tls]
        raise TemporalConfigError(
            f"Temporal TLS file {err.filename}: {err.strerror} (TEMPORAL_TLS_* variables or profile {profile!r})"
        ) from None
    except Exception as err:  # noqa: BLE001 - the bridge's ConfigError: unknown profile, bad TOML
        where = f" in {config_file}" if config_file else ""
        raise TemporalConfigError(f"Temporal client configuration (profile {profile!r}{where}): {err}") from None
    args["target_host"] = args.get("target_host") or DEFAULT_ADDRESS
    args["namespace"] = args.get("namespace") or DEFAULT_NAMESPACE
    return TemporalConfig(address=args["target_host"], namespace=args["namespace"], profile=profile, connect_args=args)


async def connect(config: TemporalConfig | None = None, runtime: Runtime | None = None) -> Client:
    """A client for `config` (default: the environment's), with the pydantic data converter;
    `runtime`: one with telemetry (the worker's Prometheus metrics), else the SDK's default."""
    config = config or load_config()
    return await Client.connect(**config.connect_args, data_converter=pydantic_data_converter, runtime=runtime)


def metrics_runtime(address: str) -> Runtime:
    """A runtime that serves the SDK's metrics, and the runbooks' own (`workflow.metric_meter`),
    to Prometheus at http://ADDRESS/metrics; durations in seconds."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address, durations_as_seconds=True)))
