"""The approval gate: a plan waits for the approvers its risk level needs.

Plan-bound (an approval names the plan id, a hash of what the plan does), approvers per risk
level, four eyes, N distinct approvers, a reminder and re-page ladder, and the policy's final
answer when nobody decides. The gate is armed completely before a plan becomes visible to
the Update validators, so no approval is ever judged by rules that are not yet known.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Generic, Protocol, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts import ApprovalRule, Approve, Decision, Policy, Reject

from workflows.kit.timeline import Timeline, fmt


class Refused(ValueError):
    """An operator command that cannot be carried out; the Update is rejected unchanged."""


class Plan(Protocol):
    @property
    def plan_id(self) -> str: ...

    @property
    def action_name(self) -> str: ...

    def describe(self) -> str: ...


P = TypeVar("P", bound=Plan)

# patch: a four-eyes plan of a run no person opened waits for two approvers
MACHINE_OPENED = "four-eyes-two-when-no-person-opened"

Wait = Callable[[Callable[[], bool], timedelta | None], Awaitable[bool]]


class ApprovalGate(Generic[P]):
    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.pending: P | None = None
        self.decision: Decision | None = None
        self.given: list[Decision] = []
        # approval rules per risk level; runs from before them had one approver from `approvers`
        self.rules_mode = False
        self.rule: ApprovalRule | None = None

    def reset(self) -> None:
        self.decision, self.given = None, []

    def arm(self, plan: P, policy: Policy, rules_mode: bool, requesters: set[str] | None = None) -> None:
        """Rules first, then the plan: validators see a plan only with its rules known.

        Four eyes means two people: when no person asked for the run (an alert opened it, so
        its requesters are the intake and the alert's sender, none of them an operator in the
        policy), a four-eyes rule needs two distinct approvers even where it says one."""
        self.rules_mode = rules_mode
        rule = policy.rule_for(plan.action_name) if rules_mode else None
        if (
            rule is not None
            and rule.four_eyes
            and rule.required < 2
            and requesters
            and not any(policy.may_acknowledge(name) for name in requesters)
            and workflow.patched(MACHINE_OPENED)
        ):
            rule = rule.model_copy(update={"required": 2})
            self.timeline.record(
                "two approvers needed",
                f"{plan.plan_id}: four eyes, and no person opened this run ({', '.join(sorted(requesters))})",
            )
        self.rule = rule
        self.pending = plan

    async def decide(
        self,
        plan: P,
        policy: Policy,
        wait: Wait,
        withdrawn: Callable[[], str | None],
        climb: Callable[[str, P], Awaitable[None]],
        lean: bool,
    ) -> Decision | None:
        """Waits on the ladder's rungs, then to the timeout. None: withdrawn before a decision."""
        timeout = policy.timers.approval_timeout

        def settled() -> bool:
            return self.decision is not None or withdrawn() is not None

        proposed_at = workflow.now()
        ladder = policy.approvals.ladder if (self.rules_mode and policy.approvals) else []
        for rung in sorted((r for r in ladder if r.after < timeout), key=lambda r: r.after):
            if await wait(settled, max(proposed_at + rung.after - workflow.now(), timedelta(0))):
                break
            await climb(rung.action, plan)
        # runs from before the lean kit waited once more even when settled (a timer in history)
        decided = (
            settled()
            if lean and settled()
            else await wait(settled, max(proposed_at + timeout - workflow.now(), timedelta(0)))
        )
        self.pending = None
        reason = withdrawn()
        if self.decision is None and reason is not None:
            self.timeline.record("proposal withdrawn", reason)
            return None
        if self.decision is None and not decided:
            # the policy's final answer: approve (low risk only, where it says so) or deny
            approves = self.rule is not None and self.rule.on_timeout == "approve"
            why = f"{'low risk, ' if approves else ''}no decision within {fmt(timeout)}"
            self.decision = Decision(
                approved=approves,
                by="policy" if approves else "runbook",
                at=workflow.now(),
                plan_id=plan.plan_id,
                reason=why,
            )
            self.timeline.record("approved by policy" if approves else "approval timed out", why)
        assert self.decision is not None
        return self.decision

    # ------------------------------------------------------------------ operators

    def approvers_so_far(self) -> list[str]:
        return list(dict.fromkeys(a.by for a in self.given))

    def validate(
        self, policy: Policy, person: str, plan_id: str, approving: bool, requesters: set[str], state: str
    ) -> None:
        plan = self.pending
        if plan is None:
            raise Refused(f"nothing awaits approval: {state}")
        if self.decision is not None:
            raise Refused(f"{plan.plan_id} was already decided by {self.decision.by}")
        if plan_id != plan.plan_id:
            raise Refused(f"unknown plan {plan_id}: the plan awaiting approval is {plan.plan_id}")
        if not self.rules_mode:
            if not policy.may_approve(person):
                raise Refused(f"{person} may not approve or reject: not an approver in the policy")
            return
        rule, risk = self.rule or policy.rule_for(plan.action_name), policy.risk_of(plan.action_name).value
        if person not in policy.members(rule):
            raise Refused(
                f"{person} may not approve or reject {plan.action_name} ({risk} risk): "
                "not an approver of that risk level in the policy"
            )
        names = self.approvers_so_far()
        if approving and person in names:
            raise Refused(f"{person} already approved {plan.plan_id}: another approver is needed")
        completes = len(names) + 1 >= rule.required
        if approving and rule.four_eyes and completes and set(names) | {person} <= requesters:
            raise Refused(
                f"four eyes: {person} opened this incident and cannot be the only approver of a {risk} risk action"
            )

    def approve(self, request: Approve, policy: Policy) -> tuple[str, str]:
        """Records one approval; returns (audit detail, reply)."""
        approval = Decision(
            approved=True, by=request.by, at=workflow.now(), plan_id=request.plan_id, reason=request.comment or ""
        )
        if not self.rules_mode:
            self.decision = approval
            return (
                f"{request.plan_id} {request.comment or ''}".strip(),
                f"{request.plan_id} approved by {request.by}; remediation starts",
            )
        assert self.pending is not None
        rule = self.rule or policy.rule_for(self.pending.action_name)
        self.given.append(approval)
        names = self.approvers_so_far()
        if len(names) >= rule.required:
            self.decision = approval.model_copy(update={"by": ", ".join(names)})
        count = f"approval {len(names)} of {rule.required}"
        detail = f"{request.plan_id} ({count}) {request.comment or ''}".strip()
        if self.decision is not None:
            return detail, f"{request.plan_id} approved by {', '.join(names)}; remediation starts"
        return detail, f"{count} for {request.plan_id} recorded; another approver is needed"

    def reject(self, request: Reject) -> None:
        self.decision = Decision(
            approved=False, by=request.by, at=workflow.now(), plan_id=request.plan_id, reason=request.reason
        )
