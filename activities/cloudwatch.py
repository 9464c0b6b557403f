"""CloudWatch: metrics graded against the service levels, and ERROR lines in the logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from temporalio import activity

from activities._aws import aws_error, client
from contracts import LogScan, LogScanRequest, MetricLevel, MetricQuery, MetricReading, MetricsRequest
from contracts.scaling_rules import Datapoint, Series
from contracts.systems import SeriesRequest
from contracts.trend_reviews import (
    CONCURRENCY,
    DaysRequest,
    PeriodFigures,
    Utilisation,
    UtilisationRequest,
    in_flight,
    summarise_days,
    utilisation,
)

if TYPE_CHECKING:
    from types_boto3_cloudwatch.type_defs import MetricDataQueryTypeDef

MAX_LOG_EVENTS = 1000
SAMPLES = 5


def _breaches(query: MetricQuery, value: float, threshold: float | None) -> bool:
    if threshold is None:
        return False
    return value > threshold if query.direction == "above" else value < threshold


def grade(query: MetricQuery, values: list[float]) -> MetricReading:
    """The worst value in the window decides: latency's highest, cache hit rate's lowest."""
    if not values:
        return MetricReading(
            key=query.key,
            value=None,
            level="no-data",
            within_target=query.target is None,
            detail=f"no datapoints in the last {int(query.lookback.total_seconds())}s",
        )
    worst = max(values) if query.direction == "above" else min(values)
    level: MetricLevel = "ok"
    if _breaches(query, worst, query.critical):
        level = "critical"
    elif _breaches(query, worst, query.warning):
        level = "warning"
    within = not _breaches(query, worst, query.target) and level != "critical"
    relation = ">" if query.direction == "above" else "<"
    bound = query.critical if level == "critical" else query.warning if level == "warning" else query.target
    detail = f"{worst:g} ({query.stat})" + (f", {relation} {bound:g}" if level != "ok" and bound is not None else "")
    return MetricReading(key=query.key, value=worst, level=level, within_target=within, detail=detail)


def data_queries(queries: list[tuple[int, MetricQuery]]) -> list[MetricDataQueryTypeDef]:
    return [
        {
            "Id": f"m{index}",
            "MetricStat": {
                "Metric": {
                    "Namespace": query.namespace,
                    "MetricName": query.metric_name,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(query.dimensions.items())],
                },
                "Period": query.period_seconds,
                "Stat": query.stat,
            },
            "ReturnData": True,
        }
        for index, query in queries
    ]


@activity.defn
def read_series(request: SeriesRequest) -> list[Series]:
    """Each query's datapoints over the window, oldest first (one GetMetricData call per
    region): the scaling rules judge every datapoint, not a summary."""
    now = min(request.end, datetime.now(UTC)) if request.end is not None else datetime.now(UTC)
    by_region: dict[str, list[tuple[int, MetricQuery]]] = {}
    for index, query in enumerate(request.queries):
        by_region.setdefault(query.region or request.region, []).append((index, query))
    points: dict[int, list[Datapoint]] = {index: [] for index in range(len(request.queries))}
    for region, queries in by_region.items():
        try:
            paginator = client("cloudwatch", region).get_paginator("get_metric_data")
            pages = paginator.paginate(
                MetricDataQueries=data_queries(queries),
                StartTime=now - request.window,
                EndTime=now,
                ScanBy="TimestampAscending",
            )
            for page in pages:
                for result in page["MetricDataResults"]:
                    found = zip(result["Timestamps"], result["Values"], strict=True)
                    points[int(result["Id"][1:])].extend(Datapoint(at=t, value=v) for t, v in found)
        except (ClientError, BotoCoreError) as err:
            raise aws_error(err, f"GetMetricData in {region}") from err
    return [
        Series(key=query.key, period_seconds=query.period_seconds, points=sorted(points[index], key=lambda p: p.at))
        for index, query in enumerate(request.queries)
    ]


@activity.defn
def read_metrics(request: MetricsRequest) -> list[MetricReading]:
    """One GetMetricData call for every query of the policy."""
    if not request.queries:
        return []
    now = datetime.now(UTC)
    start = now - max(q.lookback for q in request.queries)
    by_region: dict[str, list[tuple[int, MetricQuery]]] = {}
    for index, query in enumerate(request.queries):
        by_region.setdefault(query.region or request.region, []).append((index, query))
    values: dict[int, list[float]] = {}
    for region, queries in by_region.items():
        try:
            paginator = client("cloudwatch", region).get_paginator("get_metric_data")
            for page in paginator.paginate(MetricDataQueries=data_queries(queries), StartTime=start, EndTime=now):
                for result in page["MetricDataResults"]:
                    index = int(result["Id"][1:])
                    cutoff = now - request.queries[index].lookback
                    values.setdefault(index, []).extend(
                        v for t, v in zip(result["Timestamps"], result["Values"], strict=True) if t >= cutoff
                    )
        except (ClientError, BotoCoreError) as err:
            raise aws_error(err, f"GetMetricData in {region}") from err
    return [grade(query, values.get(index, [])) for index, query in enumerate(request.queries)]


@activity.defn
def scan_error_logs(request: LogScanRequest) -> LogScan:
    logs = client("logs", request.region)
    since = datetime.now(UTC) - request.lookback
    count = 0
    samples: list[str] = []
    try:
        paginator = logs.get_paginator("filter_log_events")
        pages = paginator.paginate(
            logGroupName=request.log_group,
            startTime=int(since.timestamp() * 1000),
            filterPattern=request.pattern,
            PaginationConfig={"MaxItems": MAX_LOG_EVENTS},
        )
        for page in pages:
            for event in page.get("events", []):
                count += 1
                if len(samples) < SAMPLES:
                    samples.append(event["message"].strip()[:300])
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"FilterLogEvents on {request.log_group}") from err
    more = "+" if count >= MAX_LOG_EVENTS else ""
    lookback = int(request.lookback.total_seconds())
    return LogScan(
        log_group=request.log_group,
        error_count=count,
        samples=samples,
        detail=f"{count}{more} line(s) matching {request.pattern!r} in the last {lookback}s",
    )


@activity.defn
def read_days(request: DaysRequest) -> PeriodFigures:
    """The days' datapoints at an hour each (one GetMetricData call), handed back as each day's
    figures and the whole's judgement: a few kilobytes, not the datapoints."""
    queries = [q.model_copy(update={"period_seconds": request.period_seconds}) for q in request.queries]
    window = timedelta(days=request.days)
    found = read_series(
        SeriesRequest(region=request.region, queries=queries, window=window, end=request.start + window)
    )
    return summarise_days(request, {series.key: series for series in found})


@activity.defn
def read_utilisation(request: UtilisationRequest) -> list[Utilisation]:
    """Each measure's peak, P95 and daily peaks over the days, and the requests in flight (from
    the request count and the average response time)."""
    window = timedelta(days=request.days)
    queries = [request.requests, request.latency]
    for measure in request.measures:
        queries += [measure.average, measure.maximum]
    found = read_series(
        SeriesRequest(region=request.region, queries=queries, window=window, end=request.start + window)
    )
    series = {s.key: s for s in found}
    measured = [
        utilisation(
            m.key,
            series[m.average.key],
            series[m.maximum.key],
            request.start,
            request.days,
            m.capacity,
            m.warning,
            m.critical,
        )
        for m in request.measures
    ]
    flying = in_flight(series[request.requests.key], series[request.latency.key])
    measured.append(utilisation(CONCURRENCY, flying, flying, request.start, request.days, None))
    return measured
