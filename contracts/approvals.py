"""Who may decide on a remediation, and the requests and decisions operators send to an incident."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from contracts.common import Duration, Strict


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class ApprovalRule(Strict):
    """Who may approve an action of one risk level, and how many of them.

    `four_eyes`: whoever opened the incident cannot be the only approver; when no person opened
    it (an alert did), at least two distinct people approve.
    `on_timeout`: the final answer when nobody decided; "approve" only for low risk.
    """

    approvers: list[str] = Field(default_factory=list)  # people, or "group:NAME"
    required: int = Field(default=1, ge=1)
    four_eyes: bool = False
    on_timeout: Literal["deny", "approve"] = "deny"


class LadderStep(Strict):
    after: Duration  # since the proposal
    action: Literal["remind", "repage"]  # a note and a timeline entry; or one more PagerDuty level


class Approvals(Strict):
    risk: dict[str, RiskLevel] = Field(
        default_factory=lambda: {
            "rollback": RiskLevel.MEDIUM,
            "force_new_deployment": RiskLevel.MEDIUM,
            "emergency_switch": RiskLevel.HIGH,
            "re_enable_hybrid_routing": RiskLevel.MEDIUM,
            "region_failover": RiskLevel.CRITICAL,
            "scale_up": RiskLevel.LOW,  # above the scaling budget only; within it no approval
            "scale_in": RiskLevel.LOW,
        }
    )
    rules: dict[RiskLevel, ApprovalRule] = Field(default_factory=dict)
    groups: dict[str, list[str]] = Field(default_factory=dict)
    ladder: list[LadderStep] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Approvals:
        for level, rule in self.rules.items():
            if rule.on_timeout == "approve" and level != RiskLevel.LOW:
                raise ValueError(f"approvals.rules.{level.value}: on_timeout approve is allowed for low risk only")
            for name in rule.approvers:
                if name.startswith("group:") and name[6:] not in self.groups:
                    raise ValueError(f"approvals.rules.{level.value}: unknown group {name[6:]!r}")
        return self


# --- operators


class Acknowledge(Strict):
    by: str = Field(min_length=1)
    note: str | None = None
    assertion: str | None = None  # signed by the sign-in service (contracts.identity)


class Approve(Strict):
    by: str = Field(min_length=1)
    plan_id: str = Field(min_length=1)
    comment: str | None = None
    assertion: str | None = None  # signed by the sign-in service (contracts.identity)


class Reject(Strict):
    by: str = Field(min_length=1)
    plan_id: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    assertion: str | None = None  # signed by the sign-in service (contracts.identity)


class Cancel(Strict):
    by: str = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=2000)
    assertion: str | None = None  # signed by the sign-in service (contracts.identity)


class Comment(Strict):
    by: str = Field(min_length=1)
    text: str = Field(min_length=1, max_length=4000)
    assertion: str | None = None  # signed by the sign-in service (contracts.identity)


class Decision(Strict):
    approved: bool
    by: str
    at: datetime
    plan_id: str | None = None
    reason: str = ""


# Any runbook's answer to an operator's request, with the run's status (each runbook has its
# own statuses; on the wire a status is its string either way).
class OperatorReply(Strict):
    message: str
    status: str
