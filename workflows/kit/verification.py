"""Verification: the target must hold within SLO for a window before a deadline.

Lean runs ask one activity that polls and heartbeats and returns when the window held or the
deadline passed; runs from before it loop here over readings and a timer per round.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities import diagnosis
    from contracts import IncidentTimers, VerifyRequest

from workflows.kit.options import hold
from workflows.kit.timeline import Timeline, cause, fmt

Check = Callable[[], Awaitable[tuple[bool, str]]]
Wait = Callable[[Callable[[], bool], timedelta | None], Awaitable[bool]]


async def hold_by_rounds(check: Check, timers: IncidentTimers, wait: Wait, timeline: Timeline) -> bool:
    deadline = workflow.now() + timers.verify_timeout
    good_since: datetime | None = None
    while True:
        ok, why = await check()
        now = workflow.now()
        if ok:
            good_since = good_since or now
            if now - good_since >= timers.verify_window:
                timeline.record("verified", f"within SLO for {fmt(timers.verify_window)}")
                return True
        else:
            good_since = None
        if now + timers.verify_interval > deadline:
            timeline.record("verification failed", f"not within SLO for {fmt(timers.verify_window)}: {why}")
            return False
        await wait(lambda: False, timers.verify_interval)


async def hold_in_one_activity(request: VerifyRequest, wait: Wait, timeline: Timeline) -> bool:
    """An operator's cancel stops the activity at its next heartbeat and ends the wait."""
    handle = workflow.start_activity(diagnosis.verify_slo, request, **hold(request.deadline - workflow.now()))
    try:
        await wait(handle.done, None)
    except BaseException:
        handle.cancel()
        raise
    try:
        result = handle.result()
    except ActivityError as err:
        timeline.record("verification failed", f"could not verify: {cause(err)}")
        return False
    timeline.record("verified" if result.verified else "verification failed", result.detail)
    return result.verified
