"""The weekly and monthly reviews: their windows, trends and fits; the weekly review against
the week before on the time-skipping server (two Mondays, the second comparing with what the
first stored); a critical week opening an incident through the real intake over HTTP and a
warning week opening none; and both reviews end to end against the AWS emulator over HTTP with
the seeded history, their numbers recomputed from the seed itself."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.cloudwatch import read_days, read_utilisation
from activities.intake import raise_review_alert
from activities.postmortem import store_report
from activities.reports import chart_capacity, chart_week, read_figures
from activities.runs import Runs
from activities.scaling import read_ecs_capacity
from contracts import Policy
from contracts.reviews import IncidentsRequest, OvernightIncident, RaisedAlert, ReviewAlert
from contracts.scaling_rules import CapacityLimits, Datapoint, Series
from contracts.schedules import StoredReport, StoreReport
from contracts.trend_reviews import (
    AVERAGE,
    MAXIMUM,
    REQUESTS,
    SAMPLES,
    DaysRequest,
    FiguresRequest,
    PeriodFigures,
    TrendInput,
    WeekChartRequest,
    fit,
    month_window,
    recommend,
    summarise_days,
    trend,
    utilisation,
    week_window,
)
from devstack import aws_seed
from runbook_cli import reports
from tests.conftest import MotoServer
from tests.fakes import keep_history
from tests.policies import demo_policy
from tests.test_intake import TOKEN, running_intake
from workflows.capacity_review import CapacityReviewWorkflow
from workflows.weekly_review import WeeklyReviewWorkflow

HISTORIES = Path(__file__).parent / "histories"


def at(day: int, hour: int = 9) -> datetime:
    return datetime(2026, 12, day, hour, tzinfo=UTC)


# --------------------------------------------------------------------------- the rules


def test_the_week_is_monday_nine_to_monday_nine_and_the_month_the_last_complete_one() -> None:
    week = week_window(at(7), 9)  # Monday 7 December 2026, 09:00
    assert (week.start, week.end) == (datetime(2026, 11, 30, 9, tzinfo=UTC), at(7))
    assert week.key == "reports/weekly/2026-12-07.md" and week.figures_key == "reports/weekly/2026-12-07.json"
    assert week_window(at(9, 15), 9) == week  # by hand on Wednesday: the same week
    assert week_window(at(7, 8), 9).end == at(7) - timedelta(days=7)  # Monday before nine: the week before
    assert week.previous.end == week.start
    month = month_window(datetime(2026, 12, 1, 9, tzinfo=UTC))
    assert (month.start, month.end, month.days, month.name) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
        30,
        "2026-11",
    )
    assert month_window(datetime(2026, 3, 17, tzinfo=UTC)).days == 28


def test_a_trend_has_a_direction_a_size_and_a_verdict() -> None:
    up = trend("p95", 1100, 1000, "above")
    assert (up.direction, up.change_pct, up.verdict) == ("up", 10.0, "worse")
    cache = trend("cache", 80, 85, "below")
    assert (cache.direction, cache.verdict) == ("down", "worse")
    assert trend("requests", 101, 100, None).direction == "flat"
    assert trend("requests", 120, 100, None).verdict == "neutral"
    assert trend("p95", 10, None, "above").direction == "unknown"


def test_the_least_squares_fit_and_the_recommendation_follow_the_data() -> None:
    daily: list[float | None] = [40 + 0.5 * n for n in range(30)]
    daily[3] = None  # a day without data is left out, not read as zero
    fitted = fit(daily, 30)
    assert fitted is not None
    assert fitted.slope_per_day == pytest.approx(0.5) and fitted.projected == pytest.approx(40 + 0.5 * 59)
    assert fitted.growth_pct_per_month == pytest.approx(15 / 54.5 * 100)
    assert fit([None, 3.0], 30) is None
    # a month without datapoints recommends no change
    empty = utilisation(
        "cpu_pct", Series(key="a", period_seconds=3600), Series(key="m", period_seconds=3600), at(1), 30, 100
    )
    assert empty.level == "no-data" and empty.daily_peaks == [None] * 30
    assert recommend([empty], {}, 3, 60, 2, {"cpu_pct": ("cpu", 70, "5m")}, 50, 10) == (
        3,
        10,
        None,
        {},
        ["no utilisation datapoints in the month: keep the policy as it is"],
    )


# --------------------------------------------------------------------------- fakes


def hourly(key: str, start: datetime, days: int, value: Callable[[datetime], float]) -> Series:
    points = [
        Datapoint(at=start + timedelta(hours=h), value=value(start + timedelta(hours=h))) for h in range(24 * days)
    ]
    return Series(key=key, period_seconds=3600, points=points)


class Week:
    """A synthetic week: `scale` on traffic and response time, `bad` spans of the P95."""

    def __init__(self, scale: float = 1.0, bad: list[tuple[datetime, datetime, float]] | None = None) -> None:
        self.scale, self.bad = scale, bad or []

    def p95(self, t: datetime) -> float:
        return next((v for start, end, v in self.bad if start <= t < end), 900 * self.scale)


class WeeklyFake:
    """The weekly review's activities by name: CloudWatch answers with the synthetic week that
    starts at the request's start (a plain one otherwise), the bucket keeps what is put."""

    def __init__(self, policy: Policy, weeks: dict[datetime, Week]) -> None:
        self.policy, self.weeks = policy, weeks
        self.bucket: dict[str, str] = {}
        self.read: list[DaysRequest] = []
        self.alerts: list[ReviewAlert] = []

    @activity.defn(name="load_policy")
    async def load_policy(self) -> Policy:
        return self.policy

    @activity.defn(name="read_days")
    async def read_days(self, request: DaysRequest) -> PeriodFigures:
        self.read.append(request)
        week = self.weeks.get(request.start, Week())
        values: dict[str, Callable[[datetime], float]] = {
            AVERAGE: lambda t: 400 * week.scale,
            MAXIMUM: lambda t: 1500 * week.scale,
            SAMPLES: lambda t: 1000,
            REQUESTS: lambda t: 9000 * week.scale,
            "p95_latency_ms": week.p95,
            "error_rate_pct": lambda t: 0.3,
            "cache_hit_pct": lambda t: 85,
        }
        series = {
            q.key: hourly(q.key, request.start, request.days, values.get(q.key, lambda t: 1)) for q in request.queries
        }
        return summarise_days(request, series)

    @activity.defn(name="read_figures")
    async def read_figures(self, request: FiguresRequest) -> PeriodFigures | None:
        body = self.bucket.get(request.key)
        return PeriodFigures.model_validate_json(body) if body is not None else None

    @activity.defn(name="incidents_started")
    async def incidents_started(self, request: IncidentsRequest) -> list[OvernightIncident]:
        return []

    @activity.defn(name="chart_week")
    async def chart_week(self, request: WeekChartRequest) -> StoredReport:
        return StoredReport(uri=f"s3://{request.bucket}/{request.key}", bytes=1)

    @activity.defn(name="store_report")
    async def store_report(self, request: StoreReport) -> StoredReport:
        self.bucket[request.key] = request.body
        return StoredReport(uri=f"s3://{request.bucket}/{request.key}", bytes=len(request.body))

    @activity.defn(name="raise_review_alert")
    async def raise_review_alert(self, alert: ReviewAlert) -> RaisedAlert:
        self.alerts.append(alert)
        return RaisedAlert(status=202, answer={"fake": True})

    def activities(self, real_alerts: bool = False) -> list[Callable[..., Any]]:
        return [
            self.load_policy,
            self.read_days,
            self.read_figures,
            self.incidents_started,
            self.chart_week,
            self.store_report,
            raise_review_alert if real_alerts else self.raise_review_alert,
        ]


def next_monday_nine(now: datetime) -> datetime:
    monday = (now + timedelta(days=(7 - now.weekday()) % 7)).replace(hour=9, minute=0, second=0, microsecond=0)
    return monday if monday > now else monday + timedelta(days=7)


# --------------------------------------------------------------------------- time-skipping


async def test_the_second_monday_compares_with_what_the_first_stored(time_skipping_env: WorkflowEnvironment) -> None:
    env = time_skipping_env
    now = await env.get_current_time()
    first = next_monday_nine(now)
    second = first + timedelta(days=7)
    # week one: two hours of P95 over the warning line (1700); week two: a quarter more of
    # everything and 90 minutes over the critical line (2600)
    warning_at = first - timedelta(days=3, hours=6)
    critical_at = second - timedelta(days=2, hours=5)
    weeks = {
        first - timedelta(days=7): Week(1.0, [(warning_at, warning_at + timedelta(hours=2), 1700)]),
        second - timedelta(days=7): Week(1.25, [(critical_at, critical_at + timedelta(minutes=90), 2600)]),
    }
    fake = WeeklyFake(demo_policy(), weeks)
    task_queue = f"weekly-{uuid.uuid4()}"
    async with Worker(
        env.client, task_queue=task_queue, workflows=[WeeklyReviewWorkflow], activities=fake.activities()
    ):
        one = await env.client.execute_workflow(
            WeeklyReviewWorkflow.run,
            TrendInput(started_by="test"),
            id=f"weekly-{uuid.uuid4()}",
            task_queue=task_queue,
            start_delay=first - now,  # the schedule's Monday 09:00, skipped to
        )
        assert (one.window.start, one.window.end) == (first - timedelta(days=7), first)
        # nothing stored for the week before the first: read from its datapoints
        assert one.previous_source == "metrics" and [r.start for r in fake.read] == [
            one.window.start,
            one.window.previous.start,
        ]
        assert one.level == "warning" and fake.alerts == []  # a warning is in the report only
        p95 = next(j for j in one.this.judgements if j.key == "p95_latency_ms")
        assert p95.breached_for == timedelta(hours=2)
        assert f"reports/weekly/{first:%Y-%m-%d}.json" in fake.bucket

        fake.read.clear()
        two = await env.client.execute_workflow(
            WeeklyReviewWorkflow.run,
            TrendInput(started_by="test"),
            id=f"weekly-{uuid.uuid4()}",
            task_queue=task_queue,
            start_delay=second - await env.get_current_time(),
        )
    # the week before is the first run's stored figures, not read again
    assert two.previous_source == "review" and two.previous == one.this
    assert [r.start for r in fake.read] == [first]
    by = {t.measure: t for t in two.trends}
    expected = round((two.this.traffic.requests - one.this.traffic.requests) / one.this.traffic.requests * 100, 1)
    assert by["requests"].change_pct == expected and by["requests"].direction == "up"
    assert by["requests"].verdict == "neutral"
    average = by["average response time (ms)"]
    assert average.direction == "up" and average.verdict == "worse" and average.change_pct == pytest.approx(25.0)
    assert two.level == "critical"
    [alert] = fake.alerts
    assert alert.review == f"weekly/{second:%Y-%m-%d}" and alert.report == two.uri
    assert alert.severity == "high" and "p95_latency_ms" in alert.summary
    assert "| requests |" in two.markdown and "from its stored review" in two.markdown
    assert f"p95_latency_ms **critical** {critical_at:%a %m-%d %H:%M}" in two.markdown


# --------------------------------------------------------------------------- the intake, over HTTP


async def test_a_critical_week_opens_an_incident_through_the_intake_and_a_warning_week_does_not(
    dev_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_intake(dev_env) as intake:
        monkeypatch.setenv("INTAKE_URL", intake.url)
        monkeypatch.setenv("INTAKE_GENERIC_TOKEN", TOKEN)
        base = intake.policy.model_copy(update={"metrics": demo_policy().metrics})
        end = week_window(datetime.now(UTC), 9)
        bad = end.end - timedelta(days=2)
        results = {}
        for service, spike in ((intake.service, 2600.0), (f"{intake.service}-b", 1700.0)):
            policy = base.model_copy(update={"reviews": base.reviews.model_copy(update={"service": service})})
            fake = WeeklyFake(policy, {end.start: Week(1.0, [(bad, bad + timedelta(hours=1), spike)])})
            task_queue = f"weekly-{uuid.uuid4()}"
            async with Worker(
                dev_env.client,
                task_queue=task_queue,
                workflows=[WeeklyReviewWorkflow],
                activities=fake.activities(real_alerts=True),
            ):
                handle = await dev_env.client.start_workflow(
                    WeeklyReviewWorkflow.run,
                    TrendInput(started_by="test"),
                    id=f"weekly-{uuid.uuid4()}",
                    task_queue=task_queue,
                )
                results[service] = await handle.result()
                view = await handle.query(WeeklyReviewWorkflow.view)
                assert view.status == "done" and view.window == end.name and view.uri == results[service].uri
                escalated = [e.event for e in view.timeline if e.step == "escalate"]
                assert escalated == (["escalated"] if spike > 2000 else ["escalation"]), view.timeline
                name = "critical" if spike > 2000 else "warning"
                await keep_history(handle, HISTORIES / "weekly" / f"{name}.json")
        critical = results[intake.service]
        assert critical.level == "critical" and critical.escalated is not None and critical.escalated.status == 202
        view = await intake.until(lambda v: v.summary)
        assert critical.uri is not None and critical.uri in view.summary and "[review weekly/" in view.summary
        assert view.opened_by.startswith("intake/")
        warning = results[f"{intake.service}-b"]
        assert warning.level == "warning" and warning.escalated is None
        assert not await intake.exists(f"{intake.service}-b")


# --------------------------------------------------------------------------- the emulator, over HTTP

REGION = "ap-northeast-1"  # seeded here up to now: no other test reads this region


def seeded_policy(bucket: str) -> Policy:
    policy = demo_policy()
    target = policy.services["hybrid-router"].model_copy(update={"region": REGION})
    assert policy.scaling is not None
    scaling = policy.scaling.model_copy(update={"limits": {"hybrid-router": CapacityLimits(ecs_step=2, ecs_max=10)}})
    reviews = policy.reviews.model_copy(update={"bucket": bucket})
    return policy.model_copy(update={"services": {"hybrid-router": target}, "scaling": scaling, "reviews": reviews})


def expected_from_seed(
    points: list[tuple[datetime, dict[str, float], timedelta]], start: datetime, end: datetime
) -> dict[str, Any]:
    """What the reviews must find, recomputed from the seed's own profile (hourly datapoints
    there: a week and a month ago are older than the seed's 5-minute days)."""
    inside = [(t, p, step) for t, p, step in points if start <= t < end]
    assert inside and all(step == timedelta(hours=1) for _, _, step in inside)
    days = (end - start).days
    daily: list[float | None] = []
    for n in range(days):
        first = start + timedelta(days=n)
        values = [round(p["cpu"], 3) for t, p, _ in inside if first <= t < first + timedelta(days=1)]
        daily.append(max(values) if len(values) >= 18 else None)  # a day three quarters seeded
    return {
        "requests": sum(max(1, round(p["rps"] * 3600)) for _, p, _ in inside),
        "cpu_peak": max(round(p["cpu"], 3) for _, p, _ in inside),
        "cpu_daily": daily,
    }


async def test_both_reviews_read_the_seeded_history_chart_store_and_list_it(
    dev_env: WorkflowEnvironment, aws_env: MotoServer
) -> None:
    now = datetime.now(UTC)
    aws_seed.seed_metric_history(REGION, now)
    aws_seed._seed_region(REGION, aws_seed.CLUSTER, 2)
    bucket = f"reports-{uuid.uuid4().hex[:8]}"
    policy = seeded_policy(bucket)
    s3 = boto3.client("s3", region_name=policy.reviews.bucket_region)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": policy.reviews.bucket_region})  # type: ignore[typeddict-item]
    points = aws_seed.history_points(now)
    alerts: list[ReviewAlert] = []

    @activity.defn(name="load_policy")
    async def load_policy() -> Policy:
        return policy

    @activity.defn(name="raise_review_alert")
    async def no_alert(alert: ReviewAlert) -> RaisedAlert:
        alerts.append(alert)
        return RaisedAlert(status=202, answer={})

    runs = Runs(dev_env.client)
    task_queue = f"reviews-{uuid.uuid4()}"
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            dev_env.client,
            task_queue=task_queue,
            workflows=[WeeklyReviewWorkflow, CapacityReviewWorkflow],
            activities=[
                load_policy,
                no_alert,
                read_days,
                read_figures,
                read_utilisation,
                read_ecs_capacity,
                chart_week,
                chart_capacity,
                store_report,
                runs.incidents_started,
                runs.scaling_runs_started,
            ],
            activity_executor=executor,
        ):
            weekly = await dev_env.client.start_workflow(
                WeeklyReviewWorkflow.run,
                TrendInput(started_by="test"),
                id=f"weekly-{uuid.uuid4()}",
                task_queue=task_queue,
            )
            week = await weekly.result()
            await keep_history(weekly, HISTORIES / "weekly" / "seeded.json")
            monthly = await dev_env.client.start_workflow(
                CapacityReviewWorkflow.run,
                TrendInput(started_by="test"),
                id=f"monthly-{uuid.uuid4()}",
                task_queue=task_queue,
            )
            month = await monthly.result()
            await keep_history(monthly, HISTORIES / "capacity" / "seeded.json")
            for handle in (weekly, monthly):  # a week or a month stays small in the history
                size = len((await handle.fetch_history()).to_json())
                assert size < 120_000, size

    # the week: its requests and the week before's, as the seed put them; growth shows as up
    this = expected_from_seed(points, week.window.start, week.window.end)
    before = expected_from_seed(points, week.window.previous.start, week.window.previous.end)
    assert week.this.traffic.requests == this["requests"]
    assert week.previous is not None and week.previous_source == "metrics"
    assert week.previous.traffic.requests == before["requests"]
    requests = next(t for t in week.trends if t.measure == "requests")
    assert requests.change_pct == round((this["requests"] - before["requests"]) / before["requests"] * 100, 1)
    assert requests.direction == "up"  # the seed grows about 1 % a day

    # the month: the CPU peak and daily peaks as seeded, the fit through them, the recommendation
    expected = expected_from_seed(points, month.window.start, month.window.end)
    cpu = next(m for m in month.measures if m.key == "cpu_pct")
    assert cpu.peak == pytest.approx(expected["cpu_peak"])
    assert cpu.daily_peaks == pytest.approx(expected["cpu_daily"])
    fitted = fit(expected["cpu_daily"], policy.reviews.capacity.horizon_days)
    assert fitted is not None and month.fits["cpu_pct"].slope_per_day == pytest.approx(fitted.slope_per_day)
    assert cpu.peak is not None and fitted.slope_per_day > 0 and month.fits["cpu_pct"].projected > cpu.peak
    assert month.desired_count == 2
    memory = next(m for m in month.measures if m.key == "memory_pct")
    want = max(
        math.ceil(
            2 * m.p95 * (month.fits[m.key].projected / m.peak if month.fits[m.key].projected > m.peak else 1) / 60
        )
        for m in (cpu, memory)
        if m.p95 is not None and m.peak is not None
    )
    assert month.recommendation.baseline_tasks == want
    baseline, maximum, _, thresholds, _ = recommend(
        month.measures, month.fits, 2, 60, 2, {"cpu_pct": ("cpu", 70, "5m"), "memory_pct": ("memory", 80, "5m")}, None
    )
    assert (month.recommendation.maximum_tasks, month.recommendation.thresholds) == (maximum, thresholds)
    # each threshold 10 above the projected peak per task on the baseline, at least the target
    on_baseline = {m.key: 2 * month.fits[m.key].projected / baseline for m in (cpu, memory)}
    assert thresholds == {
        "cpu": round(min(max(on_baseline["cpu_pct"] + 10, 60), 90), 1),
        "memory": round(min(max(on_baseline["memory_pct"] + 10, 60), 90), 1),
    }
    assert f"hybrid-router: {{ecs_step: 2, ecs_max: {maximum}" in month.recommendation.snippet
    assert month.level == "ok" and alerts == []  # the seeded month never reaches a warning line

    listed = {row.id: row for row in reports.list_reports(policy.reviews)}
    weekly_id, monthly_id = f"weekly/{week.window.name}", f"monthly/{month.window.name}"
    assert listed[weekly_id].charts == [f"reports/weekly/{week.window.name}-days.png"]
    assert listed[monthly_id].charts == [f"reports/monthly/{month.window.name}-utilisation.png"]
    for chart in (*listed[weekly_id].charts, *listed[monthly_id].charts):
        png = s3.get_object(Bucket=bucket, Key=chart)["Body"].read()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert "```yaml" in reports.read_report(policy.reviews, monthly_id)
    assert reports.read_report(policy.reviews, weekly_id) == week.markdown
