"""The monthly capacity planning: peak and P95 utilisation against capacity over the month, the
scaling decisions taken in it, the growth fitted to the daily peaks and projected, and a
recommendation (baseline tasks, maximum, provisioned concurrency, the scaling thresholds) as a
policy snippet an operator applies by hand. Read it next to `runbooks/capacity-planning.md`:
each `step_<id>` is a step there.

Started by its Temporal Schedule (`runbook: capacity-review`, the 1st at 09:00 UTC) or by
`runbook schedules trigger monthly-capacity-review`. It changes nothing on the platform: the
recommendation is words and YAML, a person decides. A utilisation at its capacity (or over its
metric's critical line) is a critical breach and goes to the intake like the weekly review's.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.cloudwatch import read_utilisation
    from activities.postmortem import store_report
    from activities.reports import chart_capacity
    from activities.runs import Runs
    from activities.scaling import read_ecs_capacity, read_provisioned_concurrency
    from contracts import Policy
    from contracts.common import format_duration
    from contracts.reviews import LEVEL_ORDER, IncidentsRequest
    from contracts.scaling import EcsCapacity, EcsCapacityRequest, LambdaConcurrencyRequest, ProvisionedConcurrency
    from contracts.schedules import StoredReport, StoreReport
    from contracts.systems import MetricLevel
    from contracts.trend_reviews import (
        CapacityChartRequest,
        CapacityResult,
        Fit,
        MonthWindow,
        Recommendation,
        ScalingRunSeen,
        TrendInput,
        Utilisation,
        UtilisationQuery,
        UtilisationRequest,
        fit,
        month_window,
        policy_snippet,
        recommend,
        render_capacity,
    )

from workflows.kit.options import NOTIFY, READ
from workflows.kit.review import TrendReview, escalate_critical, review_policy
from workflows.kit.scheduled import nominal_time

# The runbook's step ids, in its order; a test keeps runbooks/capacity-planning.md in step.
STEPS = ("read", "capacity", "decisions", "project", "recommend", "chart", "store", "escalate")


@workflow.defn
class CapacityReviewWorkflow(TrendReview):
    @workflow.init
    def __init__(self, input: TrendInput) -> None:
        super().__init__(input)
        self.window: MonthWindow | None = None
        self.measures: list[Utilisation] = []
        self.fits: dict[str, Fit] = {}
        self.desired = 0
        self.provisioned: int | None = None
        self.runs: list[ScalingRunSeen] = []

    @workflow.run
    async def run(self, input: TrendInput) -> CapacityResult:
        policy = await review_policy()
        reviews = policy.reviews
        window = self.window = self.period = month_window(nominal_time())
        self.timeline.record("started", f"by {input.started_by}: {window.name}")
        await self.step_read(policy, window)
        await self.step_capacity(policy)
        await self.step_decisions(window)
        self.step_project(policy)
        recommendation = self.step_recommend(policy, window)
        await self.step_chart(policy, window)
        level: MetricLevel = max((m.level for m in self.measures), key=LEVEL_ORDER.__getitem__, default="no-data")
        markdown = render_capacity(
            reviews.service,
            window,
            level,
            self.measures,
            self.fits,
            self.desired,
            self.provisioned,
            self.runs,
            recommendation,
            self.charts,
        )
        await self.step_store(policy, window, markdown)
        await self.step_escalate(policy, window, level)
        self.status = "done"
        return CapacityResult(
            window=window,
            level=level,
            measures=self.measures,
            fits=self.fits,
            desired_count=self.desired,
            provisioned_concurrency=self.provisioned,
            scaling_runs=self.runs,
            recommendation=recommendation,
            uri=self.uri,
            charts=self.charts,
            escalated=self.escalated,
            markdown=markdown,
        )

    async def step_read(self, policy: Policy, window: MonthWindow) -> None:
        """Each utilisation's peak, P95 and daily peaks, and the requests in flight, at an hour a datapoint."""
        self.enter("read", "reading")
        reviews = policy.reviews
        period = reviews.capacity.period_seconds
        levels = {m.key: m for m in policy.metrics}
        measures = [
            UtilisationQuery(
                key=m.key,
                average=m.metric.query(f"{m.key}_avg", "Average", period),
                maximum=m.metric.query(f"{m.key}_max", "Maximum", period),
                capacity=m.capacity,
                warning=levels[m.key].warning if m.key in levels else None,
                critical=levels[m.key].critical if m.key in levels else None,
            )
            for m in reviews.capacity.measures
        ]
        request = UtilisationRequest(
            region=policy.services[reviews.service].region,
            measures=measures,
            requests=reviews.requests.query("requests", "Sum", period),
            latency=reviews.response_time.query("latency", "Average", period),
            start=window.start,
            days=window.days,
        )
        self.measures = await workflow.execute_activity(read_utilisation, request, **READ)
        summary = ", ".join(f"{m.key} peak {m.peak or 0:.1f} {m.level}" for m in self.measures)
        self.timeline.record("read", summary)

    async def step_capacity(self, policy: Policy) -> None:
        """What the service runs today: its desired count, its provisioned concurrency."""
        self.enter("capacity", "reading")
        target = policy.services[policy.reviews.service]
        request = EcsCapacityRequest(cluster=target.ecs_cluster, service=target.ecs_service, region=target.region)
        ecs: EcsCapacity = await workflow.execute_activity(read_ecs_capacity, request, **READ)
        self.desired = ecs.desired_count
        limits = policy.scaling.limits.get(policy.reviews.service) if policy.scaling else None
        if limits is not None and limits.lambda_function and limits.lambda_qualifier:
            ask = LambdaConcurrencyRequest(
                function_name=limits.lambda_function, qualifier=limits.lambda_qualifier, region=target.region
            )
            found: ProvisionedConcurrency = await workflow.execute_activity(read_provisioned_concurrency, ask, **READ)
            self.provisioned = found.requested
        self.timeline.record("capacity", f"{self.desired} task(s), provisioned concurrency {self.provisioned}")

    async def step_decisions(self, window: MonthWindow) -> None:
        """The scaling decision runs started in the month (visibility)."""
        self.enter("decisions", "reading")
        request = IncidentsRequest(start=window.start, end=window.end)
        self.runs = await workflow.execute_activity_method(Runs.scaling_runs_started, request, **READ)
        self.timeline.record("decisions", f"{len(self.runs)} scaling run(s) in the month")

    def step_project(self, policy: Policy) -> None:
        """A least-squares line through each measure's daily peaks, carried `horizon_days` on."""
        self.enter("project", "judging")
        horizon = policy.reviews.capacity.horizon_days
        fitted = {m.key: fit(m.daily_peaks, horizon) for m in self.measures}
        self.fits = {key: f for key, f in fitted.items() if f is not None}
        self.timeline.record(
            "projected",
            ", ".join(f"{k} {f.projected:.1f} in {horizon}d ({f.slope_per_day:+.2f}/day)" for k, f in self.fits.items())
            or "too few days of data to fit",
        )

    def step_recommend(self, policy: Policy, window: MonthWindow) -> Recommendation:
        """Baseline, maximum, provisioned concurrency and thresholds from the projection."""
        self.enter("recommend", "judging")
        service = policy.reviews.service
        scaling = policy.scaling
        limits = scaling.limits.get(service) if scaling else None
        rules = {r.metric: (r.name, r.above, r.sustained_for) for r in scaling.rules} if scaling else {}
        baseline, maximum, provisioned, thresholds, reasons = recommend(
            self.measures,
            self.fits,
            self.desired,
            policy.reviews.capacity.target_pct,
            limits.ecs_step if limits else 1,
            {k: (name, above, format_duration(sustained)) for k, (name, above, sustained) in rules.items()},
            limits.lambda_step if limits and limits.lambda_function else None,
            limits.ecs_max if limits else None,
        )
        snippet = policy_snippet(
            service,
            window,
            baseline,
            maximum,
            provisioned,
            thresholds,
            [(r.name, r.metric, r.above, format_duration(r.sustained_for)) for r in scaling.rules] if scaling else [],
            limits.model_dump() if limits else {},
        )
        self.timeline.record(
            "recommended", f"baseline {baseline}, maximum {maximum}, provisioned {provisioned}, thresholds {thresholds}"
        )
        return Recommendation(
            baseline_tasks=baseline,
            maximum_tasks=maximum,
            provisioned_concurrency=provisioned,
            thresholds=thresholds,
            reasons=reasons,
            snippet=snippet,
        )

    async def step_chart(self, policy: Policy, window: MonthWindow) -> None:
        """One PNG: each measure's daily peaks, the trend, capacity and warning."""
        self.enter("chart", "charting")
        reviews = policy.reviews
        request = CapacityChartRequest(
            title=f"{reviews.service}: capacity, {window.name}",
            bucket=reviews.bucket,
            region=reviews.bucket_region,
            key=window.chart_key("utilisation"),
            start=window.start,
            measures=self.measures,
            fits=self.fits,
        )
        stored: StoredReport = await workflow.execute_activity(chart_capacity, request, **NOTIFY)
        self.charts = [stored.uri]
        self.timeline.record("charted", f"{stored.uri} ({stored.bytes} bytes)")

    async def step_store(self, policy: Policy, window: MonthWindow, markdown: str) -> None:
        """The report in the bucket, one object per month."""
        self.enter("store", "storing")
        reviews = policy.reviews
        report = StoreReport(bucket=reviews.bucket, region=reviews.bucket_region, key=window.key, body=markdown)
        stored: StoredReport = await workflow.execute_activity(store_report, report, **NOTIFY)
        self.uri = stored.uri
        self.timeline.record("stored", f"{stored.uri} ({stored.bytes} bytes)")

    async def step_escalate(self, policy: Policy, window: MonthWindow, level: MetricLevel) -> None:
        """A utilisation at capacity (or over its critical line) opens or joins the incident."""
        self.enter("escalate", "escalating")
        hot = [f"{m.key} peaked at {m.peak or 0:.1f}" for m in self.measures if m.level == "critical"]
        summary = f"{policy.reviews.service}: {', '.join(hot)} in {window.name}"
        self.escalated = await escalate_critical(
            policy, level, f"monthly/{window.name}", self.uri, summary, self.timeline
        )
