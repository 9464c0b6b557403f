"""Where things are: every address and secret comes from the environment.

The defaults are those of the local stack (`make run`). Production sets the variables
(see the README's table) and leaves the emulator-only ones unset. Where Temporal is (address,
namespace, TLS, API key, profiles) is not here: `client.py` reads Temporal's own variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    task_queue: str = field(default_factory=lambda: _env("RUNBOOK_TASK_QUEUE", "runbooks"))
    # host:port of the worker's Prometheus endpoint (/metrics); empty: none
    worker_metrics_address: str = field(default_factory=lambda: _env("WORKER_METRICS_ADDRESS", "127.0.0.1:9464"))
    policy_path: Path = field(
        default_factory=lambda: Path(_env("RUNBOOK_POLICY", str(PROJECT_ROOT / "policy" / "default.yaml")))
    )
    # The platform's own API: component health, system status, the emergency switch.
    platform_url: str = field(default_factory=lambda: _env("PLATFORM_URL", "http://127.0.0.1:8090"))
    platform_admin_token: str = field(default_factory=lambda: _env("PLATFORM_ADMIN_TOKEN", "demo-admin-token"))
    pagerduty_events_url: str = field(
        default_factory=lambda: _env("PAGERDUTY_EVENTS_URL", "https://events.pagerduty.com")
    )
    pagerduty_api_url: str = field(default_factory=lambda: _env("PAGERDUTY_API_URL", "https://api.pagerduty.com"))
    pagerduty_routing_key: str = field(default_factory=lambda: _env("PAGERDUTY_ROUTING_KEY", ""))
    pagerduty_api_token: str = field(default_factory=lambda: _env("PAGERDUTY_API_TOKEN", ""))
    # A CA file to trust for PagerDuty (a proxy's, or the local emulator's); unset: the system's.
    pagerduty_ca_bundle: str = field(default_factory=lambda: _env("PAGERDUTY_CA_BUNDLE", ""))
    pagerduty_from: str = field(default_factory=lambda: _env("PAGERDUTY_FROM", "runbooks@example.com"))
    # The PagerDuty service a maintenance window silences when the policy's maintenance section
    # names none for the runbook's service (the stack: the emulator's service of the routing key).
    pagerduty_service_id: str = field(default_factory=lambda: _env("PAGERDUTY_SERVICE_ID", ""))
    # Where a page PagerDuty did not take is told instead (a Slack-compatible incoming webhook,
    # or any endpoint that takes a JSON POST); unset: nowhere but the incident's status.
    paging_fallback_url: str = field(default_factory=lambda: _env("PAGING_FALLBACK_URL", ""))
    # Where a weekly or monthly review sends a critical breach: the alert intake's generic endpoint
    # (/v1/alerts) with its bearer token, as any monitoring sender; the intake signs and routes it.
    intake_url: str = field(
        default_factory=lambda: _env(
            "INTAKE_URL", f"http://{_env('INTAKE_HOST', '127.0.0.1')}:{_env('INTAKE_PORT', '8080')}"
        )
    )
    intake_alert_token: str = field(default_factory=lambda: _env("INTAKE_GENERIC_TOKEN", ""))
    data_dir: Path = field(default_factory=lambda: Path(_env("RUNBOOK_DATA_DIR", str(PROJECT_ROOT / ".data"))))


def load() -> Settings:
    return Settings()
