"""`runbook followup start ID` end to end on the dev server: the CLI, the sign-in service's
POST /api/v1/followup, the signed ask and the run checking its start against the incident's own
record; an incident still open, or a run that is no incident, is refused and starts nothing."""

from __future__ import annotations

import uuid

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.runs import Runs
from contracts import Approve, IncidentStatus
from contracts.post_incident import FollowupStatus, postincident_workflow_id
from tests.fakes import FakePlatform, incident_when, open_acknowledged
from tests.identity import signing_client
from tests.policies import default_policy, scaled
from tests.test_post_incident import FakeBucket, Followups
from tests.test_signin import cli_env as cli_env_fixture  # noqa: F401 - a fixture
from tests.test_signin import operator_app, refused, runbook, serving, sign_in
from workflows.incident_response import IncidentResponseWorkflow
from workflows.post_incident import PostIncidentWorkflow


@pytest.mark.usefixtures("cli_env_fixture")  # the CLI's session under a config home of the test's own
async def test_followup_start_through_the_cli_signed_in_the_operators_name(
    dev_env: WorkflowEnvironment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = scaled(default_policy(), 1 / 300)
    assert policy.postincident is not None
    policy.postincident.severities = []  # as before this runbook: an incident that closes starts none
    region = f"test-{uuid.uuid4().hex[:8]}"
    policy.services["hybrid-router"] = policy.services["hybrid-router"].model_copy(update={"region": region})
    platform, bucket = FakePlatform(policy), FakeBucket()
    task_queue = f"followup-start-{uuid.uuid4()}"
    target = dev_env.client.service_client.config.target_host
    monkeypatch.setenv("TEMPORAL_ADDRESS", target)
    async with Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[IncidentResponseWorkflow, PostIncidentWorkflow],
        activities=[*platform.activities(), bucket.store_postmortem, *Runs(dev_env.client).all()],
    ):
        client = signing_client(dev_env.client)
        incident = await open_acknowledged(client, dev_env, task_queue, "hybrid-router", region)
        seen = await incident_when(incident, lambda v: v.pending_approval is not None)
        assert seen.pending_approval is not None
        with serving(operator_app(target, task_queue, policy)) as url:
            monkeypatch.setenv("RUNBOOK_SIGNIN_URL", url)
            await sign_in(capsys, monkeypatch, "alice")
            still_open = await refused(capsys, "followup", "start", seen.id)
            assert still_open.code == 1 and "still" in str(still_open), still_open
            await incident.execute_update(
                IncidentResponseWorkflow.approve, Approve(by="bob", plan_id=seen.pending_approval.plan_id)
            )
            closed = await incident_when(incident, lambda v: v.status == IncidentStatus.RESOLVED)
            followup_id = postincident_workflow_id(closed.id)
            assert not [w async for w in dev_env.client.list_workflows(f"WorkflowId = '{followup_id}'")]

            printed = await runbook(capsys, "followup", "start", closed.id)
            assert printed.strip() == followup_id
            followups = Followups(dev_env, client, task_queue, policy, platform, bucket)
            handle = dev_env.client.get_workflow_handle(followup_id)
            view = await followups.until(handle, lambda v: v.status == FollowupStatus.REVIEW_PENDING)
            assert view.opened_by == "alice" and view.incident_id == closed.id
            assert [e.actor for e in view.timeline if e.event == "asked"] == ["alice"]
            assert [s.incident_workflow_id for s in bucket.stored] == [incident.id]

            # asked again: the running follow-up takes it; nothing is drafted twice
            assert (await runbook(capsys, "followup", "start", closed.id)).strip() == followup_id
            again = await followups.until(handle, lambda v: any(e.event == "asked again" for e in v.timeline))
            assert [e.actor for e in again.timeline if e.event == "asked again"] == ["alice"]
            assert again.status == FollowupStatus.REVIEW_PENDING and len(bucket.stored) == 1

            not_incident = await refused(capsys, "followup", "start", followup_id)
            assert not_incident.code == 2 and "follow-ups are of incidents" in str(not_incident)
        await handle.terminate("test done")
