"""P0 incident response, step by step as `runbooks/p0-incident-response.md` gives it.

classify -> page -> acknowledge (escalating) -> diagnose -> propose -> approve ->
remediate -> verify -> resolve; with undo and escalate when the way forward closes.

One workflow per target (`incident/{service}/{region}`): every alert for the target is a
signal into it, so a storm is one incident. The machinery every runbook shares (operators'
Updates, pager, approval gate, verification) lives in `workflows.kit`.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import cloudwatch, diagnosis, ecs, platform_api
    from activities import policy as policy_activity
    from activities.runs import Runs
    from contracts import (
        SEARCH_SERVICE,
        SEARCH_SEVERITY,
        SEARCH_STATUS,
        Alert,
        AlertBatch,
        DeploymentRequest,
        DeploymentState,
        DiagnoseRequest,
        Diagnosis,
        EmergencySwitchRequest,
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
        PageRequest,
        ProbeRequest,
        RemediationAction,
        RemediationPlan,
        RemediationRecord,
        ServiceTarget,
        Severity,
        Statement,
        VerifyRequest,
        incident_workflow_id,
    )
    from contracts.post_incident import FollowupInput, postincident_workflow_id
    from contracts.region_failover import FailoverInput, FailoverProgress, FailoverStatus, failover_workflow_id

from workflows.kit import metrics, verification
from workflows.kit.approval import Plan
from workflows.kit.options import ACT, READ
from workflows.kit.runbook import RunbookCancelled, RunbookWorkflow
from workflows.kit.timeline import cause, fmt

if TYPE_CHECKING:
    from contracts import PagerDutySeverity
    from workflows.kit.approval import ApprovalGate

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

PAGERDUTY_SEVERITY: dict[Severity, PagerDutySeverity] = {
    Severity.P0: "critical",
    Severity.P1: "error",
    Severity.P2: "warning",
    Severity.P3: "info",
}
# A batch's timeline names this many of its alerts and counts the rest in one entry.
ALERTS_NAMED_PER_BATCH = 5
# Every alert resolved before anyone acknowledged: what the policy does unless it says.
KEEP_PAGING_ON_CLEAR = {Severity.P0, Severity.P1}
# A region handed to the failover run: its state is read when it says it moved on, and at least
# this often (in case its word is lost).
FOLLOW_FAILOVER_EVERY = timedelta(minutes=5)
# The patch of the hand-over to the failover run (2026-12): retire once no incident from before
# it is open (its DiagnoseRequest carried no region, so old runs never take the branch).
REGION_FAILOVER = "region-failover-link"
# The patch that starts the follow-up as an incident closes (2026-12); retire once no incident
# from before it is open.
POST_INCIDENT = "post-incident-followup"
FOLLOWED_UP = frozenset({IncidentStatus.RESOLVED, IncidentStatus.ESCALATED, IncidentStatus.CANCELLED})
# The runbooks an incident starts, by type name: importing their modules here would have the
# sandbox import them again for every incident run (a storm of 100 targets took 2.5x as long).
FAILOVER_WORKFLOW = "RegionFailoverWorkflow"
FOLLOWUP_WORKFLOW = "PostIncidentWorkflow"


@workflow.defn
class IncidentResponseWorkflow(RunbookWorkflow):
    noun = "incident"
    closed = frozenset(
        {IncidentStatus.RESOLVED, IncidentStatus.ESCALATED, IncidentStatus.CANCELLED, IncidentStatus.REFUSED}
    )
    status_key = SEARCH_STATUS
    passing = frozenset({IncidentStatus.DIAGNOSING, IncidentStatus.REMEDIATING, IncidentStatus.UNDOING})
    gate: ApprovalGate[RemediationPlan]  # the kit's gate, holding this runbook's plans

    @workflow.init
    def __init__(self, input: IncidentInput) -> None:
        self.input = input
        self.init_kit(note_prefix=input.incident_id, opened_by=input.opened_by, status=IncidentStatus.OPENING)
        self.severity: Severity | None = None
        self.summary = ""
        self.alerts: list[Alert] = []
        self.firing: set[str] = set()
        self.condition_cleared = False
        self.diagnosis: Diagnosis | None = None
        self.applied: tuple[RemediationPlan, RemediationRecord] | None = None
        self.remediation: RemediationRecord | None = None
        self.failover_id: str | None = None  # the failover run this incident handed its region to
        self.failover_moved = False

    @workflow.run
    async def run(self, input: IncidentInput) -> IncidentResult:
        lean = self.choose_mode()
        if self.signed:
            await self.trusted_policy()  # never the start input's: anyone who can start a run writes that
        elif lean and input.policy is not None:
            self.policy = input.policy
        else:
            self.policy = await workflow.execute_activity(policy_activity.load_policy, **READ)
        self.start_kit(lean, lambda: (workflow.patched("audit-notes"), workflow.patched("search-attributes")))
        self.pager.levels = self.the_policy.escalation_levels
        if self.signed:
            self.pager.retry_pages = True
            self.pager.on_paged = lambda paged: self.enter(
                self.step, IncidentStatus.AWAITING_ACK if paged else IncidentStatus.UNPAGED
            )
        if self.signed:
            refusal = self.unproven_start()
            if refusal is not None:
                self.enter("classify", IncidentStatus.REFUSED)
                return await self.finish(IncidentStatus.REFUSED, f"refused: {refusal}; nothing done, nobody paged")
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
        if self.acknowledged_by is None and self.condition_cleared:
            return await self.step_resolve("every alert cleared before anyone acknowledged (policy on_clear: resolve)")
        diagnosis = await self.step_diagnose()
        if diagnosis.region_down and workflow.patched(REGION_FAILOVER):
            return await self.hand_to_failover(diagnosis)
        plans = self.step_propose(diagnosis)
        if not plans:
            return await self.close_without_remediation("no remediation proposed")

        plan = plans.pop(0)
        decision = await self.step_approve(plan)
        while (
            self.gate.rules_mode
            and plans
            and decision is not None
            and not decision.approved
            and decision.by != "runbook"
        ):
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

    def unproven_start(self) -> str | None:
        """Why a signed run must not go on: its start names another target than its workflow id,
        or no alert of its start was signed by the intake (forged straight into Temporal)."""
        if workflow.info().workflow_id != incident_workflow_id(self.input.service, self.input.region):
            return f"the start names {self.input.service} in {self.input.region}, not this workflow's target"
        if not self.alerts:
            return "opened by no alert the intake signed"
        return None

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
            f"{self.severity.value} ({basis}); respond within {fmt(timers.respond_within)}, "
            f"escalate after {fmt(timers.escalate_after)}",
            actor=first.raised_by or first.source,
        )
        workflow.upsert_memo({"severity": self.severity.value, "summary": self.summary})
        if self.searchable:
            attributes = [SEARCH_SERVICE.value_set(self.input.service), SEARCH_SEVERITY.value_set(self.severity.value)]
            if self.lean:  # the status joins the first upsert instead of one of its own
                attributes.append(SEARCH_STATUS.value_set(self.status.value))
                self.indexed = self.status.value
            workflow.upsert_search_attributes(attributes)

    async def step_page(self) -> None:
        """PagerDuty trigger keyed by the incident, then the initial notification note."""
        self.enter("page", IncidentStatus.OPENING)
        assert self.severity is not None
        dedup_key = workflow.info().workflow_id
        if self.lean or workflow.patched("pagerduty-dedup-key-per-incident"):
            # One PagerDuty incident per runbook incident: a target's next incident must page
            # again even while the previous page is still open (escalated runs leave it open).
            dedup_key = f"{dedup_key}#{self.input.incident_id}"
        request = PageRequest(
            dedup_key=dedup_key,
            summary=f"[{self.severity.value}] Hybrid Routing Incident - {self.summary}",
            source=f"{self.input.service}/{self.input.region}",
            severity=PAGERDUTY_SEVERITY[self.severity],
            details={"incident_id": self.input.incident_id, "workflow_id": dedup_key},
        )
        await self.pager.page(request, self.initial_notification())

    async def step_acknowledge(self) -> None:
        """Wait for a person; at each escalation timer climb one level of the ladder. When every
        alert clears first, the policy's `on_clear` says whether paging goes on."""
        unpaged = self.pager.unpaged is not None  # the page failed for good: it is tried again on the ladder
        self.enter("acknowledge", IncidentStatus.UNPAGED if unpaged else IncidentStatus.AWAITING_ACK)
        assert self.severity is not None
        timers = self.the_policy.severities[self.severity]
        resolve_on_clear = self.lean and self.on_clear() == "resolve"
        await self.pager.await_acknowledgement(
            timers,
            # A resolution in PagerDuty also ends the wait: someone has dealt with it there.
            lambda: (
                self.acknowledged_by is not None
                or self.resolved_in_pagerduty_by is not None
                or (resolve_on_clear and self.condition_cleared)
            ),
            self.wait,
        )
        if self.resolved_in_pagerduty_by is None and self.acknowledged_by is not None:
            await self.pager.acknowledge()

    async def step_diagnose(self) -> Diagnosis:
        """Health endpoint, metrics against the SLOs, ERROR log lines, and what ECS runs: at once."""
        self.enter("diagnose", IncidentStatus.DIAGNOSING)
        target = self.target
        if self.lean:
            request = DiagnoseRequest(
                health=HealthRequest(component=target.health_component),
                metrics=self.metrics_request(),
                logs=self.log_request(),
                deployment=self.deployment_request(),
                region=self.region_probe(),
            )
            self.diagnosis = await workflow.execute_activity(diagnosis.diagnose, request, **READ)
        else:
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
        common: dict[str, Any] = dict(cluster=target.ecs_cluster, service=target.ecs_service, region=target.region)
        unhealthy = not diagnosis.health.healthy
        plans: list[RemediationPlan] = []
        if unhealthy and deployment and deployment.previous_task_definition:
            plans.append(
                RemediationPlan.build(
                    action=RemediationAction.ROLLBACK,
                    from_task_definition=deployment.task_definition,
                    to_task_definition=deployment.previous_task_definition,
                    reason="component unhealthy; roll back to the previous task definition",
                    **common,
                )
            )
        if unhealthy and deployment:
            plans.append(
                RemediationPlan.build(
                    action=RemediationAction.FORCE_NEW_DEPLOYMENT,
                    from_task_definition=deployment.task_definition,
                    expected_deployment_id=deployment.primary_deployment_id,
                    reason="component unhealthy; replace the tasks with a new deployment",
                    **common,
                )
            )
        if unhealthy or diagnosis.critical_metrics:
            breached = ", ".join(m.key for m in diagnosis.critical_metrics) or "health"
            plans.append(
                RemediationPlan.build(
                    action=RemediationAction.EMERGENCY_SWITCH,
                    reason=f"critical: {breached}; fall back to standard routing",
                    **common,
                )
            )
        if not plans:
            self.record("no remediation proposed", "health and metrics show no failure to act on")
        else:
            self.record("proposed", f"{plans[0].plan_id}: {plans[0].describe()} ({plans[0].reason})")
        return plans

    async def step_approve(self, plan: RemediationPlan) -> Any:
        """Wait for the approvers the plan's risk level needs, reminding and re-paging on the
        way; at the timeout the policy's final answer. None: the alert cleared first, or it was
        resolved in PagerDuty, so nothing may be done."""
        self.enter("approve", IncidentStatus.AWAITING_APPROVAL)
        self.gate.reset()
        page = self.the_policy.communication.approval_page
        link = f"\nApprove or reject: {page}/incident?id={quote(workflow.info().workflow_id, safe='')}" if page else ""
        proposal = f"Proposed remediation {plan.plan_id}: {plan.describe()}{link}"
        if self.lean:
            self.gate.arm(plan, self.the_policy, rules_mode=True, requesters=self.requesters())
            await self.pager.note(f"proposal-{plan.plan_id}", proposal)
        else:
            await self.pager.note(f"proposal-{plan.plan_id}", proposal)
            self.gate.arm(
                plan, self.the_policy, rules_mode=workflow.patched("approval-rules"), requesters=self.requesters()
            )
        return await self.gate.decide(plan, self.the_policy, self.wait, self.proposal_withdrawn, self.climb, self.lean)

    def proposal_withdrawn(self) -> str | None:
        if self.resolved_in_pagerduty_by is not None:
            return f"resolved in PagerDuty by {self.resolved_in_pagerduty_by}"
        if self.condition_cleared:
            return "the alert resolved before anyone decided"
        return None

    async def climb(self, action: str, plan: Plan) -> None:
        """One rung of the approval ladder."""
        if action == "remind":
            self.record("reminder", f"{plan.plan_id} still awaits approval")
            await self.pager.note(
                f"reminder-{plan.plan_id}-{len(self.timeline)}",
                f"Reminder: {plan.plan_id} "
                f"({plan.describe()}) awaits approval: runbook approve {self.input.incident_id}",
            )
        else:
            await self.pager.climb(f"{plan.plan_id} awaits approval")

    async def step_remediate(self, plan: RemediationPlan) -> RemediationRecord | None:
        """Once, idempotently: a retried activity finds its work done and does nothing more."""
        self.enter("remediate", IncidentStatus.REMEDIATING)
        try:
            self.remediation = await self.apply(plan)
        except ActivityError as err:
            self.record("remediation failed", cause(err))
            return None
        self.record("remediated", self.remediation.detail)
        # lean runs: with the next batch (the verification's outcome), not a batch of its own
        await self.pager.note(f"remediated-{plan.plan_id}", f"Remediation done: {self.remediation.detail}", defer=True)
        return self.remediation

    async def step_verify(self, plan: RemediationPlan | None) -> bool:
        """Health and metrics must hold within SLO for the policy's window before the deadline."""
        self.enter("verify", IncidentStatus.VERIFYING)
        timers = self.the_policy.timers
        if not self.lean:
            return await verification.hold_by_rounds(lambda: self.within_slo(plan), timers, self.wait, self.timeline)
        request = VerifyRequest(
            health=HealthRequest(component=self.target.health_component),
            # after the emergency switch the platform's status counts, not the broken component
            system_status=plan is not None and plan.action == RemediationAction.EMERGENCY_SWITCH,
            metrics=self.metrics_request(),
            window=timers.verify_window,
            interval=timers.verify_interval,
            deadline=workflow.now() + timers.verify_timeout,
        )
        return await verification.hold_in_one_activity(request, self.wait, self.timeline)

    async def step_undo(self, plan: RemediationPlan, record: RemediationRecord) -> None:
        """Put back what the remediation changed, so people start from the known state."""
        self.enter("undo", IncidentStatus.UNDOING)
        match plan.action:
            case RemediationAction.ROLLBACK:
                reverse = plan.model_copy(
                    update={
                        "from_task_definition": plan.to_task_definition,
                        "to_task_definition": plan.from_task_definition,
                    }
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
            self.record("undo failed", cause(err))
            return
        self.record("undone", done.detail)

    async def hand_to_failover(self, diagnosis: Diagnosis) -> IncidentResult:
        """The whole region is down: a rollback or a routing switch inside it cannot help. The
        failover run moves the traffic (it confirms with its own probes, checks readiness and
        asks its own approvers); this incident follows it and resolves once the traffic is
        served and verified in the backup region."""
        self.enter("propose", IncidentStatus.DIAGNOSING)
        assert diagnosis.region is not None
        failover_id = self.failover_id = failover_workflow_id(self.input.service)
        down = f"the whole region {self.input.region} is down ({diagnosis.region.detail or 'no answer'})"
        start = FailoverInput(service=self.input.service, opened_by=self.opened_by, incident_id=self.input.incident_id)
        try:
            await workflow.start_child_workflow(
                FAILOVER_WORKFLOW, start, id=failover_id, parent_close_policy=ParentClosePolicy.ABANDON
            )
            self.record("proposed", f"failover {failover_id}: {down}")
        except WorkflowAlreadyStartedError:
            self.record("proposed", f"failover {failover_id}, running already: {down}; following it")
        await self.pager.note(
            "failover",
            f"{down}: handed to the region failover {failover_id}. It confirms with its own probes and "
            f"needs its approvers: runbook show {failover_id}; runbook approve {failover_id}",
        )
        self.enter("remediate", IncidentStatus.REMEDIATING)
        progress = await self.follow_failover(failover_id)
        if progress.status == FailoverStatus.FAILED_OVER:
            self.enter("verify", IncidentStatus.VERIFYING)
            self.record("verified", f"{failover_id}: {progress.to_region} serves and is healthy")
            return await self.step_resolve(f"failed over to {progress.to_region} by {failover_id}")
        status = progress.status.value if progress.status is not None else "unknown"
        self.record("not failed over", f"{failover_id} {status}: {progress.outcome or '-'}")
        if progress.status == FailoverStatus.NOT_CONFIRMED:
            return await self.close_without_remediation(f"{self.input.region} answered again ({failover_id})")
        return await self.step_escalate(f"{failover_id} did not fail over ({status}): {progress.outcome or '-'}")

    async def follow_failover(self, workflow_id: str) -> FailoverProgress:
        """Until the failover run has moved the traffic or ended: its own word (a signal) wakes
        this run to read it; a read every FOLLOW_FAILOVER_EVERY in case the word is lost."""
        while True:
            self.failover_moved = False
            progress: FailoverProgress = await workflow.execute_activity_method(
                Runs.failover_progress, workflow_id, **READ
            )
            if progress.decided:
                return progress
            await self.wait(lambda: self.failover_moved, FOLLOW_FAILOVER_EVERY)

    async def step_escalate(self, reason: str) -> IncidentResult:
        """Hand the incident to people: climb the ladder, say why, leave the page open."""
        self.enter("escalate", IncidentStatus.ESCALATED)
        await self.pager.climb(reason)
        await self.pager.note("escalated", f"Runbook stopped; people take over: {reason}")
        return await self.finish(IncidentStatus.ESCALATED, f"escalated: {reason}")

    async def step_resolve(self, outcome: str) -> IncidentResult:
        """Resolve the PagerDuty incident and record the outcome."""
        self.enter("resolve", IncidentStatus.RESOLVED)
        await self.pager.note("resolved", f"Resolved: {outcome}")
        await self.pager.resolve()
        return await self.finish(IncidentStatus.RESOLVED, outcome)

    async def closed_in_pagerduty(self) -> IncidentResult:
        """Someone resolved the page by hand: nothing more to do, and nothing to resolve again."""
        self.enter("resolve", IncidentStatus.RESOLVED)
        return await self.finish(IncidentStatus.RESOLVED, f"resolved in PagerDuty by {self.resolved_in_pagerduty_by}")

    async def close_without_remediation(self, reason: str) -> IncidentResult:
        if await self.step_verify(None):
            return await self.step_resolve(f"{reason}; the service is within SLO")
        return await self.step_escalate(f"{reason}; the service is not within SLO")

    async def cancelled(self) -> IncidentResult:
        """Stop safely: put back a remediation that was not verified, leave the page to people."""
        assert self.cancel_request is not None
        if self.applied is not None and self.status in (IncidentStatus.REMEDIATING, IncidentStatus.VERIFYING):
            await self.step_undo(*self.applied)
        self.enter("escalate", IncidentStatus.CANCELLED)
        by, reason = self.cancel_request.by, self.cancel_request.reason
        await self.pager.note("cancelled", f"Runbook cancelled by {by}: {reason}")
        return await self.finish(IncidentStatus.CANCELLED, f"cancelled by {by}: {reason}")

    async def finish(self, status: IncidentStatus, outcome: str) -> IncidentResult:
        await self.close(status, outcome)
        self.measure(status)
        if status in FOLLOWED_UP and workflow.patched(POST_INCIDENT):
            await self.start_followup(status)
        return IncidentResult(outcome=outcome, view=self.view())

    def measure(self, status: IncidentStatus) -> None:
        """Incidents by severity and how they ended; the time to acknowledge and to resolve."""
        severity = self.severity.value if self.severity is not None else "none"
        metrics.count(
            "runbook_incidents_closed",
            "incidents closed, by severity and status",
            severity=severity,
            status=status.value,
        )
        started = workflow.info().start_time
        acknowledged = next((e.at for e in self.timeline.entries if e.event == "acknowledged"), None)
        if acknowledged is not None:
            metrics.observe(
                "runbook_incident_time_to_acknowledge",
                "opened to acknowledged",
                acknowledged - started,
                severity=severity,
            )
        if status == IncidentStatus.RESOLVED:
            metrics.observe(
                "runbook_incident_time_to_resolve", "opened to resolved", workflow.now() - started, severity=severity
            )

    async def start_followup(self, status: IncidentStatus) -> None:
        """The follow-up run (review, post-mortem, action items), a child that outlives this
        run, for the severities the policy names; only for an incident someone was paged for."""
        policy = self.the_policy.postincident if self.policy is not None else None
        if policy is None or self.severity is None or self.severity not in policy.severities or self.pager.ref is None:
            return
        followup = FollowupInput(
            incident_id=self.input.incident_id,
            incident_workflow_id=workflow.info().workflow_id,
            service=self.input.service,
            region=self.input.region,
            severity=self.severity,
            closed_status=status.value,
            closed_at=workflow.now(),
            commander=self.acknowledged_by or self.opened_by,
            opened_by=self.opened_by,
            pagerduty=self.pager.ref,
        )
        try:
            await workflow.start_child_workflow(
                FOLLOWUP_WORKFLOW,
                followup,
                id=postincident_workflow_id(self.input.incident_id),
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            return

    def region_probe(self) -> ProbeRequest | None:
        """The region's own check (not the service's health: a bad deploy fails that too), when
        the service can fail over out of this region and the policy names one."""
        policy = self.the_policy
        entry = policy.failover.services.get(self.input.service) if policy.failover is not None else None
        service = policy.services.get(self.input.service)
        if entry is None or service is None or service.region != self.input.region:
            return None
        url = entry.region_checks.get(self.input.region)
        return ProbeRequest(region=self.input.region, url=url) if url is not None else None

    # ------------------------------------------------------------------ signals and queries

    @workflow.signal
    def failover_progressed(self) -> None:
        """The failover run this incident follows moved on. A wake-up only: what it did is read
        from the run itself, so a forged one changes nothing."""
        self.failover_moved = True

    @workflow.signal
    def alert(self, alert: Alert) -> None:
        """Every alert for this target joins here: counted, and a resolved one clears the condition.

        A sender's retry of a delivery already taken (same delivery id) changes nothing. Signed
        runs take only alerts the intake signed; whoever handed the first over opened the run.
        """
        self.take_signal("alert", alert, self.apply_alert)

    def apply_alert(self, alert: Alert, statement: Statement | None) -> None:
        if statement is not None and not self.alerts:
            self.opened_by = statement.sub
        if not self.count_alert(alert):
            return
        if len(self.alerts) > 1:
            self.record(
                f"alert {alert.status}",
                f"#{len(self.alerts)} from {alert.source}: {alert.summary}",
                actor=alert.raised_by or alert.source,
            )
        self.note_cleared()

    @workflow.signal
    def alert_batch(self, batch: AlertBatch) -> None:
        """Alerts the intake coalesced (one target, arrived together): each counts, fires and
        clears as if it came alone; the timeline names the first few and counts the rest."""
        self.take_signal("alert_batch", batch, self.apply_alerts)

    def apply_alerts(self, batch: AlertBatch, statement: Statement | None) -> None:
        if statement is not None and not self.alerts:
            self.opened_by = statement.sub
        known = len(self.alerts)
        taken = [alert for alert in batch.alerts if self.count_alert(alert)]
        joined = [(known + n + 1, alert) for n, alert in enumerate(taken) if known + n > 0]
        named, counted = joined[:ALERTS_NAMED_PER_BATCH], joined[ALERTS_NAMED_PER_BATCH:]
        for number, alert in named:
            self.record(
                f"alert {alert.status}",
                f"#{number} from {alert.source}: {alert.summary}",
                actor=alert.raised_by or alert.source,
            )
        if counted:
            firing = sum(1 for _, alert in counted if alert.status == "firing")
            sources = sorted({alert.source for _, alert in counted})
            self.record(
                "alerts",
                f"#{counted[0][0]}-#{counted[-1][0]}: {firing} firing, {len(counted) - firing} resolved "
                f"from {', '.join(sources)}",
                actor=", ".join(sources),
            )
        if taken:
            self.note_cleared()

    def count_alert(self, alert: Alert) -> bool:
        """Counts an alert and tracks what still fires; False for a delivery taken before."""
        if not self.first_delivery(alert):
            return False
        self.alerts.append(alert)
        # The condition clears when every alert that fired has resolved, not at the first OK.
        key = alert.fingerprint or "(unnamed)"
        if alert.status == "firing":
            self.firing.add(key)
        else:
            self.firing.discard(key)
        self.condition_cleared = alert.status == "resolved" and not self.firing
        return True

    def note_cleared(self) -> None:
        if (
            self.lean
            and self.condition_cleared
            and self.status in (IncidentStatus.AWAITING_ACK, IncidentStatus.UNPAGED)
        ):
            what = "paging goes on" if self.on_clear() == "keep_paging" else "resolving the incident"
            self.record(
                "condition cleared",
                f"every alert resolved before anyone acknowledged: {what} (policy on_clear: {self.on_clear()})",
            )

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
            opened_by=self.opened_by,
            alert_count=len(self.alerts),
            acknowledged_by=self.acknowledged_by,
            pending_approval=self.gate.pending,
            diagnosis=self.diagnosis,
            decision=self.gate.decision,
            remediation=self.remediation,
            pagerduty=self.pager.ref,
            outcome=self.outcome,
            timeline=list(self.timeline.entries),
            refused_signals=self.refused_signals,
            failover=self.failover_id,
        )

    def requesters(self) -> set[str]:
        first = self.alerts[0].raised_by if self.alerts else None
        return {self.opened_by, *([first] if first else [])}

    # ------------------------------------------------------------------ readings and actions

    def on_clear(self) -> str:
        assert self.severity is not None
        chosen = self.the_policy.severities[self.severity].on_clear
        return chosen or ("keep_paging" if self.severity in KEEP_PAGING_ON_CLEAR else "resolve")

    def metrics_request(self) -> MetricsRequest:
        return MetricsRequest(region=self.target.region, queries=self.the_policy.metrics)

    def log_request(self) -> LogScanRequest:
        target = self.target
        return LogScanRequest(
            region=target.region, log_group=target.log_group, lookback=self.the_policy.timers.log_lookback
        )

    def deployment_request(self) -> DeploymentRequest:
        target = self.target
        return DeploymentRequest(cluster=target.ecs_cluster, service=target.ecs_service, region=target.region)

    async def read_health(self, target: ServiceTarget) -> HealthReading:
        request = HealthRequest(component=target.health_component)
        try:
            return await workflow.execute_activity(platform_api.check_component_health, request, **READ)
        except ActivityError as err:
            return HealthReading(component=target.health_component, healthy=False, detail=cause(err))

    async def read_metrics(self, target: ServiceTarget) -> list[MetricReading]:
        try:
            return await workflow.execute_activity(cloudwatch.read_metrics, self.metrics_request(), **READ)
        except ActivityError as err:
            return [
                MetricReading(key=q.key, value=None, level="no-data", within_target=False, detail=cause(err))
                for q in self.the_policy.metrics
            ]

    async def read_logs(self, target: ServiceTarget) -> LogScan:
        try:
            return await workflow.execute_activity(cloudwatch.scan_error_logs, self.log_request(), **READ)
        except ActivityError as err:
            return LogScan(log_group=target.log_group, error_count=0, detail=f"log scan failed: {cause(err)}")

    async def read_deployment(self, target: ServiceTarget) -> tuple[DeploymentState | None, str | None]:
        try:
            state = await workflow.execute_activity(ecs.describe_deployment, self.deployment_request(), **READ)
        except ActivityError as err:
            return None, cause(err)
        return state, None

    async def within_slo(self, plan: RemediationPlan | None) -> tuple[bool, str]:
        """After the emergency switch the platform's status counts, not the broken component."""
        target = self.target
        if plan is not None and plan.action == RemediationAction.EMERGENCY_SWITCH:
            try:
                status = await workflow.execute_activity(platform_api.check_system_status, **READ)
            except ActivityError as err:
                return False, cause(err)
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
                return workflow.execute_activity(ecs.set_service_task_definition, plan, **ACT)
            case RemediationAction.FORCE_NEW_DEPLOYMENT:
                return workflow.execute_activity(ecs.force_new_deployment, plan, **ACT)
            case RemediationAction.EMERGENCY_SWITCH:
                return self.switch_hybrid_routing(enabled=False, reason=plan.reason)

    def switch_hybrid_routing(self, *, enabled: bool, reason: str) -> Any:
        request = EmergencySwitchRequest(hybrid_routing_enabled=enabled, reason=reason)
        return workflow.execute_activity(platform_api.set_hybrid_routing, request, **ACT)

    # ------------------------------------------------------------------ bookkeeping

    @property
    def target(self) -> ServiceTarget:
        try:
            return self.the_policy.services[self.input.service]
        except KeyError:
            raise ApplicationError(
                f"service {self.input.service!r} is not in the policy's services",
                non_retryable=True,
                type="UnknownService",
            ) from None

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
