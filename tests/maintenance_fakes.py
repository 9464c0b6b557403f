"""The fakes of the maintenance window's tests: the platform (health, levels, ECS task
definitions, pages) of tests/fakes.py, the ECS capacity of tests/scaling_fakes.py, and a
PagerDuty that keeps its maintenance windows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts import EcsScalePlan, Policy, RemediationPlan, RemediationRecord, ScalingRecord
from contracts.maintenance import CloseWindow, OpenWindow, PagerDutyWindow, WindowClosed
from tests.fakes import CURRENT, FakePlatform
from tests.scaling_fakes import FakeAws

REVISION_4 = CURRENT.rpartition(":")[0] + ":4"


class MaintenanceFakes:
    """`healthy_after`: whether the service is within its levels after the change; `act_fails`:
    the ECS change is refused for good."""

    def __init__(self, policy: Policy) -> None:
        self.platform = FakePlatform(policy)
        self.platform.healthy = True
        self.platform.verify_for = 0.3
        self.aws = FakeAws()
        self.healthy_after = True
        self.act_fails = False
        self.windows: dict[str, PagerDutyWindow] = {}
        self.opened: list[OpenWindow] = []  # calls that opened a window
        self.closed: list[str] = []  # windows a call ended
        self.events: list[str] = []  # in order: window opened, changed, window closed

    @property
    def calls(self) -> list[tuple[str, Any]]:
        return self.platform.calls

    def changed(self, what: str) -> None:
        self.events.append(what)
        self.platform.healthy = self.healthy_after

    @activity.defn(name="open_maintenance_window")
    async def open_maintenance_window(self, request: OpenWindow) -> PagerDutyWindow:
        for window in self.windows.values():
            if window.id == f"PW{request.key[-6:]}":
                return window.model_copy(update={"created": False})
        window = PagerDutyWindow(
            id=f"PW{request.key[-6:]}", service_id="PSVC001", start=request.start, end=request.end, created=True
        )
        self.windows[window.id] = window
        self.opened.append(request)
        self.events.append("window opened")
        return window

    @activity.defn(name="close_maintenance_window")
    async def close_maintenance_window(self, request: CloseWindow) -> WindowClosed:
        if request.window_id in self.closed:
            return WindowClosed(window_id=request.window_id, closed=False, detail="ended already")
        self.closed.append(request.window_id)
        self.events.append("window closed")
        return WindowClosed(window_id=request.window_id, closed=True, detail="closed")

    @activity.defn(name="set_service_task_definition")
    async def set_service_task_definition(self, plan: RemediationPlan) -> RemediationRecord:
        if self.act_fails:
            raise ApplicationError("ECS refused: revision 4 does not exist", non_retryable=True)
        self.calls.append(("set_service_task_definition", plan.to_task_definition))
        self.platform.task_definition = plan.to_task_definition or self.platform.task_definition
        self.changed(f"task definition {self.platform.task_definition.rsplit('/', 1)[-1]}")
        return RemediationRecord(action=plan.action, changed=True, detail=f"now {self.platform.task_definition}")

    @activity.defn(name="force_new_deployment")
    async def force_new_deployment(self, plan: RemediationPlan) -> RemediationRecord:
        self.calls.append(("force_new_deployment", plan.expected_deployment_id))
        self.changed("new deployment")
        return RemediationRecord(action=plan.action, changed=True, detail="redeployed")

    @activity.defn(name="scale_ecs_service")
    async def scale_ecs_service(self, plan: EcsScalePlan) -> ScalingRecord:
        record = await self.aws.scale_ecs_service(plan)
        self.changed(f"desired count {plan.to_count}")
        return record

    def activities(self) -> list[Callable[..., Any]]:
        mine = {"set_service_task_definition", "force_new_deployment"}
        platform = [a for a in self.platform.activities() if getattr(a, "__name__", "") not in mine]
        return [
            *platform,
            self.aws.read_ecs_capacity,
            self.scale_ecs_service,
            self.open_maintenance_window,
            self.close_maintenance_window,
            self.set_service_task_definition,
            self.force_new_deployment,
        ]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
