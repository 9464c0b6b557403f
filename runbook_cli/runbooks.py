"""The runbooks the CLI knows by a friendly name: `runbook runs --runbook NAME`.

Each runbook is one workflow type. A new runbook adds its line here; `--runbook` also takes
any workflow type name as it is, so a runbook missing from this table can still be listed.
"""

from __future__ import annotations

import re

from starter import FAILOVER_TYPE as FAILOVER
from starter import SCALING_TYPE as SCALING
from starter import WORKFLOW_TYPE as INCIDENT

RUNBOOKS: dict[str, str] = {
    "incident": INCIDENT,  # P0 incident response, workflows/incident_response.py
    "scaling": SCALING,  # scaling decisions, workflows/scaling_decision.py
    "failover": FAILOVER,  # multi-region failover, workflows/region_failover.py
    "failback": "RegionFailbackWorkflow",  # its failback, workflows/region_failback.py
    "followup": "PostIncidentWorkflow",  # post-incident follow-up, workflows/post_incident.py
    "bedrock": "BedrockConnectivityWorkflow",  # Bedrock connectivity, workflows/bedrock_connectivity.py
    "digest": "FollowupDigestWorkflow",  # the weekly digest of action items, workflows/followup_digest.py
    "review": "PerformanceReviewWorkflow",  # the daily performance review, workflows/performance_review.py
    "maintenance": "MaintenanceWindowWorkflow",  # maintenance windows, workflows/maintenance_window.py
}

_TYPE_NAME = re.compile(r"[A-Za-z_][\w.-]*")


def workflow_type(name: str) -> str:
    """The workflow type for a friendly runbook name or a workflow type name; ValueError if neither."""
    known = RUNBOOKS.get(name.strip().lower())
    if known is not None:
        return known
    if not _TYPE_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is neither a runbook ({', '.join(sorted(RUNBOOKS))}) nor a workflow type name")
    return name


def friendly_name(workflow_type_name: str) -> str | None:
    return next((name for name, kind in RUNBOOKS.items() if kind == workflow_type_name), None)
