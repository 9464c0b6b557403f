"""The policy file, read when a run opens so its numbers (and whose signatures it trusts) are
fixed in that run's history. Runs read it as a local activity at their start: parsed once per
change of the file (in a thread), then answered from memory on the worker's event loop."""

from __future__ import annotations

import asyncio
import os

from temporalio import activity
from temporalio.exceptions import ApplicationError

import settings
from contracts import Policy, PolicyError, load_policy_file

_cached: tuple[tuple[str, int, int], Policy] | None = None


@activity.defn
async def load_policy() -> Policy:
    global _cached
    path = settings.load().policy_path
    try:
        stat = os.stat(path)
        version = (str(path), stat.st_mtime_ns, stat.st_size)
        if _cached is not None and _cached[0] == version:
            return _cached[1]  # only serialized into the run's history: shared, never changed
        policy = await asyncio.to_thread(load_policy_file, path)
        _cached = (version, policy)
        return policy
    except FileNotFoundError:
        message = f"policy file {path} does not exist"
    except PolicyError as err:
        message = str(err)
    raise ApplicationError(message, type="InvalidPolicy", non_retryable=True)
