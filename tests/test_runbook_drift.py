"""The human runbook and the workflow must name the same steps in the same order."""

from __future__ import annotations

import inspect
import re

from settings import PROJECT_ROOT
from workflows.incident_response import STEPS, IncidentResponseWorkflow

RUNBOOK = PROJECT_ROOT / "runbooks" / "p0-incident-response.md"


def runbook_steps() -> list[str]:
    return re.findall(r"^## Step `([a-z_-]+)`", RUNBOOK.read_text(), flags=re.MULTILINE)


def test_runbook_lists_the_workflows_steps_in_order() -> None:
    assert runbook_steps() == list(STEPS)


def test_every_step_is_a_method_and_every_step_method_is_listed() -> None:
    methods = {
        name.removeprefix("step_")
        for name, _ in inspect.getmembers(IncidentResponseWorkflow)
        if name.startswith("step_")
    }
    assert methods == set(STEPS)


def test_timeline_steps_are_runbook_steps() -> None:
    source = inspect.getsource(IncidentResponseWorkflow)
    entered = set(re.findall(r'self\.enter\("([a-z_-]+)"', source))
    assert entered and entered <= set(STEPS)
