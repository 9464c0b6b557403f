"""Which services a maintenance window holds (runbooks/maintenance.md): while one does, an alert
for the service goes to the window's run, recorded there, instead of opening an incident;
alerts of a severity the policy exempts (`maintenance.exempt`, default P0) still do.

The intake learns it from Temporal's visibility: a window indexes itself as holding its
service (search attributes `IncidentService`, `IncidentStatus=holding`) and stops holding
when it closes, so the answer is as durable as the run and needs no state in the intake. One
query for every service at most every `ttl` seconds keeps it cheap under an alert storm. When
visibility cannot answer, the alert opens its incident as it would without a window: an alert
is never dropped for want of an answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta

from contracts import SEARCH_SERVICE, Alert, Policy
from contracts.maintenance import HOLDING
from intake.handoff import Handoff

log = logging.getLogger(__name__)
TTL = 2.0  # seconds an answer is reused
READ_TIMEOUT = 2.0  # seconds visibility may take to answer; slower: not known


class MaintenanceHolds:
    """The held services, read with one visibility query for all of them at most every `ttl`
    seconds (concurrent alerts share the read in flight)."""

    def __init__(
        self, handoff: Handoff, policy: Policy, ttl: float = TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.handoff, self.policy, self.ttl, self.clock = handoff, policy, ttl, clock
        self._held: dict[str, str] = {}  # service -> the window's workflow id
        self._until = float("-inf")
        self._known = False  # whether a read has ended (answered, or not known)
        self._reading: asyncio.Task[None] | None = None

    async def holder(self, alert: Alert) -> str | None:
        """The workflow id of the window holding the alert's service, if the alert is to go there.

        Only the intake's first read is waited for. After that an answer older than `ttl` is
        read again in the background while alerts go on with the last one (at most `ttl` plus
        one read old): in a storm, visibility on a busy server answered slowly, and every alert
        waiting for it cut the intake's rate by a third. A window that has just closed takes no
        signal, so its alerts open their incidents after all; one that has just opened holds
        from the next read on."""
        if alert.severity is not None and alert.severity in self.policy.maintenance.exempt:
            return None
        if self.clock() >= self._until and self._reading is None:
            self._reading = asyncio.create_task(self._refresh())
        if not self._known and self._reading is not None:
            await asyncio.shield(self._reading)
        return self._held.get(alert.service)

    async def _refresh(self) -> None:
        held = await self._read()
        # not known (visibility did not answer) counts as nothing held for the same `ttl`:
        # alerts open their incidents, and a visibility in trouble is asked less
        self._held, self._until, self._known = held or {}, self.clock() + self.ttl, True
        self._reading = None

    async def _read(self) -> dict[str, str] | None:
        try:
            client = await self.handoff.client()
            held: dict[str, str] = {}
            listing = client.list_workflows(HOLDING, limit=1000, rpc_timeout=timedelta(seconds=READ_TIMEOUT))
            async with asyncio.timeout(READ_TIMEOUT):
                async for execution in listing:
                    service = execution.typed_search_attributes.get(SEARCH_SERVICE)
                    if service is not None:
                        held.setdefault(service, execution.id)
            return held
        except Exception as err:  # noqa: BLE001 - any failure to ask is "not known": alerts open incidents
            log.warning("cannot ask which services maintenance windows hold: %s", err)
            return None
