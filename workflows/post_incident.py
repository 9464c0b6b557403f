"""Post-incident follow-up: the immediate review, the blameless post-mortem, and every action
item chased until it is done or dropped. Read it next to `runbooks/post-incident.md`: each
`step_<id>` is a step there.

One run per incident (`postincident/{incident id}`), started by the incident as it closes (its
child, abandoned to outlive it). It keeps running, across worker and server restarts, until the
review is recorded, the post-mortem is complete and the last action item is closed: reminders
do not stop because the incident did. Every reminder and escalation has a key; the run sends
none twice, also across continue-as-new. The numbers are the policy's `postincident` section.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import pagerduty
    from activities.postmortem import Postmortems
    from activities.runs import Runs
    from contracts import IncidentView, OperatorReply, PageRequest, Statement
    from contracts.policy import PostIncidentPolicy
    from contracts.post_incident import (
        CLOSED_FOLLOWUP,
        ActionItem,
        AddActionItem,
        CloseActionItem,
        CompletePostmortem,
        FollowupAsk,
        FollowupCarry,
        FollowupInput,
        FollowupResult,
        FollowupStatus,
        FollowupView,
        IncidentRef,
        ItemStatus,
        Review,
        StoredPostmortem,
        StorePostmortem,
        followup_input_of,
        postincident_workflow_id,
        same_incident,
    )

from workflows.kit import metrics
from workflows.kit.approval import Refused
from workflows.kit.options import ACT, NOTIFY, READ
from workflows.kit.runbook import RunbookCancelled, RunbookWorkflow
from workflows.kit.timeline import cause, fmt

# The runbook's step ids, in its order; a test keeps runbooks/post-incident.md in step.
STEPS = ("draft", "review", "postmortem", "actions", "close")
CARRIED_TIMELINE = 50  # the timeline entries a run continuing as new keeps


@workflow.defn
class PostIncidentWorkflow(RunbookWorkflow):
    noun = "follow-up"
    closed = CLOSED_FOLLOWUP

    @workflow.init
    def __init__(self, input: FollowupInput) -> None:
        self.input = input
        self.init_kit(
            note_prefix=postincident_workflow_id(input.incident_id),
            opened_by=input.opened_by,
            status=FollowupStatus.DRAFTING,
        )
        carried = input.carried
        self.reviewed_by = carried.reviewed_by if carried else None
        self.reviewed_at = carried.reviewed_at if carried else None
        self.review_notes = carried.review_notes if carried else None
        self.postmortem_uri = carried.postmortem_uri if carried else None
        self.completed_by = carried.completed_by if carried else None
        self.items: list[ActionItem] = list(carried.items) if carried else []
        self.sent: set[str] = set(carried.sent) if carried else set()
        if carried:
            self.timeline.entries.extend(carried.timeline)
        self.changed = False
        self.asked_by: str | None = None  # an operator who asked for it by hand (signed)
        self.start_checked = False  # an ask after the start's checks only joins the timeline

    @workflow.run
    async def run(self, input: FollowupInput) -> FollowupResult:
        self.adopt_signed_mode()
        await self.trusted_policy()
        self.start_kit(True, lambda: (True, True))
        refusal = self.unproven_start() or await self.unmatched_ask()
        self.start_checked = True
        if refusal is not None:
            self.enter("draft", FollowupStatus.REFUSED)
            return await self.finish(FollowupStatus.REFUSED, f"refused: {refusal}; nothing done")
        _ = self.followup  # no postincident section: the run fails here, naming the cause
        self.pager.ref = input.pagerduty  # reminders are notes on the incident's own page
        try:
            await self.step_draft()
            while not self.finished:
                await self.continue_if_long(self.followup.continue_after_events, self.carried_on)
                now = workflow.now()
                await self.step_review(now)
                await self.step_postmortem(now)
                await self.step_actions(now)
                if self.finished:
                    break
                self.enter(self.step, self.pending_status)
                wake = self.next_deadline(now)
                self.changed = False
                await self.wait(lambda: self.changed, wake - now if wake is not None else None)
            return await self.step_close()
        except RunbookCancelled:
            assert self.cancel_request is not None
            self.enter(self.step, FollowupStatus.CANCELLED)
            by, reason = self.cancel_request.by, self.cancel_request.reason
            left = f"; {len(self.open_items)} action item(s) left open" if self.open_items else ""
            return await self.finish(FollowupStatus.CANCELLED, f"cancelled by {by}: {reason}{left}")

    # ------------------------------------------------------------------ runbook steps

    async def step_draft(self) -> None:
        """The post-mortem draft from the incident's own record, stored in the bucket and linked
        from the incident's PagerDuty incident. Done once (a run continued as new has it)."""
        self.enter("draft", FollowupStatus.DRAFTING)
        if self.postmortem_uri is not None:
            return
        policy = self.followup
        request = StorePostmortem(
            incident_workflow_id=self.input.incident_workflow_id,
            bucket=policy.bucket,
            region=policy.bucket_region,
            key=f"postmortems/{self.input.incident_id}.md",
        )
        stored: StoredPostmortem = await workflow.execute_activity_method(Postmortems.store_postmortem, request, **ACT)
        self.postmortem_uri = stored.uri
        figures = ", ".join(
            f"{name} {fmt(value)}"
            for name, value in (
                ("acknowledged in", stored.time_to_acknowledge),
                ("mitigated in", stored.time_to_mitigate),
                ("resolved in", stored.time_to_resolve),
            )
            if value is not None
        )
        self.record("drafted", f"{stored.uri} ({stored.bytes} bytes){'; ' + figures if figures else ''}")
        await self.pager.note(
            "postmortem-draft",
            f"Post-mortem draft of {self.input.incident_id}: {stored.uri}. Review due "
            f"{self.review_due:%Y-%m-%d %H:%M} UTC (runbook review {self.input.incident_id}); the post-mortem "
            f"{self.postmortem_due:%Y-%m-%d %H:%M} UTC.",
        )

    async def step_review(self, now: datetime) -> None:
        """The immediate review: the commander reminded every `remind_every` until it is
        recorded; past `review_within`, the leads are paged."""
        if self.reviewed_by is not None:
            return
        self.enter("review", FollowupStatus.REVIEW_PENDING)
        reminders = [t for t in self.review_reminders() if t <= now]
        if now >= self.review_due:
            await self.escalate("review-overdue", f"the review of {self.input.incident_id} is overdue")
        elif reminders:
            at = reminders[-1]  # only the latest one due: a worker that was away sends no backlog
            await self.remind(
                f"review-reminder-{len(reminders)}",
                f"{self.input.commander}: record the immediate review of {self.input.incident_id} by "
                f"{self.review_due:%H:%M} UTC: runbook review {self.input.incident_id} --notes TEXT",
                at,
            )

    async def step_postmortem(self, now: datetime) -> None:
        """The post-mortem, complete by its due date per severity: a reminder before, the leads
        paged after."""
        if self.completed_by is not None or self.reviewed_by is None:
            return
        self.enter("postmortem", FollowupStatus.POSTMORTEM_PENDING)
        if now >= self.postmortem_due:
            await self.escalate("postmortem-overdue", f"the post-mortem of {self.input.incident_id} is overdue")
        elif now >= self.postmortem_due - self.followup.postmortem_remind_before:
            await self.remind(
                "postmortem-reminder",
                f"The post-mortem of {self.input.incident_id} ({self.postmortem_uri}) is due "
                f"{self.postmortem_due:%Y-%m-%d %H:%M} UTC: runbook followup complete {self.input.incident_id}",
                now,
            )

    async def step_actions(self, now: datetime) -> None:
        """Each open action item: its owner reminded before the due date, the leads paged once
        it is overdue."""
        if not self.open_items:
            return
        if self.reviewed_by is not None and self.completed_by is not None:
            self.enter("actions", FollowupStatus.TRACKING)
        for item in self.open_items:
            if now >= item.due and not item.escalated:
                item.escalated = item.reminded = True  # overdue already: a "due soon" reminder would mislead
                await self.escalate(
                    f"item-{item.item_id}-overdue",
                    f"action item {item.item_id} of {self.input.incident_id} is overdue (owner {item.owner}): "
                    f"{item.text}",
                )
            elif now >= self.item_reminder(item) and not item.reminded:
                item.reminded = True
                await self.remind(
                    f"item-{item.item_id}-reminder",
                    f"{item.owner}: action item {item.item_id} of {self.input.incident_id} is due "
                    f"{item.due:%Y-%m-%d %H:%M} UTC: {item.text} (runbook action done {self.input.incident_id} "
                    f"{item.item_id} --evidence TEXT)",
                    now,
                )

    async def step_close(self) -> FollowupResult:
        """Reviewed, the post-mortem complete, every action item done or dropped."""
        self.enter("close", FollowupStatus.COMPLETE)
        done = sum(1 for item in self.items if item.status == ItemStatus.DONE)
        dropped = len(self.items) - done
        outcome = (
            f"complete: reviewed by {self.reviewed_by}, post-mortem by {self.completed_by}, "
            f"{done} action item(s) done, {dropped} dropped"
        )
        await self.pager.note("complete", f"Follow-up of {self.input.incident_id} {outcome}")
        return await self.finish(FollowupStatus.COMPLETE, outcome)

    # ------------------------------------------------------------------ pieces of the steps

    async def remind(self, key: str, text: str, at: datetime) -> None:
        if key in self.sent:
            return
        self.sent.add(key)
        self.record("reminded", text)
        await self.pager.note(key, f"Reminder: {text}")

    async def escalate(self, key: str, summary: str) -> None:
        """A page of its own (the incident's is resolved): the leads are on its escalation."""
        if key in self.sent:
            return
        self.sent.add(key)
        self.record("escalated", summary)
        metrics.count(
            "runbook_followup_escalations", "follow-up items overdue: the leads paged", what=key.split("-")[0]
        )
        request = PageRequest(
            dedup_key=f"{workflow.info().workflow_id}#{key}",
            summary=f"[follow-up] {summary}",
            source=f"{self.input.service}/{self.input.region}",
            severity="warning",
            details={"incident_id": self.input.incident_id, "workflow_id": workflow.info().workflow_id},
        )
        try:
            await workflow.execute_activity(pagerduty.trigger_page, request, **NOTIFY)
        except ActivityError as err:  # the timeline says it; the run goes on chasing
            self.record("escalation failed", f"{key}: {cause(err)}")

    def review_reminders(self) -> list[datetime]:
        every, start = self.followup.remind_every, self.input.closed_at
        times, at = [], start + every
        while at < self.review_due:
            times.append(at)
            at += every
        return times

    def item_reminder(self, item: ActionItem) -> datetime:
        at = item.due - self.followup.action_remind_before
        return max(at, item.added_at)

    def next_deadline(self, now: datetime) -> datetime | None:
        """When the next reminder or escalation is due (None: only people move it on)."""
        times: list[datetime] = []
        if self.reviewed_by is None:
            times += [t for t in self.review_reminders() if t > now]
            if "review-overdue" not in self.sent:
                times.append(self.review_due)
        elif self.completed_by is None:
            if "postmortem-reminder" not in self.sent and "postmortem-overdue" not in self.sent:
                times.append(self.postmortem_due - self.followup.postmortem_remind_before)
            if "postmortem-overdue" not in self.sent:
                times.append(self.postmortem_due)
        for item in self.open_items:
            if not item.reminded:
                times.append(self.item_reminder(item))
            if not item.escalated:
                times.append(item.due)
        # what was due by `now` was done by the steps just before: only what lies ahead wakes the run
        later = [t for t in times if t > now]
        return min(later) if later else None

    def carried_on(self) -> FollowupInput:
        """The input of the run this one continues as: everything recorded so far."""
        carried = FollowupCarry(
            reviewed_by=self.reviewed_by,
            reviewed_at=self.reviewed_at,
            review_notes=self.review_notes,
            postmortem_uri=self.postmortem_uri,
            completed_by=self.completed_by,
            items=self.items,
            sent=sorted(self.sent),
            timeline=self.timeline.entries[-CARRIED_TIMELINE:],
        )
        return self.input.model_copy(update={"carried": carried})

    @property
    def followup(self) -> PostIncidentPolicy:
        policy = self.the_policy.postincident
        if policy is None:
            raise ApplicationError("the policy has no postincident section: nothing is followed up", non_retryable=True)
        return policy

    @property
    def review_due(self) -> datetime:
        policy = self.the_policy.postincident
        within = policy.review_within if policy is not None else timedelta(hours=2)
        return self.input.closed_at + within

    @property
    def postmortem_due(self) -> datetime:
        policy = self.the_policy.postincident or PostIncidentPolicy()
        return self.input.closed_at + policy.postmortem_due_for(self.input.severity)

    @property
    def open_items(self) -> list[ActionItem]:
        return [item for item in self.items if item.status == ItemStatus.OPEN]

    @property
    def finished(self) -> bool:
        return self.reviewed_by is not None and self.completed_by is not None and not self.open_items

    @property
    def pending_status(self) -> FollowupStatus:
        if self.reviewed_by is None:
            return FollowupStatus.REVIEW_PENDING
        if self.completed_by is None:
            return FollowupStatus.POSTMORTEM_PENDING
        return FollowupStatus.TRACKING

    def unproven_start(self) -> str | None:
        """Only the incident it follows starts it (as its child), or a follow-up continuing as
        new: a start from anywhere else is refused."""
        info = workflow.info()
        if info.workflow_id != postincident_workflow_id(self.input.incident_id):
            return f"the start names {self.input.incident_id}, not this workflow's incident"
        if self.input.carried is not None:
            return None if info.continued_run_id is not None else "it carries state, but no run continued into it"
        if info.parent is not None:
            if info.parent.workflow_id != self.input.incident_workflow_id:
                return (
                    f"started by {info.parent.workflow_id}, not by the incident run {self.input.incident_workflow_id}"
                )
            return None
        if self.asked_by is not None:
            return None  # an operator's ask, signed: what it says of the incident is checked next
        return f"not started by the incident run {self.input.incident_workflow_id}"

    async def unmatched_ask(self) -> str | None:
        """Asked by hand (not the incident's child): the start must say of the incident what the
        incident's own record says, and the incident must have closed."""
        if self.asked_by is None or self.input.carried is not None or workflow.info().parent is not None:
            return None
        ref = IncidentRef(workflow_id=self.input.incident_workflow_id, run_id=self.input.incident_run_id)
        record: IncidentView | None = await workflow.execute_activity_method(Runs.incident_record, ref, **READ)
        if record is None or record.id != self.input.incident_id:
            return f"no incident {self.input.incident_id} at {self.input.incident_workflow_id}"
        try:
            expected = followup_input_of(record, self.opened_by, self.input.incident_run_id)
        except ValueError as err:
            return str(err)
        if not same_incident(self.input, expected):
            return f"the start does not say of {self.input.incident_id} what its own record says"
        self.record("asked", f"by {self.asked_by}: the follow-up of {self.input.incident_id}", actor=self.asked_by)
        return None

    async def finish(self, status: FollowupStatus, outcome: str) -> FollowupResult:
        await self.close(status, outcome)
        return FollowupResult(outcome=outcome, view=self.view())

    # ------------------------------------------------------------------ operators

    @workflow.update
    def review(self, request: Review) -> OperatorReply:
        self.reviewed_by, self.reviewed_at, self.review_notes = request.by, workflow.now(), request.notes
        self.audit("reviewed", request.notes, request.by, self.proven(request))
        self.changed = True
        return self.reply(f"review of {self.input.incident_id} recorded")

    @review.validator
    def validate_review(self, request: Review) -> None:
        policy = self.require_open()
        self.prove(request, "review")
        if not policy.may_acknowledge(request.by):
            raise Refused(f"{request.by} may not record the review: not a responder or approver in the policy")
        if self.reviewed_by is not None:
            raise Refused(f"the review is recorded already, by {self.reviewed_by}")

    @workflow.update
    def complete_postmortem(self, request: CompletePostmortem) -> OperatorReply:
        self.completed_by = request.by
        self.audit("post-mortem complete", request.note or self.postmortem_uri or "", request.by, self.proven(request))
        self.changed = True
        return self.reply(f"post-mortem of {self.input.incident_id} complete")

    @complete_postmortem.validator
    def validate_complete_postmortem(self, request: CompletePostmortem) -> None:
        policy = self.require_open()
        self.prove(request, "complete_postmortem")
        if not policy.may_acknowledge(request.by):
            raise Refused(f"{request.by} may not complete the post-mortem: not a responder or approver in the policy")
        if self.reviewed_by is None:
            raise Refused("record the immediate review first (runbook review)")
        if self.completed_by is not None:
            raise Refused(f"the post-mortem is complete already, by {self.completed_by}")

    @workflow.update
    def add_action_item(self, request: AddActionItem) -> OperatorReply:
        now = workflow.now()
        due_in = request.due_in or self.followup.action_due_for(self.input.severity)
        item = ActionItem(
            item_id=f"A{len(self.items) + 1}",
            text=request.text,
            owner=request.owner,
            due=now + due_in,
            added_by=request.by,
            added_at=now,
        )
        self.items.append(item)
        metrics.count("runbook_action_items_added", "action items added to incidents' follow-ups")
        self.audit("action item added", item.describe(now), request.by, self.proven(request))
        self.changed = True
        return self.reply(f"{item.item_id} added: owner {item.owner}, due {item.due:%Y-%m-%d %H:%M} UTC")

    @add_action_item.validator
    def validate_add_action_item(self, request: AddActionItem) -> None:
        policy = self.require_open()
        self.prove(request, "add_action_item")
        if not policy.may_acknowledge(request.by):
            raise Refused(f"{request.by} may not add action items: not a responder or approver in the policy")

    @workflow.update
    def close_action_item(self, request: CloseActionItem) -> OperatorReply:
        item = self.item(request.item_id)
        key, now = self.proven(request), workflow.now()
        if request.how == "done":
            item.status, item.closed_by, item.closed_at, item.evidence = ItemStatus.DONE, request.by, now, request.why
            self.audit("action item done", f"{item.item_id}: {request.why}", request.by, key)
            message = f"{item.item_id} done"
        elif item.drop_requested_by is None:
            item.drop_requested_by, item.drop_reason = request.by, request.why
            self.audit("drop asked", f"{item.item_id}: {request.why}", request.by, key)
            message = f"{item.item_id}: drop asked; another approver must confirm it (runbook action drop)"
        else:
            item.status, item.closed_by, item.closed_at = ItemStatus.DROPPED, request.by, now
            item.drop_reason = f"{item.drop_reason}; confirmed: {request.why}"
            self.audit("action item dropped", f"{item.item_id}: {item.drop_reason}", request.by, key)
            message = f"{item.item_id} dropped (asked by {item.drop_requested_by}, confirmed by {request.by})"
        if item.status != ItemStatus.OPEN:
            metrics.count("runbook_action_items_closed", "action items done or dropped", how=item.status.value)
        self.changed = True
        return self.reply(message)

    @close_action_item.validator
    def validate_close_action_item(self, request: CloseActionItem) -> None:
        policy = self.require_open()
        self.prove(request, "close_action_item")
        item = self.item(request.item_id)
        if item.status != ItemStatus.OPEN:
            raise Refused(f"{item.item_id} is {item.status.value} already")
        if request.how == "done":
            if request.by != item.owner and not policy.may_approve(request.by):
                raise Refused(f"{request.by} may not close {item.item_id}: only its owner {item.owner} or an approver")
            return
        if item.drop_requested_by is None:
            if not policy.may_acknowledge(request.by):
                raise Refused(f"{request.by} may not ask to drop {item.item_id}: not a responder or approver")
            return
        if request.by == item.drop_requested_by:
            raise Refused(f"{request.by} asked to drop {item.item_id}; another approver must confirm it (four eyes)")
        if not policy.may_approve(request.by):
            raise Refused(f"{request.by} may not confirm dropping {item.item_id}: not an approver in the policy")

    def item(self, item_id: str) -> ActionItem:
        found = next((item for item in self.items if item.item_id == item_id.upper()), None)
        if found is None:
            known = ", ".join(item.item_id for item in self.items) or "none yet"
            raise Refused(f"no action item {item_id} (known: {known})")
        return found

    @workflow.signal
    def asked(self, ask: FollowupAsk) -> None:
        """`runbook followup start ID`: signed by the intake in the operator's name."""
        self.take_signal("asked", ask, self.apply_ask)

    def apply_ask(self, ask: FollowupAsk, statement: Statement | None) -> None:
        who = statement.sub if statement is not None else ask.by
        if self.asked_by is None and not self.start_checked:
            self.asked_by = self.opened_by = who  # the ask that started this run
        elif self.status not in self.closed:
            self.record("asked again", f"by {who}: the follow-up runs already", actor=who)

    @workflow.query
    def view(self) -> FollowupView:
        return FollowupView(
            workflow_id=workflow.info().workflow_id,
            incident_id=self.input.incident_id,
            incident_workflow_id=self.input.incident_workflow_id,
            service=self.input.service,
            severity=self.input.severity,
            status=self.status,
            opened_at=workflow.info().start_time,
            opened_by=self.opened_by,
            commander=self.input.commander,
            review_due=self.review_due,
            reviewed_by=self.reviewed_by,
            reviewed_at=self.reviewed_at,
            review_notes=self.review_notes,
            postmortem_uri=self.postmortem_uri,
            postmortem_due=self.postmortem_due,
            completed_by=self.completed_by,
            items=list(self.items),
            now=workflow.now(),
            outcome=self.outcome,
            timeline=list(self.timeline.entries),
            refused_signals=self.refused_signals,
        )
