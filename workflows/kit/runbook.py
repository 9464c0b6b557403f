"""The base every runbook workflow shares: the operators' Updates and their validators, the
cancel-aware wait, the step and status bookkeeping, and PagerDuty's own events.

A runbook subclasses `RunbookWorkflow`, calls `start_kit` first in its `run`, and names its
steps `step_<id>`. The handlers here are inherited by `@workflow.defn` classes, so every
runbook answers the same `acknowledge`, `approve`, `reject`, `comment` and `cancel` Updates.
Validators refuse what cannot be done: a refused command changes nothing and leaves no history.

Who acts is proven, not typed (runs from the `signed` patch on): every operator Update carries
the sign-in service's assertion for that person, action, run, plan and exact request, and every
signal the intake's, verified against the keys of the worker's own policy (`trust`), which the
run reads with a local activity, never from its start input (anyone who can start a workflow
could write that). Signals that arrive before the policy is read wait in an inbox.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from activities import policy as policy_activity
    from contracts import (
        Acknowledge,
        Alert,
        Approve,
        Cancel,
        Comment,
        IdentityError,
        OperatorReply,
        PagerDutyEvent,
        Policy,
        Reject,
        Statement,
        verify_operator,
        verify_signal,
    )
    from contracts.identity import read as read_assertion

from workflows.kit import metrics
from workflows.kit.approval import ApprovalGate, Refused
from workflows.kit.pager import Pager
from workflows.kit.timeline import Timeline

# Runs started from now on take the lean kit: fewer activities, batched PagerDuty calls,
# memo and search attributes written only on change. Runs from before replay the old way.
# Retire with workflow.deprecate_patch once no run from before 2026-11-23 is open.
LEAN = "kit-lean"
# Runs started from now on prove who acts (see the module's docstring); runs from before accept
# names as typed. Retire once no run from before 2026-11-24 is open.
SIGNED = "signed-identity"

Apply = Callable[[Any, Statement | None], None]


class RunbookCancelled(Exception):
    """Raised out of a wait when an operator cancelled the runbook; `run` catches it."""


class RunbookWorkflow:
    noun = "run"  # how refusals name the thing: "the incident is closed"
    closed: frozenset[str] = frozenset()
    # Statuses that last seconds: lean runs show them in the view but do not index them.
    passing: frozenset[str] = frozenset()
    status_key: SearchAttributeKey[str] | None = None
    # The kit holds plans of any kind (ApprovalGate is invariant in it); a runbook narrows it to its own.
    gate: ApprovalGate[Any]

    def init_kit(self, note_prefix: str, opened_by: str, status: StrEnum) -> None:
        self.opened_by = opened_by
        self.policy: Policy | None = None
        self.status: Any = status
        self.outcome: str | None = None
        self.timeline = Timeline()
        self.lean = False
        self.searchable = False  # upserts search attributes (runs from before them: memo only)
        self.pager = Pager(self.timeline, note_prefix, lean=False)
        self.gate = ApprovalGate(self.timeline)
        self.cancel_request: Cancel | None = None
        self.acknowledged_by: str | None = None
        self.resolved_in_pagerduty_by: str | None = None
        self.deliveries: set[str] = set()
        self.indexed = status.value
        self.mode_known = False  # set at the top of `run`, once the patches are asked
        self.signed = False
        self.inbox: list[tuple[Apply, Any]] = []  # signals that came before the run could judge them
        self.used_assertions: set[str] = set()  # assertion ids (jti) that acted: each acts once
        self.refused_signals = 0

    def start_kit(self, lean: bool, legacy_patches: Callable[[], tuple[bool, bool]]) -> None:
        """Picks the mode; `legacy_patches` asks the older patches (audit notes, search
        attributes) only for runs from before the lean kit, whose histories hold them."""
        self.lean = self.pager.lean = lean
        if lean:
            self.pager.start_sender()
            self.searchable = True
        else:
            audit_notes, self.searchable = legacy_patches()
            if audit_notes:
                self.pager.start_sender()

    def choose_mode(self) -> bool:
        """Whether the run is lean; call it first thing in `run`, before any await, so signals
        are judged as they come from then on. Runs from the `signed` patch on are lean and prove
        identities (one patch marker, not two); runs from before ask the lean patch."""
        self.signed = workflow.patched(SIGNED)
        lean = self.signed or workflow.patched(LEAN)
        self.mode_known = True
        if not self.signed:
            self.take_inbox()  # as they came, before anything of the run reads them
        return lean

    def adopt_signed_mode(self) -> None:
        """For runbooks born after the signed kit: lean and proving identities from their first
        run, so they ask no patch (call it first thing in `run`, then `trusted_policy`)."""
        self.signed = True
        self.mode_known = True

    async def trusted_policy(self) -> Policy:
        """The worker's own policy, the trust anchor, read by a local activity (no round trip
        to the server); the history keeps what it said, so replays judge alike. Then the
        signals that waited for it are judged."""
        self.policy = await workflow.execute_local_activity(
            policy_activity.load_policy, start_to_close_timeout=timedelta(seconds=30)
        )
        self.take_inbox()
        return self.policy

    # ------------------------------------------------------------------ signals, proven

    def take_signal(self, name: str, payload: Any, apply: Apply) -> None:
        """A signal, applied if proven (signed runs) or as it is (runs from before)."""
        if not self.mode_known or (self.signed and self.policy is None):
            self.inbox.append((apply, (name, payload)))
            return
        statement: Statement | None = None
        if self.signed:
            info = workflow.info()
            try:
                statement = verify_signal(
                    payload, self.the_policy.trust, name, info.workflow_id, info.workflow_start_time
                )
                if statement.jti in self.used_assertions:
                    raise IdentityError("the assertion was used already")
            except IdentityError as err:
                self.refused_signals += 1
                workflow.logger.warning("refused %s signal: %s", name, err)
                return
            self.used_assertions.add(statement.jti)
        apply(payload, statement)

    def take_inbox(self) -> None:
        """Judges the signals that waited for the run's mode (and, signed, its policy)."""
        waiting, self.inbox = self.inbox, []
        for apply, (name, payload) in waiting:
            self.take_signal(name, payload, apply)

    def prove(self, request: Any, action: str, plan_id: str | None = None) -> None:
        """In a validator: the request's assertion proves who sends it (signed runs)."""
        if not self.signed:
            return
        info = workflow.info()
        try:
            verify_operator(
                request,
                self.the_policy.trust,
                action,
                info.workflow_id,
                info.first_execution_run_id,
                plan_id,
                workflow.now(),
                self.used_assertions,
            )
        except IdentityError as err:
            raise Refused(str(err)) from None

    def proven(self, request: Any) -> str | None:
        """In a handler: the id of the key that signed the request, its assertion now spent."""
        if not self.signed or not request.assertion:
            return None
        statement = read_assertion(request.assertion)[0]
        self.used_assertions.add(statement.jti)
        return statement.kid

    @property
    def the_policy(self) -> Policy:
        assert self.policy is not None
        return self.policy

    # ------------------------------------------------------------------ bookkeeping

    @property
    def step(self) -> str:
        return self.timeline.step

    def enter(self, step: str, status: StrEnum) -> None:
        if not self.lean:
            workflow.upsert_memo({"status": status.value})
            if self.searchable and self.status_key is not None:
                workflow.upsert_search_attributes([self.status_key.value_set(status.value)])
        elif status != self.status and status not in self.passing:
            self.index(status)
        self.timeline.step, self.status = step, status

    def index(self, status: StrEnum) -> None:
        """The status search attribute (lean runs: only when what is indexed changes)."""
        if self.searchable and self.status_key is not None and status.value != self.indexed:
            workflow.upsert_search_attributes([self.status_key.value_set(status.value)])
            self.indexed = status.value

    def record(self, event: str, detail: str = "", actor: str = "runbook") -> None:
        self.timeline.record(event, detail, actor)

    def audit(self, event: str, detail: str, actor: str, key_id: str | None = None) -> None:
        """Who did what, when and why (and, proven, by which key): the timeline now, and a note
        on the PagerDuty incident soon after (handlers stay free of activities)."""
        self.timeline.record(event, detail, actor, key_id)
        who = f"{actor} (verified, key {key_id})" if key_id else actor
        self.pager.audit_note(f"audit-{len(self.timeline)}", f"{event} by {who}" + (f": {detail}" if detail else ""))

    def reply(self, message: str) -> OperatorReply:
        return OperatorReply(message=message, status=self.status.value)

    async def continue_if_long(self, after_events: int, next_input: Callable[[], Any]) -> None:
        """A run that lives for days continues as new before its history grows long (or when the
        server suggests it): PagerDuty caught up, the handlers done, then `next_input()`, the
        input that carries the state on (built only then, after the "continued" entry)."""
        info = workflow.info()
        if info.get_current_history_length() < after_events and not info.is_continue_as_new_suggested():
            return
        await self.pager.drain()
        await workflow.wait_condition(workflow.all_handlers_finished)
        self.record("continued", f"a fresh run after {info.get_current_history_length()} history events")
        workflow.continue_as_new(next_input())

    async def wait(self, condition: Callable[[], bool], timeout: timedelta | None = None) -> bool:
        """Every wait of the runbook: a cancellation by an operator ends it at once."""
        try:
            await workflow.wait_condition(lambda: condition() or self.cancel_request is not None, timeout=timeout)
        except TimeoutError:
            return False
        if self.cancel_request is not None:
            raise RunbookCancelled
        return True

    async def close(self, status: StrEnum, outcome: str) -> None:
        """The run's last words: status, outcome, PagerDuty told everything, handlers done.

        Lean runs let PagerDuty catch up first, so "closed" is the timeline's last entry.
        """
        self.status, self.outcome = status, outcome
        metrics.count(
            "runbook_runs_closed",
            "runs of a runbook that closed, by runbook and status",
            runbook=self.noun,
            status=str(status.value),
        )
        if self.lean:  # the status is indexed already; the outcome is in the result
            await self.pager.drain()
            self.record("closed", outcome)
            self.index(status)
        else:
            self.record("closed", outcome)
            workflow.upsert_memo({"status": status.value, "outcome": outcome})
            if self.searchable and self.status_key is not None:
                workflow.upsert_search_attributes([self.status_key.value_set(status.value)])
            await self.pager.drain()
        await workflow.wait_condition(workflow.all_handlers_finished)

    def first_delivery(self, alert: Alert) -> bool:
        """False for an alert delivery the run took before (a sender's retry, a replayed batch)."""
        if alert.delivery_id is None:
            return True
        if alert.delivery_id in self.deliveries:
            return False
        self.deliveries.add(alert.delivery_id)
        return True

    async def climb(self, action: str, plan: Any) -> None:
        """One rung of the approval ladder: the timeline says the plan still waits (a runbook
        with a PagerDuty incident of its own re-pages too)."""
        self.record("reminder" if action == "remind" else "re-page", f"{plan.plan_id} still awaits approval")

    def requesters(self) -> set[str]:
        """Who asked for this run: four eyes keeps them from being its only approver."""
        return {self.opened_by}

    # ------------------------------------------------------------------ operators

    def require_open(self) -> Policy:
        if self.policy is None:
            raise Refused(f"the {self.noun} is still opening; try again in a moment")
        if self.status in self.closed:
            raise Refused(f"the {self.noun} is closed ({self.status.value})")
        return self.policy

    @workflow.signal
    def pagerduty_event(self, event: PagerDutyEvent) -> None:
        """What people did in PagerDuty: an acknowledgement there counts like `runbook ack`."""
        self.take_signal("pagerduty_event", event, self.apply_pagerduty_event)

    def apply_pagerduty_event(self, event: PagerDutyEvent, statement: Statement | None) -> None:
        if event.event_id in self.deliveries or self.status in self.closed:
            return
        known = self.pager.incident_id
        if known is not None and event.incident_id != known:
            return  # a late delivery about another PagerDuty incident of this target
        if self.signed and self.foreign(event):
            return
        self.deliveries.add(event.event_id)
        action = event.event_type.removeprefix("incident.")
        self.record(f"PagerDuty: {action}", f"incident {event.incident_id}", actor=event.agent)
        if event.event_type == "incident.acknowledged" and self.acknowledged_by is None:
            self.acknowledged_by = f"{event.agent} (PagerDuty)"
        elif event.event_type == "incident.resolved":
            self.resolved_in_pagerduty_by = event.agent

    def foreign(self, event: PagerDutyEvent) -> bool:
        """An event of another PagerDuty incident than this run's page (its dedup key says which
        run paged it), or one that happened before this run started: an earlier incident's
        event, redelivered or replayed, must not acknowledge or close this one."""
        mine = self.pager.ref.dedup_key if self.pager.ref is not None else None
        if event.incident_key and mine is not None and event.incident_key != mine:
            return True
        started = workflow.info().workflow_start_time - self.the_policy.trust.clock_skew
        if event.occurred_at < started:
            workflow.logger.warning("ignored PagerDuty event %s: it happened before this run", event.event_id)
            return True
        return False

    @workflow.update
    def acknowledge(self, request: Acknowledge) -> OperatorReply:
        if self.acknowledged_by is not None:
            return self.reply(f"already acknowledged by {self.acknowledged_by}")
        self.acknowledged_by = request.by
        self.audit("acknowledged", request.note or "", request.by, self.proven(request))
        self.pager.acknowledge_soon()
        return self.reply(f"acknowledged by {request.by}")

    @acknowledge.validator
    def validate_acknowledge(self, request: Acknowledge) -> None:
        policy = self.require_open()
        self.prove(request, "acknowledge")
        if not policy.may_acknowledge(request.by):
            raise Refused(f"{request.by} may not acknowledge: not a responder or approver in the policy")

    @workflow.update
    def approve(self, request: Approve) -> OperatorReply:
        key = self.proven(request)
        detail, message = self.gate.approve(request, self.the_policy)
        self.audit("approved", detail, request.by, key)
        return self.reply(message)

    @approve.validator
    def validate_approve(self, request: Approve) -> None:
        self.require_open()
        self.prove(request, "approve", request.plan_id)
        self.validate_decision(request.by, request.plan_id, approving=True)

    @workflow.update
    def reject(self, request: Reject) -> OperatorReply:
        key = self.proven(request)
        self.gate.reject(request)
        self.audit("rejected", f"{request.plan_id}: {request.reason}", request.by, key)
        return self.reply(f"{request.plan_id} rejected by {request.by}")

    @reject.validator
    def validate_reject(self, request: Reject) -> None:
        self.require_open()
        self.prove(request, "reject", request.plan_id)
        self.validate_decision(request.by, request.plan_id, approving=False)

    def validate_decision(self, person: str, plan_id: str, approving: bool) -> None:
        policy = self.require_open()
        self.gate.validate(
            policy, person, plan_id, approving, self.requesters(), state=f"the {self.noun} is {self.status.value}"
        )

    @workflow.update
    def cancel(self, request: Cancel) -> OperatorReply:
        self.cancel_request = request
        self.audit("cancel requested", request.reason, request.by, self.proven(request))
        return self.reply(f"cancelling: {request.reason}")

    @cancel.validator
    def validate_cancel(self, request: Cancel) -> None:
        policy = self.require_open()
        self.prove(request, "cancel")
        if not policy.may_approve(request.by):
            raise Refused(f"{request.by} may not cancel the runbook: not an approver in the policy")
        if self.cancel_request is not None:
            raise Refused(f"already being cancelled by {self.cancel_request.by}")

    @workflow.update
    def comment(self, request: Comment) -> OperatorReply:
        self.audit("comment", request.text, request.by, self.proven(request))
        return self.reply("comment recorded")

    @comment.validator
    def validate_comment(self, request: Comment) -> None:
        policy = self.require_open()
        self.prove(request, "comment")
        if not policy.may_acknowledge(request.by):
            raise Refused(f"{request.by} may not comment: not a responder or approver in the policy")
