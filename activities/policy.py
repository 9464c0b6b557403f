"""The policy file, read when a run opens so its numbers (and whose signatures it trusts) are
fixed in that run's history. Runs read it as a local activity at their start: parsed once per
change of the file, not once per run."""

from __future__ import annotations

import threading
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

import settings
from contracts import Policy, PolicyError, load_policy_file

_lock = threading.Lock()
_cached: tuple[tuple[str, int, int], Policy] | None = None


def _read(path: Path) -> Policy:
    global _cached
    stat = path.stat()  # FileNotFoundError: load_policy_file says so in its own words below
    version = (str(path), stat.st_mtime_ns, stat.st_size)
    with _lock:
        if _cached is not None and _cached[0] == version:
            return _cached[1]
    policy = load_policy_file(path)
    with _lock:
        _cached = (version, policy)
    return policy  # only serialized into the run's history: shared, never changed


@activity.defn
def load_policy() -> Policy:
    path = settings.load().policy_path
    try:
        try:
            return _read(path)
        except FileNotFoundError:
            return load_policy_file(path)
    except PolicyError as err:
        raise ApplicationError(str(err), type="InvalidPolicy", non_retryable=True) from err
