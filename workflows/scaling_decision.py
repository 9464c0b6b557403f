"""Scaling decisions: sustained pressure scales a service up, safely and once, and back down
when it passes. Read it next to `runbooks/scaling-decisions.md`: each `step_<id>` is a step
there.

One run per service and region (`scaling/{service}/{region}`): the only writer of that
service's capacity, so two alerts, or an alert and an operator, never scale it twice. Alerts
the policy routes here and `runbook trigger scaling` join the open run. The numbers (rules,
windows, steps, limits, cooldown) are the policy's `scaling` section.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import cloudwatch
    from activities import scaling as aws
    from activities.runs import Runs
    from contracts import (
        Alert,
        AlertBatch,
        CapacityLimits,
        EcsScalePlan,
        LambdaConcurrencyPlan,
        PageRequest,
        ProvisionedConcurrencyWait,
        ScalingPolicy,
        ScalingRecord,
        ScalingRule,
        SeriesRequest,
        Statement,
    )
    from contracts.maintenance import HoldRequest
    from contracts.scaling_decision import (
        CLOSED_SCALING,
        Capacity,
        CapacityRequest,
        Check,
        PressureSeen,
        ScalePlan,
        ScalingCarry,
        ScalingInput,
        ScalingResult,
        ScalingStatus,
        ScalingTrigger,
        ScalingView,
        StepRecord,
        scaling_workflow_id,
    )
    from contracts.scaling_rules import Judgement, Series, judge

from workflows.kit.approval import ApprovalGate
from workflows.kit.options import ACT, READ, hold
from workflows.kit.runbook import RunbookCancelled, RunbookWorkflow
from workflows.kit.timeline import cause, fmt

# The runbook's step ids, in its order; a test keeps runbooks/scaling-decisions.md in step.
CARRIED_TIMELINE = 50  # timeline entries a continued run keeps
CARRIED_DELIVERIES = 1000  # alert delivery ids a continued run still recognises
READY_WITHIN = timedelta(minutes=15)  # Lambda allocates provisioned concurrency in minutes
# Runs from here on ask whether a maintenance window holds the service before a step. Retire
# with workflow.deprecate_patch once no scaling run from before 2026-12-07 is open.
MAINTENANCE_HOLD = "maintenance-hold"
STEPS = ("confirm", "hold", "decide", "approve", "act", "verify", "watch", "scale_in")


@workflow.defn
class ScalingDecisionWorkflow(RunbookWorkflow):
    noun = "scaling run"
    closed = CLOSED_SCALING
    passing = frozenset({ScalingStatus.CONFIRMING, ScalingStatus.SCALING})
    gate: ApprovalGate[ScalePlan]

    @workflow.init
    def __init__(self, input: ScalingInput) -> None:
        self.input = input
        self.init_kit(
            note_prefix=scaling_workflow_id(input.service, input.region),
            opened_by=input.opened_by,
            status=ScalingStatus.CONFIRMING,
        )
        self.triggers = 0  # alerts and operator triggers taken
        self.plan_only = input.plan
        self.judgement: Judgement | None = None
        self.baseline: Capacity | None = None
        self.capacity: Capacity | None = None
        self.steps: list[StepRecord] = []
        self.planned_calls: list[str] = []
        self.next_step_at: datetime | None = None
        self.nudged = False  # a trigger arrived since the last judgement
        # Why no step can be taken now (at the maximum, not approved): the watch then waits for
        # the pressure to pass only, instead of proposing the same step again at once.
        self.stuck: str | None = None
        self.forged_carry = False

    @workflow.run
    async def run(self, input: ScalingInput) -> ScalingResult:
        self.adopt_signed_mode()
        await self.trusted_policy()
        self.start_kit(True, lambda: (True, True))
        if input.carried is not None:
            self.resume(input.carried)
        refusal = self.unproven_start()
        if refusal is not None:
            self.enter("confirm", ScalingStatus.REFUSED)
            return await self.finish(ScalingStatus.REFUSED, f"refused: {refusal}; nothing read, nothing changed")
        await workflow.wait_condition(lambda: self.triggers > 0)
        self.plan_only = self.plan_only or self.scaling.dry_run
        try:
            if input.carried is not None:
                return await self.keep_watching()
            return await self.respond()
        except RunbookCancelled:
            assert self.cancel_request is not None
            self.enter(self.step, ScalingStatus.CANCELLED)
            by, reason = self.cancel_request.by, self.cancel_request.reason
            return await self.finish(ScalingStatus.CANCELLED, f"cancelled by {by}: {reason}; capacity left as it is")

    async def respond(self) -> ScalingResult:
        """The runbook, step by step: confirm, then up one step at a time until the pressure
        passes, then back down to the baseline."""
        judgement = await self.step_confirm()
        if judgement is None:
            assert self.judgement is not None
            return await self.finish(ScalingStatus.NOT_SUSTAINED, f"not sustained: {self.judgement.why}")
        self.baseline = await self.read_capacity()
        self.record("baseline", f"{self.baseline.describe()}: the run returns here when the pressure passes")
        outcome = await self.scale_up(judgement)
        return outcome if outcome is not None else await self.keep_watching()

    async def keep_watching(self) -> ScalingResult:
        """Scaled up (or stuck): watch the pressure, step up again when a rule holds, scale in
        when it has passed; until the baseline is reached."""
        while True:
            seen = await self.step_watch()
            if seen.outcome == "breach":
                assert seen.judgement is not None
                judgement = self.judged(seen.judgement)
            else:
                done = await self.step_scale_in()
                if done is not None:
                    return done
                # pressure again during the scale-in: up again from where it stands
                assert self.judgement is not None
                judgement = self.judgement
            outcome = await self.scale_up(judgement)
            if outcome is not None:
                return outcome

    async def scale_up(self, judgement: Judgement) -> ScalingResult | None:
        """Steps up until the triggering metric is back under its threshold, or no step is left.
        None: go on to watch the pressure pass; else the run's result."""
        while True:
            capacity = await self.step_hold()
            if capacity is None:
                return await self.finish(
                    ScalingStatus.HELD, "held for longer than the policy's hold_for; nothing changed"
                )
            plan = await self.step_decide(judgement, capacity, "up")
            if plan is None:
                await self.escalate_at_maximum(judgement, capacity)
                self.stuck = "at the maximum"
                return None
            if self.plan_only:
                return await self.planned(plan)
            if not await self.step_approve(plan):
                self.stuck = f"{plan.plan_id} not approved"
                return None
            await self.step_act(plan)
            if await self.step_verify(judgement):
                return None

    # ------------------------------------------------------------------ runbook steps

    async def step_confirm(self) -> Judgement | None:
        """CloudWatch itself: which rule held for its whole window, with the values. None:
        none did (an alert for a blip)."""
        self.enter("confirm", ScalingStatus.CONFIRMING)
        policy = self.scaling
        longest = max(rule.sustained_for for rule in policy.rules)
        queries = [self.the_policy.metric(rule.metric) for rule in policy.rules]
        request = SeriesRequest(
            region=self.input.region, queries=queries, window=longest + timedelta(minutes=1), end=workflow.now()
        )
        series: list[Series] = await workflow.execute_activity(cloudwatch.read_series, request, **READ)
        judged = [judge(rule, found, workflow.now()) for rule, found in zip(policy.rules, series, strict=True)]
        for judgement in judged:
            self.record(
                "rule " + ("held" if judgement.sustained else "not sustained"), f"{judgement.rule}: {judgement.why}"
            )
        fired = next((j for j in judged if j.sustained), None)
        self.judgement = fired or judged[0]
        return self.judged(fired) if fired is not None else None

    async def step_hold(self) -> Capacity | None:
        """No step while an ECS deployment rolls out, while the incident runbook remediates this
        target, or while a maintenance window holds it: wait (saying why), up to `hold_for`.
        Returns the capacity to step from; None: held for too long."""
        deadline = workflow.now() + self.scaling.hold_for
        while True:
            capacity = await self.read_capacity()
            reason = capacity.rolling_out or await self.remediation_running() or await self.maintenance_hold()
            if reason is None:
                return capacity
            if self.status != ScalingStatus.HOLDING:
                self.enter("hold", ScalingStatus.HOLDING)
            self.record("holding", reason)
            if workflow.now() + self.scaling.check_every > deadline:
                return None
            await self.wait(lambda: False, self.scaling.check_every)

    async def step_decide(self, judgement: Judgement | None, capacity: Capacity, direction: str) -> ScalePlan | None:
        """The next step within the limits, once the cooldown and the hourly budget allow it.
        None: no step left (at the maximum going up, at the baseline going down)."""
        self.enter("decide", self.status if self.status == ScalingStatus.WATCHING else ScalingStatus.CONFIRMING)
        limits = self.limits
        assert self.baseline is not None
        current = capacity.ecs_level
        if direction == "up":
            ecs_to = min(current + limits.ecs_step, limits.ecs_max)
            lambda_to = self.lambda_up(capacity, limits)
        else:
            ecs_to = max(current - limits.ecs_step, self.baseline.ecs_level)
            lambda_to = self.lambda_down(capacity, limits)
        if ecs_to == current and lambda_to == capacity.provisioned:
            return None
        await self.wait_for_budget()
        reason = judgement.why if judgement is not None else "the pressure passed"
        plan = ScalePlan(
            direction="up" if direction == "up" else "down",
            step=len(self.steps) + 1,
            rule=judgement.rule if judgement is not None and direction == "up" else None,
            ecs=EcsScalePlan.build(capacity.ecs, ecs_to, reason) if ecs_to != current else None,
            concurrency=(
                LambdaConcurrencyPlan.build(capacity.concurrency, lambda_to, reason)
                if capacity.concurrency is not None and lambda_to is not None and lambda_to != capacity.provisioned
                else None
            ),
            reason=reason,
        )
        self.record("decided", f"{plan.plan_id}: {plan.describe()}")
        return plan

    async def step_approve(self, plan: ScalePlan) -> bool:
        """Within the budget (`auto_steps` above the baseline) no approval; above it the on-call
        approves (the policy's rule for the step's risk). Refused or unanswered: no step."""
        assert self.baseline is not None
        reached = plan.ecs.to_count if plan.ecs is not None else self.baseline.ecs_level
        above = (reached - self.baseline.ecs_level + self.limits.ecs_step - 1) // self.limits.ecs_step
        if plan.direction == "down" or above <= self.scaling.auto_steps:
            self.record("no approval needed", f"{above} step(s) above the baseline, {self.scaling.auto_steps} allowed")
            return True
        self.enter("approve", ScalingStatus.AWAITING_APPROVAL)
        self.gate.reset()
        self.gate.arm(plan, self.the_policy, rules_mode=True, requesters=self.requesters())
        self.record("awaiting approval", f"{plan.plan_id}: {plan.describe()} ({above} steps above the baseline)")
        decision = await self.gate.decide(plan, self.the_policy, self.wait, lambda: None, self.climb, True)
        if decision is None or not decision.approved:
            why = decision.reason if decision is not None else "withdrawn"
            self.record("not scaled", f"{plan.plan_id} not approved: {why}")
            return False
        return True

    async def step_act(self, plan: ScalePlan) -> None:
        """Once and idempotently: the step carries exact targets, so a retry finds it done."""
        self.enter("act", ScalingStatus.SCALING)
        done: list[ScalingRecord] = []
        if plan.ecs is not None:
            done.append(await workflow.execute_activity(aws.scale_ecs_service, plan.ecs, **ACT))
        if plan.concurrency is not None:
            done.append(await workflow.execute_activity(aws.set_provisioned_concurrency, plan.concurrency, **ACT))
            ready = ProvisionedConcurrencyWait.after(plan.concurrency)
            await workflow.execute_activity(aws.wait_for_provisioned_concurrency, ready, **hold(READY_WITHIN))
        detail = "; ".join(record.detail for record in done)
        self.steps.append(
            StepRecord(
                plan_id=plan.plan_id,
                direction=plan.direction,
                at=workflow.now(),
                describe=plan.describe(),
                detail=detail,
            )
        )
        self.next_step_at = workflow.now() + self.scaling.cooldown
        self.audit("scaled " + plan.direction, f"{plan.plan_id}: {plan.describe()} ({detail})", "runbook")

    async def step_verify(self, judgement: Judgement) -> bool:
        """The triggering metric back under its threshold within `verify_within`."""
        self.enter("verify", ScalingStatus.VERIFYING)
        rule = self.rule_of(judgement)
        check = Check(
            rule=rule.model_copy(update={"sustained_for": self.two_periods(rule)}),
            query=self.the_policy.metric(rule.metric),
            threshold=rule.above,
            below=True,
        )
        seen = await self.watch([], [check], until=workflow.now() + self.scaling.verify_within)
        if seen.outcome == "calm":
            self.record("verified", f"{rule.name} back under {rule.above:g}")
            return True
        self.record(
            "not verified", f"{rule.name} still not under {rule.above:g} after {fmt(self.scaling.verify_within)}"
        )
        return False

    async def step_watch(self) -> PressureSeen:
        """Scaled up: watch until the pressure has stayed under the scale-in level for its
        window (then scale in), or a rule holds again (then another step)."""
        self.enter("watch", ScalingStatus.WATCHING if self.status != ScalingStatus.AT_MAXIMUM else self.status)
        policy = self.scaling
        breach = [Check(rule=r, query=self.the_policy.metric(r.metric), threshold=r.above) for r in policy.rules]
        if self.stuck is not None:
            self.record("watching", f"{self.stuck}: waiting for the pressure to pass")
            breach = []
        calm = [
            Check(
                rule=r.model_copy(update={"sustained_for": policy.scale_in.sustained_for}),
                query=self.the_policy.metric(r.metric),
                threshold=r.above * policy.scale_in.below,
                below=True,
            )
            for r in policy.rules
        ]
        while True:
            seen = await self.watch(breach, calm, until=None)
            if seen.outcome != "timeout":
                assert seen.judgement is not None
                self.record("pressure " + ("again" if seen.outcome == "breach" else "passed"), seen.judgement.why)
                return seen

    async def step_scale_in(self) -> ScalingResult | None:
        """Back towards the baseline one step at a time, never below it, with the same
        cooldowns and holds. None: pressure came back on the way (the run scales up again)."""
        self.enter("scale_in", ScalingStatus.WATCHING)
        self.stuck = None
        while True:
            capacity = await self.step_hold()
            if capacity is None:
                return await self.finish(
                    ScalingStatus.HELD, "held for longer than the policy's hold_for while scaling in"
                )
            plan = await self.step_decide(None, capacity, "down")
            if plan is None:
                return await self.finish(ScalingStatus.AT_BASELINE, f"back at the baseline: {capacity.describe()}")
            await self.step_act(plan)
            breach = await self.breaching_now()
            if breach is not None:
                self.judgement = breach
                self.record("pressure again", breach.why)
                return None

    # ------------------------------------------------------------------ pieces of the steps

    def judged(self, judgement: Judgement) -> Judgement:
        self.judgement = judgement
        self.record("rule fired", f"{judgement.rule}: {judgement.why}")
        return judgement

    async def wait_for_budget(self) -> None:
        """The cooldown after the last step, and at most `max_steps_per_hour` in any hour."""
        policy = self.scaling
        now = workflow.now()
        recent = [s.at for s in self.steps if s.at > now - timedelta(hours=1)]
        allowed = self.next_step_at or now
        if len(recent) >= policy.max_steps_per_hour:
            allowed = max(allowed, recent[-policy.max_steps_per_hour] + timedelta(hours=1))
        if allowed > now:
            self.next_step_at = allowed
            self.record("waiting", f"the cooldown and the hourly budget allow the next step at {allowed:%H:%M:%S}")
            await self.wait(lambda: False, allowed - now)

    async def escalate_at_maximum(self, judgement: Judgement, capacity: Capacity) -> None:
        """No step left and still under pressure: a P1 page, never a step past the maximum."""
        self.enter(self.step, ScalingStatus.AT_MAXIMUM)
        summary = (
            f"[P1] {self.input.service} in {self.input.region} at its scaling maximum "
            f"({capacity.describe()}) and still under pressure: {judgement.rule}"
        )
        self.record("at the maximum", summary)
        if self.plan_only or self.pager.ref is not None:
            return
        request = PageRequest(
            dedup_key=f"{workflow.info().workflow_id}#maximum",
            summary=summary,
            source=f"{self.input.service}/{self.input.region}",
            severity="error",
            details={"workflow_id": workflow.info().workflow_id, "rule": judgement.rule, "why": judgement.why},
        )
        await self.pager.page(request, f"{summary}\n{judgement.why}")

    async def planned(self, plan: ScalePlan) -> ScalingResult:
        self.planned_calls = [call.render() for call in plan.calls()]
        for call in self.planned_calls:
            self.record("would call", call)
        return await self.finish(ScalingStatus.PLANNED, f"plan only: {plan.describe()}; nothing changed")

    async def watch(self, breach: list[Check], calm: list[Check], until: datetime | None) -> PressureSeen:
        """Reads CloudWatch every `check_every` until one `breach` check holds, or every `calm`
        check holds, or `until` passes. Each reading judges whole windows, so the loop keeps no
        state between readings (a restarted worker replays to the same place)."""
        checks = [*breach, *calm]
        longest = max(check.rule.sustained_for for check in checks)
        period = max(check.query.period_seconds for check in checks)
        while True:
            if until is None:  # a watch that may last hours: a fresh run before the history grows long
                await self.continue_if_long(self.scaling.continue_after_events, self.carried_on)
            now = workflow.now()
            request = SeriesRequest(
                region=self.input.region,
                queries=[check.query for check in checks],
                window=longest + timedelta(seconds=period),
                end=now,
            )
            series: list[Series] = await workflow.execute_activity(cloudwatch.read_series, request, **READ)
            judged = [
                judge(check.rule, found, now, threshold=check.threshold, below=check.below)
                for check, found in zip(checks, series, strict=True)
            ]
            fired = [j for j in judged[: len(breach)] if j.sustained]
            if fired:
                return PressureSeen(outcome="breach", judgement=fired[0], at=now)
            quiet = judged[len(breach) :]
            if quiet and all(j.sustained for j in quiet):
                return PressureSeen(outcome="calm", judgement=quiet[0], at=now)
            if until is not None and now + self.scaling.check_every > until:
                return PressureSeen(outcome="timeout", judgement=quiet[0] if quiet else None, at=now)
            await self.wait(lambda: False, self.scaling.check_every)

    async def breaching_now(self) -> Judgement | None:
        """After a step down, is any rule already in breach again? (The last window, one read.)"""
        await self.wait_for_budget()
        policy = self.scaling
        queries = [self.the_policy.metric(rule.metric) for rule in policy.rules]
        longest = max(self.two_periods(rule) for rule in policy.rules)
        request = SeriesRequest(region=self.input.region, queries=queries, window=longest, end=workflow.now())
        series: list[Series] = await workflow.execute_activity(cloudwatch.read_series, request, **READ)
        for rule, found in zip(policy.rules, series, strict=True):
            short = rule.model_copy(update={"sustained_for": self.two_periods(rule)})
            judgement = judge(short, found, workflow.now())
            if judgement.sustained:
                return judgement
        return None

    async def read_capacity(self) -> Capacity:
        try:
            request = self.capacity_request
            ecs = await workflow.execute_activity(aws.read_ecs_capacity, request.ecs, **READ)
            concurrency = None
            if request.concurrency is not None:
                concurrency = await workflow.execute_activity(
                    aws.read_provisioned_concurrency, request.concurrency, **READ
                )
            self.capacity = Capacity(ecs=ecs, concurrency=concurrency)
        except ActivityError as err:
            raise ApplicationError(
                f"cannot read the capacity of {self.input.service}: {cause(err)}", non_retryable=True
            ) from err
        return self.capacity

    async def remediation_running(self) -> str | None:
        """The incident runbook acting on the same target holds scaling (two writers of one
        service's tasks would fight)."""
        found: str | None = await workflow.execute_activity_method(
            Runs.remediation_in_progress, f"incident/{self.input.service}/{self.input.region}", **READ
        )
        return found

    async def maintenance_hold(self) -> str | None:
        """A maintenance window holding the target (runbooks/maintenance.md): its change and
        its checks go first, a scaling step meanwhile would fight them. Runs from before the
        patch did not ask (their histories hold no such activity)."""
        if not workflow.patched(MAINTENANCE_HOLD):
            return None
        asking = HoldRequest(service=self.input.service, asking=workflow.info().workflow_id)
        found: str | None = await workflow.execute_activity_method(Runs.maintenance_hold, asking, **READ)
        return found

    def lambda_up(self, capacity: Capacity, limits: CapacityLimits) -> int | None:
        if limits.lambda_max is None or capacity.provisioned is None:
            return None
        return min(capacity.provisioned + limits.lambda_step, limits.lambda_max)

    def lambda_down(self, capacity: Capacity, limits: CapacityLimits) -> int | None:
        assert self.baseline is not None
        if limits.lambda_max is None or capacity.provisioned is None or self.baseline.provisioned is None:
            return None
        return max(capacity.provisioned - limits.lambda_step, self.baseline.provisioned)

    def rule_of(self, judgement: Judgement) -> ScalingRule:
        rule = self.scaling.rule(judgement.rule)
        assert rule is not None
        return rule

    def two_periods(self, rule: ScalingRule) -> timedelta:
        return timedelta(seconds=2 * self.the_policy.metric(rule.metric).period_seconds)

    @property
    def scaling(self) -> ScalingPolicy:
        policy = self.the_policy.scaling
        if policy is None:
            raise ApplicationError("the policy has no scaling section: nothing may be scaled", non_retryable=True)
        return policy

    @property
    def limits(self) -> CapacityLimits:
        limits = self.scaling.limits.get(self.input.service)
        if limits is None:
            raise ApplicationError(
                f"scaling.limits has no entry for {self.input.service}: it is never scaled", non_retryable=True
            )
        return limits

    @property
    def capacity_request(self) -> CapacityRequest:
        target = self.the_policy.services.get(self.input.service)
        if target is None:
            raise ApplicationError(f"unknown service {self.input.service!r}: not in the policy", non_retryable=True)
        limits = self.limits
        return CapacityRequest(
            region=self.input.region,
            ecs_cluster=target.ecs_cluster,
            ecs_service=target.ecs_service,
            lambda_function=limits.lambda_function,
            lambda_qualifier=limits.lambda_qualifier,
        )

    def carried_on(self) -> ScalingInput:
        """What the run needs to go on watching (its baseline, steps, budget, page, the last of
        its timeline), carried into the run it continues as."""
        assert self.baseline is not None
        carried = ScalingCarry(
            baseline=self.baseline,
            steps=self.steps,
            next_step_at=self.next_step_at,
            stuck=self.stuck,
            judgement=self.judgement,
            plan_only=self.plan_only,
            triggers=self.triggers,
            opened_by=self.opened_by,
            status=self.status,
            pagerduty=self.pager.ref,
            timeline=self.timeline.entries[-CARRIED_TIMELINE:],
            deliveries=sorted(self.deliveries)[-CARRIED_DELIVERIES:],
        )
        return self.input.model_copy(update={"carried": carried})

    def resume(self, carried: ScalingCarry) -> None:
        """A continued run picks up its predecessor's state. Only Temporal's continue-as-new
        makes a run with a predecessor: a start that carries state of its own is refused."""
        if workflow.info().continued_run_id is None:
            self.forged_carry = True
            return
        self.baseline, self.steps, self.next_step_at = carried.baseline, list(carried.steps), carried.next_step_at
        self.stuck, self.judgement, self.plan_only = carried.stuck, carried.judgement, carried.plan_only
        self.triggers, self.opened_by, self.status = carried.triggers, carried.opened_by, carried.status
        self.pager.ref = carried.pagerduty
        self.timeline.entries.extend(carried.timeline)
        self.deliveries.update(carried.deliveries)
        self.capacity = carried.baseline

    def unproven_start(self) -> str | None:
        if self.forged_carry:
            return "it carries a previous run's state, but no run continued into it"
        if workflow.info().workflow_id != scaling_workflow_id(self.input.service, self.input.region):
            return f"the start names {self.input.service} in {self.input.region}, not this workflow's target"
        if not self.triggers:
            return "started by no trigger or alert the intake signed"
        return None

    async def finish(self, status: ScalingStatus, outcome: str) -> ScalingResult:
        await self.close(status, outcome)
        return ScalingResult(outcome=outcome, view=self.view())

    # ------------------------------------------------------------------ signals and queries

    @workflow.signal
    def alert_batch(self, batch: AlertBatch) -> None:
        """Alerts the policy routes to scaling: each firing one asks the run to judge (again)."""
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
        self.nudged = True
        if self.triggers > 1:
            self.record("alert", f"from {alert.source}: {alert.summary}", actor=alert.raised_by or alert.source)

    @workflow.signal
    def trigger(self, trigger: ScalingTrigger) -> None:
        """`runbook trigger scaling`: an operator asks for a judgement now (signed by the intake
        for the signed-in operator)."""
        self.take_signal("trigger", trigger, self.apply_trigger)

    def apply_trigger(self, trigger: ScalingTrigger, statement: Statement | None) -> None:
        if statement is not None and not self.triggers:
            self.opened_by = statement.sub
        if not self.triggers:
            self.plan_only = self.plan_only or trigger.plan
        self.triggers += 1
        self.nudged = True
        self.record("triggered", f"{trigger.reason}{' (plan only)' if trigger.plan else ''}", actor=trigger.by)

    @workflow.query
    def view(self) -> ScalingView:
        return ScalingView(
            workflow_id=workflow.info().workflow_id,
            service=self.input.service,
            region=self.input.region,
            status=self.status,
            opened_by=self.opened_by,
            opened_at=workflow.info().start_time,
            plan_only=self.plan_only,
            judgement=self.judgement,
            baseline=self.baseline,
            capacity=self.capacity,
            steps=list(self.steps),
            planned_calls=list(self.planned_calls),
            pending_approval=self.gate.pending,
            decision=self.gate.decision,
            next_step_at=self.next_step_at,
            pagerduty=self.pager.ref,
            outcome=self.outcome,
            timeline=list(self.timeline.entries),
            refused_signals=self.refused_signals,
        )

    def requesters(self) -> set[str]:
        return {self.opened_by}
