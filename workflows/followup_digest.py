"""The weekly digest of the follow-ups' action items: every open item of every running
follow-up, per owner, overdue first, stored as Markdown in the post-mortems' bucket. Read it
next to `runbooks/followup-digest.md`: each `step_<id>` is a step there.

Started by its Temporal Schedule (the policy's `schedules:`, kept by `runbook schedules apply`)
or by `runbook schedules trigger NAME`. It only reads the follow-ups and writes one report
object: a retry or a second run of the same day puts the same key again (the bucket is
versioned), so it has nothing to plan and nothing to undo.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import policy as policy_activity
    from activities.postmortem import store_report
    from activities.runs import Runs
    from contracts.schedules import (
        DigestInput,
        DigestResult,
        DigestStatus,
        DigestView,
        OpenItems,
        StoredReport,
        StoreReport,
        digest_key,
        owners_of,
        render_digest,
    )

from workflows.kit.options import NOTIFY, READ
from workflows.kit.scheduled import nominal_time
from workflows.kit.timeline import Timeline

# The runbook's step ids, in its order; a test keeps runbooks/followup-digest.md in step.
STEPS = ("collect", "store")


@workflow.defn
class FollowupDigestWorkflow:
    @workflow.init
    def __init__(self, input: DigestInput) -> None:
        self.input = input
        self.timeline = Timeline()
        self.status: DigestStatus = "collecting"
        self.open = OpenItems(items=[])
        self.uri: str | None = None

    @workflow.run
    async def run(self, input: DigestInput) -> DigestResult:
        policy = await workflow.execute_local_activity(
            policy_activity.load_policy, start_to_close_timeout=timedelta(seconds=30)
        )
        self.timeline.record("started", f"by {input.started_by}")
        await self.step_collect()
        at = nominal_time()  # a backfilled digest is named for the day it was due
        markdown = render_digest(self.open.items, at, self.open.unread)
        if policy.postincident is not None:
            await self.step_store(
                StoreReport(
                    bucket=policy.postincident.bucket,
                    region=policy.postincident.bucket_region,
                    key=digest_key(at),
                    body=markdown,
                )
            )
        self.status = "done"
        items = self.open.items
        return DigestResult(
            at=at,
            open=len(items),
            overdue=sum(item.overdue for item in items),
            owners=owners_of(items),
            uri=self.uri,
            unread=self.open.unread,
            markdown=markdown,
        )

    async def step_collect(self) -> None:
        """Every running follow-up's open action items, each judged overdue by its run."""
        self.enter("collect", "collecting")
        self.open = await workflow.execute_activity_method(Runs.open_action_items, **READ)
        overdue = sum(item.overdue for item in self.open.items)
        unread = f"; {len(self.open.unread)} follow-up(s) not read" if self.open.unread else ""
        self.timeline.record("collected", f"{len(self.open.items)} open, {overdue} overdue{unread}")

    async def step_store(self, request: StoreReport) -> None:
        """The digest in the bucket, one object per day (a second run that day replaces it)."""
        self.enter("store", "storing")
        stored: StoredReport = await workflow.execute_activity(store_report, request, **NOTIFY)
        self.uri = stored.uri
        self.timeline.record("stored", f"{stored.uri} ({stored.bytes} bytes)")

    def enter(self, step: str, status: DigestStatus) -> None:
        self.timeline.step, self.status = step, status

    @workflow.query
    def view(self) -> DigestView:
        return DigestView(
            status=self.status,
            step=self.timeline.step,
            started_by=self.input.started_by,
            items=self.open.items,
            uri=self.uri,
            timeline=list(self.timeline.entries),
        )
