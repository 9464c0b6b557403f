"""Replays checked-in histories: a change to the workflow that breaks runs in flight fails here.

To add a history: `RECORD_HISTORIES=1 .venv/bin/pytest tests/test_incident_workflow.py -k dev-server`
(or tests/test_scaling_workflow.py, tests/test_bedrock_workflow.py) writes one per recorded
scenario into tests/histories/.
Keep the old ones: they are what runs in flight look like. A change that must differ from
them goes behind workflow.patched().
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from contracts import incident_workflow_id
from contracts.bedrock_connectivity import bedrock_workflow_id
from contracts.maintenance import maintenance_workflow_id
from contracts.post_incident import postincident_workflow_id
from contracts.region_failover import failback_workflow_id, failover_workflow_id
from contracts.scaling_decision import scaling_workflow_id
from workflows import ALL as WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*/*.json"))


def test_there_are_histories_to_replay() -> None:
    assert len(HISTORIES) >= 13


def workflow_id(path: Path) -> str:
    """The run's own workflow id (signed runs check what they were signed for against it): an
    incident's follows from its start input."""
    started = json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"]
    start = json.loads(base64.b64decode(started["input"]["payloads"][0]["data"]))
    if path.parent.name == "incident":
        return incident_workflow_id(start["service"], start["region"])
    if path.parent.name == "scaling":
        return scaling_workflow_id(start["service"], start["region"])
    if path.parent.name == "failover":
        return failover_workflow_id(start["service"])
    if path.parent.name == "failback":
        return failback_workflow_id(start["service"])
    if path.parent.name == "postincident":
        return postincident_workflow_id(start["incident_id"])
    if path.parent.name == "bedrock":
        return bedrock_workflow_id(start["region"])
    if path.parent.name == "maintenance" and start.get("schedule") is None:
        # an operator's window: its id names the service and start of the signed request
        events = json.loads(path.read_text())["events"]
        signaled = next(e for e in events if "workflowExecutionSignaledEventAttributes" in e)
        payload = signaled["workflowExecutionSignaledEventAttributes"]["input"]["payloads"][0]["data"]
        request = json.loads(base64.b64decode(payload))
        return maintenance_workflow_id(request["spec"]["service"], datetime.fromisoformat(request["start"]))
    return path.stem


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_without_nondeterminism(path: Path) -> None:
    history = WorkflowHistory.from_json(workflow_id(path), path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
