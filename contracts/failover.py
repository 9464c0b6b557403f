"""Multi-region failover: the Route 53 failover records as read, the readiness checks, and the plans
that move the traffic.

A failover record's SetIdentifier names the region it sends traffic to (the local stack seeds
`eu-central-1` and `us-west-2`); the region of the PRIMARY record is the one serving. A DNS plan
carries the records as they were read and as they must become, computed once; it renders the exact
ChangeResourceRecordSets call (`aws_calls`), so plan mode prints what the activity sends. Failback
is the same kind of plan built the other way round.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Literal

from pydantic import AwareDatetime, Field, JsonValue

from contracts.common import Duration, Strict
from contracts.scaling import AwsCall, EcsCapacityRequest

FailoverRole = Literal["PRIMARY", "SECONDARY"]


class FailoverRecordsRequest(Strict):
    """Which failover record set to read: the public hosted zone by name, and the record."""

    zone_name: str  # "hybrid-routing.example.com."
    record_name: str  # "api.hybrid-routing.example.com."
    record_type: str = "A"


class FailoverRecord(Strict):
    """One failover record as Route 53 lists it (a plain record: values and a TTL, no alias)."""

    set_identifier: str
    failover: FailoverRole
    values: list[str]  # sorted: Route 53 keeps no order among a record's values
    ttl: int
    health_check_id: str | None = None

    @property
    def region(self) -> str:
        return self.set_identifier

    def as_route53(self, name: str, record_type: str) -> dict[str, JsonValue]:
        """The ResourceRecordSet as ChangeResourceRecordSets takes it."""
        record: dict[str, JsonValue] = {
            "Name": name,
            "Type": record_type,
            "SetIdentifier": self.set_identifier,
            "Failover": self.failover,
            "TTL": self.ttl,
            "ResourceRecords": [{"Value": value} for value in self.values],
        }
        if self.health_check_id:
            record["HealthCheckId"] = self.health_check_id
        return record


class FailoverRecords(Strict):
    """The failover record set of one name: empty when the zone has none."""

    hosted_zone_id: str  # bare, without "/hostedzone/"
    zone_name: str
    record_name: str
    record_type: str
    records: list[FailoverRecord]  # ordered by set identifier

    def role(self, role: FailoverRole) -> list[FailoverRecord]:
        return [r for r in self.records if r.failover == role]

    @property
    def serving_region(self) -> str | None:
        """The PRIMARY record's region; None unless there is exactly one PRIMARY record."""
        primary = self.role("PRIMARY")
        return primary[0].region if len(primary) == 1 else None

    def region(self, region: str) -> FailoverRecord | None:
        return next((r for r in self.records if r.region == region), None)

    def problem(self) -> str | None:
        """Why these records cannot be failed over, or None: exactly one PRIMARY and one SECONDARY."""
        if not self.records:
            return f"no failover records for {self.record_name} {self.record_type}"
        roles = sorted(f"{r.set_identifier}={r.failover}" for r in self.records)
        if len(self.role("PRIMARY")) != 1 or len(self.role("SECONDARY")) != 1 or len(self.records) != 2:
            return f"{self.record_name} {self.record_type} needs one PRIMARY and one SECONDARY record, has {roles}"
        return None

    def describe(self) -> str:
        listed = ", ".join(f"{r.set_identifier} {r.failover} -> {' '.join(r.values)}" for r in self.records)
        return f"{self.record_name} {self.record_type}: {listed or 'no failover records'}"


# --- readiness


class PreflightRequest(Strict):
    """Can traffic move to `backup`? Its service against the primary's, its capacity against the
    target, and the DNS records the switch changes."""

    primary: EcsCapacityRequest
    backup: EcsCapacityRequest
    target_count: int = Field(default=3, ge=1)
    dns: FailoverRecordsRequest


PreflightName = Literal[
    "backup service exists",
    "same task definition family",
    "same container images",
    "capacity reaches target",
    "hosted zone exists",
    "failover records exist",
]


class PreflightCheck(Strict):
    name: PreflightName
    ok: bool
    detail: str
    # False: what the check compares against could not be read (the primary's region is the one
    # that is down), so it passes on the approvers' judgement, said to them, not on a reading
    verified: bool = True


class Preflight(Strict):
    """Every check with its result; a failed check is data (its detail says why), not an error."""

    checks: list[PreflightCheck]
    records: FailoverRecords | None = None  # as read by the records check, for the plan

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failures(self) -> list[PreflightCheck]:
        return [check for check in self.checks if not check.ok]

    @property
    def unverified(self) -> list[PreflightCheck]:
        return [check for check in self.checks if check.ok and not check.verified]

    def check(self, name: PreflightName) -> PreflightCheck:
        return next(check for check in self.checks if check.name == name)


# --- DNS plans


class DnsChangePlan(Strict):
    """Make `to_region`'s record the PRIMARY one and the other the SECONDARY: each record is deleted
    exactly as read and created again with its new role in one change batch, which Route 53
    applies all or nothing and refuses if a record no longer is as read. SetIdentifiers, values,
    TTLs and health checks stay with their records."""

    plan_id: str
    hosted_zone_id: str
    zone_name: str
    record_name: str
    record_type: str
    from_records: list[FailoverRecord]
    to_records: list[FailoverRecord]
    reason: str = ""

    @classmethod
    def build(cls, records: FailoverRecords, to_region: str, reason: str = "") -> DnsChangePlan:
        """Raises ValueError unless `records` are one PRIMARY and one SECONDARY, one of them in
        `to_region` (preflight reports both)."""
        problem = records.problem()
        if problem:
            raise ValueError(problem)
        if records.region(to_region) is None:
            raise ValueError(f"no failover record of {records.record_name} in {to_region}: {records.describe()}")
        wanted = [
            r.model_copy(update={"failover": "PRIMARY" if r.region == to_region else "SECONDARY"})
            for r in records.records
        ]
        plan = cls(
            plan_id="",
            hosted_zone_id=records.hosted_zone_id,
            zone_name=records.zone_name,
            record_name=records.record_name,
            record_type=records.record_type,
            from_records=records.records,
            to_records=wanted,
            reason=reason,
        )
        return plan.model_copy(update={"plan_id": _plan_id(plan)})

    def reversed(self, reason: str = "") -> DnsChangePlan:
        """The failback: from the records this plan leaves back to the ones it found."""
        plan = self.model_copy(
            update={"plan_id": "", "from_records": self.to_records, "to_records": self.from_records, "reason": reason}
        )
        return plan.model_copy(update={"plan_id": _plan_id(plan)})

    @property
    def from_region(self) -> str | None:
        return self._primary(self.from_records)

    @property
    def to_region(self) -> str | None:
        return self._primary(self.to_records)

    @property
    def changes_nothing(self) -> bool:
        return self.from_records == self.to_records

    def from_state(self) -> FailoverRecords:
        return self._records(self.from_records)

    def to_state(self) -> FailoverRecords:
        return self._records(self.to_records)

    def change_batch(self) -> dict[str, JsonValue]:
        """The ChangeBatch, deletes before creates; only the records whose role changes."""
        moved = [(old, new) for old, new in zip(self.from_records, self.to_records, strict=True) if old != new]
        changes: list[JsonValue] = [
            {"Action": "DELETE", "ResourceRecordSet": old.as_route53(self.record_name, self.record_type)}
            for old, _ in moved
        ]
        changes += [
            {"Action": "CREATE", "ResourceRecordSet": new.as_route53(self.record_name, self.record_type)}
            for _, new in moved
        ]
        # Route 53 keeps the comment with the change (at most 256 characters): the plan it came from.
        return {"Comment": f"temporal-runbooks {self.plan_id}: {self.to_region} PRIMARY", "Changes": changes}

    def aws_calls(self) -> list[AwsCall]:
        if self.changes_nothing:
            return []
        params: dict[str, JsonValue] = {"HostedZoneId": self.hosted_zone_id, "ChangeBatch": self.change_batch()}
        return [AwsCall(service="route53", operation="ChangeResourceRecordSets", params=params)]

    def describe(self) -> str:
        if self.changes_nothing:
            return f"leave {self.record_name} {self.record_type} as it is: {self.to_region} already PRIMARY"
        return (
            f"make {self.to_region} the PRIMARY and {self.from_region} the SECONDARY failover record of "
            f"{self.record_name} {self.record_type} (zone {self.zone_name} {self.hosted_zone_id})"
        )

    @staticmethod
    def _primary(records: list[FailoverRecord]) -> str | None:
        return next((r.region for r in records if r.failover == "PRIMARY"), None)

    def _records(self, records: list[FailoverRecord]) -> FailoverRecords:
        return FailoverRecords(
            hosted_zone_id=self.hosted_zone_id,
            zone_name=self.zone_name,
            record_name=self.record_name,
            record_type=self.record_type,
            records=records,
        )


class DnsChangeRecord(Strict):
    """What change_failover_records did; `changed=False`: the records already were as planned and
    no call was made."""

    plan_id: str
    changed: bool
    detail: str
    calls: list[AwsCall] = Field(default_factory=list)
    change_id: str | None = None  # Route 53's change (GetChange tells when it is INSYNC)
    change_status: str | None = None
    records: FailoverRecords  # read back after the change (or as found)


# --- ECS: the backup running its tasks


class EcsRunningWait(Strict):
    """Wait until the service runs at least `count` tasks with no deployment rolling out, reading
    every `poll_interval`; past `deadline` (absolute, so a retried attempt keeps it) it fails."""

    cluster: str
    service: str
    region: str
    count: int = Field(ge=0)
    deadline: AwareDatetime
    poll_interval: Duration = timedelta(seconds=5)


def _plan_id(plan: DnsChangePlan) -> str:
    """A hash of what the plan does (not why), so an approval binds to exactly it."""
    body = plan.model_dump(mode="json", exclude={"plan_id", "reason"})
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return f"dns-{digest[:12]}"
