"""The weekly performance review: each day of the week against the week before, trends with a
direction and a size, what breached and for how long, as a Markdown report with a chart in the
reports' bucket; a critical breach goes to the intake, which opens or joins the service's
incident with the report linked. Read it next to `runbooks/weekly-review.md`: each `step_<id>`
is a step there.

Started by its Temporal Schedule (`runbook: weekly-review`, Mondays 09:00 UTC) or by `runbook
schedules trigger weekly-performance-review`. The week before is what last week's run stored
next to its report (its figures as JSON), read back through an activity: durable (the bucket is
versioned and outlives Temporal's retention, which may drop a week-old run's result) and
replay-safe (what was read is in the history). With none stored (the first week, a bucket
emptied), the week before is read from CloudWatch like this one, and the report says so.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.cloudwatch import read_days
    from activities.postmortem import store_report
    from activities.reports import chart_week, read_figures
    from activities.runs import Runs
    from contracts import Policy
    from contracts.reviews import IncidentsRequest, OvernightIncident
    from contracts.schedules import StoredReport, StoreReport
    from contracts.trend_reviews import (
        AVERAGE,
        MAXIMUM,
        REQUESTS,
        SAMPLES,
        DaysRequest,
        FiguresRequest,
        PeriodFigures,
        PreviousSource,
        Trend,
        TrendInput,
        WeekChartRequest,
        WeeklyResult,
        WeekWindow,
        render_week,
        trends,
        week_window,
    )

from workflows.kit.options import NOTIFY, READ
from workflows.kit.review import TrendReview, escalate_critical, review_policy
from workflows.kit.scheduled import nominal_time

# The runbook's step ids, in its order; a test keeps runbooks/weekly-review.md in step.
STEPS = ("read", "previous", "compare", "incidents", "chart", "store", "escalate")


@workflow.defn
class WeeklyReviewWorkflow(TrendReview):
    @workflow.init
    def __init__(self, input: TrendInput) -> None:
        super().__init__(input)
        self.window: WeekWindow | None = None
        self.this: PeriodFigures | None = None
        self.previous: PeriodFigures | None = None
        self.source: PreviousSource | None = None
        self.trends: list[Trend] = []
        self.incidents: list[OvernightIncident] = []

    @workflow.run
    async def run(self, input: TrendInput) -> WeeklyResult:
        policy = await review_policy()
        reviews = policy.reviews
        window = self.window = self.period = week_window(nominal_time(), reviews.daily.end_hour)
        self.timeline.record(
            "started", f"by {input.started_by}: the week {window.start:%Y-%m-%d} to {window.end:%Y-%m-%d}"
        )
        this = await self.step_read(policy, window)
        previous = await self.step_previous(policy, window)
        self.step_compare(this, previous)
        await self.step_incidents(window)
        await self.step_chart(policy, window)
        markdown = render_week(
            reviews.service, window, this, previous, self.source, self.trends, self.incidents, self.charts
        )
        await self.step_store(policy, window, this, markdown)
        await self.step_escalate(policy, window, this)
        self.status = "done"
        return WeeklyResult(
            window=window,
            level=this.level,
            this=this,
            previous=previous,
            previous_source=self.source,
            trends=self.trends,
            incidents=self.incidents,
            uri=self.uri,
            charts=self.charts,
            escalated=self.escalated,
            markdown=markdown,
        )

    def days_request(self, policy: Policy, start_at: WeekWindow) -> DaysRequest:
        reviews = policy.reviews
        period = reviews.weekly_period_seconds
        known = {m.key for m in policy.metrics}
        judged = [policy.metric(key) for key in reviews.judged if key in known]
        return DaysRequest(
            region=policy.services[reviews.service].region,
            queries=[
                reviews.response_time.query(AVERAGE, "Average", period),
                reviews.response_time.query(MAXIMUM, "Maximum", period),
                reviews.response_time.query(SAMPLES, "SampleCount", period),
                reviews.requests.query(REQUESTS, "Sum", period),
                *judged,
            ],
            judged=[q.key for q in judged],
            latency_p95=reviews.latency_p95,
            start=start_at.start,
            days=7,
            period_seconds=period,
        )

    async def step_read(self, policy: Policy, window: WeekWindow) -> PeriodFigures:
        """The week at an hour a datapoint, handed back as each day's figures."""
        self.enter("read", "reading")
        this = self.this = await workflow.execute_activity(read_days, self.days_request(policy, window), **READ)
        self.timeline.record("read", f"7 days, {this.traffic.requests:,} requests, {this.level}")
        return this

    async def step_previous(self, policy: Policy, window: WeekWindow) -> PeriodFigures | None:
        """The week before: its stored figures, else its datapoints."""
        self.enter("previous", "reading")
        reviews = policy.reviews
        before = window.previous
        request = FiguresRequest(bucket=reviews.bucket, region=reviews.bucket_region, key=before.figures_key)
        stored: PeriodFigures | None = await workflow.execute_activity(read_figures, request, **READ)
        if stored is not None:
            self.previous, self.source = stored, "review"
            self.timeline.record("previous", f"the stored review of the week to {before.name}")
            return stored
        read = await workflow.execute_activity(read_days, self.days_request(policy, before), **READ)
        if read.traffic.requests == 0 and read.level == "no-data":
            self.timeline.record("previous", f"none: no review of the week to {before.name} and no datapoints")
            return None
        self.previous, self.source = read, "metrics"
        self.timeline.record("previous", f"no stored review of the week to {before.name}: read from its datapoints")
        return read

    def step_compare(self, this: PeriodFigures, previous: PeriodFigures | None) -> None:
        """Each measure against the week before: direction and size."""
        self.enter("compare", "judging")
        self.trends = trends(this, previous) if previous is not None else []
        worse = [t.measure for t in self.trends if t.verdict == "worse"]
        self.timeline.record(
            "compared", f"worse: {', '.join(worse)}" if worse else "nothing worse than the week before"
        )

    async def step_incidents(self, window: WeekWindow) -> None:
        """The incident runs opened in the week."""
        self.enter("incidents", "judging")
        request = IncidentsRequest(start=window.start, end=window.end)
        self.incidents = await workflow.execute_activity_method(Runs.incidents_started, request, **READ)
        self.timeline.record("incidents", f"{len(self.incidents)} opened in the week")

    async def step_chart(self, policy: Policy, window: WeekWindow) -> None:
        """One PNG: each day against the week before."""
        self.enter("chart", "charting")
        assert self.this is not None
        reviews = policy.reviews
        request = WeekChartRequest(
            title=f"{reviews.service}: the week to {window.end:%Y-%m-%d %H:%M} UTC",
            bucket=reviews.bucket,
            region=reviews.bucket_region,
            key=window.chart_key("days"),
            this=self.this,
            previous=self.previous,
        )
        stored: StoredReport = await workflow.execute_activity(chart_week, request, **NOTIFY)
        self.charts = [stored.uri]
        self.timeline.record("charted", f"{stored.uri} ({stored.bytes} bytes)")

    async def step_store(self, policy: Policy, window: WeekWindow, this: PeriodFigures, markdown: str) -> None:
        """The figures (what next week compares against), then the report."""
        self.enter("store", "storing")
        reviews = policy.reviews
        figures = StoreReport(
            bucket=reviews.bucket,
            region=reviews.bucket_region,
            key=window.figures_key,
            body=this.model_dump_json(),
            content_type="application/json",
        )
        await workflow.execute_activity(store_report, figures, **NOTIFY)
        report = StoreReport(bucket=reviews.bucket, region=reviews.bucket_region, key=window.key, body=markdown)
        stored: StoredReport = await workflow.execute_activity(store_report, report, **NOTIFY)
        self.uri = stored.uri
        self.timeline.record("stored", f"{stored.uri} ({stored.bytes} bytes)")

    async def step_escalate(self, policy: Policy, window: WeekWindow, this: PeriodFigures) -> None:
        """A critical breach opens or joins the incident; a warning is in the report only."""
        self.enter("escalate", "escalating")
        critical = [j.key for j in this.judgements if j.level == "critical"]
        summary = f"{policy.reviews.service}: critical {', '.join(critical)} in the week to {window.name}"
        self.escalated = await escalate_critical(
            policy, this.level, f"weekly/{window.name}", self.uri, summary, self.timeline
        )
