"""boto3 plumbing shared by the AWS activities: cached clients and error classification."""

from __future__ import annotations

import functools
import threading
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from temporalio.exceptions import ApplicationError

# botocore's own retries stay short: Temporal's retry policy decides what happens next.
_CONFIG = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=20)

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
}


_CREATING = threading.Lock()


def client(service: str, region: str) -> Any:
    """One client per service and region. Clients are safe to share between the activity
    threads; creating them from boto3's default session is not, hence the lock."""
    with _CREATING:
        return _client(service, region)


@functools.lru_cache(maxsize=32)
def _client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region, config=_CONFIG)


def aws_error(err: Exception, action: str) -> ApplicationError:
    """Turns a boto error into an ApplicationError that says whether retrying can help."""
    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code", "Unknown")
        message = err.response.get("Error", {}).get("Message", str(err))
        return ApplicationError(f"{action}: {code}: {message}", type=code, non_retryable=code in _PERMANENT)
    if isinstance(err, BotoCoreError):
        return ApplicationError(f"{action}: {err}", type=type(err).__name__)
    raise err
