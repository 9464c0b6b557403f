"""The human runbooks and the workflows must name the same steps in the same order."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from settings import PROJECT_ROOT
from workflows import (
    bedrock_connectivity,
    capacity_review,
    followup_digest,
    incident_response,
    maintenance_window,
    performance_review,
    post_incident,
    region_failback,
    region_failover,
    scaling_decision,
    schedule_watchdog,
    weekly_review,
)
from workflows.bedrock_connectivity import BedrockConnectivityWorkflow
from workflows.capacity_review import CapacityReviewWorkflow
from workflows.followup_digest import FollowupDigestWorkflow
from workflows.incident_response import IncidentResponseWorkflow
from workflows.maintenance_window import MaintenanceWindowWorkflow
from workflows.performance_review import PerformanceReviewWorkflow
from workflows.post_incident import PostIncidentWorkflow
from workflows.region_failback import RegionFailbackWorkflow
from workflows.region_failover import RegionFailoverWorkflow
from workflows.scaling_decision import ScalingDecisionWorkflow
from workflows.schedule_watchdog import ScheduleWatchdogWorkflow
from workflows.weekly_review import WeeklyReviewWorkflow

RUNBOOKS = [
    (PROJECT_ROOT / "runbooks" / "p0-incident-response.md", IncidentResponseWorkflow, incident_response.STEPS),
    (PROJECT_ROOT / "runbooks" / "scaling-decisions.md", ScalingDecisionWorkflow, scaling_decision.STEPS),
    (PROJECT_ROOT / "runbooks" / "region-failover.md", RegionFailoverWorkflow, region_failover.STEPS),
    (PROJECT_ROOT / "runbooks" / "region-failback.md", RegionFailbackWorkflow, region_failback.STEPS),
    (PROJECT_ROOT / "runbooks" / "post-incident.md", PostIncidentWorkflow, post_incident.STEPS),
    (
        PROJECT_ROOT / "runbooks" / "bedrock-connectivity.md",
        BedrockConnectivityWorkflow,
        bedrock_connectivity.STEPS,
    ),
    (PROJECT_ROOT / "runbooks" / "followup-digest.md", FollowupDigestWorkflow, followup_digest.STEPS),
    (
        PROJECT_ROOT / "runbooks" / "performance-review.md",
        PerformanceReviewWorkflow,
        performance_review.STEPS,
    ),
    (PROJECT_ROOT / "runbooks" / "schedule-watchdog.md", ScheduleWatchdogWorkflow, schedule_watchdog.STEPS),
    (PROJECT_ROOT / "runbooks" / "maintenance.md", MaintenanceWindowWorkflow, maintenance_window.STEPS),
    (PROJECT_ROOT / "runbooks" / "weekly-review.md", WeeklyReviewWorkflow, weekly_review.STEPS),
    (PROJECT_ROOT / "runbooks" / "capacity-planning.md", CapacityReviewWorkflow, capacity_review.STEPS),
]
IDS = [path.stem for path, _, _ in RUNBOOKS]


def runbook_steps(path: Path) -> list[str]:
    return re.findall(r"^## Step `([a-z_-]+)`", path.read_text(), flags=re.MULTILINE)


@pytest.mark.parametrize(("path", "workflow", "steps"), RUNBOOKS, ids=IDS)
def test_runbook_lists_the_workflows_steps_in_order(path: Path, workflow: type, steps: tuple[str, ...]) -> None:
    assert runbook_steps(path) == list(steps)


@pytest.mark.parametrize(("path", "workflow", "steps"), RUNBOOKS, ids=IDS)
def test_every_step_is_a_method_and_every_step_method_is_listed(
    path: Path, workflow: type, steps: tuple[str, ...]
) -> None:
    methods = {name.removeprefix("step_") for name, _ in inspect.getmembers(workflow) if name.startswith("step_")}
    assert methods == set(steps)


@pytest.mark.parametrize(("path", "workflow", "steps"), RUNBOOKS, ids=IDS)
def test_timeline_steps_are_runbook_steps(path: Path, workflow: type, steps: tuple[str, ...]) -> None:
    source = inspect.getsource(workflow)
    entered = set(re.findall(r'self\.enter\("([a-z_-]+)"', source))
    assert entered and entered <= set(steps)
