"""The watchdog of the Schedules: a routine run that did not start, or started and failed, is
noticed and paged, not found a week later. Read it next to `runbooks/schedule-watchdog.md`:
each `step_<id>` is a step there.

Itself a Schedule (the policy's `schedules:`, `runbook: schedule-watchdog`, hourly by
default). Each missed run pages once: its PagerDuty dedup key is the schedule and the nominal
time, so a retry, or a later watchdog run that sees the same miss, joins the same page.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import pagerduty
    from activities import policy as policy_activity
    from activities.runs import Runs
    from contracts import PageRequest
    from contracts.schedules import ScheduleCheck, ScheduleReport, WatchdogInput, WatchdogResult

from workflows.kit.options import PAGE, READ
from workflows.kit.timeline import Timeline

# The runbook's step ids, in its order; a test keeps runbooks/schedule-watchdog.md in step.
STEPS = ("check", "page")
Status = Literal["checking", "paging", "done"]


@workflow.defn
class ScheduleWatchdogWorkflow:
    @workflow.init
    def __init__(self, input: WatchdogInput) -> None:
        self.input = input
        self.timeline = Timeline()
        self.status: Status = "checking"
        self.report = ScheduleReport(checked=[], missed=[])
        self.paged: list[str] = []

    @workflow.run
    async def run(self, input: WatchdogInput) -> WatchdogResult:
        # the policy is read for what every run reads it for: a worker without one fails here, named
        await workflow.execute_local_activity(policy_activity.load_policy, start_to_close_timeout=timedelta(seconds=30))
        self.timeline.record("started", f"by {input.started_by}")
        await self.step_check()
        await self.step_page()
        self.status = "done"
        return WatchdogResult(checked=self.report.checked, missed=self.report.missed, paged=self.paged)

    async def step_check(self) -> None:
        """Every active schedule's due times in the window against the runs it started."""
        self.enter("check", "checking")
        check = ScheduleCheck(look_back=self.input.look_back, grace=self.input.grace)
        self.report = await workflow.execute_activity_method(Runs.missed_scheduled_runs, check, **READ)
        missed = len(self.report.missed)
        self.timeline.record("checked", f"{len(self.report.checked)} schedule(s); {missed} run(s) missing or failed")

    async def step_page(self) -> None:
        """One page per missed run (its dedup key: the schedule and the due time)."""
        self.enter("page", "paging")
        for run in self.report.missed:
            request = PageRequest(
                dedup_key=run.dedup_key,
                summary=run.summary(),
                source=f"schedule {run.schedule}",
                severity=self.input.severity,
                details={"workflow_id": run.workflow_id, "due": run.nominal.isoformat(), "problem": run.problem},
            )
            await workflow.execute_activity(pagerduty.trigger_page, request, **PAGE)
            self.paged.append(run.dedup_key)
            self.timeline.record("paged", run.summary())

    def enter(self, step: str, status: Status) -> None:
        self.timeline.step, self.status = step, status

    @workflow.query
    def view(self) -> dict[str, object]:
        return {
            "status": self.status,
            "step": self.timeline.step,
            "started_by": self.input.started_by,
            "checked": self.report.checked,
            "missed": [run.model_dump(mode="json") for run in self.report.missed],
            "paged": self.paged,
            "timeline": [entry.model_dump(mode="json") for entry in self.timeline.entries],
        }
