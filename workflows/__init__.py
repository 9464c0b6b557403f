"""Workflows: one module per runbook. Deterministic; side effects live in activities/."""

from workflows.incident_response import IncidentResponseWorkflow

ALL = [IncidentResponseWorkflow]
