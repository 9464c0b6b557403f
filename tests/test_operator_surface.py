"""The CLI's and the approval page's operator commands work on the run of any runbook.

A tiny runbook defined here, `ChangeWindowWorkflow`, offers the operator surface every
runbook has (the `view` query, the `approve` Update answering an OperatorReply) and nothing
of an incident; `runbook runs`, `show`, `approve`, `audit` and the approval page drive it on
the dev server, the acting commands through the sign-in service (`runbook login`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from contracts import Approve, OperatorReply
from runbook_cli.main import parser
from tests.policies import default_policy
from tests.test_signin import PASSWORDS, operator_app, refused, runbook, serving

PLAN_ID = "plan-0123456789ab"


@workflow.defn
class ChangeWindowWorkflow:
    """Not an incident: a change that waits for one approval, then finishes."""

    def __init__(self) -> None:
        self.status = "awaiting_approval"
        self.approved_by: str | None = None
        self.timeline: list[dict[str, str]] = []

    @workflow.run
    async def run(self, summary: str) -> dict[str, Any]:
        self.summary = summary
        self.opened_at = workflow.now().isoformat()
        self.note("propose", "proposed", detail="open the change window on db-primary")
        await workflow.wait_condition(lambda: self.approved_by is not None)
        self.status = "done"
        self.note("close", "closed", detail="change window opened")
        return {"outcome": "done", "view": self.view()}

    def note(self, step: str, event: str, actor: str = "runbook", detail: str = "") -> None:
        self.timeline.append(
            {"at": workflow.now().isoformat(), "step": step, "event": event, "actor": actor, "detail": detail}
        )

    @workflow.update
    def approve(self, request: Approve) -> OperatorReply:
        self.approved_by = request.by
        self.note("approve", "approved", actor=request.by, detail=request.comment or "")
        return OperatorReply.model_validate({"message": f"approved by {request.by}", "status": "resolved"})

    @approve.validator
    def refuse(self, request: Approve) -> None:
        if request.by == "mallory":
            raise ValueError("mallory may not approve")
        if self.approved_by is not None or request.plan_id != PLAN_ID:
            raise ValueError(f"no pending plan {request.plan_id}")

    @workflow.query
    def view(self) -> dict[str, Any]:
        pending = None
        if self.approved_by is None:
            pending = {"plan_id": PLAN_ID, "action": "open_change_window", "target": "db-primary"}
        return {
            "workflow_id": workflow.info().workflow_id,
            "status": self.status,
            "summary": self.summary,
            "opened_at": self.opened_at,
            "pending_approval": pending,
            "outcome": None,
            "timeline": self.timeline,
        }


@dataclass
class Runs:
    client: Client
    task_queue: str
    start: Callable[..., Any]
    url: str  # the operator listener: sign-in service, API and approval page
    login: Callable[[str], Awaitable[None]]  # `runbook login --as NAME --password-stdin`


@contextlib.contextmanager
def operator_listener(dev_env: WorkflowEnvironment, task_queue: str) -> Iterator[str]:
    target = dev_env.client.service_client.config.target_host
    with serving(operator_app(target, task_queue, default_policy())) as url:
        yield url


@pytest.fixture
async def runs(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> AsyncIterator[Runs]:
    """A worker for the tiny runbook; the CLI pointed at the dev server (and at no TOML profile)
    and at an operator listener, with a session file of its own."""
    empty = tmp_path / "temporal.toml"
    empty.write_text("")
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(empty))
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    monkeypatch.setenv("RUNBOOK_SESSION_FILE", str(tmp_path / "session.json"))
    task_queue = f"change-{uuid.uuid4()}"

    async def login(user: str) -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORDS[user] + "\n"))
        assert f"signed in as {user}" in await runbook(capsys, "login", "--as", user, "--password-stdin")

    started: list[WorkflowHandle] = []

    async def start(memo: dict[str, Any] | None = None) -> WorkflowHandle:
        handle = await dev_env.client.start_workflow(
            ChangeWindowWorkflow.run,
            "open the change window",
            id=f"change/{uuid.uuid4().hex[:12]}",
            task_queue=task_queue,
            memo=memo,
        )
        started.append(handle)
        for _ in range(100):  # the first workflow task has run: the view has its fields
            with contextlib.suppress(Exception):
                if (await handle.query(ChangeWindowWorkflow.view))["timeline"]:
                    return handle
            await asyncio.sleep(0.05)
        raise AssertionError("the run never started")

    async with Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[ChangeWindowWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        with operator_listener(dev_env, task_queue) as url:
            monkeypatch.setenv("RUNBOOK_SIGNIN_URL", url)
            yield Runs(client=dev_env.client, task_queue=task_queue, start=start, url=url, login=login)
        for handle in started:
            with contextlib.suppress(Exception):
                await handle.terminate("test done")


async def listed(capsys: pytest.CaptureFixture[str], *argv: str, until: Callable[[list[dict]], bool]) -> list[dict]:
    """`runbook runs ... --json`, again until visibility (eventually consistent) shows what `until` wants."""
    rows: list[dict] = []
    for _ in range(100):
        rows = [json.loads(line) for line in (await runbook(capsys, "runs", *argv, "--json")).splitlines()]
        if until(rows):
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"runbook runs {' '.join(argv)} never showed it: {rows}")


async def test_runs_lists_the_runs_of_any_runbook(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    with_status = await runs.start(memo={"status": "awaiting_approval"})
    without = await runs.start()
    ours = {with_status.id, without.id}

    rows = await listed(
        capsys, "--runbook", "ChangeWindowWorkflow", until=lambda rows: ours <= {r["workflow_id"] for r in rows}
    )
    by_id = {row["workflow_id"]: row for row in rows}
    assert by_id[with_status.id]["status"] == "awaiting_approval"  # the runbook's own status, from the memo
    assert by_id[without.id]["status"] == "running"  # else Temporal's
    assert {row["runbook"] for row in rows} == {"ChangeWindowWorkflow"}
    assert all(row["started_at"] and row["execution_status"] == "running" for row in by_id.values())
    started = [row["started_at"] for row in rows]
    assert started == sorted(started, reverse=True)  # newest first
    assert [r["workflow_id"] for r in rows if r["workflow_id"] in ours] == [without.id, with_status.id]

    await runs.client.get_workflow_handle(without.id).terminate("done with it")
    still_open = await listed(
        capsys,
        "--runbook",
        "ChangeWindowWorkflow",
        "--open",
        until=lambda rows: without.id not in {r["workflow_id"] for r in rows},
    )
    assert with_status.id in {row["workflow_id"] for row in still_open}

    everything = await listed(capsys, until=lambda rows: with_status.id in {r["workflow_id"] for r in rows})
    assert any(row["runbook"] == "ChangeWindowWorkflow" for row in everything)
    table = await runbook(capsys, "runs", "--runbook", "ChangeWindowWorkflow")
    assert "WORKFLOW ID" in table and with_status.id in table and "awaiting_approval" in table
    incidents_only = await runbook(capsys, "runs", "--runbook", "incident", "--json")  # the friendly name
    assert all(json.loads(line)["runbook"] == "IncidentResponseWorkflow" for line in incidents_only.splitlines())
    assert with_status.id not in incidents_only


async def test_show_approve_and_audit_any_runbooks_run(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    handle = await runs.start()

    shown = await runbook(capsys, "show", handle.id)
    assert f"{handle.id}  [ChangeWindowWorkflow]  open the change window" in shown
    assert "status        awaiting_approval" in shown
    assert f"AWAITING APPROVAL  {PLAN_ID}" in shown and "target: db-primary" in shown
    assert "propose     proposed: open the change window on db-primary" in shown
    as_json = json.loads(await runbook(capsys, "show", handle.id, "--json"))
    assert as_json == await handle.query(ChangeWindowWorkflow.view)

    await runs.login("mallory")
    err = await refused(capsys, "approve", handle.id)
    assert err.code == 1 and "refused: mallory may not approve" in str(err)
    err = await refused(capsys, "approve", handle.id, "--as", "bob")  # not who signed in
    assert err.code == 2 and "--as bob" in str(err) and "signed in as mallory" in str(err)
    await runs.login("bob")
    err = await refused(capsys, "approve", handle.id, "--as", "bob", "--plan", "plan-stale")
    assert err.code == 1 and "no pending plan plan-stale" in str(err)
    assert (await handle.query(ChangeWindowWorkflow.view))["pending_approval"] is not None  # nothing changed

    assert "approved by bob" in await runbook(capsys, "approve", handle.id, "--comment", "go")
    assert (await handle.result())["outcome"] == "done"

    err = await refused(capsys, "approve", handle.id, "--as", "bob")  # finished: read from its result
    assert err.code == 1 and "nothing awaits approval (status done)" in str(err)
    trail = [json.loads(line) for line in (await runbook(capsys, "audit", handle.id)).splitlines()]
    assert [(e["event"], e["actor"]) for e in trail] == [
        ("proposed", "runbook"),
        ("approved", "bob"),
        ("closed", "runbook"),
    ]
    assert all(e["workflow_id"] == handle.id and e["runbook"] == "ChangeWindowWorkflow" for e in trail)
    assert "done" in await runbook(capsys, "show", handle.id)


async def test_errors_name_what_is_missing(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    err = await refused(capsys, "show", "change/no-such-run")
    assert err.code == 2 and "no run change/no-such-run" in str(err)
    err = await refused(capsys, "show", "incident/nope/eu-central-1")
    assert err.code == 2 and "no incident incident/nope/eu-central-1" in str(err)
    handle = await runs.start()
    err = await refused(capsys, "comment", handle.id, "--text", "hello")
    assert err.code == 2 and "runbook login" in str(err)
    await runs.login("bob")
    err = await refused(capsys, "comment", handle.id, "--text", "hello")  # this runbook has no comment
    assert err.code == 1 and "refused:" in str(err) and "comment" in str(err)
    with pytest.raises(SystemExit) as usage:
        parser().parse_args(["runs", "--runbook", "not a name"])
    assert usage.value.code == 2
    assert "argument --runbook" in capsys.readouterr().err


# --------------------------------------------------------------------------- approval page


async def test_the_approval_page_lists_and_approves_any_runbooks_run(runs: Runs) -> None:
    handle = await runs.start()
    async with httpx.AsyncClient(base_url=runs.url, follow_redirects=False, timeout=30) as http:
        for user in ("mallory", "bob"):
            signed_in = await http.post("/ui/login", data={"user": user, "password": PASSWORDS[user]})
            assert signed_in.status_code == 303
            listing = await http.get("/ui")
            link = f"/ui/incident?id={quote(handle.id, safe='')}"
            assert link in listing.text and "ChangeWindowWorkflow" in listing.text
            assert "action=open_change_window" in listing.text
            detail = await http.get(link)
            assert detail.status_code == 200 and f"Awaiting approval: {PLAN_ID}" in detail.text
            assert "db-primary" in detail.text and "open the change window on db-primary" in detail.text
            csrf = detail.text.split('name="csrf" value="')[1].split('"')[0]
            answer = await http.post("/ui/approve", data={"id": handle.id, "plan_id": PLAN_ID, "csrf": csrf})
            shown = await http.get(answer.headers["location"])
            if user == "mallory":
                assert "refused: mallory may not approve" in shown.text
                assert (await handle.query(ChangeWindowWorkflow.view))["pending_approval"] is not None
        assert "approved by bob" in shown.text
    assert (await handle.result())["outcome"] == "done"
