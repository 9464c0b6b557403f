"""Workflows: one module per runbook. Deterministic; side effects live in activities/."""

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

ALL = [
    IncidentResponseWorkflow,
    ScalingDecisionWorkflow,
    RegionFailoverWorkflow,
    RegionFailbackWorkflow,
    PostIncidentWorkflow,
    BedrockConnectivityWorkflow,
    FollowupDigestWorkflow,
    PerformanceReviewWorkflow,
    ScheduleWatchdogWorkflow,
    MaintenanceWindowWorkflow,
    WeeklyReviewWorkflow,
    CapacityReviewWorkflow,
]
