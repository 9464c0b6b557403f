"""The operations console on the dev server, in a real headless Chromium: runs of several
runbooks (an incident awaiting approval, an incident whose page failed, a scaling run, a
post-incident follow-up) shown with their human runbook's steps and their status; the
diagnosis table coloured as the readings are graded; a metric's chart (inline SVG, datapoints
read from the AWS emulator over HTTP) with its threshold lines; the failed page at the top of the
home view; a long summary that does not widen the page at 390 px; the reports in the bucket,
Markdown rendered with its raw HTML escaped and the PNG chart shown. Screenshots of the home
view, a run page and the reports page at phone and desktop widths go to `artifacts/console/`
(CONSOLE_ARTIFACTS overrides it) for a person to look at. The console's query parameters are
fuzzed: never a 5xx."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import boto3
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import _aws
from activities.runs import Runs
from contracts import Acknowledge, Alert, IncidentStatus, Policy, Severity
from contracts.bedrock_connectivity import BedrockTrigger
from contracts.post_incident import FollowupStatus
from contracts.region_failover import FailoverTrigger
from contracts.scaling_decision import ScalingTrigger
from settings import PROJECT_ROOT
from starter import open_or_join_incident, trigger_bedrock, trigger_failover, trigger_scaling
from tests import fakes
from tests.bedrock_fakes import FakeBedrock, down_until
from tests.conftest import MotoServer, own_moto_server, point_boto3_at
from tests.fakes import FakePlatform, eventually
from tests.identity import INTAKE, signing_client
from tests.policies import default_policy
from tests.scaling_fakes import FakeAws, breach
from tests.test_approval_page import click_and_load, headless_chromium, require_chromium, sign_in_with
from tests.test_intake import intake_policy
from tests.test_post_incident import FakeBucket, Followups, StandInIncident
from tests.test_region_failover import FakeRegions, routes_without_hybrid_router
from tests.test_runbook_drift import runbook_steps
from tests.test_signin import PASSWORDS, operator_app, serving
from workflows.bedrock_connectivity import BedrockConnectivityWorkflow
from workflows.incident_response import IncidentResponseWorkflow
from workflows.post_incident import PostIncidentWorkflow
from workflows.region_failback import RegionFailbackWorkflow
from workflows.region_failover import RegionFailoverWorkflow
from workflows.scaling_decision import ScalingDecisionWorkflow

ARTIFACTS = Path(os.environ.get("CONSOLE_ARTIFACTS", PROJECT_ROOT / "artifacts" / "console"))
# No spaces for 300 characters: a summary the browser can only wrap by breaking the word.
LONG_SUMMARY = "router-" + "x" * 300 + " and then a long tail of words " * 8
# Graded by the default policy: p95 1700 > 1500 warning, error rate 12 > 5 critical, cache 85 ok.
READINGS = {"p95_latency_ms": 1700.0, "error_rate_pct": 12.0, "cache_hit_pct": 85.0}
LEVEL_COLOURS = {
    "ok": "rgba(227, 244, 225, 1)",
    "warning": "rgba(255, 240, 194, 1)",
    "critical": "rgba(249, 211, 207, 1)",
}
REPORT_ID = f"daily/console-{uuid.uuid4().hex[:6]}"


@dataclass
class Console:
    url: str
    client: Client
    policy: Policy
    incident: WorkflowHandle  # awaiting approval, with a diagnosis
    unpaged: WorkflowHandle  # its page failed for good
    scaling: WorkflowHandle  # a plan-only scaling run, closed
    followup: WorkflowHandle  # awaiting its review
    failover: WorkflowHandle  # a plan-only failover, closed
    bedrock: WorkflowHandle  # a plan-only Bedrock run, closed
    scaling_queue: str = ""  # the scaling worker's, for a second run under the scaling run's id

    def runs(self) -> list[tuple[WorkflowHandle, str]]:
        """Each run, and the human runbook whose steps it takes."""
        return [
            (self.incident, "p0-incident-response"),
            (self.unpaged, "p0-incident-response"),
            (self.scaling, "scaling-decisions"),
            (self.followup, "post-incident"),
            (self.failover, "region-failover"),
            (self.bedrock, "bedrock-connectivity"),
        ]

    def link(self, handle: WorkflowHandle) -> str:
        return f"{self.url}/ui/incident?id={quote(handle.id, safe='')}"


def seed_error_rate(region: str) -> None:
    """Half an hour of the error rate the policy's error_rate_pct reads, in the emulator."""
    cloudwatch = boto3.client("cloudwatch", region_name=region)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    cloudwatch.put_metric_data(
        Namespace="HybridRouting",
        MetricData=[
            {
                "MetricName": "ErrorRate",
                "Dimensions": [{"Name": "Service", "Value": "hybrid-router"}],
                "Timestamp": now - timedelta(minutes=30 - minute),
                "Value": 0.5 + minute * 0.4,
            }
            for minute in range(30)
        ],
    )


def seed_report(bucket: str, region: str) -> None:
    """A review's report as the reviews store it: Markdown naming its PNG chart relatively."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, 2))
    FigureCanvasAgg(figure)
    figure.subplots().plot([1, 3, 2, 5])
    png = io.BytesIO()
    figure.savefig(png, format="png")
    name = REPORT_ID.rpartition("/")[2]
    markdown = (
        f"# Daily performance review {name}\n\n| metric | level |\n|---|---|\n| p95 | warning |\n\n"
        '<script>document.title="owned"</script> <b>not bold</b>\n\n'
        f"![overnight]({name}-overnight.png)\n"
    )
    s3 = boto3.client("s3", region_name=region)
    try:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    s3.put_object(Bucket=bucket, Key=f"reports/{REPORT_ID}.md", Body=markdown.encode())
    s3.put_object(Bucket=bucket, Key=f"reports/{REPORT_ID}-overnight.png", Body=png.getvalue())


async def until_status(handle: WorkflowHandle, wanted: IncidentStatus) -> None:
    await eventually(
        lambda: handle.query(IncidentResponseWorkflow.view),
        lambda view: view.status == wanted,
        f"{handle.id} never reached {wanted}",
        shown=lambda view: view.status,
    )


def failover_worker(dev_env: WorkflowEnvironment, task_queue: str) -> tuple[Worker, str]:
    """A worker for the failover runbook, with fake regions, and the service it fails over."""
    policy = default_policy()
    assert policy.failover is not None
    service = f"router-{uuid.uuid4().hex[:6]}"
    policy.services[service] = policy.services["hybrid-router"]
    policy.failover = policy.failover.model_copy(
        update={"services": {service: policy.failover.services["hybrid-router"]}, "confirm_for": timedelta(0)}
    )
    policy.routes = routes_without_hybrid_router(policy)
    regions = FakeRegions()
    regions.started = datetime.now(UTC)
    worker = Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[RegionFailoverWorkflow, RegionFailbackWorkflow],
        activities=[*FakePlatform(policy).activities(), *regions.activities()],
    )
    return worker, service


def bedrock_worker(dev_env: WorkflowEnvironment, task_queue: str) -> tuple[Worker, str]:
    """A worker for the Bedrock runbook, Bedrock failing in a fresh region."""
    policy = default_policy()
    assert policy.bedrock is not None
    region = f"test-{uuid.uuid4().hex[:6]}"
    policy.bedrock.regions[region] = policy.bedrock.regions["eu-central-1"]
    fake = FakeBedrock()
    fake.started = datetime.now(UTC)
    fake.down = down_until(600)
    runs = Runs(dev_env.client, switch=fake.set_hybrid_routing)
    platform = [a for a in FakePlatform(policy).activities() if getattr(a, "__name__", "") != "set_hybrid_routing"]
    worker = Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[BedrockConnectivityWorkflow],
        activities=[
            *platform,
            fake.probe_bedrock,
            fake.simulate_invoke_permission,
            fake.read_bedrock_breaker,
            runs.switch_owner,
            runs.set_hybrid_routing,
        ],
    )
    return worker, region


@pytest.fixture(scope="module")
def console_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """An emulator of the console's own: the session's holds the weeks of metrics other modules
    seeded, and the run page's chart came back without its series after them in CI."""
    with own_moto_server(tmp_path_factory.mktemp("console-moto")) as server:
        yield server


@pytest.fixture
def aws_env(console_moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    return point_boto3_at(console_moto, monkeypatch)


@pytest.fixture
async def console(
    dev_env: WorkflowEnvironment, aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Console]:
    monkeypatch.setattr(fakes, "BAD", READINGS)
    _aws._client.cache_clear()  # the console reads the bucket with the activities' cached clients
    service, other = f"console-{uuid.uuid4().hex[:6]}", f"unpaged-{uuid.uuid4().hex[:6]}"
    policy = intake_policy(service, other)
    seed_error_rate(policy.services[service].region)
    seed_report(policy.reviews.bucket, policy.reviews.bucket_region)
    platform = FakePlatform(policy)
    incidents, scaling_queue, followup_queue, failover_queue, bedrock_queue = (
        f"console-{kind}-{uuid.uuid4()}" for kind in "isfab"
    )
    failovers, failover_service = failover_worker(dev_env, failover_queue)
    bedrocks, bedrock_region = bedrock_worker(dev_env, bedrock_queue)

    scaling_policy = default_policy()
    region = f"test-{uuid.uuid4().hex[:6]}"
    scaling_policy.services["hybrid-router"] = scaling_policy.services["hybrid-router"].model_copy(
        update={"region": region}
    )
    aws = FakeAws()
    aws.started = datetime.now(UTC)
    aws.cpu_load = breach(minutes_before=6)  # sustained: the plan-only run plans a step
    followup_policy = default_policy()
    followup_platform, bucket = FakePlatform(followup_policy), FakeBucket()
    signed = signing_client(dev_env.client)
    async with (
        Worker(
            dev_env.client, task_queue=incidents, workflows=[IncidentResponseWorkflow], activities=platform.activities()
        ),
        Worker(
            dev_env.client,
            task_queue=scaling_queue,
            workflows=[ScalingDecisionWorkflow],
            activities=[*FakePlatform(scaling_policy).activities(), *aws.activities()],
        ),
        Worker(
            dev_env.client,
            task_queue=followup_queue,
            workflows=[PostIncidentWorkflow, StandInIncident],
            activities=[*followup_platform.activities(), bucket.store_postmortem, *Runs(dev_env.client).all()],
        ),
        failovers,
        bedrocks,
    ):
        now = datetime.now(UTC)
        alert = Alert(
            source="test",
            service=service,
            region="eu-central-1",
            summary=LONG_SUMMARY,
            severity=Severity.P1,
            received_at=now,
        )
        incident = await open_or_join_incident(dev_env.client, alert, "intake/test", incidents, INTAKE)

        await until_status(incident, IncidentStatus.AWAITING_ACK)
        await signed.get_workflow_handle(incident.id).execute_update(
            IncidentResponseWorkflow.acknowledge, Acknowledge(by="alice")
        )
        await until_status(incident, IncidentStatus.AWAITING_APPROVAL)

        platform.page_fails = 10**6  # PagerDuty refuses every page from now on
        down = alert.model_copy(update={"service": other, "summary": "unpaged: PagerDuty refused the page"})
        unpaged = await open_or_join_incident(dev_env.client, down, "intake/test", incidents, INTAKE)
        await until_status(unpaged, IncidentStatus.UNPAGED)

        trigger = ScalingTrigger(by="alice", plan=True, reason="console test")
        scaling = await trigger_scaling(dev_env.client, "hybrid-router", region, trigger, scaling_queue, INTAKE)
        await scaling.result()
        failover = await trigger_failover(
            dev_env.client, failover_service, FailoverTrigger(by="bob", plan=True), failover_queue, INTAKE
        )
        await failover.result()
        bedrock = await trigger_bedrock(
            dev_env.client, bedrock_region, BedrockTrigger(by="alice", plan=True), bedrock_queue, INTAKE
        )
        await bedrock.result()

        followups = Followups(dev_env, signed, followup_queue, followup_policy, followup_platform, bucket)
        followup = await followups.start(Severity.P1)
        await followups.until(followup, lambda v: v.status == FollowupStatus.REVIEW_PENDING)

        target = dev_env.client.service_client.config.target_host
        with serving(operator_app(target, incidents, policy)) as url:
            yield Console(
                url, dev_env.client, policy, incident, unpaged, scaling, followup, failover, bedrock, scaling_queue
            )
        for handle in (incident, unpaged, followup):
            if (await handle.describe()).status == 1:  # still running
                await handle.terminate("test done")


@pytest.fixture(scope="module")
def browser_paths() -> tuple[str, str]:
    return require_chromium()


def at_width(browser: Any, width: int) -> None:
    """The viewport of a phone (390 px, mobile) or a desktop, exactly (no window chrome)."""
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 844 if width < 600 else 900, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def scroll_width(browser: Any) -> tuple[int, int]:
    return tuple(
        browser.execute_script("return [document.documentElement.scrollWidth, document.documentElement.clientWidth];")
    )


def screenshot(browser: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight;")
    width = browser.execute_script("return document.documentElement.clientWidth;")
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": min(int(height), 4000), "deviceScaleFactor": 1, "mobile": width < 600},
    )
    path = ARTIFACTS / f"{name}.png"
    browser.save_screenshot(str(path))
    assert path.stat().st_size > 5000, path  # a page, not a blank
    return path


@contextlib.contextmanager
def signed_in_browser(paths: tuple[str, str], url: str) -> Iterator[Any]:
    with headless_chromium(paths) as browser:
        sign_in_with(browser, url, "bob")
        yield browser


# --------------------------------------------------------------------------- in the browser


async def test_each_runbooks_run_is_shown_with_its_steps_and_status(
    console: Console, browser_paths: tuple[str, str]
) -> None:
    from selenium.webdriver.common.by import By

    expected = {}
    for handle, runbook in console.runs():
        view = await handle.query("view", result_type=dict)
        open_ = (await handle.describe()).status == 1
        entered = [t["step"] for t in view["timeline"] if t.get("step")]
        expected[handle.id] = (
            view["status"],
            runbook_steps(PROJECT_ROOT / "runbooks" / f"{runbook}.md"),
            open_,
            entered,
        )

    def look() -> dict[str, tuple[str, list[str], list[str]]]:
        seen = {}
        with signed_in_browser(browser_paths, console.url) as browser:
            for handle, _ in console.runs():
                browser.get(console.link(handle))
                status = browser.find_element(By.ID, "status").text
                steps = browser.find_elements(By.CSS_SELECTOR, "#steps li")
                ids = [li.get_attribute("data-step") for li in steps]
                current = [li.get_attribute("data-step") for li in steps if "current" in li.get_attribute("class")]
                seen[handle.id] = (status, ids, current)
        return seen

    seen = await asyncio.to_thread(look)
    for workflow_id, (status, steps, open_, entered) in expected.items():
        shown_status, shown_steps, current = seen[workflow_id]
        assert f"status: {status}" in shown_status, (workflow_id, shown_status)
        assert shown_steps == steps, workflow_id  # the human runbook's steps, in its order
        last = next(step for step in reversed(entered) if step in steps)
        assert current == ([last] if open_ else []), (workflow_id, current, entered)


async def test_the_diagnosis_is_coloured_as_graded_and_each_metric_charted_with_its_thresholds(
    console: Console, browser_paths: tuple[str, str]
) -> None:
    from selenium.webdriver.common.by import By

    view = await console.incident.query(IncidentResponseWorkflow.view)
    graded = {m.key: m.level for m in view.diagnosis.metrics}
    assert set(graded.values()) == {"ok", "warning", "critical"}  # the test covers every colour

    def look() -> tuple[dict[str, tuple[str, str]], dict[str, Any]]:
        with signed_in_browser(browser_paths, console.url) as browser:
            browser.get(console.link(console.incident))
            rows = {
                row.get_attribute("data-key"): (
                    row.find_elements(By.TAG_NAME, "td")[2].text,
                    row.value_of_css_property("background-color"),
                )
                for row in browser.find_elements(By.CSS_SELECTOR, "#diagnosis tr.reading")
            }
            chart = browser.find_element(By.CSS_SELECTOR, 'svg.chart[data-metric="error_rate_pct"]')
            points = chart.find_element(By.CSS_SELECTOR, "polyline.series").get_attribute("points").split()
            lines = {
                line.get_attribute("class").split()[1]: float(line.get_attribute("data-value"))
                for line in chart.find_elements(By.CSS_SELECTOR, "line.threshold")
            }
            box = chart.rect
            return rows, {"points": points, "lines": lines, "width": box["width"]}

    rows, chart = await asyncio.to_thread(look)
    assert {key: level for key, (level, _) in rows.items()} == graded
    for key, (level, colour) in rows.items():
        assert colour == LEVEL_COLOURS[level], (key, level, colour)
    assert len(chart["points"]) >= 20  # the emulator's datapoints of the last half hour
    assert chart["lines"] == {"target": 1.0, "warning": 2.0, "critical": 5.0}
    assert chart["width"] > 100


async def test_a_failed_page_is_at_the_top_of_the_home_view_and_acknowledged_there(
    console: Console, browser_paths: tuple[str, str]
) -> None:
    from selenium.webdriver.common.by import By

    async with httpx.AsyncClient(base_url=console.url, timeout=60) as mallory:  # a refusal changes nothing
        await mallory.post("/ui/login", data={"user": "mallory", "password": PASSWORDS["mallory"]})
        page = (await mallory.get(console.link(console.unpaged))).text
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        answer = await mallory.post("/ui/acknowledge", data={"id": console.unpaged.id, "csrf": csrf})
        shown = (await mallory.get(answer.headers["location"])).text
        assert 'id="message">refused: ' in shown and "mallory" in shown.split('id="message">')[1].split("</p>")[0]
    assert (await console.unpaged.query(IncidentResponseWorkflow.view)).acknowledged_by is None

    def look() -> tuple[str, str, str, float, float, str]:
        with signed_in_browser(browser_paths, console.url) as browser:
            first = browser.find_element(By.CSS_SELECTOR, "#problems li")
            problems = browser.find_element(By.ID, "problems").rect["y"]
            runs = browser.find_element(By.ID, "open-runs").rect["y"]
            link = first.find_element(By.TAG_NAME, "a")
            href, text, kind = link.get_attribute("href"), first.text, first.get_attribute("class")
            click_and_load(browser, link)
            assert "unpaged" in browser.find_element(By.ID, "status").text
            assert "page to PagerDuty failed" in browser.find_element(By.ID, "problems").text
            click_and_load(browser, browser.find_element(By.ID, "acknowledge"))
            return href, text, kind, problems, runs, browser.find_element(By.ID, "message").text

    href, text, kind, problems_y, runs_y, message = await asyncio.to_thread(look)
    assert href.endswith(quote(console.unpaged.id, safe="")) and "page-failed" in kind
    assert "the page to PagerDuty failed" in text
    assert problems_y < runs_y
    assert not message.startswith("refused"), message
    assert (await console.unpaged.query(IncidentResponseWorkflow.view)).acknowledged_by == "bob"


async def test_phone_width_no_sideways_scrolling_and_screenshots(
    console: Console, browser_paths: tuple[str, str]
) -> None:
    from selenium.webdriver.common.by import By

    pages = {
        "home": f"{console.url}/ui",
        "run": console.link(console.incident),
        "reports": f"{console.url}/ui/reports",
        "report": f"{console.url}/ui/reports/{REPORT_ID}",
        "history": f"{console.url}/ui/history",
    }

    def look() -> dict[str, tuple[int, int]]:
        widths = {}
        with signed_in_browser(browser_paths, console.url) as browser:
            for width, label in ((390, "phone"), (1280, "desktop")):
                for name, url in pages.items():
                    at_width(browser, width)
                    browser.get(url)
                    assert browser.find_element(By.ID, "user").text == "bob"
                    if name == "run":
                        assert LONG_SUMMARY[:40] in browser.find_element(By.TAG_NAME, "h1").text
                        shown = browser.find_element(By.ID, "summary").text
                        assert shown.split() == LONG_SUMMARY.split()  # all of it, wrapped
                    widths[f"{name}-{label}"] = scroll_width(browser)
                    screenshot(browser, f"{name}-{label}")
        return widths

    widths = await asyncio.to_thread(look)
    for name, (scrolled, viewport) in widths.items():
        assert scrolled == viewport, (name, scrolled, viewport)
    assert widths["home-phone"][1] == 390
    for name in ("home", "run", "reports"):
        assert (ARTIFACTS / f"{name}-phone.png").exists() and (ARTIFACTS / f"{name}-desktop.png").exists()


async def test_the_reports_page_lists_the_bucket_and_shows_a_report_with_its_chart(
    console: Console, browser_paths: tuple[str, str]
) -> None:
    from selenium.webdriver.common.by import By

    def look() -> tuple[list[str], int, str, str, str]:
        with signed_in_browser(browser_paths, console.url) as browser:
            browser.get(f"{console.url}/ui/reports")
            listed = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#reports a.report-link")]
            link = browser.find_element(By.CSS_SELECTOR, f'#reports a[href="/ui/reports/{REPORT_ID}"]')
            click_and_load(browser, link)
            image = browser.find_element(By.CSS_SELECTOR, "#report img")
            natural = int(browser.execute_script("return arguments[0].naturalWidth;", image))
            report = browser.find_element(By.ID, "report")
            table = report.find_element(By.TAG_NAME, "table").text
            at_width(browser, 390)
            browser.get(browser.current_url)
            screenshot(browser, "report-with-chart-phone")
            return listed, natural, browser.find_element(By.ID, "report").text, table, browser.title

    listed, natural, text, table, title = await asyncio.to_thread(look)
    assert REPORT_ID in listed
    assert natural > 100  # the PNG was served from the bucket and decoded by the browser
    assert "p95 warning" in table.replace("\n", " ")
    assert '<script>document.title="owned"</script>' in text and "<b>not bold</b>" in text  # shown, not run
    assert title == f"Report {REPORT_ID}"  # the page's own title: the report's script never ran


# --------------------------------------------------------------------------- which run, whose words


def links_of_runs(text: str) -> list[str]:
    return [href.replace("&amp;", "&") for href in re.findall(r'class="run-link" href="([^"]+)"', text)]


async def test_each_run_under_a_reused_workflow_id_is_shown_as_itself(console: Console) -> None:
    """Ids are reused per target: a second scaling run of the same service and region has the
    first one's workflow id. History links each run to its own page (its run id, its own
    timeline), a made-up run id is a 400 naming `run`, and the service's runs carry their own views."""
    from intake import console as console_views

    first_run = (await console.scaling.describe()).run_id
    region = console.scaling.id.rsplit("/", 1)[1]
    trigger = ScalingTrigger(by="bob", plan=True, reason="the second run")
    second = await trigger_scaling(console.client, "hybrid-router", region, trigger, console.scaling_queue, INTAKE)
    await second.result()
    second_run = (await second.describe()).run_id
    assert second.id == console.scaling.id and second_run != first_run

    async with httpx.AsyncClient(base_url=console.url, timeout=60) as http:
        await http.post("/ui/login", data={"user": "bob", "password": PASSWORDS["bob"]})
        listed = await http.get("/ui/history", params={"runbook": "scaling", "since": "1h"})
        ours = [link for link in links_of_runs(listed.text) if quote(console.scaling.id, safe="") in link]
        assert sorted(ours) == sorted(
            f"/ui/incident?id={quote(console.scaling.id, safe='')}&run={run}" for run in (first_run, second_run)
        )
        for link in ours:
            shown = (await http.get(link)).text
            run_id = link.rpartition("run=")[2]
            assert f'<span id="run-id">{run_id}</span>' in shown
            reason = "the second run" if run_id == second_run else "console test"
            other = "console test" if run_id == second_run else "the second run"
            timeline = shown.split('id="timeline"')[1]
            assert reason in timeline and other not in timeline
        bad = await http.get(f"/ui/incident?id={quote(console.scaling.id, safe='')}&run=../../x")
        assert bad.status_code == 400 and "run: " in bad.text

    runs = await console_views.service_runs(console.client, "hybrid-router", console.policy)
    mine = {run.run_id: run for run in runs if run.workflow_id == console.scaling.id}
    assert set(mine) == {first_run, second_run}
    triggered = {
        run_id: [t["detail"] for t in console_views.timeline_of(run.view or {}) if t.get("event") == "triggered"]
        for run_id, run in mine.items()
    }
    assert triggered[first_run] == ["console test (plan only)"]
    assert triggered[second_run] == ["the second run (plan only)"]


async def test_an_actions_answer_is_shown_only_as_the_console_sealed_it(console: Console) -> None:
    """The run page shows the answer to the form just sent, sealed for the session that sent it;
    words put in a link (`msg`, a forged or another session's `done`) are never shown."""
    link = f"/ui/incident?id={quote(console.incident.id, safe='')}"
    async with (
        httpx.AsyncClient(base_url=console.url, timeout=60) as http,
        httpx.AsyncClient(base_url=console.url, timeout=60) as other,
    ):
        for client in (http, other):
            await client.post("/ui/login", data={"user": "bob", "password": PASSWORDS["bob"]})
        csrf = (await http.get(link)).text.split('name="csrf" value="')[1].split('"')[0]
        sent = await http.post("/ui/comment", data={"id": console.incident.id, "csrf": csrf, "text": "looking"})
        assert sent.status_code == 303 and "msg=" not in sent.headers["location"]
        answered = await http.get(sent.headers["location"])
        assert answered.status_code == 200 and 'id="message"' in answered.text
        elsewhere = await other.get(sent.headers["location"])  # another session's answer
        assert elsewhere.status_code == 200 and 'id="message"' not in elsewhere.text
        forged = await http.get(link + "&done=" + quote("Your session expired: sign in at evil.example"))
        assert forged.status_code == 200 and "evil.example" not in forged.text and 'id="message"' not in forged.text
        old = await http.get(link + "&msg=" + quote("sign in at evil.example"))
        assert old.status_code == 400 and "msg: " in old.text and "evil.example" not in old.text


@dataclass
class FakeExecution:
    id: str
    severity: str
    workflow_type: str = "IncidentResponseWorkflow"
    run_id: str = "0d6b3c1e-0000-4000-8000-000000000000"
    status: Any = None
    start_time: datetime | None = None
    close_time: datetime | None = None
    typed_search_attributes: tuple[()] = ()

    async def memo(self) -> dict[str, Any]:
        return {"severity": self.severity, "service": "svc"}


class FakeListing:
    """Visibility's pages as `list_workflows` answers them: fetched one at a time."""

    def __init__(self, pages: list[list[FakeExecution]], token: bytes | None) -> None:
        self.pages, self.at = pages, int(token or b"0")
        self.current_page: list[FakeExecution] | None = None
        self.next_page_token: bytes | None = token
        self.fetched = 0

    async def fetch_next_page(self) -> None:
        self.current_page = self.pages[self.at]
        self.at += 1
        self.fetched += 1
        self.next_page_token = str(self.at).encode() if self.at < len(self.pages) else None


async def test_a_severity_filter_reads_on_until_a_page_matches_and_says_when_it_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from intake import console as console_views

    monkeypatch.setattr(console_views, "PAGE_SIZE", 2)
    pages = [[FakeExecution(f"incident/svc/{p}{i}", "P3") for i in range(2)] for p in range(5)]
    pages[3][1] = FakeExecution("incident/svc/late", "P1")
    listings: list[FakeListing] = []

    class FakeClient:
        def list_workflows(self, query: str, page_size: int, next_page_token: bytes | None) -> FakeListing:
            listings.append(FakeListing(pages, next_page_token))
            return listings[-1]

    policy = default_policy()
    wanted = console_views.HistoryFilter(severity="P1")
    found = await console_views.closed_runs(FakeClient(), wanted, policy)  # type: ignore[arg-type]
    assert [run.workflow_id for run in found.runs] == ["incident/svc/late"]  # on the fourth page
    assert found.scanned == 10 and found.next_page is None and not found.capped
    monkeypatch.setattr(console_views, "SCAN_PAGES", 2)
    stopped = await console_views.closed_runs(FakeClient(), wanted, policy)  # type: ignore[arg-type]
    assert stopped.runs == [] and stopped.capped and stopped.next_page == b"2" and listings[-1].fetched == 2
    after = await console_views.closed_runs(FakeClient(), replace(wanted, page=b"2"), policy)  # type: ignore[arg-type]
    assert [run.workflow_id for run in after.runs] == ["incident/svc/late"]


def test_only_changes_mark_the_charts_and_only_an_exact_plan_id_times_an_approval() -> None:
    from intake.console import Run, changes_of, problems_of

    timeline = [
        {"event": "comment", "detail": "deploy tomorrow, rolled dice", "at": "2026-12-06T10:00:00+00:00"},
        {"event": "remediated", "detail": "p-1: rolled back", "at": "2026-12-06T10:01:00+00:00"},
        {"event": "not scaled", "detail": "held below the rule", "at": "2026-12-06T10:02:00+00:00"},
        {"event": "scaled", "detail": "2 -> 4 tasks", "at": "2026-12-06T10:03:00+00:00"},
    ]
    run = Run("incident/a/b", "IncidentResponseWorkflow", "open", True, None, None, view={"timeline": timeline})
    assert [t["event"] for t in changes_of(run)] == ["remediated", "scaled"]

    policy = default_policy()
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    asked = (now - policy.timers.approval_timeout * 0.9).isoformat()
    other = [{"event": "proposed", "detail": "p-12: roll back", "at": asked}]  # another plan's, p-1 in p-12
    view = {"pending_approval": {"plan_id": "p-1"}, "timeline": other, "status": "awaiting_approval"}
    assert not [p for p in problems_of(view, policy, now) if p.kind == "approval-timing-out"]
    mine = {**view, "timeline": [{"event": "proposed", "detail": "next option p-1: roll back", "at": asked}]}
    assert [p.kind for p in problems_of(mine, policy, now)] == ["approval-timing-out"]


async def test_the_home_view_says_when_it_was_cut_and_which_runs_did_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from temporalio.client import WorkflowExecutionStatus

    from intake import console as console_views
    from intake.rendering import TEMPLATES

    monkeypatch.setattr(console_views, "OPEN_LIMIT", 2)
    running = [
        FakeExecution(f"bedrock/eu-west-{i}", "", "BedrockConnectivityWorkflow", status=WorkflowExecutionStatus.RUNNING)
        for i in range(3)
    ]

    class Away:
        async def query(self, *args: Any, **kwargs: Any) -> Any:
            raise ValueError("no worker answered")

    class FakeClient:
        def list_workflows(self, query: str, limit: int) -> Any:
            async def listed() -> AsyncIterator[FakeExecution]:
                for execution in running[:limit]:
                    yield execution

            return listed()

        def get_workflow_handle(self, workflow_id: str, run_id: str | None = None) -> Away:
            return Away()

    runs, cut = await console_views.open_runs(FakeClient(), default_policy())  # type: ignore[arg-type]
    assert cut and len(runs) == 2
    assert all([p.kind for p in run.problems] == ["no-view"] for run in runs)
    runs[0].service = "eu-west-0"  # a Bedrock run's region: not a service of the policy
    table = TEMPLATES.get_template(
        "macros.html"
    ).module.runs_table(  # type: ignore[attr-defined]
        "open-runs", runs[:1], datetime.now(UTC), services=["hybrid-router"]
    )
    assert "eu-west-0" in table and "/ui/services/" not in table
    runs[0].service = "hybrid-router"
    table = TEMPLATES.get_template(
        "macros.html"
    ).module.runs_table(  # type: ignore[attr-defined]
        "open-runs", runs[:1], datetime.now(UTC), services=["hybrid-router"]
    )
    assert 'href="/ui/services/hybrid-router"' in table


async def test_a_pages_charts_are_read_in_one_call_off_the_default_executor() -> None:
    import threading

    from intake.console import charts_for

    policy = default_policy()
    queries = policy.metrics[:3]
    calls: list[tuple[int, str]] = []

    def read(wanted: list[Any], region: str, window: timedelta) -> list[list[tuple[datetime, float]]]:
        calls.append((len(wanted), threading.current_thread().name))
        at = datetime.now(UTC)
        return [[(at, float(index))] if index else [] for index in range(len(wanted))]

    charts = await charts_for(queries, "eu-central-1", read)
    assert len(queries) == 3 and calls == [(3, calls[0][1])] and calls[0][1].startswith("console-aws")
    assert [note for _, _, note in charts] == ["no datapoints in the last hour", "", ""]

    def broken(wanted: list[Any], region: str, window: timedelta) -> list[list[tuple[datetime, float]]]:
        raise RuntimeError("CloudWatch said no")

    failed = await charts_for(queries, "eu-central-1", broken)
    assert [note for _, _, note in failed] == ["cannot read: CloudWatch said no"] * 3


def test_a_pagerduty_link_is_a_link_only_over_https() -> None:
    from intake.console import Run
    from intake.ui import links_of

    run = Run("incident/a/b", "IncidentResponseWorkflow", "open", True, None, None)
    for url, linked in (
        ("https://acme.pagerduty.com/incidents/P1", True),
        ("javascript:alert(document.cookie)", False),
        ("JavaScript:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("http://acme.pagerduty.com/incidents/P1", False),
        (" https://x", False),
    ):
        [(label, href)] = links_of(run, {"pagerduty": {"incident_id": "P1", "html_url": url}})
        assert (href == url) if linked else (href is None and url in label), url


def test_the_page_token_key_is_derived_by_hkdf_from_the_sign_in_key() -> None:
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from intake.console import PageTokens
    from tests.identity import SIGNIN

    raw = SIGNIN.private_key.private_bytes_raw()
    expected = HKDF(algorithm=SHA256(), length=32, salt=None, info=b"console page tokens").derive(raw)
    assert PageTokens.from_signer(SIGNIN).key == expected
    assert PageTokens.from_signer(SIGNIN).key not in (raw, SIGNIN.private_key.sign(b"console page tokens"))


def test_the_reports_page_never_points_the_intake_at_the_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no AWS configuration at all the reports page says it cannot list the bucket; it does
    not point the whole intake process at the local emulator with made-up keys (the CLI does)."""
    for name in [key for key in os.environ if key.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    _aws._client.cache_clear()
    try:
        policy = intake_policy("reports-svc", "reports-other")
        with (
            serving(operator_app("127.0.0.1:1", "no-queue", policy)) as url,
            httpx.Client(base_url=url, timeout=60) as http,
        ):
            http.post("/ui/login", data={"user": "bob", "password": PASSWORDS["bob"]})
            listed = http.get("/ui/reports")
            report = http.get("/ui/reports/daily/2026-12-07")
    finally:
        _aws._client.cache_clear()  # a client made without credentials serves no later test
    assert listed.status_code == 200 and "cannot list" in listed.text
    assert report.status_code == 404
    assert "AWS_ENDPOINT_URL" not in os.environ and "AWS_ACCESS_KEY_ID" not in os.environ


# --------------------------------------------------------------------------- query parameters


def test_history_filters_are_checked_and_name_the_bad_parameter() -> None:
    from intake.console import BadParameter, HistoryFilter, PageTokens

    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    tokens = PageTokens(b"k" * 32)
    for params, name in (
        ({"severity": "P7"}, "severity"),
        ({"outcome": "exploded"}, "outcome"),
        ({"runbook": "x' OR '1'='1"}, "runbook"),
        ({"service": "a b"}, "service"),
        ({"since": "yesterday"}, "since"),
        ({"until": "9999-01-01"}, "until"),
        ({"page": "%%%"}, "page"),
        ({"colour": "red"}, "colour"),
    ):
        with pytest.raises(BadParameter) as raised:
            HistoryFilter.parse(params, now, tokens)
        assert raised.value.name == name, params
    wanted = HistoryFilter.parse(
        {"runbook": "scaling", "outcome": "failed", "since": "7d", "severity": "P1"}, now, tokens
    )
    query = wanted.query(now)
    assert "WorkflowType = 'ScalingDecisionWorkflow'" in query and "ExecutionStatus = 'Failed'" in query
    assert "CloseTime >= '2026-11-29T12:00:00+00:00'" in query
    whole_day = HistoryFilter.parse({"until": "2026-12-05"}, now, tokens).query(now)
    assert "CloseTime < '2026-12-06T00:00:00+00:00'" in whole_day  # the 5th included
    fixed = wanted.link(b"token", tokens, now)  # the next page's link: 7d as the moment it meant
    assert "since=7d" not in fixed and "since=2026-11-29T12%3A00%3A00%2B00%3A00" in fixed
    later = now + timedelta(hours=5)
    opened = dict(parse_qsl(fixed.split("?", 1)[1]))
    assert HistoryFilter.parse(opened, later, tokens).query(later) == query
    link = wanted.link(b"visibility's token", tokens)
    assert link.startswith("/ui/history?runbook=ScalingDecisionWorkflow&severity=P1&outcome=failed&since=7d&page=")
    sealed = link.rpartition("page=")[2]
    params = {"runbook": "scaling", "outcome": "failed", "since": "7d", "severity": "P1", "page": sealed}
    assert HistoryFilter.parse(params, now, tokens).page == b"visibility's token"
    for forged in (
        {**params, "page": sealed[:-2] + ("AA" if not sealed.endswith("AA") else "BB")},  # tampered
        {**params, "outcome": "completed"},  # another query's token
        {**params},  # another console's key
    ):
        with pytest.raises(BadParameter) as raised:
            HistoryFilter.parse(forged, now, PageTokens(b"other" * 8) if forged == params else tokens)
        assert raised.value.name == "page"


async def test_history_pages_through_closed_runs_and_bad_values_are_a_400(console: Console) -> None:
    async with httpx.AsyncClient(base_url=console.url, timeout=60) as http:
        await http.post("/ui/login", data={"user": "bob", "password": PASSWORDS["bob"]})
        found = await http.get("/ui/history", params={"runbook": "scaling", "since": "1h"})
        assert found.status_code == 200 and quote(console.scaling.id, safe="") in found.text
        none = await http.get("/ui/history", params={"runbook": "scaling", "outcome": "failed", "since": "1h"})
        assert none.status_code == 200 and quote(console.scaling.id, safe="") not in none.text
        bad = await http.get("/ui/history", params={"severity": "urgent"})
        assert bad.status_code == 400 and "severity: one of P0" in bad.text
        forged = await http.get("/ui/history", params={"page": "bm90LWEtdG9rZW4"})
        assert forged.status_code == 400 and "page: not a page token of this console" in forged.text
        with pytest.MonkeyPatch.context() as patch:  # two runs a page: the console's own page token leads on
            patch.setattr("intake.console.PAGE_SIZE", 2)
            first = await http.get("/ui/history", params={"since": "1h"})
            after = first.text.split('id="next-page" href="')[1].split('"')[0].replace("&amp;", "&")
            second = await http.get(after)
            assert second.status_code == 200, second.text[-400:]
            ids = [re.findall(r'class="run-link" href="([^"]+)"', page.text) for page in (first, second)]
            assert len(ids[0]) == 2 and ids[1] and not set(ids[0]) & set(ids[1])
            assert "since=1h" not in after and "since=20" in after  # fixed to the moment the first page meant
            tampered = await http.get(after + "&outcome=completed")
            assert tampered.status_code == 400 and "page: " in tampered.text
        service = await http.get("/ui/services/hybrid-router")
        assert service.status_code == 404  # not a service of this console's policy
        name = next(iter(console.policy.services))
        shown = await http.get(f"/ui/services/{name}")
        assert shown.status_code == 200 and quote(console.incident.id, safe="") in shown.text
        assert 'svg class="chart"' in shown.text
        scaling = (await http.get(f"/ui/incident?id={quote(console.scaling.id, safe='')}")).text
        judged = scaling.split('id="judged">')[1].split("</figure>")[0]
        assert 'data-metric="cpu_pct"' in judged and 'class="threshold critical" data-value="70"' in judged
        judgement = (await console.scaling.query("view", result_type=dict))["judgement"]
        drawn = judged.split('class="series" points="')[1].split('"')[0].split()
        assert "rule cpu: held" in judged and len(drawn) == len(judgement["points"]) >= 3  # the rule's datapoints


PARAM_NAMES = ["runbook", "service", "severity", "outcome", "since", "until", "page", "id", "run", "done", "msg", "x"]
param_values = st.text(max_size=40) | st.sampled_from(
    ["P0", "P9", "scaling", "failed", "24h", "7d", "2026-12-01", "9999-99-99", "AQI", "", "incident/x/y", "'"]
)


async def test_fuzzed_query_parameters_never_answer_5xx(console: Console) -> None:
    paths = ["/ui/history", "/ui/incident", "/ui/reports", "/ui/services/", "/ui/reports/"]

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        path=st.sampled_from(paths),
        tail=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30),
        params=st.dictionaries(st.sampled_from(PARAM_NAMES), param_values, max_size=4),
    )
    def fuzz(http: httpx.Client, path: str, tail: str, params: dict[str, str]) -> None:
        url = path + quote(tail, safe="/") if path.endswith("/") else path
        answer = http.get(url, params=params)
        assert answer.status_code < 500, (url, params, answer.text[:300])
        if answer.status_code == 400:
            assert re.search(r"<p class=\"err\" id=\"error\">[a-z_]+: ", answer.text), answer.text[:300]

    def run() -> None:
        with httpx.Client(base_url=console.url, timeout=60) as http:
            http.post("/ui/login", data={"user": "bob", "password": PASSWORDS["bob"]})
            fuzz(http)  # hypothesis fills the rest
            for params in ({"x": "1"}, {"msg": "<b>"}):
                assert http.get("/ui", params=params).status_code == 400

    await asyncio.to_thread(run)


# --------------------------------------------------------------------------- what the console reads


def test_every_human_runbook_is_found_by_its_workflow_type_with_its_steps() -> None:
    """New runbooks appear without a change to the console: their runbook file names them."""
    from intake.console import runbook_docs
    from tests.test_runbook_drift import RUNBOOKS

    docs = runbook_docs()
    for path, workflow, steps in RUNBOOKS:
        doc = docs[workflow.__name__]
        assert [step.id for step in doc.steps] == list(steps) and doc.path == f"runbooks/{path.name}"
        assert all(step.title for step in doc.steps)


def test_problems_a_failed_page_an_approval_about_to_time_out_overdue_follow_ups() -> None:
    from intake.console import problems_of

    policy = default_policy()  # approval_timeout 30m
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)

    def entry(minutes_ago: int, event: str, detail: str = "") -> dict[str, str]:
        return {"at": (now - timedelta(minutes=minutes_ago)).isoformat(), "event": event, "detail": detail}

    def kinds(view: dict[str, Any]) -> list[str]:
        return [problem.kind for problem in problems_of(view, policy, now)]

    assert kinds({"status": "unpaged", "timeline": [entry(3, "page failed", "HTTP 400")]}) == ["page-failed"]
    assert kinds({"status": "awaiting_ack", "timeline": [entry(3, "page failed"), entry(1, "paged")]}) == []
    waiting = {"status": "awaiting_approval", "pending_approval": {"plan_id": "plan-1"}}
    late = [entry(25, "proposed", "plan-1: roll back")]
    assert kinds({**waiting, "timeline": late}) == ["approval-timing-out"]
    assert "times out in 5m" in problems_of({**waiting, "timeline": late}, policy, now)[0].text
    assert kinds({**waiting, "timeline": [entry(5, "awaiting approval", "plan-1: 2 approver(s)")]}) == []
    followup = {
        "status": "postmortem-pending",
        "now": now.isoformat(),
        "review_due": (now - timedelta(days=2)).isoformat(),
        "reviewed_by": "alice",
        "postmortem_due": (now - timedelta(hours=1)).isoformat(),
        "completed_by": None,
        "items": [
            {"item_id": "A1", "owner": "bob", "status": "open", "due": (now - timedelta(days=1)).isoformat()},
            {"item_id": "A2", "owner": "eve", "status": "open", "due": (now + timedelta(days=1)).isoformat()},
            {"item_id": "A3", "owner": "eve", "status": "done", "due": (now - timedelta(days=1)).isoformat()},
        ],
    }
    found = problems_of(followup, policy, now)
    assert [p.kind for p in found] == ["postmortem-overdue", "items-overdue"]
    assert found[1].text == "1 action item(s) overdue (bob)"
    assert kinds({**followup, "completed_by": "alice", "items": []}) == []


def test_a_fresh_install_has_every_template() -> None:
    """pyproject's package data takes in every file of intake/templates/ (a wheel without them
    would serve no page)."""
    import fnmatch
    import tomllib

    patterns = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    templates = sorted(
        p.relative_to(PROJECT_ROOT / "intake") for p in (PROJECT_ROOT / "intake" / "templates").iterdir()
    )
    assert templates
    for path in templates:
        assert any(fnmatch.fnmatch(str(path), pattern) for pattern in patterns["intake"]), path
    assert "jinja2>=3.1" in (PROJECT_ROOT / "pyproject.toml").read_text()


def test_a_chart_draws_its_datapoints_thresholds_and_the_changes_within_its_span() -> None:
    from intake.charts import Line, metric_chart

    start = datetime(2026, 12, 6, 9, tzinfo=UTC)
    points = [(start + timedelta(minutes=m), float(m)) for m in range(11)]
    marks = [(start + timedelta(minutes=5), "scaling: scaled <up>"), (start - timedelta(hours=1), "before")]
    svg = str(metric_chart("cpu_pct", points, [Line("warning", 7.0), Line("critical", 70.0)], marks))
    assert svg.startswith('<svg class="chart" data-metric="cpu_pct"') and svg.endswith("</svg>")
    assert len(svg.split('class="series" points="')[1].split('"')[0].split()) == 11
    assert 'class="threshold warning" data-value="7"' in svg and 'class="threshold critical" data-value="70"' in svg
    assert svg.count('class="change"') == 1 and "scaled &lt;up&gt;" in svg  # the one in its span, escaped
    middle = float(svg.split('class="change" x1="')[1].split('"')[0])
    assert abs(middle - (40 + (320 - 40 - 8) / 2)) < 1  # halfway along the plot
    empty = str(metric_chart("p95_latency_ms", [], [Line("critical", 2000.0)]))
    assert "no datapoints" in empty and 'data-value="2000"' in empty and "polyline" not in empty


def test_the_consoles_aws_reads_give_up_before_its_pages_stop_waiting() -> None:
    """The console's reads run on threads whose clients try once and give up within 9 s (the
    page waits 10 s); the activities' clients elsewhere keep their retries and longer reads."""
    from intake import console as console_module

    def config() -> tuple[float, float, int]:
        made: Any = _aws.client("cloudwatch", "eu-west-1").meta.config
        return made.connect_timeout, made.read_timeout, made.retries["total_max_attempts"]

    connect, read, attempts = console_module.AWS_READS.submit(config).result()
    assert attempts == 1 and connect + read < console_module.CHART_WAIT
    assert config() == (5, 20, 3)  # this thread's: an activity's (two retries)
