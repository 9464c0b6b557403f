"""P0 incident response, step by step as `runbooks/p0-incident-response.md` gives it.

classify -> page -> acknowledge (escalating) -> diagnose -> propose -> approve ->
remediate -> verify -> resolve; with undo and escalate when the way forward closes.

One workflow per target (`incident/{service}/{region}`): every alert for the target is a
signal into it, so a storm is one incident. Operators act through Updates whose validators
refuse what cannot be done, so a refused command changes nothing and leaves no history.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts import (
        Acknowledge,
        Alert,
        Approve,
        Cancel,
        Comment,
        Decision,
        DeploymentRequest,
        DeploymentState,
        Diagnosis,
        EmergencySwitchRequest,
        EscalateRequest,
        HealthReading,
        HealthRequest,
        IncidentInput,
        IncidentResult,
        IncidentStatus,
        IncidentView,
        LogScan,
        LogScanRequest,
        MetricReading,
        MetricsRequest,
        NoteRequest,
        OperatorReply,
        PagerDutyEvent,
        PagerDutyRef,
        PageRequest,
        Policy,
        Reject,
        RemediationAction,
        RemediationPlan,
        RemediationRecord,
        SEARCH_SERVICE,
        SEARCH_SEVERITY,
        SEARCH_STATUS,
        ServiceTarget,
        Severity,
        SystemStatus,
        TimelineEntry,
    )

T = TypeVar("T")

# The runbook's step ids, in its order; a test keeps runbooks/p0-incident-response.md in step.
STEPS = (
    "classify",
    "page",
    "acknowledge",
    "diagnose",
    "propose",
    "approve",
    "remediate",
    "verify",
    "undo",
    "escalate",
    "resolve",
)

PAGERDUTY_SEVERITY = {Severity.P0: "critical", Severity.P1: "error", Severity.P2: "warning", Severity.P3: "info"}

# Reads may retry for a while; a page keeps trying for half an hour because a page that
# never goes out is the worst outcome; a remediation gets few attempts, then people decide.
READ = dict(
    start_to_close_timeout=timedelta(seconds=30),
    schedule_to_close_timeout=timedelta(minutes=2),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10)),
)
NOTIFY = dict(
    start_to_close_timeout=timedelta(seconds=30),
    schedule_to_close_timeout=timedelta(minutes=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)),
)
ACT = dict(
    start_to_close_timeout=timedelta(seconds=60),
    schedule_to_close_timeout=timedelta(minutes=5),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=30), maximum_attempts=5
    ),
)


class RunbookCancelled(Exception):
    """Raised out of a wait when an operator cancelled the runbook; `run` catches it."""


class Refused(ValueError):
    """An operator command that cannot be carried out; the Update is rejected unchanged."""


@workflow.defn
class IncidentResponseWorkflow:
    @workflow.init
    def __init__(self, input: IncidentInput) -> None:
        self.input = input
        self.policy: Policy | None = None
        self.step = "classify"
        self.status = IncidentStatus.OPENING
        self.severity: Severity | None = None
        self.summary = ""
        self.alerts: list[Alert] = []
        self.deliveries: set[str] = set()
        self.firing: set[str] = set()
        self.condition_cleared = False
        self.resolved_in_pagerduty_by: str | None = None
        self.acknowledged_by: str | None = None
        self.diagnosis: Diagnosis | None = None
        self.pending_plan: RemediationPlan | None = None
        self.decision: Decision | None = None
        self.approvals_given: list[Decision] = []
        self.rules_mode = False  # approval rules per risk level (runs from before them: one approver)
        self.audit_notes: list[tuple[str, str]] = []
        self.cancel_request: Cancel | None = None
        self.searchable = False  # upserts search attributes (runs from before them: memo only)
        self.applied: tuple[RemediationPlan, RemediationRecord] | None = None  # operators' actions still to note in PagerDuty
        self.audit_sender: asyncio.Task[None] | None = None
        self.remediation: RemediationRecord | None = None
        self.pagerduty: PagerDutyRef | None = None
        self.outcome: str | None = None
        self.timeline: list[TimelineEntry] = []

    @workflow.run
    async def run(self, input: IncidentInput) -> IncidentResult:
        self.policy = await workflow.execute_activity("load_policy", result_type=Policy, **READ)
        if workflow.patched("audit-notes"):
            self.audit_sender = asyncio.create_task(self.send_audit_notes())
        self.searchable = workflow.patched("search-attributes")
        # The first alert arrives with the start (signal-with-start).
        await workflow.wait_condition(lambda: bool(self.alerts))
        try:
            return await self.respond()
        except RunbookCancelled:
            return await self.cancelled()

    async def respond(self) -> IncidentResult:
        """The runbook, step by step."""
        await self.step_classify()
        if self.alerts[0].status == "resolved":
            # Only a resolution arrived (its incident had already closed): nobody is paged.
            self.enter("resolve", IncidentStatus.RESOLVED)
            return await self.finish(IncidentStatus.RESOLVED, "opened by a resolved alert: nothing to do")
        await self.step_page()
        await self.step_acknowledge()
        if self.resolved_in_pagerduty_by is not None:
            return await self.closed_in_pagerduty()
        diagnosis = await self.step_diagnose()
        plans = self.step_propose(diagnosis)
        if not plans:
            return await self.close_without_remediation("no remediation proposed")

        plan = plans.pop(0)
        decision = await self.step_approve(plan)
        while self.rules_mode and plans and decision is not None and not decision.approved and decision.by != "runbook":
            # a person rejected it: the runbook's next option (runs from before this rule escalate)
            plan = plans.pop(0)
            self.enter("propose", IncidentStatus.DIAGNOSING)
            self.record("proposed", f"next option {plan.plan_id}: {plan.describe()} ({plan.reason})")
            decision = await self.step_approve(plan)
        if self.resolved_in_pagerduty_by is not None and decision is None:
            return await self.closed_in_pagerduty()
        if decision is None:
            return await self.close_without_remediation("the alert cleared before a decision")
        if not decision.approved:
            return await self.step_escalate(f"remediation not approved: {decision.reason}")

        record = await self.step_remediate(plan)
        self.applied = (plan, record) if record is not None else None
        if record is not None and await self.step_verify(plan):
            return await self.step_resolve(f"resolved by {plan.action.value}")
        if record is not None:
            await self.step_undo(plan, record)
        return await self.step_escalate(f"{plan.action.value} did not restore the service")

    # ------------------------------------------------------------------ runbook steps

    async def step_classify(self) -> None:
        """Severity from the trigger; its response and escalation timers from policy."""
        self.enter("classify", IncidentStatus.OPENING)
        first = self.alerts[0]
        self.summary = first.summary
        _ = self.target  # an unknown service fails the run here, naming the cause
        if first.severity is not None:
            self.severity, basis = first.severity, f"given by {first.source}"
        elif first.kind in self.the_policy.classification:
            self.severity, basis = self.the_policy.classification[first.kind], f"kind {first.kind}"
        else:
            self.severity, basis = self.the_policy.default_severity, "policy default"
        timers = self.the_policy.severities[self.severity]
        self.record(
            "classified",
            f"{self.severity.value} ({basis}); respond within {_fmt(timers.respond_within)}, "
            f"escalate after {_fmt(timers.escalate_after)}",
            actor=first.raised_by or first.source,
        )
        workflow.upsert_memo({"severity": self.severity.value, "summary": self.summary})
        if self.searchable:
            workflow.upsert_search_attributes(
                [SEARCH_SERVICE.value_set(self.input.service), SEARCH_SEVERITY.value_set(self.severity.value)]
            )

    async def step_page(self) -> None:
        """PagerDuty trigger keyed by the workflow id, then the initial notification note."""
        self.enter("page", IncidentStatus.OPENING)
        assert self.severity is not None
        dedup_key = workflow.info().workflow_id
        if workflow.patched("pagerduty-dedup-key-per-incident"):
            # One PagerDuty incident per runbook incident: a target's next incident must page
            # again even while the previous page is still open (escalated runs leave it open).
            dedup_key = f"{dedup_key}#{self.input.incident_id}"
        self.pagerduty = PagerDutyRef(dedup_key=dedup_key)
        request = PageRequest(
            dedup_key=dedup_key,
            summary=f"[{self.severity.value}] Hybrid Routing Incident - {self.summary}",
            source=f"{self.input.service}/{self.input.region}",
            severity=PAGERDUTY_SEVERITY[self.severity],
            details={"incident_id": self.input.incident_id, "workflow_id": dedup_key},
        )
        try:
            await workflow.execute_activity("trigger_page", request, result_type=str, **NOTIFY)
        except ActivityError as err:
            self.record("page failed", _cause(err))
            return
        self.record("paged", f"PagerDuty event sent (dedup key {dedup_key})")
        try:
            self.pagerduty = await workflow.execute_activity(
                "find_pagerduty_incident", dedup_key, result_type=PagerDutyRef, **NOTIFY
            )
        except ActivityError as err:
            self.record("PagerDuty incident not found", _cause(err))
            return
        await self.note("initial-notification", self.initial_notification())

    async def step_acknowledge(self) -> None:
        """Wait for a person; at each escalation timer climb one level of the ladder."""
        self.enter("acknowledge", IncidentStatus.AWAITING_ACK)
        assert self.severity is not None
        timers = self.the_policy.severities[self.severity]
        paged_at = workflow.now()
        # A resolution in PagerDuty also ends the wait: someone has dealt with it there.
        acknowledged: Callable[[], bool] = lambda: (
            self.acknowledged_by is not None or self.resolved_in_pagerduty_by is not None
        )

        if timers.respond_within is not None and not await self.wait(acknowledged, timers.respond_within):
            self.record("response target missed", f"no acknowledgement within {_fmt(timers.respond_within)}")
        level = 1
        while not acknowledged():
            if timers.escalate_after is None or level >= self.the_policy.escalation_levels:
                await self.wait(acknowledged)
                break
            remaining = paged_at + timers.escalate_after * level - workflow.now()
            if await self.wait(acknowledged, remaining):
                break
            level += 1
            await self.escalate_pagerduty(level, f"not acknowledged within {_fmt(timers.escalate_after * (level - 1))}")

        if self.pagerduty is not None and self.resolved_in_pagerduty_by is None:
            await self.notify("acknowledge_page", self.pagerduty.dedup_key, "PagerDuty acknowledged")

    async def step_diagnose(self) -> Diagnosis:
        """Health endpoint, metrics against the SLOs, ERROR log lines, and what ECS runs: at once."""
        self.enter("diagnose", IncidentStatus.DIAGNOSING)
        target = self.target
        health, metrics, logs, deployment = await asyncio.gather(
            self.read_health(target),
            self.read_metrics(target),
            self.read_logs(target),
            self.read_deployment(target),
        )
        deployment_state, deployment_error = deployment
        self.diagnosis = Diagnosis(
            health=health,
            metrics=metrics,
            logs=logs,
            deployment=deployment_state,
            deployment_error=deployment_error,
        )
        self.record("diagnosed", self.diagnosis.summary())
        return self.diagnosis

    def step_propose(self, diagnosis: Diagnosis) -> list[RemediationPlan]:
        """The runbook's options, best first: roll back if there is a previous revision, else
        redeploy; the emergency switch last (and alone when only the metrics are critical)."""
        self.enter("propose", IncidentStatus.DIAGNOSING)
        target, deployment = self.target, diagnosis.deployment
        common = dict(cluster=target.ecs_cluster, service=target.ecs_service, region=target.region)
        unhealthy = not diagnosis.health.healthy
        plans: list[RemediationPlan] = []
        if unhealthy and deployment and deployment.previous_task_definition:
            plans.append(RemediationPlan.build(
                action=RemediationAction.ROLLBACK,
                from_task_definition=deployment.task_definition,
                to_task_definition=deployment.previous_task_definition,
                reason="component unhealthy; roll back to the previous task definition",
                **common,
            ))  # fmt: skip
        if unhealthy and deployment:
            plans.append(RemediationPlan.build(
                action=RemediationAction.FORCE_NEW_DEPLOYMENT,
                from_task_definition=deployment.task_definition,
                expected_deployment_id=deployment.primary_deployment_id,
                reason="component unhealthy; replace the tasks with a new deployment",
                **common,
            ))  # fmt: skip
        if unhealthy or diagnosis.critical_metrics:
            breached = ", ".join(m.key for m in diagnosis.critical_metrics) or "health"
            plans.append(RemediationPlan.build(
                action=RemediationAction.EMERGENCY_SWITCH,
                reason=f"critical: {breached}; fall back to standard routing",
                **common,
            ))  # fmt: skip
        if not plans:
            self.record("no remediation proposed", "health and metrics show no failure to act on")
        else:
            self.record("proposed", f"{plans[0].plan_id}: {plans[0].describe()} ({plans[0].reason})")
        return plans

    async def step_approve(self, plan: RemediationPlan) -> Decision | None:
        """Wait for the approvers the plan's risk level needs, reminding and re-paging on the
        way; at the timeout the policy's final answer. None: the alert cleared first, or it was
        resolved in PagerDuty, so nothing may be done."""
        self.enter("approve", IncidentStatus.AWAITING_APPROVAL)
        self.pending_plan, self.decision, self.approvals_given = plan, None, []
        page = self.the_policy.communication.approval_page
        link = f"\nApprove or reject: {page}/incident?id={quote(workflow.info().workflow_id, safe='')}" if page else ""
        await self.note(f"proposal-{plan.plan_id}", f"Proposed remediation {plan.plan_id}: {plan.describe()}{link}")
        self.rules_mode = workflow.patched("approval-rules")
        policy, timeout = self.the_policy, self.the_policy.timers.approval_timeout
        rule = policy.rule_for(plan.action.value) if self.rules_mode else None
        settled = lambda: (  # noqa: E731
            self.decision is not None or self.condition_cleared or self.resolved_in_pagerduty_by is not None
        )
        proposed_at = workflow.now()
        ladder = policy.approvals.ladder if (self.rules_mode and policy.approvals) else []
        for rung in sorted((r for r in ladder if r.after < timeout), key=lambda r: r.after):
            if await self.wait(settled, max(proposed_at + rung.after - workflow.now(), timedelta(0))):
                break
            await self.climb(rung.action, plan)
        # (a wait even when already settled: runs from before the ladder made this timer too)
        decided = await self.wait(settled, max(proposed_at + timeout - workflow.now(), timedelta(0)))
        self.pending_plan = None
        if self.decision is None and self.resolved_in_pagerduty_by is not None:
            self.record("proposal withdrawn", f"resolved in PagerDuty by {self.resolved_in_pagerduty_by}")
            return None
        if self.decision is None and self.condition_cleared:
            self.record("proposal withdrawn", "the alert resolved before anyone decided")
            return None
        if self.decision is None and not decided:
            if rule is not None and rule.on_timeout == "approve":
                self.decision = Decision(approved=True, by="policy", at=workflow.now(), plan_id=plan.plan_id,
                                         reason=f"low risk, no decision within {_fmt(timeout)}")  # fmt: skip
                self.record("approved by policy", self.decision.reason)
            else:
                self.decision = Decision(
                    approved=False, by="runbook", at=workflow.now(), plan_id=plan.plan_id,
                    reason=f"no decision within {_fmt(timeout)}",
                )  # fmt: skip
                self.record("approval timed out", self.decision.reason)
        assert self.decision is not None
        return self.decision

    async def climb(self, action: str, plan: RemediationPlan) -> None:
        """One rung of the approval ladder."""
        if action == "remind":
            self.record("reminder", f"{plan.plan_id} still awaits approval")
            await self.note(f"reminder-{plan.plan_id}-{len(self.timeline)}", f"Reminder: {plan.plan_id} "
                            f"({plan.describe()}) awaits approval: runbook approve {self.input.incident_id}")  # fmt: skip
        elif self.pagerduty is not None and self.pagerduty.escalation_level < self.the_policy.escalation_levels:
            await self.escalate_pagerduty(self.pagerduty.escalation_level + 1, f"{plan.plan_id} awaits approval")

    async def step_remediate(self, plan: RemediationPlan) -> RemediationRecord | None:
        """Once, idempotently: a retried activity finds its work done and does nothing more."""
        self.enter("remediate", IncidentStatus.REMEDIATING)
        try:
            self.remediation = await self.apply(plan)
        except ActivityError as err:
            self.record("remediation failed", _cause(err))
            return None
        self.record("remediated", self.remediation.detail)
        await self.note(f"remediated-{plan.plan_id}", f"Remediation done: {self.remediation.detail}")
        return self.remediation

    async def step_verify(self, plan: RemediationPlan | None) -> bool:
        """Health and metrics must hold within SLO for the policy's window before the deadline."""
        self.enter("verify", IncidentStatus.VERIFYING)
        timers = self.the_policy.timers
        deadline = workflow.now() + timers.verify_timeout
        good_since: datetime | None = None
        while True:
            ok, why = await self.within_slo(plan)
            now = workflow.now()
            if ok:
                good_since = good_since or now
                if now - good_since >= timers.verify_window:
                    self.record("verified", f"within SLO for {_fmt(timers.verify_window)}")
                    return True
            else:
                good_since = None
            if now + timers.verify_interval > deadline:
                self.record("verification failed", f"not within SLO for {_fmt(timers.verify_window)}: {why}")
                return False
            await self.wait(lambda: False, timers.verify_interval)

    async def step_undo(self, plan: RemediationPlan, record: RemediationRecord) -> None:
        """Put back what the remediation changed, so people start from the known state."""
        self.enter("undo", IncidentStatus.UNDOING)
        match plan.action:
            case RemediationAction.ROLLBACK:
                reverse = plan.model_copy(
                    update={"from_task_definition": plan.to_task_definition, "to_task_definition": plan.from_task_definition}
                )
                undo = self.apply(reverse)
            case RemediationAction.EMERGENCY_SWITCH:
                undo = self.switch_hybrid_routing(enabled=True, reason="undo: verification failed")
            case _:
                self.record("nothing to undo", f"{plan.action.value} replaces tasks; it cannot be reversed")
                return
        try:
            done = await undo
        except ActivityError as err:
            self.record("undo failed", _cause(err))
            return
        self.record("undone", done.detail)

    async def step_escalate(self, reason: str) -> IncidentResult:
        """Hand the incident to people: climb the ladder, say why, leave the page open."""
        self.enter("escalate", IncidentStatus.ESCALATED)
        if self.pagerduty is not None and self.pagerduty.escalation_level < self.the_policy.escalation_levels:
            await self.escalate_pagerduty(self.pagerduty.escalation_level + 1, reason)
        await self.note("escalated", f"Runbook stopped; people take over: {reason}")
        return await self.finish(IncidentStatus.ESCALATED, f"escalated: {reason}")

    async def step_resolve(self, outcome: str) -> IncidentResult:
        """Resolve the PagerDuty incident and record the outcome."""
        self.enter("resolve", IncidentStatus.RESOLVED)
        await self.note("resolved", f"Resolved: {outcome}")
        if self.pagerduty is not None:
            await self.notify("resolve_page", self.pagerduty.dedup_key, "PagerDuty resolved")
        return await self.finish(IncidentStatus.RESOLVED, outcome)

    async def closed_in_pagerduty(self) -> IncidentResult:
        """Someone resolved the page by hand: nothing more to do, and nothing to resolve again."""
        self.enter("resolve", IncidentStatus.RESOLVED)
        return await self.finish(IncidentStatus.RESOLVED, f"resolved in PagerDuty by {self.resolved_in_pagerduty_by}")

    async def close_without_remediation(self, reason: str) -> IncidentResult:
        if await self.step_verify(None):
            return await self.step_resolve(f"{reason}; the service is within SLO")
        return await self.step_escalate(f"{reason}; the service is not within SLO")

    # ------------------------------------------------------------------ operators

    @workflow.signal
    def alert(self, alert: Alert) -> None:
        """Every alert for this target joins here: counted, and a resolved one clears the condition.

        A sender's retry of a delivery already taken (same delivery id) changes nothing.
        """
        if alert.delivery_id is not None:
            if alert.delivery_id in self.deliveries:
                return
            self.deliveries.add(alert.delivery_id)
        self.alerts.append(alert)
        # The condition clears when every alert that fired has resolved, not at the first OK.
        key = alert.fingerprint or "(unnamed)"
        if alert.status == "firing":
            self.firing.add(key)
        else:
            self.firing.discard(key)
        self.condition_cleared = alert.status == "resolved" and not self.firing
        if len(self.alerts) > 1:
            self.record(
                f"alert {alert.status}",
                f"#{len(self.alerts)} from {alert.source}: {alert.summary}",
                actor=alert.raised_by or alert.source,
            )

    @workflow.signal
    def pagerduty_event(self, event: PagerDutyEvent) -> None:
        """What people did in PagerDuty: an acknowledgement there counts like `runbook ack`."""
        if event.event_id in self.deliveries or self.status in (IncidentStatus.RESOLVED, IncidentStatus.ESCALATED):
            return
        known = self.pagerduty.incident_id if self.pagerduty else None
        if known is not None and event.incident_id != known:
            return  # a late delivery about another PagerDuty incident of this target
        self.deliveries.add(event.event_id)
        action = event.event_type.removeprefix("incident.")
        self.record(f"PagerDuty: {action}", f"incident {event.incident_id}", actor=event.agent)
        if event.event_type == "incident.acknowledged" and self.acknowledged_by is None:
            self.acknowledged_by = f"{event.agent} (PagerDuty)"
        elif event.event_type == "incident.resolved":
            self.resolved_in_pagerduty_by = event.agent

    @workflow.update
    def acknowledge(self, request: Acknowledge) -> OperatorReply:
        if self.acknowledged_by is not None:
            return self.reply(f"already acknowledged by {self.acknowledged_by}")
        self.acknowledged_by = request.by
        self.audit("acknowledged", request.note or "", request.by)
        return self.reply(f"acknowledged by {request.by}")

    @acknowledge.validator
    def validate_acknowledge(self, request: Acknowledge) -> None:
        policy = self.require_open()
        if not policy.may_acknowledge(request.by):
            raise Refused(f"{request.by} may not acknowledge: not a responder or approver in the policy")

    @workflow.update
    def approve(self, request: Approve) -> OperatorReply:
        approval = Decision(approved=True, by=request.by, at=workflow.now(), plan_id=request.plan_id,
                            reason=request.comment or "")  # fmt: skip
        if not self.rules_mode:
            self.decision = approval
            self.audit("approved", f"{request.plan_id} {request.comment or ''}".strip(), request.by)
            return self.reply(f"{request.plan_id} approved by {request.by}; remediation starts")
        assert self.pending_plan is not None
        rule = self.the_policy.rule_for(self.pending_plan.action.value)
        self.approvals_given.append(approval)
        names = self.approvers_so_far()
        if len(names) >= rule.required:
            self.decision = approval.model_copy(update={"by": ", ".join(names)})
        count = f"approval {len(names)} of {rule.required}"
        self.audit("approved", f"{request.plan_id} ({count}) {request.comment or ''}".strip(), request.by)
        if self.decision is not None:
            return self.reply(f"{request.plan_id} approved by {', '.join(names)}; remediation starts")
        return self.reply(f"{count} for {request.plan_id} recorded; another approver is needed")

    @approve.validator
    def validate_approve(self, request: Approve) -> None:
        self.validate_decision(request.by, request.plan_id, approving=True)

    @workflow.update
    def reject(self, request: Reject) -> OperatorReply:
        self.decision = Decision(approved=False, by=request.by, at=workflow.now(), plan_id=request.plan_id,
                                 reason=request.reason)  # fmt: skip
        self.audit("rejected", f"{request.plan_id}: {request.reason}", request.by)
        return self.reply(f"{request.plan_id} rejected by {request.by}")

    @reject.validator
    def validate_reject(self, request: Reject) -> None:
        self.validate_decision(request.by, request.plan_id, approving=False)

    @workflow.update
    def cancel(self, request: Cancel) -> OperatorReply:
        self.cancel_request = request
        self.audit("cancel requested", request.reason, request.by)
        return self.reply(f"cancelling: {request.reason}")

    @cancel.validator
    def validate_cancel(self, request: Cancel) -> None:
        if not self.require_open().may_approve(request.by):
            raise Refused(f"{request.by} may not cancel the runbook: not an approver in the policy")
        if self.cancel_request is not None:
            raise Refused(f"already being cancelled by {self.cancel_request.by}")

    @workflow.update
    def comment(self, request: Comment) -> OperatorReply:
        self.audit("comment", request.text, request.by)
        return self.reply("comment recorded")

    @comment.validator
    def validate_comment(self, request: Comment) -> None:
        if not self.require_open().may_acknowledge(request.by):
            raise Refused(f"{request.by} may not comment: not a responder or approver in the policy")

    def audit(self, event: str, detail: str, actor: str) -> None:
        """Who did what, when and why: the timeline now, and a note on the PagerDuty incident
        soon after (sent by `send_audit_notes`, so handlers stay free of activities)."""
        self.record(event, detail, actor=actor)
        self.audit_notes.append((f"audit-{len(self.timeline)}", f"{event} by {actor}" + (f": {detail}" if detail else "")))

    async def send_audit_notes(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self.audit_notes))
            key, content = self.audit_notes[0]
            await self.note(key, content)
            self.audit_notes.pop(0)

    def approvers_so_far(self) -> list[str]:
        return list(dict.fromkeys(a.by for a in self.approvals_given))

    @workflow.query
    def view(self) -> IncidentView:
        return IncidentView(
            id=self.input.incident_id,
            workflow_id=workflow.info().workflow_id,
            service=self.input.service,
            region=self.input.region,
            severity=self.severity,
            status=self.status,
            summary=self.summary,
            opened_at=workflow.info().start_time,
            opened_by=self.input.opened_by,
            alert_count=len(self.alerts),
            acknowledged_by=self.acknowledged_by,
            pending_approval=self.pending_plan,
            diagnosis=self.diagnosis,
            decision=self.decision,
            remediation=self.remediation,
            pagerduty=self.pagerduty,
            outcome=self.outcome,
            timeline=list(self.timeline),
        )

    def require_open(self) -> Policy:
        if self.policy is None:
            raise Refused("the incident is still opening; try again in a moment")
        if self.status in (IncidentStatus.RESOLVED, IncidentStatus.ESCALATED, IncidentStatus.CANCELLED):
            raise Refused(f"the incident is closed ({self.status.value})")
        return self.policy

    def validate_decision(self, person: str, plan_id: str, approving: bool) -> None:
        policy = self.require_open()
        plan = self.pending_plan
        if self.status != IncidentStatus.AWAITING_APPROVAL or plan is None:
            raise Refused(f"nothing awaits approval: the incident is {self.status.value}")
        if self.decision is not None:
            raise Refused(f"{plan.plan_id} was already decided by {self.decision.by}")
        if plan_id != plan.plan_id:
            raise Refused(f"unknown plan {plan_id}: the plan awaiting approval is {plan.plan_id}")
        if not self.rules_mode:
            if not policy.may_approve(person):
                raise Refused(f"{person} may not approve or reject: not an approver in the policy")
            return
        rule, risk = policy.rule_for(plan.action.value), policy.risk_of(plan.action.value).value
        if person not in policy.members(rule):
            raise Refused(f"{person} may not approve or reject {plan.action.value} ({risk} risk): "
                          "not an approver of that risk level in the policy")  # fmt: skip
        names = self.approvers_so_far()
        if approving and person in names:
            raise Refused(f"{person} already approved {plan.plan_id}: another approver is needed")
        completes = len(names) + 1 >= rule.required
        if approving and rule.four_eyes and completes and set(names) | {person} <= self.requesters():
            raise Refused(f"four eyes: {person} opened this incident and cannot be the only approver "
                          f"of a {risk} risk action")  # fmt: skip

    def requesters(self) -> set[str]:
        first = self.alerts[0].raised_by if self.alerts else None
        return {self.input.opened_by, *([first] if first else [])}

    # ------------------------------------------------------------------ activities

    async def read_health(self, target: ServiceTarget) -> HealthReading:
        request = HealthRequest(component=target.health_component)
        try:
            return await workflow.execute_activity("check_component_health", request, result_type=HealthReading, **READ)
        except ActivityError as err:
            return HealthReading(component=target.health_component, healthy=False, detail=_cause(err))

    async def read_metrics(self, target: ServiceTarget) -> list[MetricReading]:
        request = MetricsRequest(region=target.region, queries=self.the_policy.metrics)
        try:
            return await workflow.execute_activity("read_metrics", request, result_type=list[MetricReading], **READ)
        except ActivityError as err:
            return [MetricReading(key=q.key, value=None, level="no-data", within_target=False, detail=_cause(err))
                    for q in self.the_policy.metrics]  # fmt: skip

    async def read_logs(self, target: ServiceTarget) -> LogScan:
        request = LogScanRequest(
            region=target.region, log_group=target.log_group, lookback=self.the_policy.timers.log_lookback
        )
        try:
            return await workflow.execute_activity("scan_error_logs", request, result_type=LogScan, **READ)
        except ActivityError as err:
            return LogScan(log_group=target.log_group, error_count=0, detail=f"log scan failed: {_cause(err)}")

    async def read_deployment(self, target: ServiceTarget) -> tuple[DeploymentState | None, str | None]:
        request = DeploymentRequest(cluster=target.ecs_cluster, service=target.ecs_service, region=target.region)
        try:
            state = await workflow.execute_activity(
                "describe_deployment", request, result_type=DeploymentState, **READ
            )
        except ActivityError as err:
            return None, _cause(err)
        return state, None

    async def within_slo(self, plan: RemediationPlan | None) -> tuple[bool, str]:
        """After the emergency switch the platform's status counts, not the broken component."""
        target = self.target
        if plan is not None and plan.action == RemediationAction.EMERGENCY_SWITCH:
            try:
                status = await workflow.execute_activity("check_system_status", result_type=SystemStatus, **READ)
            except ActivityError as err:
                return False, _cause(err)
            healthy, health_detail = status.healthy, status.detail
        else:
            health = await self.read_health(target)
            healthy, health_detail = health.healthy, health.detail
        metrics = await self.read_metrics(target)
        missed = [m for m in metrics if not m.within_target]
        if not healthy:
            return False, f"health: {health_detail}"
        if missed:
            return False, "; ".join(f"{m.key}: {m.detail}" for m in missed)
        return True, "within SLO"

    def apply(self, plan: RemediationPlan) -> Any:
        match plan.action:
            case RemediationAction.ROLLBACK:
                return workflow.execute_activity(
                    "set_service_task_definition", plan, result_type=RemediationRecord, **ACT
                )
            case RemediationAction.FORCE_NEW_DEPLOYMENT:
                return workflow.execute_activity("force_new_deployment", plan, result_type=RemediationRecord, **ACT)
            case RemediationAction.EMERGENCY_SWITCH:
                return self.switch_hybrid_routing(enabled=False, reason=plan.reason)

    def switch_hybrid_routing(self, *, enabled: bool, reason: str) -> Any:
        request = EmergencySwitchRequest(hybrid_routing_enabled=enabled, reason=reason)
        return workflow.execute_activity("set_hybrid_routing", request, result_type=RemediationRecord, **ACT)

    async def escalate_pagerduty(self, level: int, reason: str) -> None:
        if self.pagerduty is None or self.pagerduty.incident_id is None:
            self.record("escalation not possible", f"no PagerDuty incident to escalate to level {level}")
            return
        request = EscalateRequest(incident_id=self.pagerduty.incident_id, level=level)
        try:
            await workflow.execute_activity("escalate_pagerduty_incident", request, **NOTIFY)
        except ActivityError as err:
            self.record("escalation failed", _cause(err))
            return
        self.pagerduty.escalation_level = level
        self.record("escalated", f"PagerDuty level {level}: {reason}")

    async def note(self, key: str, content: str) -> None:
        if self.pagerduty is None or self.pagerduty.incident_id is None:
            return
        request = NoteRequest(incident_id=self.pagerduty.incident_id, note_key=f"{self.input.incident_id}/{key}",
                              content=content)  # fmt: skip
        try:
            await workflow.execute_activity("add_pagerduty_note", request, result_type=str, **NOTIFY)
        except ActivityError as err:
            self.record("PagerDuty note failed", f"{key}: {_cause(err)}")

    async def notify(self, activity: str, dedup_key: str, event: str) -> None:
        try:
            await workflow.execute_activity(activity, dedup_key, result_type=str, **NOTIFY)
        except ActivityError as err:
            self.record(f"{event} failed", _cause(err))
            return
        self.record(event)

    # ------------------------------------------------------------------ bookkeeping

    @property
    def the_policy(self) -> Policy:
        assert self.policy is not None
        return self.policy

    @property
    def target(self) -> ServiceTarget:
        try:
            return self.the_policy.services[self.input.service]
        except KeyError:
            raise ApplicationError(
                f"service {self.input.service!r} is not in the policy's services", non_retryable=True,
                type="UnknownService",
            ) from None  # fmt: skip

    def enter(self, step: str, status: IncidentStatus) -> None:
        self.step, self.status = step, status
        workflow.upsert_memo({"status": status.value})
        if self.searchable:
            workflow.upsert_search_attributes([SEARCH_STATUS.value_set(status.value)])

    def record(self, event: str, detail: str = "", actor: str = "runbook") -> None:
        self.timeline.append(TimelineEntry(at=workflow.now(), step=self.step, event=event, actor=actor, detail=detail))

    def reply(self, message: str) -> OperatorReply:
        return OperatorReply(message=message, status=self.status)

    async def wait(self, condition: Callable[[], bool], timeout: timedelta | None = None) -> bool:
        """Every wait of the runbook: a cancellation by an operator ends it at once."""
        try:
            await workflow.wait_condition(lambda: condition() or self.cancel_request is not None, timeout=timeout)
        except asyncio.TimeoutError:
            return False
        if self.cancel_request is not None:
            raise RunbookCancelled
        return True

    async def cancelled(self) -> IncidentResult:
        """Stop safely: put back a remediation that was not verified, leave the page to people."""
        assert self.cancel_request is not None
        if self.applied is not None and self.status in (IncidentStatus.REMEDIATING, IncidentStatus.VERIFYING):
            await self.step_undo(*self.applied)
        self.enter("escalate", IncidentStatus.CANCELLED)
        await self.note("cancelled", f"Runbook cancelled by {self.cancel_request.by}: {self.cancel_request.reason}")
        return await self.finish(IncidentStatus.CANCELLED,
                                 f"cancelled by {self.cancel_request.by}: {self.cancel_request.reason}")  # fmt: skip

    async def finish(self, status: IncidentStatus, outcome: str) -> IncidentResult:
        self.status, self.outcome = status, outcome
        self.record("closed", outcome)
        workflow.upsert_memo({"status": status.value, "outcome": outcome})
        if self.searchable:
            workflow.upsert_search_attributes([SEARCH_STATUS.value_set(status.value)])
        if self.audit_sender is not None:
            await workflow.wait_condition(lambda: not self.audit_notes)
            self.audit_sender.cancel()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return IncidentResult(outcome=outcome, view=self.view())

    def initial_notification(self) -> str:
        """The runbook's initial notification template."""
        assert self.severity is not None
        comms, target = self.the_policy.communication, self.target
        started = workflow.info().start_time
        next_update = workflow.now() + self.the_policy.timers.next_update_every
        return "\n".join(
            [
                f"[{self.severity.value}] Hybrid Routing Incident - {self.summary}",
                f"Incident ID: {self.input.incident_id}",
                f"Severity: {self.severity.value}",
                f"Start time (UTC): {started:%Y-%m-%d %H:%M:%S}",
                f"Affected services: {self.input.service} ({self.input.region})",
                f"Impact: {target.impact}",
                "Current status: investigating; automated diagnosis running",
                f"Next update: {next_update:%Y-%m-%d %H:%M:%S} UTC",
                f"Incident commander: {comms.incident_commander}",
                f"Channel: {comms.channel}",
                f"Status page: {comms.status_page}",
            ]
        )


def _fmt(duration: timedelta | None) -> str:
    if duration is None:
        return "never"
    seconds = int(duration.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _cause(err: BaseException) -> str:
    """The innermost message: 'activity failed' says nothing an operator can use."""
    while err.__cause__ is not None:
        err = err.__cause__
    return str(err) or type(err).__name__
