"""How long and how often each kind of activity may try, as typed activity options.

Reads may retry for a while; a page keeps trying for half an hour because a page that never
goes out is the worst outcome; a remediation gets few attempts, then people decide.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

READ = workflow.ActivityConfig(
    start_to_close_timeout=timedelta(seconds=30),
    schedule_to_close_timeout=timedelta(minutes=2),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10)),
)
NOTIFY = workflow.ActivityConfig(
    start_to_close_timeout=timedelta(seconds=30),
    schedule_to_close_timeout=timedelta(minutes=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)),
)
ACT = workflow.ActivityConfig(
    start_to_close_timeout=timedelta(seconds=60),
    schedule_to_close_timeout=timedelta(minutes=5),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=30), maximum_attempts=5
    ),
)
# The page and the batch of what PagerDuty is owed: a few calls in one attempt, each bounded
# by the client's own timeout; a worker that died holding one is noticed within a minute.
PAGE = workflow.ActivityConfig(
    start_to_close_timeout=timedelta(seconds=60),
    schedule_to_close_timeout=timedelta(minutes=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)),
)


def hold(until: timedelta) -> workflow.ActivityConfig:
    """A long activity that polls and heartbeats (verification): a dead worker is noticed within
    the heartbeat timeout and the activity resumes elsewhere."""
    return workflow.ActivityConfig(
        start_to_close_timeout=until + timedelta(minutes=1),
        heartbeat_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(
            initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=10
        ),
    )
