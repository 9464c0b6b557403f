"""Bedrock connection failures and graceful degradation. Read it next to
`runbooks/bedrock-connectivity.md`: each `step_<id>` is a step there.

One run per region (`bedrock/{region}`). It diagnoses at once whether Bedrock can be reached
(and how fast), whether the platform's model is listed and active, whether the client role may
call `bedrock:InvokeModel` on it (with the statement that decided), and what the platform's
circuit breaker says. A denied permission is not fixed by switching: the role's owner is paged
with the exact permission and role, and nothing is switched. An outage proposes the emergency
switch (high risk, four eyes), verifies standard routing within the policy's `switch_within`,
then recovers half-open: Bedrock is probed while hybrid routing is off, and once every probe
held for `healthy_for`, re-enabling is proposed, applied and verified; a failed verification
switches off again and waits longer each time instead of flapping.

The emergency switch has one owner at a time: before proposing it, this run asks whether
another run (a P0 incident run, another region's Bedrock run) owns it, and the switch activity
itself refuses a run that does not own it (activities/runs.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import bedrock as aws
    from activities import cloudwatch, platform_api
    from activities.runs import Runs
    from contracts import (
        Alert,
        AlertBatch,
        EmergencySwitchRequest,
        MetricReading,
        MetricsRequest,
        PageRequest,
        Statement,
    )
    from contracts.bedrock import (
        BedrockPolicy,
        BedrockTarget,
        BreakerReading,
        PermissionCheck,
        PermissionRequest,
        Reachability,
        ReachabilityRequest,
    )
    from contracts.bedrock_connectivity import (
        CLOSED_BEDROCK,
        BedrockCarry,
        BedrockDiagnosis,
        BedrockInput,
        BedrockResult,
        BedrockStatus,
        BedrockTrigger,
        BedrockView,
        SwitchOwnerRequest,
        SwitchPlan,
        SwitchRecord,
        bedrock_workflow_id,
    )

from workflows.kit.approval import ApprovalGate
from workflows.kit.options import ACT, READ
from workflows.kit.runbook import RunbookCancelled, RunbookWorkflow
from workflows.kit.timeline import cause, fmt

# The runbook's step ids, in its order; a test keeps runbooks/bedrock-connectivity.md in step.
STEPS = (
    "diagnose",
    "decide",
    "page_owner",
    "approve",
    "switch_off",
    "verify_off",
    "half_open",
    "re_enable",
    "verify_on",
    "hand_over",
)
VERIFY_EVERY = timedelta(seconds=10)  # how often a verification reads the platform's status
CARRIED_TIMELINE = 50  # timeline entries a continued run keeps
CARRIED_DELIVERIES = 1000  # alert delivery ids a continued run still recognises


@workflow.defn
class BedrockConnectivityWorkflow(RunbookWorkflow):
    noun = "Bedrock run"
    closed = CLOSED_BEDROCK
    passing = frozenset({BedrockStatus.DIAGNOSING, BedrockStatus.SWITCHING})
    gate: ApprovalGate[SwitchPlan]

    @workflow.init
    def __init__(self, input: BedrockInput) -> None:
        self.input = input
        self.init_kit(
            note_prefix=bedrock_workflow_id(input.region), opened_by=input.opened_by, status=BedrockStatus.DIAGNOSING
        )
        self.triggers = 0
        self.plan_only = input.plan
        self.diagnosis: BedrockDiagnosis | None = None
        self.switches: list[SwitchRecord] = []
        self.switched_off_at: datetime | None = None
        self.healthy_since: datetime | None = None
        self.failed_reenables = 0
        self.next_probe_at: datetime | None = None
        self.planned_calls: list[str] = []
        self.forged_carry = False
        self.carried_healthy_since: datetime | None = None

    @workflow.run
    async def run(self, input: BedrockInput) -> BedrockResult:
        self.adopt_signed_mode()
        await self.trusted_policy()
        self.start_kit(True, lambda: (True, True))
        if input.carried is not None:
            self.resume(input.carried)
        refusal = self.unproven_start()
        if refusal is not None:
            self.enter("diagnose", BedrockStatus.REFUSED)
            return await self.finish(BedrockStatus.REFUSED, f"refused: {refusal}; nothing read, nothing changed")
        await workflow.wait_condition(lambda: self.triggers > 0)
        self.plan_only = self.plan_only or self.bedrock.dry_run
        try:
            if input.carried is not None and not self.forged_carry:
                self.record("continued", "probing half-open goes on in this run")
                return await self.recover()
            return await self.respond()
        except RunbookCancelled:
            assert self.cancel_request is not None
            self.enter(self.step, BedrockStatus.CANCELLED)
            by, reason = self.cancel_request.by, self.cancel_request.reason
            return await self.finish(
                BedrockStatus.CANCELLED, f"cancelled by {by}: {reason}; hybrid routing left {self.routing_state()}"
            )

    async def respond(self) -> BedrockResult:
        """The runbook, step by step: diagnose, decide; then page the owner, or switch off and
        recover half-open."""
        diagnosis = await self.step_diagnose()
        verdict = self.step_decide(diagnosis)
        if verdict == "healthy":
            return await self.finish(BedrockStatus.HEALTHY, f"Bedrock healthy: {diagnosis.summary()}; nothing done")
        if verdict == "denied":
            return await self.step_page_owner(diagnosis)
        owner = await self.other_owner()
        if owner is not None:
            return await self.finish(
                BedrockStatus.DEFERRED, f"the emergency switch is owned by {owner}; this run changes nothing"
            )
        if diagnosis.breaker.hybrid_routing == "disabled":
            # someone switched off by hand: nobody else owns it, so this run takes on the recovery
            # (whose re-enable still needs an approval)
            self.record("already off", "hybrid routing is off and no other run owns the switch: recovering from here")
            self.switched_off_at = workflow.now()
            return await self.recover()
        plan = SwitchPlan(enable=False, region=self.input.region, attempt=1, reason=diagnosis.summary())
        if self.plan_only:
            return await self.planned(plan)
        await self.page_outage(diagnosis, plan)
        if not await self.step_approve(plan):
            return await self.step_hand_over(f"{plan.plan_id} not approved; hybrid routing left on")
        if not await self.step_switch_off(plan):
            return await self.step_hand_over("the emergency switch failed; hybrid routing may still be on")
        if not await self.step_verify_off():
            return await self.step_hand_over(
                f"standard routing not verified within {fmt(self.bedrock.switch_within)} of the switch"
            )
        return await self.recover()

    async def recover(self) -> BedrockResult:
        """Half-open: probe until healthy for the window, propose re-enabling, verify; a failed
        verification switches off again and backs off."""
        while True:
            if not await self.step_half_open():
                return await self.step_hand_over(
                    f"Bedrock not healthy for {fmt(self.bedrock.healthy_for)} within "
                    f"{fmt(self.bedrock.give_up_after)} of the switch; hybrid routing stays off"
                )
            attempt = self.failed_reenables + 1
            plan = SwitchPlan(enable=True, region=self.input.region, attempt=attempt, reason="Bedrock healthy again")
            if not await self.step_approve(plan):
                # people said not yet: hybrid routing stays off, and the run asks again later
                await self.back_off(f"{plan.plan_id} not approved")
                continue
            if not await self.step_re_enable(plan):
                return await self.step_hand_over("re-enabling hybrid routing failed; it stays off")
            if await self.step_verify_on():
                await self.pager.note("recovered", "Hybrid routing is back on and verified")
                await self.pager.resolve()
                return await self.finish(
                    BedrockStatus.RECOVERED, f"hybrid routing back on and verified (attempt {attempt})"
                )
            self.failed_reenables += 1
            if not await self.step_switch_off(
                SwitchPlan(enable=False, region=self.input.region, attempt=attempt + 1, reason="re-enable not verified")
            ):
                return await self.step_hand_over("switching off again after a failed re-enable failed")
            if self.failed_reenables >= self.bedrock.max_reenables:
                return await self.step_hand_over(
                    f"{self.failed_reenables} re-enables failed verification; hybrid routing stays off"
                )
            await self.back_off(f"re-enable {attempt} failed verification")

    # ------------------------------------------------------------------ runbook steps

    async def step_diagnose(self) -> BedrockDiagnosis:
        """At once: Bedrock reached (and how long it took), the model listed and active, the
        client role allowed InvokeModel on it, the platform's circuit breaker."""
        self.enter("diagnose", BedrockStatus.DIAGNOSING)
        target = self.target
        reach_task = workflow.start_activity(
            aws.probe_bedrock, ReachabilityRequest(region=self.input.region, model_id=target.model_id), **READ
        )
        breaker_task = workflow.start_activity(platform_api.read_bedrock_breaker, **READ)
        permission: PermissionCheck | None = None
        permission_error: str | None = None
        try:
            permission = await workflow.execute_activity(
                aws.simulate_invoke_permission,
                PermissionRequest(
                    region=self.input.region,
                    role_arn=target.role_arn,
                    action=self.bedrock.action,
                    resource_arn=aws.model_arn(self.input.region, target.model_id),
                ),
                **READ,
            )
        except ActivityError as err:
            permission_error = cause(err)
        reach = await self.reading(reach_task, "Bedrock")
        breaker = await self.breaker_reading(breaker_task)
        slow = reach.latency_ms is not None and reach.latency_ms > self.bedrock.slow_after.total_seconds() * 1000
        self.diagnosis = BedrockDiagnosis(
            reachability=reach, permission=permission, permission_error=permission_error, breaker=breaker, slow=slow
        )
        self.record("diagnosed", self.diagnosis.summary())
        return self.diagnosis

    def step_decide(self, diagnosis: BedrockDiagnosis) -> str:
        """By the diagnosis: a denied permission is not fixed by switching; an outage is."""
        self.enter("decide", BedrockStatus.DIAGNOSING)
        verdict = diagnosis.verdict
        why = {
            "healthy": "Bedrock reached, the model active, the permission allowed, the breaker closed",
            "denied": "the client role may not invoke the model: switching would not fix it; the owner is paged",
            "failing": "Bedrock unreachable or failing: the emergency switch is proposed",
        }[verdict]
        self.record(f"decided: {verdict}", why)
        return verdict

    async def step_page_owner(self, diagnosis: BedrockDiagnosis) -> BedrockResult:
        """The exact missing permission and the role, to the role's owner; no switch, no IAM change."""
        self.enter("page_owner", BedrockStatus.PERMISSION_DENIED)
        assert diagnosis.permission is not None
        permission, target = diagnosis.permission, self.target
        summary = (
            f"[P0] Bedrock client denied in {self.input.region}: {target.role_arn} lacks "
            f"{permission.action} on {permission.resource_arn} (owner: {target.owner})"
        )
        if self.plan_only:
            self.planned_calls = [f"page {target.owner}: {summary}"]
            self.record("would page", summary)
            return await self.finish(BedrockStatus.PLANNED, f"plan only: {summary}; nobody paged, nothing changed")
        request = PageRequest(
            dedup_key=f"{workflow.info().workflow_id}#denied",
            summary=summary[:1024],
            source=f"bedrock/{self.input.region}",
            severity="critical",
            details={
                "workflow_id": workflow.info().workflow_id,
                "missing_permission": permission.action,
                "role": target.role_arn,
                "resource": permission.resource_arn,
                "decision": permission.decision,
                "deciding_statements": ", ".join(permission.deciding_statements) or "none allows it",
                "owner": target.owner,
            },
        )
        await self.pager.page(request, f"{summary}\n{permission.describe()}\nNo switch was made: it would not help.")
        return await self.finish(
            BedrockStatus.PERMISSION_DENIED,
            f"{target.role_arn} lacks {permission.action} ({permission.decision}); "
            f"{target.owner} paged; nothing switched",
        )

    async def step_approve(self, plan: SwitchPlan) -> bool:
        """The approvers the plan's risk level needs (the emergency switch: high, four eyes)."""
        self.enter("approve", BedrockStatus.AWAITING_APPROVAL)
        self.gate.reset()
        self.gate.arm(plan, self.the_policy, rules_mode=True, requesters=self.requesters())
        self.record("awaiting approval", f"{plan.plan_id}: {plan.describe()}")
        await self.pager.note(f"proposal-{plan.plan_id}", f"Proposed {plan.plan_id}: {plan.describe()}")
        decision = await self.gate.decide(plan, self.the_policy, self.wait, lambda: None, self.climb, True)
        if decision is None or not decision.approved:
            why = decision.reason if decision is not None else "withdrawn"
            self.record("not approved", f"{plan.plan_id}: {why}")
            return False
        return True

    async def step_switch_off(self, plan: SwitchPlan) -> bool:
        """The emergency switch, once (the platform takes a repeat as a no-op)."""
        self.enter("switch_off", BedrockStatus.SWITCHING)
        if not await self.switch(plan):
            return False
        self.switched_off_at = self.switched_off_at or workflow.now()
        return True

    async def step_verify_off(self) -> bool:
        """Standard routing serving, the platform healthy, within `switch_within` of the switch;
        how long it took is recorded."""
        self.enter("verify_off", BedrockStatus.VERIFYING)
        record = self.switches[-1]
        deadline = record.at + self.bedrock.switch_within
        while True:
            reading = await self.read_breaker()
            if reading.serving_standard:
                took = (workflow.now() - record.at).total_seconds()
                self.switches[-1] = record.model_copy(update={"verified": True, "seconds_to_verified": took})
                self.record("verified", f"standard routing serving {took:.0f}s after the switch: {reading.describe()}")
                await self.pager.note(f"verified-{record.plan_id}", f"Standard routing verified in {took:.0f}s")
                return True
            if workflow.now() + VERIFY_EVERY > deadline:
                self.record("not verified", reading.describe())
                return False
            await self.wait(lambda: False, VERIFY_EVERY)

    async def step_half_open(self) -> bool:
        """Probe Bedrock every `probe_every`; True once every probe held for `healthy_for` (a
        failed probe starts the window again); False at `give_up_after` from the switch."""
        self.enter("half_open", BedrockStatus.HALF_OPEN)
        policy = self.bedrock
        assert self.switched_off_at is not None
        give_up_at = self.switched_off_at + policy.give_up_after
        self.healthy_since, self.carried_healthy_since = self.carried_healthy_since, None
        while workflow.now() < give_up_at:
            await self.continue_if_long(self.bedrock.continue_after_events, self.carried_on)
            reach = await self.probe()
            now = workflow.now()
            if self.probe_healthy(reach):
                if self.healthy_since is None:
                    self.healthy_since = now
                    self.record("probe healthy", f"{reach.describe()}; the window starts")
                if now - self.healthy_since >= policy.healthy_for:
                    self.record("healthy for the window", f"every probe healthy for {fmt(policy.healthy_for)}")
                    self.next_probe_at = None
                    return True
            elif self.healthy_since is not None:
                self.healthy_since = None
                self.record("probe failed", f"{reach.describe()}; the window starts again")
            self.next_probe_at = now + policy.probe_every
            await self.wait(lambda: False, policy.probe_every)
        return False

    async def step_re_enable(self, plan: SwitchPlan) -> bool:
        self.enter("re_enable", BedrockStatus.SWITCHING)
        return await self.switch(plan)

    async def step_verify_on(self) -> bool:
        """Hybrid routing on, the platform and its Bedrock client healthy, the breaker closed,
        and the service levels (the policy's metrics) within target, for `verify_for` before
        `verify_within`; the breaker opening again fails it at once."""
        self.enter("verify_on", BedrockStatus.VERIFYING)
        policy = self.bedrock
        record = self.switches[-1]
        deadline = record.at + policy.verify_within
        good_since: datetime | None = None
        while True:
            reading = await self.read_breaker()
            now = workflow.now()
            if reading.state == "open":
                self.record("not verified", f"the breaker opened again: {reading.describe()}")
                return False
            missed = [m for m in await self.read_metrics() if not m.within_target]
            if reading.serving_hybrid and not missed:
                good_since = good_since or now
                if now - good_since >= policy.verify_for:
                    took = (now - record.at).total_seconds()
                    self.switches[-1] = record.model_copy(update={"verified": True, "seconds_to_verified": took})
                    self.record(
                        "verified",
                        f"hybrid routing serving, healthy and within the service levels for {fmt(policy.verify_for)}",
                    )
                    return True
            else:
                good_since = None
            if now + VERIFY_EVERY > deadline:
                levels = "; ".join(f"{m.key}: {m.detail}" for m in missed) or "service levels within target"
                self.record("not verified", f"{reading.describe()}; {levels}")
                return False
            await self.wait(lambda: False, VERIFY_EVERY)

    async def step_hand_over(self, reason: str) -> BedrockResult:
        """People take over: the page (opened if there was none) says why and where it stands."""
        self.enter("hand_over", BedrockStatus.HANDED_OVER)
        if self.pager.ref is None and not self.plan_only:
            summary = f"[P0] Bedrock connectivity runbook in {self.input.region} needs people: {reason}"
            request = PageRequest(
                dedup_key=f"{workflow.info().workflow_id}#outage",
                summary=summary[:1024],
                source=f"bedrock/{self.input.region}",
                severity="critical",
                details={"workflow_id": workflow.info().workflow_id, "reason": reason},
            )
            await self.pager.page(request, summary)
        else:
            await self.pager.climb(reason)
            await self.pager.note("handed-over", f"Runbook stopped; people take over: {reason}")
        return await self.finish(BedrockStatus.HANDED_OVER, f"handed over: {reason}")

    # ------------------------------------------------------------------ pieces of the steps

    async def switch(self, plan: SwitchPlan) -> bool:
        """One switch, recorded; refused (another run owns the switch) or failed: False."""
        request = EmergencySwitchRequest(hybrid_routing_enabled=plan.enable, reason=f"{plan.plan_id}: {plan.reason}")
        try:
            done = await workflow.execute_activity(platform_api.set_hybrid_routing, request, **ACT)
        except ActivityError as err:
            self.record("switch failed", f"{plan.plan_id}: {cause(err)}")
            return False
        self.switches.append(SwitchRecord(plan_id=plan.plan_id, enabled=plan.enable, at=workflow.now()))
        self.audit("hybrid routing " + ("on" if plan.enable else "off"), f"{plan.plan_id}: {done.detail}", "runbook")
        return True

    async def back_off(self, why: str) -> None:
        """Wait `backoff`, doubled for each failed re-enable, before probing again."""
        delay = self.bedrock.backoff * (2 ** max(self.failed_reenables - 1, 0))
        self.next_probe_at = workflow.now() + delay
        self.enter("half_open", BedrockStatus.HALF_OPEN)
        self.record("backing off", f"{why}; probing again in {fmt(delay)}")
        await self.wait(lambda: False, delay)

    async def page_outage(self, diagnosis: BedrockDiagnosis, plan: SwitchPlan) -> None:
        if self.pager.ref is not None:
            return
        summary = f"[P0] Bedrock client connection failed in {self.input.region}: {diagnosis.reachability.describe()}"
        request = PageRequest(
            dedup_key=f"{workflow.info().workflow_id}#outage",
            summary=summary[:1024],
            source=f"bedrock/{self.input.region}",
            severity="critical",
            details={"workflow_id": workflow.info().workflow_id, "diagnosis": diagnosis.summary()},
        )
        await self.pager.page(request, f"{summary}\n{diagnosis.summary()}\nProposed {plan.plan_id}: {plan.describe()}")

    async def other_owner(self) -> str | None:
        """Another open run that owns the emergency switch (the P0 incident runbook's, say)."""
        asking = SwitchOwnerRequest(asking=workflow.info().workflow_id)
        try:
            owner: str | None = await workflow.execute_activity_method(Runs.switch_owner, asking, **READ)
        except ActivityError as err:
            # not knowing is not "nobody": the switch activity asks again and refuses if owned
            self.record("switch owner unknown", cause(err))
            return None
        return owner

    async def probe(self) -> Reachability:
        target = self.target
        request = ReachabilityRequest(region=self.input.region, model_id=target.model_id)
        try:
            return await workflow.execute_activity(aws.probe_bedrock, request, **READ)
        except ActivityError as err:
            return Reachability(region=self.input.region, reachable=False, model_id=target.model_id, error=cause(err))

    def probe_healthy(self, reach: Reachability) -> bool:
        slow_ms = self.bedrock.slow_after.total_seconds() * 1000
        return reach.reachable and reach.model_active and (reach.latency_ms or 0) <= slow_ms

    async def read_metrics(self) -> list[MetricReading]:
        request = MetricsRequest(region=self.input.region, queries=self.the_policy.metrics)
        try:
            return await workflow.execute_activity(cloudwatch.read_metrics, request, **READ)
        except ActivityError as err:
            return [MetricReading(key="metrics", value=None, level="no-data", within_target=False, detail=cause(err))]

    async def read_breaker(self) -> BreakerReading:
        try:
            return await workflow.execute_activity(platform_api.read_bedrock_breaker, **READ)
        except ActivityError as err:
            return BreakerReading(state="unknown", detail=cause(err))

    async def reading(self, handle: workflow.ActivityHandle[Reachability], what: str) -> Reachability:
        try:
            return await handle
        except ActivityError as err:
            target = self.target
            return Reachability(
                region=self.input.region, reachable=False, model_id=target.model_id, error=f"{what}: {cause(err)}"
            )

    async def breaker_reading(self, handle: workflow.ActivityHandle[BreakerReading]) -> BreakerReading:
        try:
            return await handle
        except ActivityError as err:
            return BreakerReading(state="unknown", detail=cause(err))

    async def planned(self, plan: SwitchPlan) -> BedrockResult:
        self.planned_calls = plan.calls()
        for call in self.planned_calls:
            self.record("would call", call)
        return await self.finish(BedrockStatus.PLANNED, f"plan only: {plan.describe()}; nothing changed")

    def routing_state(self) -> str:
        if not self.switches:
            return "as it was"
        return "on" if self.switches[-1].enabled else "off"

    @property
    def bedrock(self) -> BedrockPolicy:
        policy = self.the_policy.bedrock
        if policy is None:
            raise ApplicationError("the policy has no bedrock section: nothing may be switched", non_retryable=True)
        return policy

    @property
    def target(self) -> BedrockTarget:
        target = self.bedrock.regions.get(self.input.region)
        if target is None:
            raise ApplicationError(
                f"bedrock.regions has no entry for {self.input.region}: no model or role to check",
                non_retryable=True,
                type="UnknownRegion",
            )
        return target

    def carried_on(self) -> BedrockInput:
        """What the recovery needs, carried into the run this one continues as (a half-open wait
        may last hours); the healthy window goes on there."""
        assert self.switched_off_at is not None
        carried = BedrockCarry(
            switched_off_at=self.switched_off_at,
            healthy_since=self.healthy_since,
            switches=self.switches,
            failed_reenables=self.failed_reenables,
            diagnosis=self.diagnosis,
            triggers=self.triggers,
            opened_by=self.opened_by,
            pagerduty=self.pager.ref,
            timeline=self.timeline.entries[-CARRIED_TIMELINE:],
            deliveries=sorted(self.deliveries)[-CARRIED_DELIVERIES:],
        )
        return self.input.model_copy(update={"carried": carried})

    def resume(self, carried: BedrockCarry) -> None:
        """A continued run takes its predecessor's state. Only Temporal's continue-as-new makes a
        run with a predecessor: a start that carries state of its own is refused."""
        if workflow.info().continued_run_id is None:
            self.forged_carry = True
            return
        self.switched_off_at, self.switches = carried.switched_off_at, list(carried.switches)
        self.carried_healthy_since = carried.healthy_since
        self.failed_reenables, self.diagnosis = carried.failed_reenables, carried.diagnosis
        self.triggers, self.opened_by = carried.triggers, carried.opened_by
        self.pager.ref = carried.pagerduty
        self.timeline.entries.extend(carried.timeline)
        self.deliveries.update(carried.deliveries)
        self.status = BedrockStatus.HALF_OPEN

    def unproven_start(self) -> str | None:
        if self.forged_carry:
            return "it carries a previous run's state, but no run continued into it"
        if workflow.info().workflow_id != bedrock_workflow_id(self.input.region):
            return f"the start names {self.input.region}, not this workflow's region"
        if not self.triggers:
            return "started by no trigger or alert the intake signed"
        return None

    async def finish(self, status: BedrockStatus, outcome: str) -> BedrockResult:
        await self.close(status, outcome)
        return BedrockResult(outcome=outcome, view=self.view())

    # ------------------------------------------------------------------ signals and queries

    @workflow.signal
    def alert_batch(self, batch: AlertBatch) -> None:
        """Alerts the policy routes here (Bedrock error rate, breaker open, bedrock-client health)."""
        self.take_signal("alert_batch", batch, self.apply_alerts)

    def apply_alerts(self, batch: AlertBatch, statement: Statement | None) -> None:
        if statement is not None and not self.triggers:
            self.opened_by = statement.sub
        for alert in batch.alerts:
            self.take_alert(alert)

    def take_alert(self, alert: Alert) -> None:
        if not self.first_delivery(alert) or alert.status != "firing":
            return
        self.triggers += 1
        self.record("alert", f"from {alert.source}: {alert.summary}", actor=alert.raised_by or alert.source)

    @workflow.signal
    def trigger(self, trigger: BedrockTrigger) -> None:
        """`runbook trigger bedrock`: an operator asks for a diagnosis now (signed by the intake)."""
        self.take_signal("trigger", trigger, self.apply_trigger)

    def apply_trigger(self, trigger: BedrockTrigger, statement: Statement | None) -> None:
        if statement is not None and not self.triggers:
            self.opened_by = statement.sub
        if not self.triggers:
            self.plan_only = self.plan_only or trigger.plan
        self.triggers += 1
        self.record("triggered", f"{trigger.reason}{' (plan only)' if trigger.plan else ''}", actor=trigger.by)

    @workflow.query
    def view(self) -> BedrockView:
        return BedrockView(
            workflow_id=workflow.info().workflow_id,
            region=self.input.region,
            status=self.status,
            opened_by=self.opened_by,
            opened_at=workflow.info().start_time,
            plan_only=self.plan_only,
            diagnosis=self.diagnosis,
            switches=list(self.switches),
            healthy_since=self.healthy_since,
            failed_reenables=self.failed_reenables,
            next_probe_at=self.next_probe_at,
            planned_calls=list(self.planned_calls),
            pending_approval=self.gate.pending,
            decision=self.gate.decision,
            pagerduty=self.pager.ref,
            outcome=self.outcome,
            timeline=list(self.timeline.entries),
            refused_signals=self.refused_signals,
        )
