"""The pager: the page, the PagerDuty incident it opened, notes on it, escalation, and the
acknowledgement ladder. Deterministic; every call to PagerDuty is an activity.

Two modes, chosen by the runbook (runs from before the lean kit replay the first):
- legacy: every note and acknowledgement is its own activity, awaited where it is made;
  operators' audit notes go out through their own sender task.
- lean: notes, the acknowledgement and the resolution go into an outbox that one sender task
  flushes as one activity per batch, so the runbook never waits on PagerDuty to go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities import fallback, pagerduty
    from contracts import (
        EscalateRequest,
        FallbackNotice,
        NoteRequest,
        PageAndNote,
        PagerDutyNote,
        PagerDutyRef,
        PagerDutySync,
        PageRequest,
        SeverityPolicy,
    )

from workflows.kit.options import NOTIFY, PAGE
from workflows.kit.timeline import Timeline, cause, fmt

# Runs that reach a failed page from here on also tell the other path (PAGING_FALLBACK_URL);
# asked only there, so runs that page fine carry no marker. Retire once no run from before
# 2026-11-24 is open.
PAGE_FALLBACK = "page-fallback"

Wait = Callable[[Callable[[], bool], timedelta | None], Awaitable[bool]]


class Pager:
    def __init__(self, timeline: Timeline, note_prefix: str, lean: bool) -> None:
        self.timeline = timeline
        self.note_prefix = note_prefix  # note keys are unique per runbook run
        self.lean = lean
        self.ref: PagerDutyRef | None = None
        self.levels = 1
        # legacy: operators' audit notes, sent one by one by `send_audit_notes`
        self.audit_notes: list[tuple[str, str]] = []
        self.audit_sender: asyncio.Task[None] | None = None
        # lean: what PagerDuty is owed, sent in batches by `send_outbox`
        self.outbox: list[PagerDutyNote] = []
        self.deferred: list[PagerDutyNote] = []  # ride along with the next batch that goes out
        self.owe_acknowledge = False
        self.acknowledged = False
        self.owe_resolve = False
        self.sending = False
        # A page that failed for good (refused, or PagerDuty unreachable for the page's half hour):
        # runs from the `signed-identity` patch on say so (status `unpaged`) and page again at
        # every rung of the acknowledgement ladder instead of escalating nothing.
        self.retry_pages = False
        self.unpaged: tuple[PageRequest, str] | None = None
        self.on_paged: Callable[[bool], None] = lambda paged: None

    def start_sender(self) -> None:
        self.audit_sender = asyncio.create_task(self.send_outbox() if self.lean else self.send_audit_notes())

    @property
    def incident_id(self) -> str | None:
        return self.ref.incident_id if self.ref else None

    # ------------------------------------------------------------------ page

    async def page(self, request: PageRequest, initial_note: str) -> None:
        """Trigger (idempotent by dedup key), find the PagerDuty incident, add the initial note."""
        self.ref = PagerDutyRef(dedup_key=request.dedup_key)
        if self.lean:
            both = PageAndNote(page=request, note_key=self.key("initial-notification"), note=initial_note)
            try:
                self.ref = await workflow.execute_activity(pagerduty.page_and_note, both, **PAGE)
            except ActivityError as err:
                self.timeline.record("page failed", cause(err))
                if self.retry_pages:
                    first = self.unpaged is None
                    self.unpaged = (request, initial_note)
                    self.timeline.record(
                        "nobody paged", "PagerDuty did not take the page; it is tried again at every escalation timer"
                    )
                    self.on_paged(False)
                    if first and workflow.patched(PAGE_FALLBACK):
                        await self.tell_other_path(request, cause(err))
                return
            self.timeline.record("paged", f"PagerDuty incident {self.ref.incident_id} (dedup key {request.dedup_key})")
            if self.unpaged is not None:
                self.unpaged = None
                self.on_paged(True)
            return
        try:
            await workflow.execute_activity(pagerduty.trigger_page, request, **NOTIFY)
        except ActivityError as err:
            self.timeline.record("page failed", cause(err))
            return
        self.timeline.record("paged", f"PagerDuty event sent (dedup key {request.dedup_key})")
        try:
            self.ref = await workflow.execute_activity(pagerduty.find_pagerduty_incident, request.dedup_key, **NOTIFY)
        except ActivityError as err:
            self.timeline.record("PagerDuty incident not found", cause(err))
            return
        await self.note("initial-notification", initial_note)

    async def tell_other_path(self, request: PageRequest, reason: str) -> None:
        notice = FallbackNotice(
            dedup_key=request.dedup_key,
            summary=request.summary,
            severity=request.severity,
            reason=reason,
            workflow_id=workflow.info().workflow_id,
        )
        try:
            told = await workflow.execute_activity(fallback.notify_fallback, notice, **NOTIFY)
        except ActivityError as err:
            self.timeline.record("other path failed", cause(err))
            return
        self.timeline.record("other path told" if told.sent else "no other path", told.detail)

    def key(self, name: str) -> str:
        return f"{self.note_prefix}/{name}"

    # ------------------------------------------------------------------ acknowledgement ladder

    async def await_acknowledgement(self, timers: SeverityPolicy, acknowledged: Callable[[], bool], wait: Wait) -> None:
        """Wait for a person; at each escalation timer climb one level of the ladder."""
        paged_at = workflow.now()
        if timers.respond_within is not None and not await wait(acknowledged, timers.respond_within):
            self.timeline.record("response target missed", f"no acknowledgement within {fmt(timers.respond_within)}")
        level = 1
        while not acknowledged():
            if timers.escalate_after is None or level >= self.levels:
                await wait(acknowledged, None)
                break
            remaining = paged_at + timers.escalate_after * level - workflow.now()
            if await wait(acknowledged, remaining):
                break
            level += 1
            await self.escalate(level, f"not acknowledged within {fmt(timers.escalate_after * (level - 1))}")

    async def escalate(self, level: int, reason: str) -> None:
        if self.unpaged is not None:  # nobody was paged yet: page, rather than escalate nothing
            await self.page(*self.unpaged)
            return
        if self.ref is None or self.ref.incident_id is None:
            self.timeline.record("escalation not possible", f"no PagerDuty incident to escalate to level {level}")
            return
        request = EscalateRequest(incident_id=self.ref.incident_id, level=level)
        try:
            await workflow.execute_activity(pagerduty.escalate_pagerduty_incident, request, **NOTIFY)
        except ActivityError as err:
            self.timeline.record("escalation failed", cause(err))
            return
        self.ref.escalation_level = level
        self.timeline.record("escalated", f"PagerDuty level {level}: {reason}")

    async def climb(self, reason: str) -> None:
        """One more level, unless the ladder's top is reached."""
        if self.ref is not None and self.ref.escalation_level < self.levels:
            await self.escalate(self.ref.escalation_level + 1, reason)

    # ------------------------------------------------------------------ what PagerDuty is told

    async def note(self, key: str, content: str, defer: bool = False) -> None:
        """`defer`: no batch of its own in lean runs; it goes out with the next one (at the
        latest when the run closes)."""
        if self.ref is None or self.ref.incident_id is None:
            return
        if self.lean:
            (self.deferred if defer else self.outbox).append(PagerDutyNote(note_key=self.key(key), content=content))
            return
        request = NoteRequest(incident_id=self.ref.incident_id, note_key=self.key(key), content=content)
        try:
            await workflow.execute_activity(pagerduty.add_pagerduty_note, request, **NOTIFY)
        except ActivityError as err:
            self.timeline.record("PagerDuty note failed", f"{key}: {cause(err)}")

    def audit_note(self, key: str, content: str) -> None:
        """An operator's action, noted soon after (handlers themselves run no activities)."""
        if self.lean:
            if self.ref is not None and self.ref.incident_id is not None:
                self.outbox.append(PagerDutyNote(note_key=self.key(key), content=content))
        else:
            self.audit_notes.append((key, content))

    def acknowledge_soon(self) -> None:
        """Lean runs acknowledge the page as the acknowledgement arrives, in the same batch as
        its audit note."""
        if self.lean and self.ref is not None and not self.acknowledged:
            self.acknowledged = self.owe_acknowledge = True

    async def acknowledge(self) -> None:
        if self.lean and self.acknowledged:
            return
        self.acknowledged = True
        await self._page_state(pagerduty.acknowledge_page, "PagerDuty acknowledged", resolve=False)

    async def resolve(self) -> None:
        await self._page_state(pagerduty.resolve_page, "PagerDuty resolved", resolve=True)

    async def _page_state(self, legacy: Callable[[str], str], event: str, resolve: bool) -> None:
        if self.ref is None:
            return
        if self.lean:
            if resolve:
                self.owe_resolve = True
            else:
                self.owe_acknowledge = True
            return
        try:
            await workflow.execute_activity(legacy, self.ref.dedup_key, **NOTIFY)
        except ActivityError as err:
            self.timeline.record(f"{event} failed", cause(err))
            return
        self.timeline.record(event)

    # ------------------------------------------------------------------ senders

    async def send_audit_notes(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self.audit_notes))
            key, content = self.audit_notes[0]
            await self.note(key, content)
            self.audit_notes.pop(0)

    def owed(self) -> bool:
        return bool(self.outbox) or self.owe_acknowledge or self.owe_resolve

    async def send_outbox(self) -> None:
        while True:
            await workflow.wait_condition(lambda: self.ref is not None and self.owed())
            assert self.ref is not None
            batch = PagerDutySync(
                dedup_key=self.ref.dedup_key,
                incident_id=self.ref.incident_id,
                notes=self.deferred + self.outbox,
                acknowledge=self.owe_acknowledge,
                resolve=self.owe_resolve,
            )
            self.deferred, self.outbox, self.owe_acknowledge, self.owe_resolve = [], [], False, False
            self.sending = True
            try:
                synced = await workflow.execute_activity(pagerduty.sync_pagerduty, batch, **PAGE)
            except ActivityError as err:
                self.timeline.record("PagerDuty update failed", cause(err))
            else:
                for refusal in synced.refused:
                    self.timeline.record("PagerDuty note refused", refusal)
                if batch.acknowledge and not batch.resolve:
                    self.timeline.record("PagerDuty acknowledged")
                if batch.resolve:
                    self.timeline.record("PagerDuty resolved")
            finally:
                self.sending = False

    async def drain(self) -> None:
        """Before the run ends: everything owed to PagerDuty has gone out."""
        if self.audit_sender is None:
            return
        if self.lean:
            if self.ref is None:
                self.deferred, self.outbox, self.owe_acknowledge, self.owe_resolve = [], [], False, False
            self.outbox, self.deferred = self.deferred + self.outbox, []
            await workflow.wait_condition(lambda: not self.owed() and not self.sending)
        else:
            await workflow.wait_condition(lambda: not self.audit_notes)
        self.audit_sender.cancel()
