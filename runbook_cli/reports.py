"""The reviews' reports, read straight from the reports' bucket (the policy's `reviews.bucket`):
`runbook reports` lists them, `runbook report ID` prints one's Markdown. A report's id is its
key without `reports/` and `.md`: `daily/2026-12-07`.

boto3's usual chain finds the bucket (AWS_ENDPOINT_URL, credentials); a shell with no AWS
credentials at all reads the local stack's emulator (MOTO_PORT, default 5000), as `runbook
demo` does. The intake passes its own client (`s3=`): no fallback there, and nothing in its
environment changes.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from contracts.common import Strict
from contracts.policy import ReviewPolicy
from contracts.reviews import REPORTS_PREFIX


class ReportError(ValueError):
    """A report that cannot be read; the message says which and why."""


class NoSuchReport(ReportError):
    """No report by that id in the bucket (the bucket itself answered)."""


class ReportRow(Strict):
    id: str
    key: str
    bytes: int
    stored: datetime
    charts: list[str]


def _s3(region: str) -> Any:
    if boto3.Session().get_credentials() is None:  # nothing configured: the local stack's emulator
        os.environ.setdefault("AWS_ENDPOINT_URL", f"http://127.0.0.1:{os.environ.get('MOTO_PORT', '5000')}")
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    return boto3.client("s3", region_name=region)


def _where(reviews: ReviewPolicy) -> str:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    return f"s3://{reviews.bucket}" + (f" at {endpoint}" if endpoint else "")


def report_id(key: str) -> str:
    return key.removeprefix(REPORTS_PREFIX).removesuffix(".md")


def list_reports(reviews: ReviewPolicy, s3: Any = None, since: date | None = None) -> list[ReportRow]:
    """Every report in the bucket, newest first, with the charts stored next to it; read with
    `s3`, else the CLI's client. With `since`, only the reports named from that day on (a
    report's name starts with its date, `2026-12-07` or `2026-12`), listed folder by folder
    from that name: S3 lists keys in ascending order, so this reads the recent reports of a
    bucket that holds years of them without reading the years."""
    s3 = s3 or _s3(reviews.bucket_region)
    paginator = s3.get_paginator("list_objects_v2")
    objects: list[dict[str, Any]] = []
    try:
        listings: list[dict[str, str]] = [{"Prefix": REPORTS_PREFIX}]
        if since is not None:
            folders = paginator.paginate(Bucket=reviews.bucket, Prefix=REPORTS_PREFIX, Delimiter="/")
            listings = [
                {"Prefix": folder["Prefix"], "StartAfter": f"{folder['Prefix']}{since:%Y-%m-%d}"}
                for page in folders
                for folder in page.get("CommonPrefixes", [])
            ]
        for listing in listings:
            for page in paginator.paginate(Bucket=reviews.bucket, **listing):
                objects += page.get("Contents", [])
    except (ClientError, BotoCoreError) as err:
        raise ReportError(f"cannot list {_where(reviews)}: {err}") from None
    keys = {o["Key"] for o in objects}
    rows = [
        ReportRow(
            id=report_id(o["Key"]),
            key=o["Key"],
            bytes=o["Size"],
            stored=o["LastModified"],
            charts=sorted(k for k in keys if k.startswith(o["Key"].removesuffix(".md") + "-") and k.endswith(".png")),
        )
        for o in objects
        if o["Key"].endswith(".md")
    ]
    return sorted(rows, key=lambda row: (row.id.rpartition("/")[2], row.id), reverse=True)


def read_report(reviews: ReviewPolicy, report: str, s3: Any = None, errors: str = "strict") -> str:
    key = f"{REPORTS_PREFIX}{report_id(report)}.md"
    try:
        answer = (s3 or _s3(reviews.bucket_region)).get_object(Bucket=reviews.bucket, Key=key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise NoSuchReport(f"no report {report!r} in {_where(reviews)} (`runbook reports` lists them)") from None
        raise ReportError(f"cannot read s3://{reviews.bucket}/{key}: {err}") from None
    except BotoCoreError as err:
        raise ReportError(f"cannot read s3://{reviews.bucket}/{key}: {err}") from None
    body: bytes = answer["Body"].read()
    return body.decode(errors=errors)
