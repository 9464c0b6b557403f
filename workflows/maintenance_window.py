"""A maintenance window: check the service, silence its pages, hold it, make one change, check
it again, and undo the change (and page) if the check fails. Read it next to
`runbooks/maintenance.md`: each `step_<id>` is a step there.

One run per window. An operator's window (`runbook maintenance schedule`) is started at once by
the sign-in service with the signed request as its start signal, and waits for its start time
with a durable timer: it is listed, approvable and cancellable from the moment it is asked for.
A recurring window is started by its policy Schedule at its time; the run reads what it does
from the worker's own policy, never from its input.

Whatever happens once the PagerDuty window is open (the change fails, the check fails, an
operator cancels, Temporal cancels the run), `step_close` runs: the PagerDuty window is ended
and the hold released, by activities shielded from the cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities import diagnosis, ecs, pagerduty
    from activities import scaling as aws
    from contracts import (
        SEARCH_SERVICE,
        SEARCH_STATUS,
        AlertBatch,
        DeploymentRequest,
        EcsCapacityRequest,
        EcsScalePlan,
        HealthRequest,
        MetricsRequest,
        PageRequest,
        RemediationAction,
        RemediationPlan,
        ServiceTarget,
        Statement,
        VerifyRequest,
    )
    from contracts.maintenance import (
        CLOSED_MAINTENANCE,
        CloseWindow,
        HeldAlert,
        MaintenanceInput,
        MaintenancePlan,
        MaintenanceRequest,
        MaintenanceResult,
        MaintenanceSpec,
        MaintenanceStatus,
        MaintenanceView,
        OpenWindow,
        PagerDutyWindow,
        maintenance_workflow_id,
        short,
        task_definition_revision,
    )

from workflows.kit import verification
from workflows.kit.approval import ApprovalGate
from workflows.kit.options import ACT, NOTIFY, READ, hold
from workflows.kit.runbook import RunbookCancelled, RunbookWorkflow
from workflows.kit.scheduled import SCHEDULED_START, nominal_time
from workflows.kit.timeline import cause

# The runbook's step ids, in its order; a test keeps runbooks/maintenance.md in step.
STEPS = ("plan", "approve", "wait", "pre_check", "open_window", "hold", "act", "post_check", "undo", "page", "close")
MAX_HELD_ALERTS = 200  # the view keeps the first ones; the count goes on


@workflow.defn
class MaintenanceWindowWorkflow(RunbookWorkflow):
    noun = "maintenance window"
    closed = CLOSED_MAINTENANCE
    passing = frozenset({MaintenanceStatus.CHECKING})
    status_key = SEARCH_STATUS
    gate: ApprovalGate[MaintenancePlan]

    @workflow.init
    def __init__(self, input: MaintenanceInput) -> None:
        self.input = input
        self.init_kit(
            note_prefix=f"maintenance/{input.service}", opened_by=input.opened_by, status=MaintenanceStatus.SCHEDULED
        )
        self.request: MaintenanceRequest | None = None
        self.spec: MaintenanceSpec | None = None
        self.start: datetime = workflow.now()  # the window's start, once the request or schedule says it
        self.plan_only = False
        self.plan: MaintenancePlan | None = None
        self.planned_calls: list[str] = []
        self.window: PagerDutyWindow | None = None
        self.held = False
        self.held_alerts: list[HeldAlert] = []
        self.alerts_held = 0
        self.acted: str | None = None
        self.undone: str | None = None

    @workflow.run
    async def run(self, input: MaintenanceInput) -> MaintenanceResult:
        self.adopt_signed_mode()
        await self.trusted_policy()
        self.start_kit(True, lambda: (True, True))
        workflow.upsert_search_attributes(
            [SEARCH_SERVICE.value_set(input.service), SEARCH_STATUS.value_set(MaintenanceStatus.SCHEDULED.value)]
        )
        refusal = await self.take_start()
        if refusal is not None:
            self.enter("plan", MaintenanceStatus.REFUSED)
            return await self.finish(MaintenanceStatus.REFUSED, f"refused: {refusal}; nothing read, nothing changed")
        try:
            return await self.respond()
        except RunbookCancelled:
            assert self.cancel_request is not None
            by, reason = self.cancel_request.by, self.cancel_request.reason
            done = f"; {self.undone}" if self.undone else ("" if self.acted else "; nothing changed")
            self.enter(self.step, MaintenanceStatus.CANCELLED)
            return await self.finish(MaintenanceStatus.CANCELLED, f"cancelled by {by}: {reason}{done}")
        except asyncio.CancelledError:
            # Temporal cancelled the run: the window was closed on the way out (`step_close`)
            self.status, self.outcome = MaintenanceStatus.CANCELLED, "cancelled through Temporal"
            left = "PagerDuty window closed and hold released" if self.window is not None else "nothing opened"
            self.record("cancelled", f"through Temporal; {left}" + ("; the change stays" if self.acted else ""))
            raise

    async def respond(self) -> MaintenanceResult:
        assert self.spec is not None
        plan = await self.step_plan()
        if self.plan_only:
            return await self.finish(MaintenanceStatus.PLANNED, f"plan only: {plan.describe()}; nothing changed")
        if not await self.step_approve(plan):
            why = self.gate.decision.reason if self.gate.decision is not None else "withdrawn"
            return await self.finish(MaintenanceStatus.NOT_APPROVED, f"{plan.plan_id} not approved: {why}")
        await self.step_wait()
        healthy, why = await self.step_pre_check()
        if not healthy:
            return await self.finish(
                MaintenanceStatus.CANCELLED, f"pre-check failed: {why}; window cancelled, nothing done"
            )
        status, outcome = MaintenanceStatus.DONE, ""
        try:
            await self.step_open_window(plan)
            self.step_hold()
            failure = await self.step_act(plan)
            if failure is not None:
                await self.step_page(plan, f"the change failed: {failure}")
                status, outcome = MaintenanceStatus.FAILED, f"{plan.spec.describe()} failed: {failure}; paged"
            else:
                try:
                    verified = await self.step_post_check()
                except RunbookCancelled:
                    await self.step_undo(plan)
                    raise
                if verified:
                    outcome = f"{plan.spec.describe()}: done and verified"
                else:
                    await self.step_undo(plan)
                    await self.step_page(plan, f"post-validation failed; {self.undone}")
                    status, outcome = MaintenanceStatus.UNDONE, f"post-validation failed: {self.undone}; paged"
        finally:
            await shielded(self.step_close())
        self.enter("close", status)
        return await self.finish(status, outcome)

    # ------------------------------------------------------------------ runbook steps

    async def step_plan(self) -> MaintenancePlan:
        """Where the service stands (task definition, deployment, count) and the exact change
        from there; plan mode stops here with the calls it would make."""
        self.enter("plan", MaintenanceStatus.SCHEDULED)
        spec, target = self.the_spec, self.target
        where = DeploymentRequest(cluster=target.ecs_cluster, service=target.ecs_service, region=target.region)
        deployment = await workflow.execute_activity(ecs.describe_deployment, where, **READ)
        capacity = await workflow.execute_activity(
            aws.read_ecs_capacity,
            EcsCapacityRequest(cluster=target.ecs_cluster, service=target.ecs_service, region=target.region),
            **READ,
        )
        plan = MaintenancePlan(
            spec=spec,
            start=self.start,
            cluster=target.ecs_cluster,
            ecs_service=target.ecs_service,
            region=target.region,
            from_task_definition=deployment.task_definition,
            to_task_definition=(
                task_definition_revision(deployment.task_definition, spec.revision)
                if spec.revision is not None
                else None
            ),
            deployment_id=deployment.primary_deployment_id,
            from_count=capacity.current,
            to_count=spec.count,
            scalable_target=capacity.scalable_target,
        ).bound()
        self.plan = plan
        self.record("planned", f"{plan.plan_id}: {plan.describe()}")
        if self.plan_only:
            self.planned_calls = plan.calls()
            for call in self.planned_calls:
                self.record("would call", call)
        return plan

    async def step_approve(self, plan: MaintenancePlan) -> bool:
        """The approvers of the action's risk level (`approvals.risk`, `maintenance_<action>`),
        asked when the window is asked for, so it can start on time."""
        self.enter("approve", MaintenanceStatus.AWAITING_APPROVAL)
        self.gate.arm(plan, self.the_policy, rules_mode=True, requesters=self.requesters())
        self.record("awaiting approval", f"{plan.plan_id}: {plan.describe()}")
        decision = await self.gate.decide(plan, self.the_policy, self.wait, lambda: None, self.climb, True)
        return decision is not None and decision.approved

    async def step_wait(self) -> None:
        """A durable timer to the start (an operator may cancel meanwhile: nothing was done)."""
        self.enter("wait", MaintenanceStatus.SCHEDULED)
        left = self.start - workflow.now()
        if left > timedelta(0):
            self.record("waiting", f"until {self.start:%Y-%m-%d %H:%M:%S} UTC")
            await self.wait(lambda: False, left)

    async def step_pre_check(self) -> tuple[bool, str]:
        """Health endpoint and every service level of the policy, now: a service already in
        trouble gets no maintenance (the window is cancelled, nothing done)."""
        self.enter("pre_check", MaintenanceStatus.CHECKING)
        settings = self.the_policy.maintenance
        request = self.verify_request(timedelta(0), settings.pre_check_timeout)
        try:
            result = await workflow.execute_activity(diagnosis.verify_slo, request, **hold(settings.pre_check_timeout))
        except ActivityError as err:
            self.record("pre-check failed", cause(err))
            return False, cause(err)
        self.record("pre-check " + ("passed" if result.verified else "failed"), result.detail)
        return result.verified, result.detail

    async def step_open_window(self, plan: MaintenancePlan) -> None:
        """A PagerDuty maintenance window for the service, from now to the window's end: no
        incident opens there meanwhile. Idempotent: a retry finds the window it opened."""
        self.enter("open_window", MaintenanceStatus.HOLDING)
        now = workflow.now()
        request = OpenWindow(
            key=f"{workflow.info().workflow_id}@{workflow.info().run_id}",  # a later run of the id: another window
            service_id=self.the_policy.maintenance.pagerduty_services.get(plan.spec.service),
            start=now,
            end=max(self.start, now) + plan.spec.duration,
            description=f"runbook maintenance: {plan.describe()}",
        )
        self.window = await workflow.execute_activity(pagerduty.open_maintenance_window, request, **NOTIFY)
        self.record("PagerDuty window open", f"{self.window.id} until {self.window.end:%H:%M} UTC")

    def step_hold(self) -> None:
        """The target held: alerts for it are recorded here instead of opening incidents (the
        intake asks visibility), and scaling and failover runs wait (they ask `maintenance_hold`)."""
        self.held = True
        self.enter("hold", MaintenanceStatus.HOLDING)
        self.record("holding", f"{self.input.service}: alerts recorded here, scaling and failover wait")

    async def step_act(self, plan: MaintenancePlan) -> str | None:
        """The change, once: each ECS activity is bound to where the plan found the service and
        finds its own finished work on a retry. Returns why it failed; None: done."""
        self.enter("act", MaintenanceStatus.HOLDING)
        try:
            if plan.spec.action == "scale":
                record = await workflow.execute_activity(aws.scale_ecs_service, self.scale_plan(plan, False), **ACT)
                detail = record.detail
            elif plan.spec.action == "deploy":
                rollout = self.deploy_plan(plan, undo=False)
                detail = (await workflow.execute_activity(ecs.set_service_task_definition, rollout, **ACT)).detail
            else:
                redeploy = RemediationPlan.build(
                    action=RemediationAction.FORCE_NEW_DEPLOYMENT,
                    cluster=plan.cluster,
                    service=plan.ecs_service,
                    region=plan.region,
                    reason=f"maintenance {plan.plan_id}",
                    expected_deployment_id=plan.deployment_id,
                )
                detail = (await workflow.execute_activity(ecs.force_new_deployment, redeploy, **ACT)).detail
        except ActivityError as err:
            self.record("change failed", cause(err))
            return cause(err)
        self.acted = detail
        self.audit("changed", f"{plan.plan_id}: {detail}", "runbook")
        return None

    async def step_post_check(self) -> bool:
        """Health and service levels hold for `maintenance.verify_window` within `verify_timeout`."""
        self.enter("post_check", MaintenanceStatus.HOLDING)
        settings = self.the_policy.maintenance
        request = self.verify_request(settings.verify_window, settings.verify_timeout)
        return await verification.hold_in_one_activity(request, self.wait, self.timeline)

    async def step_undo(self, plan: MaintenancePlan) -> None:
        """Back to where the plan found the service: the previous task definition, or the
        previous count. A new deployment cannot be undone (it is said, and paged)."""
        self.enter("undo", MaintenanceStatus.HOLDING)
        try:
            if plan.spec.action == "deploy":
                back = self.deploy_plan(plan, undo=True)
                detail = (await workflow.execute_activity(ecs.set_service_task_definition, back, **ACT)).detail
            elif plan.spec.action == "scale":
                detail = (
                    await workflow.execute_activity(aws.scale_ecs_service, self.scale_plan(plan, True), **ACT)
                ).detail
            else:
                detail = "a new deployment cannot be undone: nothing to put back"
        except ActivityError as err:
            detail = f"undo failed: {cause(err)}"
        self.undone = f"undone: {detail}"
        self.audit("undone", detail, "runbook")

    async def step_page(self, plan: MaintenancePlan, why: str) -> None:
        """The on-call is paged (P1): the change did not hold or could not be made."""
        self.enter("page", MaintenanceStatus.HOLDING)
        summary = f"[P1] maintenance of {plan.spec.service} failed: {plan.spec.describe()}"
        request = PageRequest(
            dedup_key=f"{workflow.info().workflow_id}#failed",
            summary=summary,
            source=f"maintenance/{plan.spec.service}",
            severity="error",
            details={"workflow_id": workflow.info().workflow_id, "plan": plan.plan_id, "why": why},
        )
        await self.pager.page(request, f"{summary}\n{why}")

    async def step_close(self) -> None:
        """Always: the PagerDuty window ended and the hold released, also when the change or
        the check failed or the run is being cancelled."""
        if self.held:
            self.held = False
            self.enter("close", MaintenanceStatus.CLOSING)
            self.record("hold released", self.input.service)
        if self.window is not None:
            closed = await workflow.execute_activity(
                pagerduty.close_maintenance_window, CloseWindow(window_id=self.window.id), **NOTIFY
            )
            self.record("PagerDuty window closed", f"{closed.window_id}: {closed.detail}")

    # ------------------------------------------------------------------ pieces of the steps

    async def take_start(self) -> str | None:
        """What the window does, from a proven source: the signed request of an operator, or
        the worker's own policy for a Schedule's run. None: proven; else why not."""
        policy = self.the_policy
        if self.input.schedule is not None:
            declared = next((s for s in policy.schedules if s.name == self.input.schedule), None)
            info = workflow.info()
            if declared is None or declared.maintenance is None:
                return f"no maintenance schedule {self.input.schedule!r} in the policy"
            if info.typed_search_attributes.get(SCHEDULED_START) is None or not info.workflow_id.startswith(
                f"{declared.name}-"
            ):
                return f"not started by the schedule {declared.name}"
            self.spec, self.start = declared.maintenance, nominal_time()
        else:
            await workflow.wait_condition(lambda: self.request is not None or self.refused_signals > 0)
            if self.request is None:
                return "started by no request the intake signed"
            self.spec, self.start, self.plan_only = self.request.spec, self.request.start, self.request.plan
            if workflow.info().workflow_id != maintenance_workflow_id(self.spec.service, self.start):
                return "the request names another window than this workflow's"
        if self.spec.service != self.input.service:
            return f"the window is for {self.spec.service}, not {self.input.service}"
        if self.spec.service not in policy.services:
            return f"unknown service {self.spec.service!r}: not in the policy"
        self.record("asked", f"by {self.opened_by}: {self.spec.describe()} at {self.start:%Y-%m-%d %H:%M} UTC")
        return None

    def verify_request(self, window: timedelta, within: timedelta) -> VerifyRequest:
        target, settings = self.target, self.the_policy.maintenance
        return VerifyRequest(
            health=HealthRequest(component=target.health_component),
            metrics=MetricsRequest(region=target.region, queries=self.the_policy.metrics),
            window=window,
            interval=min(settings.verify_interval, within),
            deadline=workflow.now() + within,
        )

    def deploy_plan(self, plan: MaintenancePlan, undo: bool) -> RemediationPlan:
        to, back = plan.to_task_definition, plan.from_task_definition
        return RemediationPlan.build(
            action=RemediationAction.ROLLBACK,  # the activity moves between two task definitions
            cluster=plan.cluster,
            service=plan.ecs_service,
            region=plan.region,
            reason=f"maintenance {plan.plan_id}: {'undo to ' + short(back) if undo else 'deploy ' + short(to)}",
            from_task_definition=to if undo else back,
            to_task_definition=back if undo else to,
        )

    def scale_plan(self, plan: MaintenancePlan, undo: bool) -> EcsScalePlan:
        assert plan.to_count is not None
        scale = EcsScalePlan(
            cluster=plan.cluster,
            service=plan.ecs_service,
            region=plan.region,
            from_count=plan.to_count if undo else plan.from_count,
            to_count=plan.from_count if undo else plan.to_count,
            scalable_target=plan.scalable_target,
            reason=f"maintenance {plan.plan_id}{' undone' if undo else ''}",
            plan_id=f"{plan.plan_id}{'-undo' if undo else ''}",
        )
        return scale

    @property
    def the_spec(self) -> MaintenanceSpec:
        assert self.spec is not None
        return self.spec

    @property
    def target(self) -> ServiceTarget:
        return self.the_policy.services[self.the_spec.service]

    async def finish(self, status: MaintenanceStatus, outcome: str) -> MaintenanceResult:
        await self.close(status, outcome)
        return MaintenanceResult(outcome=outcome, view=self.view())

    def requesters(self) -> set[str]:
        return {self.opened_by}

    # ------------------------------------------------------------------ signals and queries

    @workflow.signal
    def request_window(self, request: MaintenanceRequest) -> None:
        """The operator's window, signed by the intake in their name (the start signal)."""
        self.take_signal("request_window", request, self.apply_request)

    def apply_request(self, request: MaintenanceRequest, statement: Statement | None) -> None:
        if self.request is not None:
            return  # the first request is the window; a second start of the same id changes nothing
        if statement is not None and statement.sub != request.by:
            self.refused_signals += 1
            return
        self.request = request
        self.opened_by = request.by

    @workflow.signal
    def alert_batch(self, batch: AlertBatch) -> None:
        """Alerts for the held service, sent here by the intake instead of opening an incident."""
        self.take_signal("alert_batch", batch, self.apply_alerts)

    def apply_alerts(self, batch: AlertBatch, statement: Statement | None) -> None:
        for alert in batch.alerts:
            if not self.first_delivery(alert):
                continue
            self.alerts_held += 1
            if len(self.held_alerts) < MAX_HELD_ALERTS:
                held = HeldAlert(
                    at=workflow.now(),
                    source=alert.source,
                    summary=alert.summary,
                    severity=alert.severity.value if alert.severity else None,
                )
                self.held_alerts.append(held)
            self.record("alert held", f"from {alert.source}: {alert.summary}", actor=alert.raised_by or alert.source)

    @workflow.query
    def view(self) -> MaintenanceView:
        return MaintenanceView(
            workflow_id=workflow.info().workflow_id,
            service=self.input.service,
            status=self.status,
            step=self.step,
            opened_by=self.opened_by,
            opened_at=workflow.info().start_time,
            schedule=self.input.schedule,
            spec=self.spec,
            start=self.start,
            plan_only=self.plan_only,
            plan=self.plan,
            planned_calls=list(self.planned_calls),
            pending_approval=self.gate.pending,
            pagerduty_window=self.window,
            held=self.held,
            held_alerts=list(self.held_alerts),
            acted=self.acted,
            undone=self.undone,
            pagerduty=self.pager.ref,
            outcome=self.outcome,
            timeline=list(self.timeline.entries),
        )


async def shielded(cleanup: Coroutine[Any, Any, None]) -> None:
    """Runs `cleanup` to its end even while the run is being cancelled: a cancellation that
    arrives meanwhile is not passed into it (the caller's `finally` re-raises the first one)."""
    task = asyncio.ensure_future(cleanup)
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            continue
    task.result()
