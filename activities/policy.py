"""The policy file, read when an incident opens so its numbers are fixed in that run's history."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

import settings
from contracts import Policy, PolicyError, load_policy_file


@activity.defn
def load_policy() -> Policy:
    try:
        return load_policy_file(settings.load().policy_path)
    except PolicyError as err:
        raise ApplicationError(str(err), type="InvalidPolicy", non_retryable=True) from err
