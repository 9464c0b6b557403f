"""Policies for tests: the shipped default, with test people, optionally scaled in time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from contracts import Policy, Trust, load_policy_file
from settings import PROJECT_ROOT
from tests.identity import INTAKE, SIGNIN

TRUST = Trust(operators=[SIGNIN.public_key], intake=[INTAKE.public_key])


def default_policy() -> Policy:
    policy = load_policy_file(PROJECT_ROOT / "policy" / "default.yaml")
    assert policy.approvals is not None
    approvals = policy.approvals.model_copy(update={"groups": {"oncall": ["alice"], "leads": ["bob"]}})
    return policy.model_copy(
        update={"responders": ["alice"], "approvers": ["alice", "bob"], "approvals": approvals, "trust": TRUST}
    )


def demo_policy() -> Policy:
    return load_policy_file(PROJECT_ROOT / "policy" / "demo.yaml").model_copy(update={"trust": TRUST})


def _scale(value: Any, factor: float) -> Any:
    if isinstance(value, timedelta):
        return value * factor
    if isinstance(value, dict):
        return {k: _scale(v, factor) for k, v in value.items()}
    if isinstance(value, list):
        return [_scale(v, factor) for v in value]
    return value


def scaled(policy: Policy, factor: float) -> Policy:
    """Every duration of the runbook (timers, severity matrix) multiplied by `factor`."""
    if factor == 1:
        return policy.model_copy(deep=True)
    data = policy.model_dump()
    data["severities"] = _scale(data["severities"], factor)
    data["timers"] = _scale(data["timers"], factor)
    if data.get("approvals"):
        data["approvals"]["ladder"] = _scale(data["approvals"]["ladder"], factor)
    return Policy.model_validate(data)
