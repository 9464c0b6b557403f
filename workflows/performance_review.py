"""The routine performance review: the night's traffic, response time and service levels, what
breached and for how long, and the incidents opened meanwhile, as a Markdown report with a
chart in the reports' bucket. Read it next to `runbooks/performance-review.md`: each
`step_<id>` is a step there.

Started by its Temporal Schedule (the policy's `schedules:`, `runbook: performance-review`) or
by `runbook schedules trigger NAME`. The cadence is in the input; only `daily` exists yet. It
reads and writes its own report objects only: a retry or a second run over the same window puts
the same keys again (the bucket is versioned), so it has nothing to plan and nothing to undo.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.cloudwatch import read_series
    from activities.postmortem import store_report
    from activities.reports import chart_review
    from activities.runs import Runs
    from contracts import Policy
    from contracts.policy import MetricQuery
    from contracts.reviews import (
        ChartRequest,
        IncidentsRequest,
        Judgement,
        OvernightIncident,
        RaisedAlert,
        ReviewInput,
        ReviewResult,
        ReviewStatus,
        ReviewView,
        ReviewWindow,
        judge,
        overall_level,
        render_review,
        review_window,
        traffic,
    )
    from contracts.scaling_rules import Series
    from contracts.schedules import StoredReport, StoreReport
    from contracts.systems import SeriesRequest

from workflows.kit.options import NOTIFY, READ
from workflows.kit.review import escalate_critical, review_policy
from workflows.kit.scheduled import nominal_time
from workflows.kit.timeline import Timeline

# The runbook's step ids, in its order; a test keeps runbooks/performance-review.md in step.
STEPS = ("read", "judge", "incidents", "chart", "store", "escalate")

# The series the review reads besides the judged metrics, by the key they carry.
AVERAGE, MAXIMUM, SAMPLES, REQUESTS = "response_time_avg", "response_time_max", "response_time_samples", "requests"


@workflow.defn
class PerformanceReviewWorkflow:
    @workflow.init
    def __init__(self, input: ReviewInput) -> None:
        self.input = input
        self.timeline = Timeline()
        self.status: ReviewStatus = "reading"
        self.window: ReviewWindow | None = None
        self.series: dict[str, Series] = {}
        self.judgements: list[Judgement] = []
        self.incidents: list[OvernightIncident] = []
        self.charts: list[str] = []
        self.uri: str | None = None
        self.escalated: RaisedAlert | None = None

    @workflow.run
    async def run(self, input: ReviewInput) -> ReviewResult:
        policy = await review_policy()
        reviews = policy.reviews
        window = self.window = review_window(input.cadence, nominal_time(), reviews)
        self.timeline.record(
            "started", f"by {input.started_by}: {window.start:%Y-%m-%d %H:%M} to {window.end:%H:%M} UTC"
        )
        judged = [policy.metric(key) for key in reviews.judged if key in {m.key for m in policy.metrics}]
        unjudged = [key for key in reviews.judged if key not in {m.key for m in policy.metrics}]
        await self.step_read(policy, window, judged)
        self.step_judge(judged)
        await self.step_incidents(window)
        p95 = next((j for j in self.judgements if j.key == reviews.latency_p95), None)
        load = traffic(self.series[AVERAGE], self.series[MAXIMUM], self.series[SAMPLES], self.series[REQUESTS], p95)
        await self.step_chart(policy, window, judged)
        markdown = render_review(reviews.service, window, load, self.judgements, self.incidents, self.charts, unjudged)
        await self.step_store(
            StoreReport(bucket=reviews.bucket, region=reviews.bucket_region, key=window.key, body=markdown)
        )
        level = overall_level(self.judgements)
        # only a critical night sends anything: the runs recorded before this step (clean nights
        # among them) replay unchanged; the patch retires once no pre-escalation run is in flight
        # or replayed (a daily run lasts minutes: the release after next)
        if level == "critical" and workflow.patched("review-escalate"):
            await self.step_escalate(policy, window)
        self.status = "done"
        return ReviewResult(
            cadence=input.cadence,
            window=window,
            level=level,
            traffic=load,
            judgements=self.judgements,
            incidents=self.incidents,
            unjudged=unjudged,
            uri=self.uri,
            charts=self.charts,
            markdown=markdown,
            escalated=self.escalated,
        )

    async def step_read(self, policy: Policy, window: ReviewWindow, judged: list[MetricQuery]) -> None:
        """Every series of the window at the review's period, in one GetMetricData call."""
        self.enter("read", "reading")
        reviews = policy.reviews
        period = reviews.period_seconds
        queries = [
            reviews.response_time.query(AVERAGE, "Average", period),
            reviews.response_time.query(MAXIMUM, "Maximum", period),
            reviews.response_time.query(SAMPLES, "SampleCount", period),
            reviews.requests.query(REQUESTS, "Sum", period),
            *(query.model_copy(update={"period_seconds": period}) for query in judged),
        ]
        request = SeriesRequest(
            region=policy.services[reviews.service].region,
            queries=queries,
            window=window.end - window.start,
            end=window.end,
        )
        found = await workflow.execute_activity(read_series, request, **READ)
        self.series = {series.key: series for series in found}
        points = sum(len(series.points) for series in found)
        self.timeline.record("read", f"{len(found)} series, {points} datapoints at {period}s")

    def step_judge(self, judged: list[MetricQuery]) -> None:
        """Each judged metric against its target, warning and critical: breaches and how long."""
        self.enter("judge", "judging")
        self.judgements = [judge(query, self.series[query.key]) for query in judged]
        summary = ", ".join(f"{j.key} {j.level}" for j in self.judgements) or "nothing judged"
        self.timeline.record("judged", summary)

    async def step_incidents(self, window: ReviewWindow) -> None:
        """The incident runs opened in the window."""
        self.enter("incidents", "judging")
        request = IncidentsRequest(start=window.start, end=window.end)
        self.incidents = await workflow.execute_activity_method(Runs.incidents_started, request, **READ)
        self.timeline.record("incidents", f"{len(self.incidents)} opened in the window")

    async def step_chart(self, policy: Policy, window: ReviewWindow, judged: list[MetricQuery]) -> None:
        """The chart next to the report."""
        self.enter("chart", "charting")
        reviews = policy.reviews
        request = ChartRequest(
            title=f"{reviews.service}: {window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC",
            window=window,
            bucket=reviews.bucket,
            region=reviews.bucket_region,
            key=window.chart_key("overview"),
            response_time=[self.series[AVERAGE], self.series[MAXIMUM]],
            judged=[self.series[query.key] for query in judged],
            judgements=self.judgements,
            requests=self.series[REQUESTS],
        )
        stored: StoredReport = await workflow.execute_activity(chart_review, request, **NOTIFY)
        self.charts = [stored.uri]
        self.timeline.record("charted", f"{stored.uri} ({stored.bytes} bytes)")

    async def step_store(self, request: StoreReport) -> None:
        """The report in the bucket, one object per window (a second run replaces it)."""
        self.enter("store", "storing")
        stored: StoredReport = await workflow.execute_activity(store_report, request, **NOTIFY)
        self.uri = stored.uri
        self.timeline.record("stored", f"{stored.uri} ({stored.bytes} bytes)")

    async def step_escalate(self, policy: Policy, window: ReviewWindow) -> None:
        """A critical night opens or joins the service's incident, the report linked; a warning
        stays in the report."""
        self.enter("escalate", "escalating")
        critical = [j.key for j in self.judgements if j.level == "critical"]
        summary = f"{policy.reviews.service}: critical {', '.join(critical)} in the night to {window.name}"
        self.escalated = await escalate_critical(
            policy, "critical", f"{window.cadence}/{window.name}", self.uri, summary, self.timeline
        )

    def enter(self, step: str, status: ReviewStatus) -> None:
        self.timeline.step, self.status = step, status

    @workflow.query
    def view(self) -> ReviewView:
        return ReviewView(
            status=self.status,
            step=self.timeline.step,
            cadence=self.input.cadence,
            started_by=self.input.started_by,
            window=self.window,
            uri=self.uri,
            timeline=list(self.timeline.entries),
        )
