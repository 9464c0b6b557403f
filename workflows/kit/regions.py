"""What the region failover and failback runbooks share: the policy's failover entry for their
service, its hosted zone and records, and the worker's own health probes of a region."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import failover as dns
    from activities.runs import Runs
    from contracts import DnsChangePlan, FailoverRecords, FailoverRecordsRequest
    from contracts.failover import DnsChangeRecord
    from contracts.maintenance import HoldRequest
    from contracts.policy import FailoverPolicy, FailoverTarget
    from contracts.systems import ProbeRequest, ProbeResult

from workflows.kit.options import ACT, READ
from workflows.kit.runbook import RunbookWorkflow
from workflows.kit.timeline import cause, fmt

PROBES_SHOWN = 10  # the view keeps the last few probes


class StepDeadline(Exception):
    """A step did not finish within its deadline: the run stops, what is done stays."""


# Runs from here on wait, before their first change, while a maintenance window holds their
# service (runbooks/maintenance.md). Retire once no run from before it is in flight.
MAINTENANCE_HOLD = "region-maintenance-hold"


class RegionRunbook(RunbookWorkflow):
    """A runbook acting on one service's regions (`self.service`, set by the runbook)."""

    service: str
    probes: list[ProbeResult]

    async def wait_for_maintenance(self) -> None:
        """A maintenance window holding the service goes first: its change and its checks would
        fight a region switch. Wait, saying why, until it releases the service, which it always
        does (at its end, or at once with `runbook cancel` on the window: an operator's call when
        the region is down). Runs from before the patch did not ask."""
        if not workflow.patched(MAINTENANCE_HOLD):
            return
        asking = HoldRequest(service=self.service, asking=workflow.info().workflow_id)
        said: str | None = None
        while True:
            held: str | None = await workflow.execute_activity_method(Runs.maintenance_hold, asking, **READ)
            if held is None:
                break
            if held != said:
                self.record("holding", f"{held}: nothing changes until it ends (`runbook cancel` on it ends it now)")
                said = held
            await self.wait(lambda: False, self.failover.probe_every)
        if said is not None:
            self.record("released", f"no maintenance window holds {self.service}; going on")

    async def probe(self, region: str, url: str) -> ProbeResult:
        result: ProbeResult = await workflow.execute_activity(
            dns.probe_health, ProbeRequest(region=region, url=url), **READ
        )
        self.probes = [*self.probes, result][-PROBES_SHOWN:]
        return result

    async def change_records(self, plan: DnsChangePlan) -> DnsChangeRecord:
        """The Route 53 change, once (a retry finds it done), read back, within `dns_within`."""
        try:
            changed: DnsChangeRecord = await workflow.execute_activity(
                dns.change_failover_records,
                plan,
                start_to_close_timeout=timedelta(minutes=1),
                schedule_to_close_timeout=self.failover.dns_within,
                retry_policy=ACT["retry_policy"],
            )
        except ActivityError as err:
            raise StepDeadline(f"the DNS change did not complete: {cause(err)}") from err
        return changed

    async def verify_serving(self, region: str) -> None:
        """DNS names `region` PRIMARY, and its health URL answers within `verify_within`."""
        records: FailoverRecords = await workflow.execute_activity(
            dns.read_failover_records, self.records_request, **READ
        )
        if records.serving_region != region:
            raise StepDeadline(f"DNS serves {records.serving_region}, not {region}: {records.describe()}")
        url = self.health_url(region)
        until = workflow.now() + self.failover.verify_within
        while not (probe := await self.probe(region, url)).ok:
            if workflow.now() >= until:
                raise StepDeadline(f"{region} not healthy within {fmt(self.failover.verify_within)}: {probe.detail}")
            await self.wait(lambda: False, self.failover.probe_every)

    @property
    def failover(self) -> FailoverPolicy:
        policy = self.the_policy.failover
        if policy is None:
            raise ApplicationError("the policy has no failover section: no region is failed over", non_retryable=True)
        return policy

    @property
    def target(self) -> FailoverTarget:
        target = self.failover.services.get(self.service)
        if target is None or self.service not in self.the_policy.services:
            raise ApplicationError(
                f"failover.services has no entry for {self.service}: it never fails over", non_retryable=True
            )
        return target

    def health_url(self, region: str) -> str:
        url = self.target.health_urls.get(region)
        if url is None:
            raise ApplicationError(
                f"failover.services.{self.service}.health_urls has no URL for {region}: it cannot be probed",
                non_retryable=True,
            )
        return url

    @property
    def records_request(self) -> FailoverRecordsRequest:
        target = self.target
        return FailoverRecordsRequest(
            zone_name=target.zone_name, record_name=target.record_name, record_type=target.record_type
        )
