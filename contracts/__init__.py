"""Contracts shared by workflows, activities, the worker and the operators' CLI.

Everything that crosses a Temporal boundary is one of these pydantic models, so both sides agree
on shape and validation. The modules split them by concern; this package re-exports every public
name, so `from contracts import X` works whichever module X lives in.
"""

from contracts.alerts import Alert, PagerDutyEvent, incident_workflow_id, new_incident_id
from contracts.approvals import (
    Acknowledge,
    ApprovalRule,
    Approvals,
    Approve,
    Cancel,
    Comment,
    Decision,
    LadderStep,
    Reject,
    RiskLevel,
)
from contracts.common import Duration, Severity, Strict, TimelineEntry
from contracts.incident import (
    SEARCH_ATTRIBUTES,
    SEARCH_SERVICE,
    SEARCH_SEVERITY,
    SEARCH_STATUS,
    Diagnosis,
    IncidentInput,
    IncidentResult,
    IncidentStatus,
    IncidentView,
    OperatorReply,
    RemediationAction,
    RemediationPlan,
    RemediationRecord,
)
from contracts.paging import (
    EscalateRequest,
    NoteRequest,
    PageAndNote,
    PagerDutyNote,
    PagerDutyRef,
    PagerDutySync,
    PagerDutySynced,
    PageRequest,
)
from contracts.policy import (
    Communication,
    IncidentTimers,
    MetricQuery,
    Policy,
    PolicyError,
    Route,
    RouteMatch,
    ServiceTarget,
    SeverityPolicy,
    load_policy_file,
)
from contracts.systems import (
    DeploymentRequest,
    DeploymentState,
    DiagnoseRequest,
    EmergencySwitchRequest,
    HealthReading,
    HealthRequest,
    LogScan,
    LogScanRequest,
    MetricLevel,
    MetricReading,
    MetricsRequest,
    SystemStatus,
    Verification,
    VerifyRequest,
)

__all__ = [
    # common
    "Duration",
    "Severity",
    "Strict",
    "TimelineEntry",
    # alerts
    "Alert",
    "PagerDutyEvent",
    "incident_workflow_id",
    "new_incident_id",
    # policy
    "Communication",
    "IncidentTimers",
    "MetricQuery",
    "Policy",
    "PolicyError",
    "Route",
    "RouteMatch",
    "ServiceTarget",
    "SeverityPolicy",
    "load_policy_file",
    # approvals and operators' requests
    "Acknowledge",
    "ApprovalRule",
    "Approvals",
    "Approve",
    "Cancel",
    "Comment",
    "Decision",
    "LadderStep",
    "Reject",
    "RiskLevel",
    # paging
    "EscalateRequest",
    "NoteRequest",
    "PageAndNote",
    "PagerDutyNote",
    "PagerDutySync",
    "PagerDutySynced",
    "PageRequest",
    "PagerDutyRef",
    # systems
    "DeploymentRequest",
    "DeploymentState",
    "EmergencySwitchRequest",
    "HealthReading",
    "HealthRequest",
    "LogScan",
    "LogScanRequest",
    "MetricLevel",
    "MetricReading",
    "MetricsRequest",
    "SystemStatus",
    "DiagnoseRequest",
    "Verification",
    "VerifyRequest",
    # incident
    "SEARCH_ATTRIBUTES",
    "SEARCH_SERVICE",
    "SEARCH_SEVERITY",
    "SEARCH_STATUS",
    "Diagnosis",
    "IncidentInput",
    "IncidentResult",
    "IncidentStatus",
    "IncidentView",
    "OperatorReply",
    "RemediationAction",
    "RemediationPlan",
    "RemediationRecord",
]
