"""What the operators' CLI and the approval page show of a run, for the runbooks whose view is
typed: their facts, and the pending plan's id and description (a plan id may be derived from
the plan, not a field of it, so a view read as plain data does not carry it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from contracts.bedrock_connectivity import BedrockView
from contracts.post_incident import FollowupView
from contracts.region_failover import FailbackView, FailoverView
from contracts.scaling_decision import ScalePlan, ScalingView

TypedView = ScalingView | FailoverView | FailbackView | FollowupView | BedrockView
TYPED_VIEWS: dict[
    str, type[ScalingView] | type[FailoverView] | type[FailbackView] | type[FollowupView] | type[BedrockView]
] = {
    "ScalingDecisionWorkflow": ScalingView,
    "RegionFailoverWorkflow": FailoverView,
    "RegionFailbackWorkflow": FailbackView,
    "PostIncidentWorkflow": FollowupView,
    "BedrockConnectivityWorkflow": BedrockView,
}
LABELS = {
    "ScalingDecisionWorkflow": "scaling",
    "RegionFailoverWorkflow": "failover",
    "RegionFailbackWorkflow": "failback",
    "PostIncidentWorkflow": "followup",
    "BedrockConnectivityWorkflow": "bedrock",
}


@dataclass(frozen=True)
class Shown:
    facts: list[tuple[str, str]]
    plan_id: str | None
    proposed: str | None


def typed_view(workflow_type: str, view: dict[str, Any]) -> TypedView | None:
    """The view as its runbook's model; None for other runbooks, or a view of another shape
    (an older run), which is then shown by the fields every view has."""
    model = TYPED_VIEWS.get(workflow_type)
    if model is None:
        return None
    try:
        return model.model_validate(view)
    except ValidationError:
        return None


def shown(workflow_type: str, view: dict[str, Any]) -> Shown | None:
    typed = typed_view(workflow_type, view)
    if typed is None:
        return None
    pending = typed.pending_approval
    if pending is None:
        return Shown(typed.facts(), None, None)
    proposed = f"{pending.direction}: {pending.describe()}" if isinstance(pending, ScalePlan) else pending.describe()
    return Shown(typed.facts(), pending.plan_id, proposed)
