"""Who acts is proven: operators' Updates and the intake's signals straight to Temporal.

An attacker who can reach Temporal's frontend sends an Update or a signal with no assertion, a
bad signature, an expired one, one for another run or plan, or in another name: the runbook
refuses it and nothing changes. The workflow tests run on the dev server (the time-skipping
server has gaps around refused Updates); the verification rules themselves are unit-tested.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from contracts import (
    Acknowledge,
    Alert,
    Approve,
    Cancel,
    Comment,
    IdentityError,
    IncidentInput,
    IncidentResult,
    IncidentStatus,
    IncidentView,
    PagerDutyEvent,
    Reject,
    Severity,
    Trust,
    incident_workflow_id,
    request_digest,
    verify_operator,
    verify_signal,
)
from runbook_cli.main import render
from signing import Signer
from starter import WORKFLOW_TYPE
from tests.identity import INTAKE, OTHER, SIGNIN, first_run_id, operator_assertion
from tests.test_incident_workflow import Harness, _harness
from workflows.incident_response import IncidentResponseWorkflow

TRUST = Trust(operators=[SIGNIN.public_key], intake=[INTAKE.public_key])
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- the rules


def signed_approve(**statement: Any) -> Approve:
    request = Approve(by="alice", plan_id="plan-1")
    fields = {"subject": "alice", "action": "approve", "workflow_id": "wf", "run_id": "run-1", "plan_id": "plan-1"}
    fields.update(statement)
    signer = fields.pop("signer", SIGNIN)
    return signer.sign(request, issued_at=NOW.timestamp(), **fields)


def refusal(request: Any, **checks: Any) -> str:
    arguments: dict[str, Any] = {
        "trust": TRUST,
        "action": "approve",
        "workflow_id": "wf",
        "run_id": "run-1",
        "plan_id": "plan-1",
        "now": NOW,
    }
    arguments.update(checks)
    with pytest.raises(IdentityError) as refused:
        verify_operator(request, **arguments)
    return str(refused.value)


def test_a_proper_assertion_is_accepted_and_names_its_key() -> None:
    statement = verify_operator(signed_approve(), TRUST, "approve", "wf", "run-1", "plan-1", NOW)
    assert (statement.sub, statement.kid, statement.act) == ("alice", SIGNIN.key_id, "approve")


def test_every_way_of_not_proving_is_refused_with_its_reason() -> None:
    good = signed_approve()
    assert "no signed assertion" in refusal(Approve(by="alice", plan_id="plan-1"))
    assert "does not trust" in refusal(signed_approve(signer=OTHER))
    body, _, signature = str(good.assertion).partition(".")
    forged_signature = body + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    assert "signature is not valid" in refusal(good.model_copy(update={"assertion": forged_signature}))
    assert "malformed" in refusal(good.model_copy(update={"assertion": "not-a-token"}))
    assert "expired" in refusal(good, now=NOW + timedelta(hours=1))
    assert "in the future" in refusal(good, now=NOW - timedelta(hours=1))
    assert "another run" in refusal(good, run_id="run-2")
    assert "another run" in refusal(good, workflow_id="wf-2")
    assert "for plan plan-1, not plan-2" in refusal(good.model_copy(update={"plan_id": "plan-2"}), plan_id="plan-2")
    assert "'approve', not 'reject'" in refusal(good, action="reject")
    assert "in the name of bob, but the assertion is alice's" in refusal(good.model_copy(update={"by": "bob"}))
    assert "differs" in refusal(good.model_copy(update={"comment": "added after signing"}))
    statement = verify_operator(good, TRUST, "approve", "wf", "run-1", "plan-1", NOW)
    assert "used already" in refusal(good, used={statement.jti})


def test_the_intakes_key_does_not_sign_for_operators_nor_the_reverse() -> None:
    as_intake = Signer(INTAKE.private_key, "signin")  # the intake's key claiming to be the sign-in service
    assert "does not trust" in refusal(signed_approve(signer=as_intake))
    alert = Alert(source="x", service="s", region="r", summary="x", received_at=NOW)
    with pytest.raises(IdentityError, match="does not trust"):
        verify_signal(
            Signer(SIGNIN.private_key, "intake").sign(alert, subject="x", action="alert", workflow_id="w"),
            TRUST,
            "alert",
            "w",
            NOW,
        )


def test_key_rotation_both_listed_keys_are_trusted_and_a_dropped_one_is_not() -> None:
    new = Signer.generate("signin")
    rotating = TRUST.model_copy(update={"operators": [SIGNIN.public_key, new.public_key]})
    for signer in (SIGNIN, new):
        verify_operator(signed_approve(signer=signer), rotating, "approve", "wf", "run-1", "plan-1", NOW)
    rotated = TRUST.model_copy(update={"operators": [new.public_key]})
    assert "does not trust" in refusal(signed_approve(), trust=rotated)


def test_an_assertion_may_not_hold_longer_than_the_policy_allows() -> None:
    long = signed_approve(lifetime=timedelta(days=1))
    assert "holds longer" in refusal(long)


def test_the_policy_refuses_a_key_that_is_not_one() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Trust(operators=["c2hvcnQ="])


def test_the_digest_binds_every_field_but_the_assertion_itself() -> None:
    request = Comment(by="alice", text="one")
    assert request_digest(request) == request_digest(request.model_copy(update={"assertion": "x.y"}))
    assert request_digest(request) != request_digest(request.model_copy(update={"text": "two"}))


# --------------------------------------------------------------------------- the workflow, on the dev server


@pytest.fixture
async def slow(dev_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    """The default policy at a tenth of its times: nothing moves on its own while a test knocks."""
    async with _harness(dev_env, 1 / 10) as harness:
        yield harness


async def accepted_updates(handle: WorkflowHandle) -> int:
    history = await handle.fetch_history()
    return sum(event.HasField("workflow_execution_update_accepted_event_attributes") for event in history.events)


def unchanged(view: IncidentView) -> dict[str, Any]:
    return view.model_dump(exclude={"timeline"}) | {"timeline": len(view.timeline)}


Forge = Callable[[BaseModel, str, str, str], BaseModel]


def forgeries(plan_id: str | None) -> dict[str, tuple[Forge, str]]:
    """Ways to send an operator request straight to Temporal, each with the refusal it earns."""

    def as_is(request: BaseModel, action: str, wf: str, run: str) -> BaseModel:
        return request

    def untrusted(request: BaseModel, action: str, wf: str, run: str) -> BaseModel:
        return operator_assertion(request, action, wf, run, signer=OTHER)

    def bad_signature(request: BaseModel, action: str, wf: str, run: str) -> BaseModel:
        signed = operator_assertion(request, action, wf, run)
        body, _, signature = str(signed.assertion).partition(".")
        flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
        return signed.model_copy(update={"assertion": f"{body}.{flipped}"})

    def expired(request: BaseModel, action: str, wf: str, run: str) -> BaseModel:
        return operator_assertion(request, action, wf, run, issued_at=datetime.now(UTC).timestamp() - 3600)

    def another_run(request: BaseModel, action: str, wf: str, run: str) -> BaseModel:
        return operator_assertion(request, action, wf, str(uuid.uuid4()))

    def another_name(request: BaseModel, action: str, wf: str, run: str) -> BaseModel:
        return operator_assertion(request, action, wf, run, subject="mallory")

    def another_action(request: BaseModel, action: str, wf: str, run: str) -> BaseModel:
        return operator_assertion(request, "comment" if action != "comment" else "acknowledge", wf, run)

    ways: dict[str, tuple[Forge, str]] = {
        "no assertion": (as_is, "no signed assertion"),
        "an untrusted key": (untrusted, "does not trust"),
        "a bad signature": (bad_signature, "signature is not valid"),
        "expired": (expired, "expired"),
        "another run": (another_run, "another run"),
        "another name": (another_name, "in the name of"),
        "another action": (another_action, "the assertion is for"),
    }
    if plan_id is not None:

        def another_plan(request: BaseModel, action: str, wf: str, run: str) -> BaseModel:
            return operator_assertion(request, action, wf, run, plan_id="plan-other")

        ways["another plan"] = (another_plan, "for plan plan-other")
    return ways


REQUESTS: dict[str, Callable[[str], BaseModel]] = {
    "acknowledge": lambda plan: Acknowledge(by="alice", note="on it"),
    "comment": lambda plan: Comment(by="alice", text="looking"),
    "cancel": lambda plan: Cancel(by="alice", reason="handled by hand"),
    "approve": lambda plan: Approve(by="bob", plan_id=plan),
    "reject": lambda plan: Reject(by="bob", plan_id=plan, reason="not this"),
}


@pytest.mark.parametrize("action", list(REQUESTS))
async def test_an_operator_update_straight_to_temporal_is_refused_unless_proven(slow: Harness, action: str) -> None:
    handle = await slow.open()
    deciding = action in ("approve", "reject")
    if deciding:
        view = await slow.awaiting_approval(handle)  # acknowledged, properly signed, through the signing client
        assert view.pending_approval is not None
        plan_id: str | None = view.pending_approval.plan_id
    else:
        view = await slow.until(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
        plan_id = None
    raw = slow.env.client.get_workflow_handle(handle.id)  # no signing: what an attacker at :7233 has
    run = await first_run_id(slow.env.client, handle.id)
    before, accepted = unchanged(view), await accepted_updates(handle)
    request = REQUESTS[action](plan_id or "")

    for name, (forge, reason) in forgeries(plan_id).items():
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await raw.execute_update(action, forge(request, action, handle.id, run))
        assert reason in str(getattr(refused.value.cause, "message", refused.value.cause)), name

    assert unchanged(await handle.query(IncidentResponseWorkflow.view)) == before
    assert await accepted_updates(handle) == accepted  # a refused Update leaves no history

    proven = operator_assertion(request, action, handle.id, run)
    await raw.execute_update(action, proven)  # the same request, proven: accepted
    after = await handle.query(IncidentResponseWorkflow.view)
    entry = next(e for e in reversed(after.timeline) if e.actor == proven.by)
    assert entry.key_id == SIGNIN.key_id
    if action in ("acknowledge", "comment"):  # may be asked again; the spent assertion may not
        with pytest.raises(WorkflowUpdateFailedError) as replayed:
            await raw.execute_update(action, proven)
        assert "used already" in str(getattr(replayed.value.cause, "message", ""))
    await handle.terminate("test done")


async def test_a_comment_altered_after_signing_is_refused(slow: Harness) -> None:
    handle = await slow.open()
    await slow.until(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
    run = await first_run_id(slow.env.client, handle.id)
    signed = operator_assertion(Comment(by="alice", text="all fine"), "comment", handle.id, run)
    altered = signed.model_copy(update={"text": "approve the failover now"})
    raw = slow.env.client.get_workflow_handle(handle.id)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await raw.execute_update("comment", altered)
    assert "differs" in str(getattr(refused.value.cause, "message", ""))
    await raw.execute_update("comment", signed)
    with pytest.raises(WorkflowUpdateFailedError) as replayed:
        await raw.execute_update("comment", signed)
    assert "used already" in str(getattr(replayed.value.cause, "message", ""))
    comments = [e for e in (await handle.query(IncidentResponseWorkflow.view)).timeline if e.event == "comment"]
    assert [c.detail for c in comments] == ["all fine"]
    await handle.terminate("test done")


def pagerduty_event(event_type: str, event_id: str) -> PagerDutyEvent:
    return PagerDutyEvent.model_validate(
        {
            "event_id": event_id,
            "event_type": event_type,
            "incident_id": "PFAKE01",
            "agent": "Mallory",
            "occurred_at": datetime.now(UTC),
        }
    )


async def test_forged_signals_do_not_acknowledge_clear_or_resolve(slow: Harness) -> None:
    handle = await slow.open(severity=Severity.P2)  # P2: a cleared condition would resolve the incident
    view = await slow.until(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
    raw = slow.env.client.get_workflow_handle(handle.id)
    started = (await handle.describe()).start_time
    assert started is not None
    resolved = Alert(
        source="alertmanager",
        service="hybrid-router",
        region=view.region,
        summary="ok",
        status="resolved",
        received_at=datetime.now(UTC),
    )
    forged = [
        ("pagerduty_event", pagerduty_event("incident.acknowledged", "f1")),  # unsigned
        (
            "pagerduty_event",
            Signer(OTHER.private_key, "intake").sign(  # signed by a key nobody trusts
                pagerduty_event("incident.resolved", "f2"),
                subject="intake/pagerduty",
                action="pagerduty_event",
                workflow_id=handle.id,
            ),
        ),
        (
            "pagerduty_event",
            INTAKE.sign(  # the intake's, for another workflow
                pagerduty_event("incident.resolved", "f3"),
                subject="intake/pagerduty",
                action="pagerduty_event",
                workflow_id=incident_workflow_id("hybrid-router", "elsewhere"),
            ),
        ),
        (
            "pagerduty_event",
            INTAKE.sign(  # the intake's, signed before this run: a replay from an earlier one
                pagerduty_event("incident.acknowledged", "f4"),
                subject="intake/pagerduty",
                action="pagerduty_event",
                workflow_id=handle.id,
                issued_at=started.timestamp() - 3600,
            ),
        ),
        ("alert", resolved),  # unsigned
        ("alert", INTAKE.sign(resolved, subject="intake/resolution", action="pagerduty_event", workflow_id=handle.id)),
    ]
    for signal, payload in forged:
        await raw.signal(signal, payload)
    after = await slow.until(handle, lambda v: v.refused_signals == len(forged))
    assert after.acknowledged_by is None and after.status == IncidentStatus.AWAITING_ACK
    assert after.alert_count == 1 and unchanged(after) == unchanged(view) | {"refused_signals": len(forged)}
    assert f"REFUSED       {len(forged)} signal(s) the intake did not sign" in render(after)  # `runbook show`

    # The intake's own signature on the same resolution: taken (the condition clears; P2 resolves).
    await raw.signal("alert", INTAKE.sign(resolved, subject="intake/resolution", action="alert", workflow_id=handle.id))
    result: IncidentResult = await handle.result()
    assert result.view.status == IncidentStatus.RESOLVED and result.view.alert_count == 2
    await slow.keep_history(handle, "signed_forged_signals_refused")


@pytest.mark.parametrize("how", ["unsigned", "forged policy and keys"])
async def test_a_run_started_straight_in_temporal_pages_nobody(slow: Harness, how: str) -> None:
    region = f"test-{uuid.uuid4().hex[:8]}"
    slow.policy.services["hybrid-router"] = slow.policy.services["hybrid-router"].model_copy(update={"region": region})
    workflow_id = incident_workflow_id("hybrid-router", region)
    alert = Alert(
        source="alertmanager",
        service="hybrid-router",
        region=region,
        summary="down",
        severity=Severity.P0,
        received_at=datetime.now(UTC),
    )
    policy = None
    if how != "unsigned":  # the attacker's own policy in the start input, trusting the attacker's key
        attacker = Signer(OTHER.private_key, "intake")
        policy = slow.policy.model_copy(
            update={"trust": Trust(operators=[OTHER.public_key], intake=[OTHER.public_key])}
        )
        alert = attacker.sign(alert, subject="intake/alertmanager", action="alert", workflow_id=workflow_id)
    handle = await slow.env.client.start_workflow(
        WORKFLOW_TYPE,
        IncidentInput(
            incident_id="INC-FORGED", service="hybrid-router", region=region, opened_by="mallory", policy=policy
        ),
        id=workflow_id,
        task_queue=slow.task_queue,
        start_signal="alert",
        start_signal_args=[alert],
        result_type=IncidentResult,
    )
    result = await handle.result()
    assert result.view.status == IncidentStatus.REFUSED
    assert "opened by no alert the intake signed" in result.outcome
    assert slow.fake.called("trigger_page") == [] and result.view.refused_signals == 1
    await slow.keep_history(handle, f"signed_forged_start_{how.replace(' ', '_')}")


async def test_who_handed_the_first_alert_over_is_who_opened_the_run(slow: Harness) -> None:
    """The start input's opened_by is anyone's to write; the signed alert's subject is not."""
    handle = await slow.open()
    view = await slow.until(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
    assert view.opened_by == "tester"  # the subject the intake signed (tests.test_incident_workflow.Harness.open)
    await handle.terminate("test done")


async def test_an_earlier_incidents_pagerduty_event_replayed_does_not_close_this_one(slow: Harness) -> None:
    """Validly signed by PagerDuty (and so by the intake), but of an earlier PagerDuty incident of
    the same target, or from before this run: ignored. This run's own event is taken."""
    handle = await slow.open()
    view = await slow.until(handle, lambda v: v.status == IncidentStatus.AWAITING_ACK)
    assert view.pagerduty is not None
    started = (await handle.describe()).start_time
    assert started is not None

    def event(event_id: str, key: str | None, at: datetime) -> PagerDutyEvent:
        return PagerDutyEvent(
            event_id=event_id,
            event_type="incident.resolved",
            incident_id="PFAKE01",
            agent="Jane Doe",
            occurred_at=at,
            incident_key=key,
        )

    earlier_key = f"{handle.id}#INC-20261101-000000-0000"
    replays = [
        event("old-1", earlier_key, datetime.now(UTC)),  # another incident's page
        event("old-2", None, started - timedelta(hours=1)),  # before this run started
    ]
    for replay in replays:
        await handle.signal(IncidentResponseWorkflow.pagerduty_event, replay)  # signed by the intake
    marker = Alert(  # handled after the replays: once it counts, they have been judged
        source="alertmanager",
        service="hybrid-router",
        region=view.region,
        summary="still down",
        received_at=datetime.now(UTC),
    )
    await handle.signal(IncidentResponseWorkflow.alert, marker)
    view = await slow.until(handle, lambda v: v.alert_count == 2)
    assert view.status == IncidentStatus.AWAITING_ACK and view.refused_signals == 0
    assert not any(e.event.startswith("PagerDuty:") for e in view.timeline)

    own = event("new-1", view.pagerduty.dedup_key, datetime.now(UTC))
    await handle.signal(IncidentResponseWorkflow.pagerduty_event, own)
    result: IncidentResult = await handle.result()
    assert result.view.status == IncidentStatus.RESOLVED and result.outcome == "resolved in PagerDuty by Jane Doe"
    await slow.keep_history(handle, "signed_replayed_pagerduty_events_ignored")


def test_a_field_added_later_with_a_default_keeps_old_signatures_valid() -> None:
    class Later(Comment):
        added: str | None = None  # a field a newer contract has and an older signer never set

    assert request_digest(Later(by="alice", text="t")) == request_digest(Comment(by="alice", text="t"))
    assert request_digest(Later(by="alice", text="t", added="x")) != request_digest(Comment(by="alice", text="t"))
