"""The daily performance review: its window, the judgement of each service level, the workflow
on the time-skipping server (started at 09:00 UTC) and on the dev server (from its Schedule),
the metric reading, chart and report store against the real emulator over HTTP, and the CLI's
reads of the bucket."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.cloudwatch import read_series
from activities.postmortem import store_report
from activities.reports import chart_png, chart_review
from activities.runs import Runs
from contracts import Policy
from contracts.policy import MetricQuery
from contracts.reviews import (
    ChartRequest,
    IncidentsRequest,
    OvernightIncident,
    RaisedAlert,
    ReviewAlert,
    ReviewInput,
    ReviewResult,
    judge,
    review_window,
)
from contracts.scaling_rules import Datapoint, Series
from contracts.schedules import ScheduleSpec, StoredReport, StoreReport
from contracts.systems import SeriesRequest
from devstack import aws_seed
from runbook_cli import reports, schedules
from tests.conftest import MotoServer
from tests.fakes import keep_history
from tests.policies import demo_policy
from workflows.performance_review import PerformanceReviewWorkflow

HISTORIES = Path(__file__).parent / "histories" / "review"
P95 = MetricQuery(
    key="p95_latency_ms",
    namespace="HybridRouting",
    metric_name="LatencyP95",
    stat="Maximum",
    period_seconds=300,
    target=1500,
    warning=1500,
    critical=2000,
)
CACHE = MetricQuery(
    key="cache_hit_pct", namespace="HybridRouting", metric_name="CacheHitRate", direction="below", warning=70
)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def series(
    key: str, start: datetime, end: datetime, value: float, bad: tuple[datetime, datetime, float] | None = None
) -> Series:
    points, t = [], start
    while t < end:
        in_bad = bad is not None and bad[0] <= t < bad[1]
        points.append(Datapoint(at=t, value=bad[2] if bad is not None and in_bad else value))
        t += timedelta(minutes=5)
    return Series(key=key, period_seconds=300, points=points)


# --------------------------------------------------------------------------- the rules


def test_a_run_at_nine_reviews_exactly_six_pm_to_nine_am_utc() -> None:
    policy = demo_policy().reviews
    window = review_window("daily", at(7, 9), policy)
    assert (window.start, window.end) == (at(6, 18), at(7, 9))
    assert window.key == "reports/daily/2026-12-07.md"
    assert window.chart_key("overview") == "reports/daily/2026-12-07-overview.png"
    # by hand in the afternoon: the same night; before nine: the night before, complete
    assert review_window("daily", at(7, 15, 30), policy) == window
    earlier = review_window("daily", at(7, 8, 59), policy)
    assert (earlier.start, earlier.end) == (at(5, 18), at(6, 9))


def test_a_breach_is_found_with_its_level_and_how_long_it_lasted() -> None:
    # 01:00-02:15 over critical, 02:15-02:30 only over warning: one breach, critical, 90 minutes
    points = series("p95_latency_ms", at(6, 18), at(7, 9), 900, bad=(at(7, 1), at(7, 2, 15), 2600)).points
    for p in points:
        if at(7, 2, 15) <= p.at < at(7, 2, 30):
            p.value = 1700
    judged = judge(P95, Series(key="p95_latency_ms", period_seconds=300, points=points))
    assert judged.level == "critical" and len(judged.breaches) == 1
    breach = judged.breaches[0]
    assert (breach.start, breach.end, breach.worst) == (at(7, 1), at(7, 2, 30), 2600)
    assert judged.breached_for == timedelta(minutes=90)
    assert judged.worst == 2600 and judged.points == 180

    # a warning-only dip of the cache hit rate (the bad side is below): two separate breaches
    cache = series("cache_hit_pct", at(6, 18), at(7, 9), 85, bad=(at(6, 22), at(6, 22, 10), 65))
    cache.points[-1].value = 60
    dipped = judge(CACHE, cache)
    assert dipped.level == "warning" and [b.duration for b in dipped.breaches] == [
        timedelta(minutes=10),
        timedelta(minutes=5),
    ]
    assert dipped.worst == 60


def test_a_clean_night_has_no_breach_and_an_empty_one_says_no_data() -> None:
    clean = judge(P95, series("p95_latency_ms", at(6, 18), at(7, 9), 1400))
    assert clean.level == "ok" and clean.breaches == [] and clean.p95 == 1400
    empty = judge(P95, Series(key="p95_latency_ms", period_seconds=300))
    assert empty.level == "no-data" and empty.average is None


# --------------------------------------------------------------------------- the workflow, with fakes


class FakeStack:
    """The review's activities by name: CloudWatch answers with a night whose P95 breaches
    `bad` (None: a clean night), the bucket keeps what is put."""

    def __init__(self, policy: Policy, bad: tuple[datetime, datetime, float] | None) -> None:
        self.policy, self.bad = policy, bad
        self.read: list[SeriesRequest] = []
        self.stored: list[StoreReport] = []
        self.charted: list[ChartRequest] = []
        self.asked: list[IncidentsRequest] = []
        self.alerts: list[ReviewAlert] = []

    @activity.defn(name="load_policy")
    async def load_policy(self) -> Policy:
        return self.policy

    @activity.defn(name="read_series")
    async def read_series(self, request: SeriesRequest) -> list[Series]:
        self.read.append(request)
        assert request.end is not None
        start = request.end - request.window
        values = {"p95_latency_ms": 900.0, "error_rate_pct": 0.3, "cache_hit_pct": 85.0, "requests": 9000.0}
        return [
            series(
                q.key,
                start,
                request.end,
                values.get(q.key, 400.0),
                self.bad if q.key == "p95_latency_ms" else None,
            )
            for q in request.queries
        ]

    @activity.defn(name="incidents_started")
    async def incidents_started(self, request: IncidentsRequest) -> list[OvernightIncident]:
        self.asked.append(request)
        opened = request.start + timedelta(hours=7)
        return [
            OvernightIncident(workflow_id="incident/hybrid-router/eu-central-1", started=opened, status="COMPLETED")
        ]

    @activity.defn(name="chart_review")
    async def chart_review(self, request: ChartRequest) -> StoredReport:
        self.charted.append(request)
        return StoredReport(uri=f"s3://{request.bucket}/{request.key}", bytes=1)

    @activity.defn(name="store_report")
    async def store_report(self, request: StoreReport) -> StoredReport:
        self.stored.append(request)
        return StoredReport(uri=f"s3://{request.bucket}/{request.key}", bytes=len(request.body))

    @activity.defn(name="raise_review_alert")
    async def raise_review_alert(self, alert: ReviewAlert) -> RaisedAlert:
        self.alerts.append(alert)
        return RaisedAlert(status=202, answer={"fake": True})

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.load_policy,
            self.read_series,
            self.incidents_started,
            self.chart_review,
            self.store_report,
            self.raise_review_alert,
        ]


async def test_a_run_at_nine_judges_the_night_and_reports_a_breach_and_how_long(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    now = await env.get_current_time()
    nine = now.replace(hour=9, minute=0, second=0, microsecond=0)
    if nine <= now:
        nine += timedelta(days=1)
    bad = (nine - timedelta(hours=6), nine - timedelta(hours=4, minutes=45), 2600.0)  # 03:00-04:15
    stack = FakeStack(demo_policy(), bad)
    task_queue = f"review-{uuid.uuid4()}"
    async with Worker(
        env.client, task_queue=task_queue, workflows=[PerformanceReviewWorkflow], activities=stack.activities()
    ):
        handle = await env.client.start_workflow(
            PerformanceReviewWorkflow.run,
            ReviewInput(cadence="daily", started_by="test"),
            id=f"review-{uuid.uuid4()}",
            task_queue=task_queue,
            start_delay=nine - now,  # the schedule's 09:00, skipped to
        )
        result = await handle.result()
    assert (result.window.start, result.window.end) == (nine - timedelta(hours=15), nine)
    assert stack.read[0].end == nine and stack.read[0].window == timedelta(hours=15)
    assert stack.asked == [IncidentsRequest(start=nine - timedelta(hours=15), end=nine)]
    assert result.level == "critical"
    p95 = next(j for j in result.judgements if j.key == "p95_latency_ms")
    assert p95.breached_for == timedelta(minutes=75) and p95.breaches[0].start == bad[0]
    assert {j.key: j.level for j in result.judgements} == {
        "p95_latency_ms": "critical",
        "error_rate_pct": "ok",
        "cache_hit_pct": "ok",
    }
    assert result.traffic.requests == 9000 * 180 and result.traffic.p95_ms == 2600
    assert len(result.incidents) == 1
    [stored] = stack.stored
    assert stored.bucket == "runbook-reports" and stored.key == f"reports/daily/{nine:%Y-%m-%d}.md"
    assert stored.body == result.markdown
    assert "**CRITICAL**: p95_latency_ms critical for 75m." in result.markdown
    assert f"![overnight]({nine:%Y-%m-%d}-overview.png)" in result.markdown
    assert "p95_latency_ms **critical** 03:00-04:15 UTC (75m), worst 2,600" in result.markdown
    assert stack.charted[0].key == f"reports/daily/{nine:%Y-%m-%d}-overview.png"
    # the critical night went to the intake once, the report linked
    [alert] = stack.alerts
    assert alert.review == f"daily/{nine:%Y-%m-%d}" and alert.report == result.uri and alert.severity == "high"
    assert "p95_latency_ms" in alert.summary and result.escalated is not None


async def test_a_review_of_a_service_the_policy_does_not_have_fails_naming_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    policy = demo_policy()
    stack = FakeStack(
        policy.model_copy(update={"reviews": policy.reviews.model_copy(update={"service": "nowhere"})}), None
    )
    task_queue = f"review-{uuid.uuid4()}"
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[PerformanceReviewWorkflow],
        activities=stack.activities(),
    ):
        with pytest.raises(WorkflowFailureError) as failed:
            await time_skipping_env.client.execute_workflow(
                PerformanceReviewWorkflow.run, ReviewInput(), id=f"review-{uuid.uuid4()}", task_queue=task_queue
            )
    assert "reviews.service: 'nowhere' is not a service" in str(failed.value.cause)
    assert stack.read == [] and stack.stored == []


async def test_a_clean_night_from_its_schedule_on_the_dev_server(dev_env: WorkflowEnvironment) -> None:
    client = dev_env.client
    stack = FakeStack(demo_policy(), bad=None)
    task_queue = f"review-{uuid.uuid4()}"
    name = f"review-{uuid.uuid4().hex[:8]}"
    spec = ScheduleSpec(name=name, runbook="performance-review", cron="0 9 * * *")
    handle = await client.create_schedule(spec.schedule_id, schedules.temporal_schedule(spec, task_queue))
    try:
        async with Worker(
            client, task_queue=task_queue, workflows=[PerformanceReviewWorkflow], activities=stack.activities()
        ):
            await handle.trigger()
            result = await _scheduled_result(client, task_queue)
            assert result.level == "ok" and all(not j.breaches for j in result.judgements)
            assert stack.alerts == [] and result.escalated is None
            assert "**OK**: every service level held all night." in result.markdown
            assert "## Breaches\n\nNone." in result.markdown
            assert result.window.end - result.window.start == timedelta(hours=15)
            assert result.window.end.hour == 9 and result.window.end <= datetime.now(UTC)
            assert result.uri == f"s3://runbook-reports/reports/daily/{result.window.name}.md"
            runs = [w async for w in client.list_workflows(f"TaskQueue = '{task_queue}'")]
            await keep_history(client.get_workflow_handle(runs[0].id), HISTORIES / "daily.json")
    finally:
        await handle.delete()


async def test_a_critical_night_on_the_dev_server_sends_one_alert(dev_env: WorkflowEnvironment) -> None:
    window = review_window("daily", datetime.now(UTC), demo_policy().reviews)
    bad = (window.end - timedelta(hours=5), window.end - timedelta(hours=4), 2600.0)
    stack = FakeStack(demo_policy(), bad)
    task_queue = f"review-{uuid.uuid4()}"
    async with Worker(
        dev_env.client, task_queue=task_queue, workflows=[PerformanceReviewWorkflow], activities=stack.activities()
    ):
        handle = await dev_env.client.start_workflow(
            PerformanceReviewWorkflow.run, ReviewInput(), id=f"review-{uuid.uuid4()}", task_queue=task_queue
        )
        result = await handle.result()
        await keep_history(handle, HISTORIES / "daily-critical.json")
    assert result.level == "critical" and [a.review for a in stack.alerts] == [f"daily/{window.name}"]
    assert result.escalated is not None and stack.alerts[0].report == result.uri


async def _scheduled_result(client: Client, task_queue: str) -> ReviewResult:
    query = f"WorkflowType = 'PerformanceReviewWorkflow' AND TaskQueue = '{task_queue}'"
    for _ in range(300):
        runs = [w async for w in client.list_workflows(query)]
        if runs:
            result: ReviewResult = await client.get_workflow_handle(runs[0].id, result_type=ReviewResult).result()
            return result
        await asyncio.sleep(0.1)
    raise AssertionError("the schedule started no review")


# --------------------------------------------------------------------------- against the emulator

REGION = "ap-southeast-2"  # the seeded history here, in the past: no other test reads it
SEEDED_NOW = datetime(2026, 1, 15, 10, 2, tzinfo=UTC)


def test_the_seeded_night_is_read_judged_charted_stored_and_listed(aws_env: MotoServer) -> None:
    put = aws_seed.seed_metric_history(REGION, SEEDED_NOW, days=4)
    assert put > 0 and aws_seed.seed_metric_history(REGION, SEEDED_NOW, days=4) == 0  # once
    policy = demo_policy().reviews
    window = review_window("daily", SEEDED_NOW, policy)
    judged = [P95, P95.model_copy(update={"key": "errors", "metric_name": "ErrorRate", "warning": 2, "critical": 5})]
    request = SeriesRequest(
        region=REGION,
        queries=[
            policy.requests.query("requests", "Sum", 300),
            policy.response_time.query("avg", "Average", 300),
            *judged,
        ],
        window=window.end - window.start,
        end=window.end,
    )
    found = {s.key: s for s in read_series(request)}
    assert all(len(s.points) == 180 for s in found.values()), {k: len(s.points) for k, s in found.items()}
    assert found["requests"].points[0].at == window.start
    assert all(0 < p.value < 2000 for p in found["avg"].points)
    # the night reviewed here had 20 minutes of errors over the warning line, the seed's bad
    # night (BAD_NIGHT mornings before) a critical P95 for its 2.5 hours
    assert judge(P95, found["p95_latency_ms"]).level == "ok"
    errors = judge(judged[1], found["errors"])
    assert errors.level == "warning" and errors.breached_for == timedelta(minutes=20)
    bad = review_window("daily", SEEDED_NOW - timedelta(days=aws_seed.BAD_NIGHT), policy)
    bad_night = read_series(request.model_copy(update={"end": bad.end}))
    judged_bad = judge(P95, next(s for s in bad_night if s.key == "p95_latency_ms"))
    assert judged_bad.level == "critical" and judged_bad.breached_for == timedelta(hours=2, minutes=30)

    s3 = boto3.client("s3", region_name=policy.bucket_region)
    bucket = f"reports-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": policy.bucket_region})  # type: ignore[typeddict-item]
    reviews = policy.model_copy(update={"bucket": bucket})
    chart = ChartRequest(
        title="test night",
        window=window,
        bucket=bucket,
        region=policy.bucket_region,
        key=window.chart_key("overview"),
        response_time=[found["avg"], found["avg"]],
        judged=[found["p95_latency_ms"]],
        judgements=[judge(P95, found["p95_latency_ms"])],
        requests=found["requests"],
    )
    charted = chart_review(chart)
    png = s3.get_object(Bucket=bucket, Key=chart.key)["Body"].read()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) == charted.bytes > 10_000
    stored = store_report(StoreReport(bucket=bucket, region=policy.bucket_region, key=window.key, body="# night\n"))
    assert stored.uri == f"s3://{bucket}/{window.key}"

    [row] = reports.list_reports(reviews)
    assert row.id == "daily/2026-01-15" and row.charts == [chart.key] and row.bytes == len("# night\n")
    assert reports.read_report(reviews, "daily/2026-01-15") == "# night\n"
    with pytest.raises(reports.NoSuchReport, match="no report 'daily/1999-01-01'"):
        reports.read_report(reviews, "daily/1999-01-01")


def test_the_chart_is_a_real_png() -> None:
    start, end = at(6, 18), at(7, 9)
    p95 = series("p95_latency_ms", start, end, 900, bad=(at(7, 1), at(7, 2), 2600))
    window = review_window("daily", end, demo_policy().reviews)
    png = chart_png(
        ChartRequest(
            title="a night",
            window=window,
            bucket="b",
            region="eu-central-1",
            key="k",
            response_time=[series("avg", start, end, 500), series("max", start, end, 1500)],
            judged=[p95],
            judgements=[judge(P95, p95)],
            requests=series("requests", start, end, 9000),
        )
    )
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (900, 594)  # 10 x 6.6 inches at 90 dpi: three panels


@workflow.defn(name="IncidentResponseWorkflow", sandboxed=False)
class StandInIncident:
    """An incident run as visibility lists it (its type and start time are what the review reads)."""

    @workflow.run
    async def run(self) -> None:
        return None


async def test_the_incidents_opened_in_the_window_are_read_from_visibility(dev_env: WorkflowEnvironment) -> None:
    client = dev_env.client
    task_queue = f"review-incidents-{uuid.uuid4()}"
    incident_id = f"incident/review-test-{uuid.uuid4().hex[:6]}/eu-central-1"
    async with Worker(client, task_queue=task_queue, workflows=[StandInIncident]):
        await client.execute_workflow(StandInIncident.run, id=incident_id, task_queue=task_queue)
    now = datetime.now(UTC)
    runs = Runs(client)
    for _ in range(100):  # visibility lists a run a moment after it starts
        found = await runs.incidents_started(IncidentsRequest(start=now - timedelta(minutes=5), end=now))
        if incident_id in [i.workflow_id for i in found]:
            break
        await asyncio.sleep(0.1)
    mine = next(i for i in found if i.workflow_id == incident_id)
    assert mine.status == "COMPLETED" and now - timedelta(minutes=5) <= mine.started <= now
    earlier = await runs.incidents_started(
        IncidentsRequest(start=now - timedelta(hours=2), end=now - timedelta(hours=1))
    )
    assert incident_id not in [i.workflow_id for i in earlier]
