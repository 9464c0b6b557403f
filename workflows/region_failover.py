"""Multi-region failover: a region that stays down moves its service's traffic to the backup
region, checked before, approved by two, measured against the RTO, never flapping. Read it next
to `runbooks/region-failover.md`: each `step_<id>` is a step there.

One run per service (`failover/{service}`): a second trigger joins the open run. After a
failover the run stays open for the policy's `min_interval`, refusing (and recording) every
further trigger: flap protection. The numbers are the policy's `failover` section.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import failover as dns
    from activities import scaling as aws
    from contracts import (
        AlertBatch,
        DnsChangePlan,
        EcsCapacity,
        EcsCapacityRequest,
        EcsRunningWait,
        EcsScalePlan,
        FailoverRecords,
        PageRequest,
        Preflight,
        PreflightRequest,
        ProbeResult,
        ScalingRecord,
        Statement,
        incident_workflow_id,
    )
    from contracts.region_failover import (
        CLOSED_FAILOVER,
        FailbackInput,
        FailoverInput,
        FailoverPlan,
        FailoverResult,
        FailoverStatus,
        FailoverTrigger,
        FailoverView,
        RecoveryTime,
        failback_workflow_id,
        failover_workflow_id,
    )

from workflows.kit import metrics
from workflows.kit.approval import ApprovalGate
from workflows.kit.options import ACT, READ, hold
from workflows.kit.regions import RegionRunbook, StepDeadline
from workflows.kit.runbook import RunbookCancelled
from workflows.kit.timeline import cause, fmt
from workflows.region_failback import RegionFailbackWorkflow

# The runbook's step ids, in its order; a test keeps runbooks/region-failover.md in step.
STEPS = ("confirm", "preflight", "plan", "approve", "scale_backup", "switch_dns", "verify", "hold_off")


@workflow.defn
class RegionFailoverWorkflow(RegionRunbook):
    noun = "failover"
    closed = CLOSED_FAILOVER
    gate: ApprovalGate[FailoverPlan]

    @workflow.init
    def __init__(self, input: FailoverInput) -> None:
        self.input = input
        self.service = input.service
        self.init_kit(
            note_prefix=failover_workflow_id(input.service),
            opened_by=input.opened_by,
            status=FailoverStatus.CONFIRMING,
        )
        self.triggers = 0
        self.triggered_at: datetime | None = None
        self.plan_only = input.plan
        self.to_region: str | None = None  # an operator's --to
        self.probes: list[ProbeResult] = []
        self.preflight: Preflight | None = None
        self.plan: FailoverPlan | None = None
        self.planned_calls: list[str] = []
        self.done: list[str] = []
        self.recovery: RecoveryTime | None = None
        self.refused_until: datetime | None = None
        self.incident: workflow.ParentInfo | None = None  # the P0 incident that handed its region over

    @workflow.run
    async def run(self, input: FailoverInput) -> FailoverResult:
        self.adopt_signed_mode()
        await self.trusted_policy()
        self.start_kit(True, lambda: (True, True))
        self.take_incident()
        refusal = self.unproven_start()
        if refusal is not None:
            self.enter("confirm", FailoverStatus.REFUSED)
            return await self.finish(FailoverStatus.REFUSED, f"refused: {refusal}; nothing probed, nothing changed")
        await workflow.wait_condition(lambda: self.triggers > 0)
        self.plan_only = self.plan_only or self.failover.dry_run
        try:
            return await self.respond()
        except RunbookCancelled:
            assert self.cancel_request is not None
            self.enter(self.step, FailoverStatus.CANCELLED)
            by, reason = self.cancel_request.by, self.cancel_request.reason
            left = f"done: {'; '.join(self.done)}" if self.done else "nothing changed"
            return await self.finish(FailoverStatus.CANCELLED, f"cancelled by {by}: {reason}; {left}")

    async def respond(self) -> FailoverResult:
        if not await self.step_confirm():
            return await self.finish(
                FailoverStatus.NOT_CONFIRMED,
                f"not confirmed: {self.primary} answered within {fmt(self.failover.confirm_for)}; nothing changed",
            )
        preflight = await self.step_preflight()
        if not preflight.ok:
            return await self.blocked(preflight)
        plan = await self.step_plan(preflight)
        if self.plan_only:
            self.planned_calls = [call.render() for call in plan.calls()]
            for call in self.planned_calls:
                self.record("would call", call)
            return await self.finish(FailoverStatus.PLANNED, f"plan only: {plan.describe()}; nothing changed")
        if not await self.step_approve(plan):
            why = self.gate.decision.reason if self.gate.decision is not None else "no decision"
            return await self.finish(FailoverStatus.NOT_APPROVED, f"not approved: {why}; nothing changed")
        await self.wait_for_maintenance()
        try:
            await self.step_scale_backup(plan)
            await self.step_switch_dns(plan)
            await self.step_verify(plan)
        except StepDeadline as err:
            return await self.stopped(str(err))
        await self.step_hold_off()
        assert self.recovery is not None
        verdict = "within" if self.recovery.met else "OVER"
        return await self.finish(
            FailoverStatus.FAILED_OVER,
            f"failed over to {plan.to_region} in {fmt(self.recovery.took)} "
            f"({verdict} the RTO of {fmt(self.recovery.rto)})",
        )

    # ------------------------------------------------------------------ runbook steps

    async def step_confirm(self) -> bool:
        """The worker's own probes: the primary must fail every probe for `confirm_for`, not
        only be reported down by an alert. A probe that answers ends the run, nothing changed."""
        self.enter("confirm", FailoverStatus.CONFIRMING)
        policy = self.failover
        url = self.health_url(self.primary)
        failing_since: datetime | None = None
        while True:
            probe = await self.probe(self.primary, url)
            now = workflow.now()
            if probe.ok:
                self.record("primary answered", f"{self.primary}: {probe.detail}")
                return False
            failing_since = failing_since or now
            if now - failing_since >= policy.confirm_for:
                self.record(
                    "confirmed", f"{self.primary} failed every probe for {fmt(now - failing_since)}: {probe.detail}"
                )
                return True
            await self.wait(lambda: False, policy.probe_every)

    async def step_preflight(self) -> Preflight:
        """Readiness: the backup service exists and runs what the primary runs, its capacity
        reaches the target, the hosted zone and both failover records exist."""
        self.enter("preflight", FailoverStatus.PREFLIGHT)
        target, service = self.target, self.the_policy.services[self.input.service]
        request = PreflightRequest(
            primary=EcsCapacityRequest(cluster=service.ecs_cluster, service=service.ecs_service, region=self.primary),
            backup=self.backup_ref,
            target_count=target.target_count,
            dns=self.records_request,
        )
        self.preflight = await workflow.execute_activity(dns.preflight, request, **READ)
        for check in self.preflight.checks:
            event = "NOT READY" if not check.ok else "ready" if check.verified else "UNVERIFIED"
            self.record(event, f"{check.name}: {check.detail}")
        return self.preflight

    async def step_plan(self, preflight: Preflight) -> FailoverPlan:
        """The exact changes, computed once: the backup to its target count, then the DNS
        records swapped (the backup's record PRIMARY)."""
        self.enter("plan", FailoverStatus.PREFLIGHT)
        records: FailoverRecords | None = preflight.records
        if records is None:
            raise ApplicationError("preflight passed without reading the failover records", non_retryable=True)
        backup: EcsCapacity = await workflow.execute_activity(aws.read_ecs_capacity, self.backup_ref, **READ)
        reason = f"{self.primary} failed its probes for {fmt(self.failover.confirm_for)}"
        plan = FailoverPlan(
            service=self.input.service,
            from_region=self.primary,
            to_region=self.backup_region,
            ecs=EcsScalePlan.build(backup, max(backup.desired_count, self.target.target_count), reason),
            dns=DnsChangePlan.build(records, self.backup_region, reason),
            reason=reason,
        )
        self.plan = plan
        self.record("planned", f"{plan.plan_id}: {plan.describe()}")
        return plan

    async def step_approve(self, plan: FailoverPlan) -> bool:
        """Critical risk: the policy's distinct approvers (default two, from the leads), four
        eyes (whoever asked for it cannot be one of them alone)."""
        self.enter("approve", FailoverStatus.AWAITING_APPROVAL)
        self.gate.reset()
        self.gate.arm(plan, self.the_policy, rules_mode=True, requesters=self.requesters())
        rule = self.gate.rule
        needed = rule.required if rule is not None else 1
        self.record("awaiting approval", f"{plan.plan_id}: {needed} distinct approver(s)")
        decision = await self.gate.decide(plan, self.the_policy, self.wait, lambda: None, self.climb, True)
        if decision is None or not decision.approved:
            self.record("not failed over", f"{plan.plan_id}: {decision.reason if decision else 'withdrawn'}")
            return False
        return True

    async def step_scale_backup(self, plan: FailoverPlan) -> None:
        """The backup to its target count, and running it (every task, no rollout) before any
        traffic moves."""
        self.enter("scale_backup", FailoverStatus.FAILING_OVER)
        deadline = workflow.now() + self.failover.scale_within
        scaled: ScalingRecord = await workflow.execute_activity(aws.scale_ecs_service, plan.ecs, **ACT)
        self.done.append(f"backup scaled: {scaled.detail or plan.ecs.describe()}")
        self.audit("backup scaled", plan.ecs.describe(), "runbook")
        wait = EcsRunningWait(
            cluster=plan.ecs.cluster,
            service=plan.ecs.service,
            region=plan.ecs.region,
            count=plan.ecs.to_count,
            deadline=deadline,
        )
        try:
            running: EcsCapacity = await workflow.execute_activity(
                dns.wait_for_ecs_running, wait, **hold(self.failover.scale_within)
            )
        except ActivityError as err:
            raise StepDeadline(f"the backup did not run {plan.ecs.to_count} task(s) in time: {cause(err)}") from err
        self.record("backup running", f"{running.running_count} task(s) running in {plan.to_region}")

    async def step_switch_dns(self, plan: FailoverPlan) -> None:
        """The Route 53 change, once (a retry finds it done), then read back."""
        self.enter("switch_dns", FailoverStatus.FAILING_OVER)
        changed = await self.change_records(plan.dns)
        self.done.append(f"DNS switched: {changed.records.describe()}")
        self.audit("DNS switched", f"{plan.dns.plan_id}: {changed.detail}", "runbook")

    async def step_verify(self, plan: FailoverPlan) -> None:
        """End to end: the service healthy where DNS now sends the traffic, within
        `verify_within`; the recovery time measured against the RTO."""
        self.enter("verify", FailoverStatus.VERIFYING)
        await self.verify_serving(plan.to_region)
        assert self.triggered_at is not None
        self.recovery = RecoveryTime(triggered_at=self.triggered_at, verified_at=workflow.now(), rto=self.failover.rto)
        metrics.observe(
            "runbook_failover_recovery_time", "failover trigger to verified", self.recovery.took, service=self.service
        )
        verdict = "within" if self.recovery.met else "OVER"
        self.audit(
            "verified",
            f"{plan.to_region} serves and is healthy; recovered in {fmt(self.recovery.took)}, {verdict} the RTO "
            f"of {fmt(self.recovery.rto)}",
            "runbook",
        )
        await self.pager.note("failed over", f"{plan.describe()}; recovered in {fmt(self.recovery.took)}")
        await self.start_failback(plan)

    async def start_failback(self, plan: FailoverPlan) -> None:
        """The failback run, as a child that outlives this run: it soaks, then proposes the way
        back. One per service: one already running (an earlier cycle) is left as it is."""
        assert self.recovery is not None
        failback = FailbackInput(
            service=self.input.service,
            failover=plan,
            failed_over_at=self.recovery.verified_at,
            opened_by=self.opened_by,
        )
        try:
            await workflow.start_child_workflow(
                RegionFailbackWorkflow.run,
                failback,
                id=failback_workflow_id(self.input.service),
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            self.record("failback", f"{failback_workflow_id(self.input.service)} is already running")
            return
        self.record("failback", f"{failback_workflow_id(self.input.service)} soaks, then proposes the way back")

    async def step_hold_off(self) -> None:
        """Flap protection: the run stays open for `min_interval`; every trigger meanwhile is
        refused, with the reason in the timeline."""
        self.enter("hold_off", FailoverStatus.FAILED_OVER)
        await self.tell_incident()
        self.refused_until = workflow.now() + self.failover.min_interval
        self.record("holding off", f"no other failover of {self.input.service} before {self.refused_until:%H:%M:%S}")
        await self.wait(lambda: False, self.failover.min_interval)

    # ------------------------------------------------------------------ pieces of the steps

    async def blocked(self, preflight: Preflight) -> FailoverResult:
        reasons = "; ".join(f"{check.name}: {check.detail}" for check in preflight.failures)
        await self.page(f"[P1] failover of {self.input.service} blocked: {reasons}", "blocked")
        return await self.finish(FailoverStatus.BLOCKED, f"blocked by preflight: {reasons}; nothing changed")

    async def stopped(self, why: str) -> FailoverResult:
        """A step past its deadline: what is done stays (the timeline and `done` say what), the
        on-call is paged, people decide (undo is theirs to choose)."""
        self.enter(self.step, FailoverStatus.STOPPED)
        left = "; ".join(self.done) or "nothing changed"
        await self.page(f"[P0] failover of {self.input.service} stopped: {why}", "stopped")
        return await self.finish(FailoverStatus.STOPPED, f"stopped: {why}; done: {left}")

    async def page(self, summary: str, key: str) -> None:
        self.record("paged" if self.pager.ref is None else "noted", summary)
        if self.pager.ref is not None:
            await self.pager.note(key, summary)
            return
        request = PageRequest(
            dedup_key=f"{workflow.info().workflow_id}#{key}",
            summary=summary,
            source=f"{self.input.service}/{self.primary}",
            severity="critical",
            details={"workflow_id": workflow.info().workflow_id},
        )
        await self.pager.page(request, summary)

    @property
    def primary(self) -> str:
        return self.the_policy.services[self.input.service].region

    @property
    def backup_region(self) -> str:
        return self.to_region or self.target.backup_region

    @property
    def backup_ref(self) -> EcsCapacityRequest:
        target = self.target
        return EcsCapacityRequest(
            cluster=target.backup_cluster, service=target.backup_service, region=self.backup_region
        )

    def unproven_start(self) -> str | None:
        if workflow.info().workflow_id != failover_workflow_id(self.input.service):
            return f"the start names {self.input.service}, not this workflow's target"
        if not self.triggers:
            return "started by no trigger or alert the intake signed"
        if self.to_region is not None and self.to_region != self.target.backup_region:
            backup = self.target.backup_region
            return f"--to {self.to_region}: the policy's backup region for {self.input.service} is {backup}"
        return None

    async def finish(self, status: FailoverStatus, outcome: str) -> FailoverResult:
        await self.close(status, outcome)
        await self.tell_incident()
        return FailoverResult(outcome=outcome, view=self.view())

    def take_incident(self) -> None:
        """A P0 incident that found the primary region down started this run: its trigger. Only
        the incident run of this service's primary region counts (the parent is the server's
        word); an input naming an incident without being its child triggers nothing."""
        parent = workflow.info().parent
        service = self.the_policy.services.get(self.input.service)
        if self.input.incident_id is None or parent is None or service is None:
            return
        if parent.workflow_id != incident_workflow_id(self.input.service, service.region):
            return
        self.incident = parent
        self.take_trigger(
            f"incident {self.input.incident_id}",
            f"P0 incident {self.input.incident_id} found the whole region {service.region} down",
        )

    async def tell_incident(self) -> None:
        """Wake the incident that started this run: the traffic moved, or the run ended. It reads
        what happened from this run; a closed incident needs no word."""
        if self.incident is None:
            return
        handle = workflow.get_external_workflow_handle(self.incident.workflow_id, run_id=self.incident.run_id)
        try:
            await handle.signal("failover_progressed")
        except FailureError as err:
            self.record("incident not told", f"{self.incident.workflow_id}: {cause(err)}")

    # ------------------------------------------------------------------ signals and queries

    def take_trigger(self, by: str, what: str) -> None:
        """A trigger: the first opens the failover; one while it runs joins it; one after it
        (flap protection) is refused with the reason."""
        if self.refused_until is not None:
            self.record(
                "refused",
                f"{what}: {self.input.service} failed over already; no other failover before "
                f"{self.refused_until:%H:%M:%S}",
                actor=by,
            )
            return
        self.triggers += 1
        if self.triggered_at is None:
            self.triggered_at = workflow.now()
        self.record("triggered" if self.triggers == 1 else "joined", what, actor=by)

    @workflow.signal
    def trigger(self, trigger: FailoverTrigger) -> None:
        """`runbook trigger failover`: signed by the intake for the signed-in operator."""
        self.take_signal("trigger", trigger, self.apply_trigger)

    def apply_trigger(self, trigger: FailoverTrigger, statement: Statement | None) -> None:
        if statement is not None and not self.triggers:
            self.opened_by = statement.sub
        if not self.triggers:
            self.plan_only = self.plan_only or trigger.plan
            self.to_region = trigger.to_region
        plan = " (plan only)" if trigger.plan else ""
        self.take_trigger(trigger.by, f"{trigger.reason}{plan}")

    @workflow.signal
    def alert_batch(self, batch: AlertBatch) -> None:
        """Alerts the policy routes to the failover (a region-health alarm, an AWS Health event)."""
        self.take_signal("alert_batch", batch, self.apply_alerts)

    def apply_alerts(self, batch: AlertBatch, statement: Statement | None) -> None:
        if statement is not None and not self.triggers:
            self.opened_by = statement.sub
        for alert in batch.alerts:
            if self.first_delivery(alert) and alert.status == "firing":
                self.take_trigger(alert.raised_by or alert.source, f"alert from {alert.source}: {alert.summary}")

    @workflow.query
    def view(self) -> FailoverView:
        policy = self.policy
        known = policy is not None and policy.failover is not None and self.input.service in policy.failover.services
        return FailoverView(
            workflow_id=workflow.info().workflow_id,
            service=self.input.service,
            status=self.status,
            opened_by=self.opened_by,
            opened_at=workflow.info().start_time,
            plan_only=self.plan_only,
            primary_region=self.primary if known else None,
            backup_region=self.backup_region if known else None,
            probes=list(self.probes),
            preflight=self.preflight,
            plan=self.plan,
            pending_approval=self.gate.pending,
            approvals=list(self.gate.given),
            decision=self.gate.decision,
            planned_calls=list(self.planned_calls),
            done=list(self.done),
            recovery=self.recovery,
            refused_until=self.refused_until,
            pagerduty=self.pager.ref,
            outcome=self.outcome,
            timeline=list(self.timeline.entries),
            refused_signals=self.refused_signals,
        )
