"""boto3 plumbing shared by the AWS activities: cached clients and error classification."""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Literal, overload

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from temporalio.exceptions import ApplicationError

if TYPE_CHECKING:  # the stubs are a development dependency (the test extra), not a runtime one
    from types_boto3_application_autoscaling import ApplicationAutoScalingClient
    from types_boto3_bedrock import BedrockClient
    from types_boto3_cloudwatch import CloudWatchClient
    from types_boto3_ecs import ECSClient
    from types_boto3_iam import IAMClient
    from types_boto3_lambda import LambdaClient
    from types_boto3_logs import CloudWatchLogsClient
    from types_boto3_route53 import Route53Client
    from types_boto3_s3 import S3Client
    from types_boto3_s3.type_defs import PutObjectOutputTypeDef

    AnyClient = (
        ECSClient
        | CloudWatchClient
        | CloudWatchLogsClient
        | LambdaClient
        | ApplicationAutoScalingClient
        | Route53Client
        | S3Client
        | BedrockClient
        | IAMClient
    )

Service = Literal["ecs", "cloudwatch", "logs", "lambda", "application-autoscaling", "route53", "s3", "bedrock", "iam"]

# botocore's own retries stay short: Temporal's retry policy decides what happens next.
_CONFIG = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=20)
# A page waiting for its read (the console): one attempt, given up within 9 s, inside the page's 10 s.
_QUICK_CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=3, read_timeout=6)
_THREAD = threading.local()


def quick_clients() -> None:
    """From now on the calling thread's clients are the quick ones (`_QUICK_CONFIG`): for the
    threads of a listener that answers people, not of activities that Temporal retries."""
    _THREAD.quick = True


# Errors that another attempt cannot fix: wrong input, missing resource, no permission.
_PERMANENT = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ValidationError",
    "ValidationException",
    "InvalidParameterException",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "ClientException",
    "ClusterNotFoundException",
    "ServiceNotFoundException",
    "ServiceNotActiveException",
    "ResourceNotFoundException",
    "InvalidParameterValueException",  # Lambda's
    "ObjectNotFoundException",  # Application Auto Scaling's
    # Route 53's: a change batch that no longer matches the records, a zone or health check gone
    "InvalidChangeBatch",
    "InvalidInput",
    "NoSuchHostedZone",
    "NoSuchHealthCheck",
    "NoSuchBucket",  # S3's
    "NoSuchEntity",  # IAM's: the role to simulate is gone
}


_CREATING = threading.Lock()


@overload
def client(service: Literal["ecs"], region: str) -> ECSClient: ...
@overload
def client(service: Literal["cloudwatch"], region: str) -> CloudWatchClient: ...
@overload
def client(service: Literal["logs"], region: str) -> CloudWatchLogsClient: ...
@overload
def client(service: Literal["lambda"], region: str) -> LambdaClient: ...
@overload
def client(service: Literal["application-autoscaling"], region: str) -> ApplicationAutoScalingClient: ...
@overload
def client(service: Literal["route53"], region: str) -> Route53Client: ...
@overload
def client(service: Literal["s3"], region: str) -> S3Client: ...
@overload
def client(service: Literal["bedrock"], region: str) -> BedrockClient: ...
@overload
def client(service: Literal["iam"], region: str) -> IAMClient: ...
def client(service: Service, region: str) -> AnyClient:
    """One client per service and region. Clients are safe to share between the activity
    threads; creating them from boto3's default session is not, hence the lock."""
    with _CREATING:
        return _client(service, region, getattr(_THREAD, "quick", False))


@functools.lru_cache(maxsize=32)
def _client(service: Service, region: str, quick: bool = False) -> AnyClient:
    return boto3.client(service, region_name=region, config=_QUICK_CONFIG if quick else _CONFIG)


def aws_error(err: Exception, action: str) -> ApplicationError:
    """Turns a boto error into an ApplicationError that says whether retrying can help."""
    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code", "Unknown")
        message = err.response.get("Error", {}).get("Message", str(err))
        return ApplicationError(f"{action}: {code}: {message}", type=code, non_retryable=code in _PERMANENT)
    if isinstance(err, BotoCoreError):
        return ApplicationError(f"{action}: {err}", type=type(err).__name__)
    raise err


def put_object(
    region: str,
    bucket: str,
    key: str,
    body: bytes,
    content_type: str,
    what: str,
    metadata: dict[str, str] | None = None,
) -> PutObjectOutputTypeDef:
    """`body` at `s3://bucket/key` (a retry puts the same object again); S3's answer (ETag, VersionId).
    An AWS error becomes the activity's failure, naming `what` was being stored."""
    try:
        answer = client("s3", region).put_object(
            Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata or {}
        )
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"store {what} at s3://{bucket}/{key}") from err
    return answer
