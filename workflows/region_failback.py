"""Region failback: once the primary has been healthy for the soak period, propose the way back,
with its own approval; nothing fails back unattended, and nothing is forgotten. Read it next to
`runbooks/region-failback.md`: each `step_<id>` is a step there.

Started by the failover that moved the traffic, as its child (`failback/{service}`), outliving
it. It soaks durably (days if need be, continuing as new to keep its history short), proposes,
and when approved reverses the failover's DNS change exactly, verifies the primary serving,
and returns the backup to its standby count. A failback not approved is proposed again after
`failback_retry_after`.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import scaling as aws
    from contracts import (
        EcsCapacity,
        EcsCapacityRequest,
        EcsScalePlan,
        PageRequest,
        ProbeResult,
        ScalingRecord,
    )
    from contracts.region_failover import (
        CLOSED_FAILBACK,
        FailbackCarry,
        FailbackInput,
        FailbackPlan,
        FailbackResult,
        FailbackStatus,
        FailbackView,
        failback_workflow_id,
        failover_workflow_id,
    )

from workflows.kit.approval import ApprovalGate
from workflows.kit.options import ACT, READ
from workflows.kit.regions import RegionRunbook, StepDeadline
from workflows.kit.runbook import RunbookCancelled
from workflows.kit.timeline import fmt

STEPS = ("soak", "plan", "approve", "switch_dns", "verify", "standby")
CARRIED_TIMELINE = 50


@workflow.defn
class RegionFailbackWorkflow(RegionRunbook):
    noun = "failback"
    closed = CLOSED_FAILBACK
    gate: ApprovalGate[FailbackPlan]

    @workflow.init
    def __init__(self, input: FailbackInput) -> None:
        self.input = input
        self.service = input.service
        self.init_kit(
            note_prefix=failback_workflow_id(input.service),
            opened_by=input.opened_by,
            status=FailbackStatus.SOAKING,
        )
        self.probes: list[ProbeResult] = []
        self.healthy_since: datetime | None = None
        self.proposals = 0
        self.done: list[str] = []

    @workflow.run
    async def run(self, input: FailbackInput) -> FailbackResult:
        self.adopt_signed_mode()
        await self.trusted_policy()
        self.start_kit(True, lambda: (True, True))
        refusal = self.unproven_start()
        if refusal is not None:
            self.enter("soak", FailbackStatus.REFUSED)
            return await self.finish(FailbackStatus.REFUSED, f"refused: {refusal}; nothing probed, nothing changed")
        if input.carried is not None:
            self.healthy_since, self.proposals = input.carried.healthy_since, input.carried.proposals
            self.timeline.entries.extend(input.carried.timeline)
        else:
            self.record("waiting", f"for {self.primary} to stay healthy for {fmt(self.failover.soak_for)}")
        try:
            while True:
                await self.step_soak()
                plan = await self.step_plan()
                if await self.step_approve(plan):
                    break
                await self.wait(lambda: False, self.failover.failback_retry_after)
                self.healthy_since = None  # a fresh soak before the next proposal
            await self.wait_for_maintenance()
            try:
                await self.step_switch_dns(plan)
                await self.step_verify(plan)
                await self.step_standby(plan)
            except StepDeadline as err:
                return await self.stopped(str(err))
        except RunbookCancelled:
            assert self.cancel_request is not None
            self.enter(self.step, FailbackStatus.CANCELLED)
            by, reason = self.cancel_request.by, self.cancel_request.reason
            left = f"done: {'; '.join(self.done)}" if self.done else "traffic stays on the backup"
            return await self.finish(FailbackStatus.CANCELLED, f"cancelled by {by}: {reason}; {left}")
        return await self.finish(
            FailbackStatus.FAILED_BACK,
            f"failed back to {self.primary}; the backup on standby ({self.target.standby_count} task(s))",
        )

    # ------------------------------------------------------------------ runbook steps

    async def step_soak(self) -> None:
        """The primary healthy, probe after probe, for `soak_for`; any failed probe starts the
        soak again. Days if need be: the run continues as new before its history grows long."""
        self.enter("soak", FailbackStatus.SOAKING)
        url = self.health_url(self.primary)
        while True:
            await self.continue_if_long(self.failover.continue_after_events, self.carried_on)
            probe = await self.probe(self.primary, url)
            now = workflow.now()
            if not probe.ok:
                if self.healthy_since is not None:
                    self.record("soak reset", f"{self.primary} failed a probe: {probe.detail}")
                self.healthy_since = None
            elif self.healthy_since is None:
                self.healthy_since = now
                self.record("healthy", f"{self.primary} answers; failback after {fmt(self.failover.soak_for)} of this")
            if self.healthy_since is not None and now - self.healthy_since >= self.failover.soak_for:
                self.record("soaked", f"{self.primary} healthy since {self.healthy_since:%H:%M:%S}")
                return
            await self.wait(lambda: False, self.failover.probe_every)

    async def step_plan(self) -> FailbackPlan:
        """The failover's DNS change reversed exactly, and the backup back to standby."""
        self.enter("plan", FailbackStatus.SOAKING)
        failover = self.input.failover
        backup_ref = EcsCapacityRequest(
            cluster=failover.ecs.cluster, service=failover.ecs.service, region=failover.ecs.region
        )
        backup: EcsCapacity = await workflow.execute_activity(aws.read_ecs_capacity, backup_ref, **READ)
        reason = f"{self.primary} healthy for {fmt(self.failover.soak_for)}"
        plan = FailbackPlan(
            service=self.input.service,
            from_region=failover.to_region,
            to_region=failover.from_region,
            dns=failover.dns.reversed(reason),
            ecs=EcsScalePlan.build(backup, self.target.standby_count, reason),
            reason=reason,
        )
        self.proposals += 1
        self.record("planned", f"{plan.plan_id}: {plan.describe()}")
        return plan

    async def step_approve(self, plan: FailbackPlan) -> bool:
        """Its own approval (`region_failback`'s risk level: default two leads, four eyes)."""
        self.enter("approve", FailbackStatus.AWAITING_APPROVAL)
        self.gate.reset()
        self.gate.arm(plan, self.the_policy, rules_mode=True, requesters=self.requesters())
        await self.tell(
            f"[P2] failback of {self.input.service} to {plan.to_region} proposed: approve or reject it", plan
        )
        decision = await self.gate.decide(plan, self.the_policy, self.wait, lambda: None, self.climb, True)
        self.gate.pending = None
        if decision is None or not decision.approved:
            why = decision.reason if decision is not None else "withdrawn"
            again = workflow.now() + self.failover.failback_retry_after
            self.record("not failed back", f"{plan.plan_id}: {why}; proposed again after {again:%Y-%m-%d %H:%M}")
            self.enter("soak", FailbackStatus.SOAKING)
            return False
        return True

    async def step_switch_dns(self, plan: FailbackPlan) -> None:
        self.enter("switch_dns", FailbackStatus.FAILING_BACK)
        changed = await self.change_records(plan.dns)
        self.done.append(f"DNS switched back: {changed.records.describe()}")
        self.audit("DNS switched back", f"{plan.dns.plan_id}: {changed.detail}", "runbook")

    async def step_verify(self, plan: FailbackPlan) -> None:
        """The primary serving again (DNS says so) and healthy, before the backup stands down."""
        self.enter("verify", FailbackStatus.VERIFYING)
        await self.verify_serving(plan.to_region)
        self.audit("verified", f"{plan.to_region} serves and is healthy", "runbook")

    async def step_standby(self, plan: FailbackPlan) -> None:
        """The backup back to its standby count, once the primary carries the traffic."""
        self.enter("standby", FailbackStatus.FAILING_BACK)
        scaled: ScalingRecord = await workflow.execute_activity(aws.scale_ecs_service, plan.ecs, **ACT)
        self.done.append(f"backup on standby: {scaled.detail or plan.ecs.describe()}")
        self.audit("backup on standby", plan.ecs.describe(), "runbook")

    # ------------------------------------------------------------------ pieces of the steps

    async def tell(self, summary: str, plan: FailbackPlan) -> None:
        """The on-call hears of each proposal: a page the first time (a warning: nothing is down),
        a note on it after; nothing fails back without a person."""
        self.record("proposed", f"{plan.plan_id}: {plan.describe()}")
        if self.pager.ref is not None:
            await self.pager.note(f"proposal-{self.proposals}", f"{summary}\n{plan.describe()}")
            return
        request = PageRequest(
            dedup_key=f"{workflow.info().workflow_id}#proposal",
            summary=summary,
            source=f"{self.input.service}/{self.primary}",
            severity="warning",
            details={"workflow_id": workflow.info().workflow_id, "plan_id": plan.plan_id},
        )
        await self.pager.page(request, f"{summary}\n{plan.describe()}")

    async def stopped(self, why: str) -> FailbackResult:
        self.enter(self.step, FailbackStatus.STOPPED)
        left = "; ".join(self.done) or "nothing changed"
        summary = f"[P0] failback of {self.input.service} stopped: {why}"
        self.record("stopped", summary)
        if self.pager.ref is not None:  # the proposal's page: up the ladder, it is urgent now
            await self.pager.escalate(2, summary)
        else:
            request = PageRequest(
                dedup_key=f"{workflow.info().workflow_id}#stopped",
                summary=summary,
                source=f"{self.input.service}/{self.primary}",
                severity="critical",
                details={"workflow_id": workflow.info().workflow_id},
            )
            await self.pager.page(request, summary)
        return await self.finish(FailbackStatus.STOPPED, f"stopped: {why}; done: {left}")

    def carried_on(self) -> FailbackInput:
        """The input of the run this one continues as: the soak so far, the proposals made."""
        carried = FailbackCarry(
            healthy_since=self.healthy_since,
            proposals=self.proposals,
            timeline=self.timeline.entries[-CARRIED_TIMELINE:],
        )
        return self.input.model_copy(update={"carried": carried})

    @property
    def primary(self) -> str:
        return self.input.failover.from_region

    def unproven_start(self) -> str | None:
        """Only the service's failover starts its failback (as its child), or a failback
        continuing as new: a start from anywhere else is refused."""
        info = workflow.info()
        if info.workflow_id != failback_workflow_id(self.input.service):
            return f"the start names {self.input.service}, not this workflow's target"
        if self.input.carried is not None:
            return None if info.continued_run_id is not None else "it carries state, but no run continued into it"
        if info.parent is None or info.parent.workflow_id != failover_workflow_id(self.input.service):
            return "not started by the service's failover"
        return None

    async def finish(self, status: FailbackStatus, outcome: str) -> FailbackResult:
        await self.close(status, outcome)
        return FailbackResult(outcome=outcome, view=self.view())

    @workflow.query
    def view(self) -> FailbackView:
        soak = self.policy.failover.soak_for if self.policy and self.policy.failover else None
        return FailbackView(
            workflow_id=workflow.info().workflow_id,
            service=self.input.service,
            status=self.status,
            opened_by=self.opened_by,
            opened_at=workflow.info().start_time,
            failed_over_at=self.input.failed_over_at,
            primary_region=self.input.failover.from_region,
            backup_region=self.input.failover.to_region,
            healthy_since=self.healthy_since,
            soak_until=self.healthy_since + soak if self.healthy_since and soak else None,
            probes=list(self.probes),
            proposals=self.proposals,
            pending_approval=self.gate.pending,
            approvals=list(self.gate.given),
            decision=self.gate.decision,
            done=list(self.done),
            pagerduty=self.pager.ref,
            outcome=self.outcome,
            timeline=list(self.timeline.entries),
            refused_signals=self.refused_signals,
        )
