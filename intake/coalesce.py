"""Coalescing: alerts for one target that arrive together become one hand-over.

A storm of alerts for one target would otherwise be one signal-with-start per alert: the
intake could never be faster than Temporal takes single signals, and every alert's body would
land in the incident's history. Here each target (and sender) has a lane. An alert that
arrives while its lane is handing over waits for the next hand-over, which takes everything
that waited (up to `MAX_BATCH_ALERTS` alerts and about `MAX_BATCH_BYTES`) as one signal,
signed once. While the intake is busy (at least `busy` hand-overs in flight), an idle lane
waits `window` seconds for more before it hands over; otherwise it hands over at once, so a
lone alert waits for nothing.

Each sender still gets its 2xx only after Temporal took its alerts: `hand_over` returns when
the batch holding its alert was accepted and raises what the hand-over raised otherwise. An
intake that dies mid-window answered nobody, so the senders retry.

What a run needs of an alert it knows already is that it came again: a repeat of a known
alert (same fingerprint, same state) goes `brief`, without its labels and with its summary
cut, and so does every alert past the first `full_alerts` of an incident. A run's history
grows by a bounded amount per alert whatever the senders send.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from contracts import MAX_BATCH_ALERTS, MAX_BATCH_BYTES, Alert
from intake.handoff import HANDOFF_TIMEOUT, Handoff, Runbook, Unavailable, runbook_of, workflow_id_for

WINDOW = 0.005  # seconds a lane waits for more alerts while the intake is busy
BUSY = 4  # hand-overs in flight from which the intake counts as busy
MAX_IN_FLIGHT = 8  # hand-overs under way at once; the others' alerts wait in their lanes and coalesce
BRIEF_SUMMARY = 200  # characters of a brief alert's summary
FULL_ALERTS = 100  # alerts per incident handed over with their labels and whole summary
KNOWN_INCIDENTS = 10_000  # incidents whose alerts the intake remembers (least recently used go)
KNOWN_ALERTS = 10_000  # alert fingerprints remembered per incident


def approximate_size(alert: Alert) -> int:
    """About the bytes an alert takes in a signal (cheaper than serialising it)."""
    labels = sum(len(key) + len(value) + 6 for key, value in alert.labels.items())
    ids = len(alert.delivery_id or "") + len(alert.fingerprint or "") + len(alert.kind or "")
    return 320 + len(alert.summary) + labels + ids + len(alert.service) + len(alert.region)


def brief(alert: Alert) -> Alert:
    if not alert.labels and len(alert.summary) <= BRIEF_SUMMARY:
        return alert  # nothing to leave out
    summary = alert.summary if len(alert.summary) <= BRIEF_SUMMARY else alert.summary[: BRIEF_SUMMARY - 5] + "[...]"
    return alert.model_copy(update={"labels": {}, "summary": summary, "brief": True})


@dataclass
class Known:
    """What the intake handed over to one incident: its run, its alerts' last states, and how
    many went with their whole body."""

    run_id: str | None = None
    states: dict[str, str] = field(default_factory=dict)
    full: int = 0


@dataclass
class Waiting:
    alert: Alert
    done: asyncio.Future[str | None]


@dataclass
class Lane:
    waiting: list[Waiting] = field(default_factory=list)
    busy: bool = False


class Coalescer:
    def __init__(
        self,
        handoff: Handoff,
        window: float = WINDOW,
        busy: int = BUSY,
        full_alerts: int = FULL_ALERTS,
        counted: Callable[[], None] = lambda: None,
        max_in_flight: int = MAX_IN_FLIGHT,
        slot_timeout: float = HANDOFF_TIMEOUT,
    ) -> None:
        """`counted`: called at each hand-over Temporal took (the intake's metrics);
        `max_in_flight`: hand-overs under way at once (a lane waits up to `slot_timeout` for one,
        then its senders hear 503 and retry)."""
        self.handoff = handoff
        self.slots = asyncio.Semaphore(max_in_flight)
        self.slot_timeout = slot_timeout
        self.counted = counted
        self.window, self.busy = window, busy
        self.in_flight = 0
        self.full_alerts = full_alerts
        self.lanes: dict[tuple[str, str], Lane] = {}
        self.known: OrderedDict[str, Known] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    async def hand_over(self, alert: Alert, opened_by: str, runbook: Runbook = "incident") -> str | None:
        """Hands the alert over with whatever else waits for its target and runbook; returns the
        run's workflow id, or None for a resolution that found no open run. Raises `Unavailable`
        or `Rejected` as the hand-over did."""
        key = (workflow_id_for(runbook, alert.service, alert.region), opened_by)
        lane = self.lanes.setdefault(key, Lane())
        done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        lane.waiting.append(Waiting(alert, done))
        if not lane.busy:
            lane.busy = True
            task = asyncio.create_task(self._drain(key, lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await done

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One of the `max_in_flight` hand-overs under way at once (the lanes' own, and the
        alerts a maintenance window holds); `Unavailable` after `slot_timeout` without one."""
        try:
            await asyncio.wait_for(self.slots.acquire(), self.slot_timeout)
        except TimeoutError:
            raise Unavailable("the intake's hand-overs to Temporal are all busy") from None
        try:
            yield
        finally:
            self.slots.release()

    async def _drain(self, key: tuple[str, str], lane: Lane) -> None:
        try:
            if self.window > 0 and self.in_flight >= self.busy:
                await asyncio.sleep(self.window)
            while lane.waiting:
                try:
                    async with self.slot():
                        taken = take_batch(lane.waiting)  # what waited for the slot goes with it
                        del lane.waiting[: len(taken)]
                        await self._send(key, taken)
                except Unavailable as busy:
                    self._fail(lane.waiting, busy)
                    lane.waiting.clear()
                    return
        finally:
            lane.busy = False
            if not lane.waiting and self.lanes.get(key) is lane:
                del self.lanes[key]

    async def _send(self, key: tuple[str, str], taken: list[Waiting]) -> None:
        workflow_id, opened_by = key
        # Resolutions ahead of the first firing alert only join a run: they must not open one.
        first_firing = next((n for n, w in enumerate(taken) if w.alert.status == "firing"), len(taken))
        for part, start in ((taken[:first_firing], False), (taken[first_firing:], True)):
            if not part:
                continue
            try:
                joined = await self._hand_over(workflow_id, opened_by, [w.alert for w in part], start)
            except Exception as err:  # noqa: BLE001 - every waiter hears why
                self._fail(part, err)
                continue
            for waiting in part:
                if not waiting.done.done():
                    waiting.done.set_result(joined)

    @staticmethod
    def _fail(waiters: list[Waiting], err: BaseException) -> None:
        for waiting in waiters:
            if not waiting.done.done():
                waiting.done.set_exception(err)

    async def _hand_over(self, workflow_id: str, opened_by: str, alerts: list[Alert], start: bool) -> str | None:
        known = self.known.get(workflow_id) or Known()
        full, sent = known.full, []
        for n, alert in enumerate(alerts):
            shaped = self._shaped(known, alert, full, opens=start and n == 0 and known.run_id is None)
            full += not shaped.brief
            sent.append(shaped)
        self.in_flight += 1
        try:
            taken, run_id = await self.handoff.batch(
                workflow_id, sent, opened_by, start, runbook_of(workflow_id), run_id=known.run_id
            )
        finally:
            self.in_flight -= 1
        self.counted()
        if not taken:
            return None
        if run_id is not None and run_id != known.run_id:
            known = Known(run_id=run_id)  # another run than the intake knew: it knows only these
        for alert in sent:
            if alert.fingerprint is not None and (
                alert.fingerprint in known.states or len(known.states) < KNOWN_ALERTS
            ):
                known.states[alert.fingerprint] = alert.status
            known.full += not alert.brief
        self.known[workflow_id] = known
        self.known.move_to_end(workflow_id)
        while len(self.known) > KNOWN_INCIDENTS:
            self.known.popitem(last=False)
        return workflow_id

    def _shaped(self, known: Known, alert: Alert, full: int, opens: bool) -> Alert:
        """The alert whole, or brief when the run knows it already or has its fill of bodies.
        An alert that may open a run the intake knows nothing of goes whole: the run is
        classified from it. (One that reopens a closed run's target may go brief: the brief form
        keeps what classifies it, the kind and severity, and the first of its summary.)"""
        if opens:
            return alert
        repeat = alert.fingerprint is not None and known.states.get(alert.fingerprint) == alert.status
        return brief(alert) if repeat or full >= self.full_alerts else alert


def take_batch(waiting: list[Waiting]) -> list[Waiting]:
    """The first waiting alerts that fit one signal."""
    size = 0
    for n, item in enumerate(waiting[:MAX_BATCH_ALERTS]):
        size += approximate_size(item.alert)
        if size > MAX_BATCH_BYTES and n > 0:
            return waiting[:n]
    return waiting[:MAX_BATCH_ALERTS]
