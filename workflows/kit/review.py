"""What the reviews share: the policy they start from, and the report's escalation. A critical
breach in the review's data goes to the alert intake (which opens or joins the service's
incident, the report linked); a warning stays in the report."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import policy as policy_activity
    from activities.intake import raise_review_alert
    from contracts import Policy
    from contracts.reviews import RaisedAlert, ReviewAlert
    from contracts.systems import MetricLevel
    from contracts.trend_reviews import PeriodWindow, TrendInput, TrendStatus, TrendView

from workflows.kit.options import NOTIFY
from workflows.kit.timeline import Timeline


async def review_policy() -> Policy:
    """The worker's policy (a local activity, kept in the history), with a reviewed service it has."""
    policy = await workflow.execute_local_activity(
        policy_activity.load_policy, start_to_close_timeout=timedelta(seconds=30)
    )
    reviews = policy.reviews
    if reviews.service not in policy.services:
        # not a policy validator: the section has defaults, and the policies recorded in older
        # runs' histories (any runbook's) must still load with services of other names
        raise ApplicationError(f"reviews.service: {reviews.service!r} is not a service of the policy's services")
    return policy


async def escalate_critical(
    policy: Policy, level: MetricLevel, review: str, uri: str | None, summary: str, timeline: Timeline
) -> RaisedAlert | None:
    """The alert, once per review (its id is the review's), when the level is critical and the
    policy escalates; None otherwise, with the reason on the timeline."""
    severity = policy.reviews.escalate_severity
    if level != "critical" or uri is None:
        timeline.record("escalation", f"none: the review is {level}")
        return None
    if severity is None:
        timeline.record("escalation", "none: reviews.escalate_severity is unset (critical, in the report only)")
        return None
    service = policy.reviews.service
    alert = ReviewAlert(
        service=service,
        region=policy.services[service].region,
        summary=f"[review {review}] {summary} (report {uri})",
        report=uri,
        review=review,
        severity=severity,
    )
    raised: RaisedAlert = await workflow.execute_activity(raise_review_alert, alert, **NOTIFY)
    timeline.record("escalated", f"{severity} alert to the intake: {raised.status} {raised.answer}")
    return raised


class TrendReview:
    """The state and the view the weekly and monthly reviews share (a `@workflow.defn` class
    inherits the query): who started it, its period, where it is, the report, the alert."""

    def __init__(self, input: TrendInput) -> None:
        self.input = input
        self.timeline = Timeline()
        self.status: TrendStatus = "reading"
        self.period: PeriodWindow | None = None
        self.charts: list[str] = []
        self.uri: str | None = None
        self.escalated: RaisedAlert | None = None

    def enter(self, step: str, status: TrendStatus) -> None:
        self.timeline.step, self.status = step, status

    @workflow.query
    def view(self) -> TrendView:
        return TrendView(
            status=self.status,
            step=self.timeline.step,
            started_by=self.input.started_by,
            window=self.period.name if self.period else None,
            uri=self.uri,
            timeline=list(self.timeline.entries),
        )
