"""The reports' listing over a bucket of years of reports (the AWS emulator over HTTP): the
console lists the recent ones, read folder by folder from the first recent name, so what it
shows is the newest whatever the bucket holds; `runbook reports` lists every one."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import boto3

from runbook_cli import reports
from tests.conftest import MotoServer
from tests.policies import default_policy

TODAY = date(2026, 12, 7)


def test_since_lists_the_recent_reports_of_each_folder_newest_first_with_their_charts(aws_env: MotoServer) -> None:
    reviews = default_policy().reviews
    reviews = reviews.model_copy(update={"bucket": f"reports-{uuid.uuid4().hex[:8]}"})
    s3 = boto3.client("s3", region_name=reviews.bucket_region)
    s3.create_bucket(Bucket=reviews.bucket, CreateBucketConfiguration={"LocationConstraint": reviews.bucket_region})  # type: ignore[typeddict-item]
    days = [TODAY - timedelta(days=n) for n in range(400)]  # more than a year of daily reports
    keys = [f"reports/daily/{day}.md" for day in days] + [f"reports/daily/{day}-overnight.png" for day in days]
    keys += [f"reports/weekly/{day}.md" for day in days if day.weekday() == 0]
    keys += [f"reports/weekly/{day}.json" for day in days if day.weekday() == 0]
    keys += [f"reports/monthly/{day:%Y-%m}.md" for day in days if day.day == 1]
    for key in keys:
        s3.put_object(Bucket=reviews.bucket, Key=key, Body=b"x")

    since = TODAY - timedelta(days=30)
    recent = reports.list_reports(reviews, s3, since=since)
    daily = [row.id for row in recent if row.id.startswith("daily/")]
    assert daily == [f"daily/{TODAY - timedelta(days=n)}" for n in range(31)]  # the newest, none older
    assert {row.id for row in recent if row.id.startswith("weekly/")} == {
        f"weekly/{day}" for day in days if day.weekday() == 0 and day >= since
    }
    # a month's report is named by its month: the one since's month began is in, the one before not
    assert [row.id for row in recent if row.id.startswith("monthly/")] == ["monthly/2026-12", "monthly/2026-11"]
    assert all(row.charts == [f"reports/{row.id}-overnight.png"] for row in recent if row.id.startswith("daily/"))
    assert [row.id.rpartition("/")[2] for row in recent] == sorted(
        (r.id.rpartition("/")[2] for r in recent), reverse=True
    )

    every = reports.list_reports(reviews, s3)
    assert len([row for row in every if row.id.startswith("daily/")]) == 400 and every[0].id.endswith(str(TODAY))
