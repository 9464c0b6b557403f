"""The worker: registers every workflow and activity on the task queue. Nothing else."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

import activities
import settings
import workflows
from contracts import load_policy_file

POLLERS = 20  # measured: 20 pollers of each kind beat the default 5 by about 20 %


async def connect(config: settings.Settings) -> Client:
    return await Client.connect(
        config.temporal_address, namespace=config.temporal_namespace, data_converter=pydantic_data_converter
    )


def build_worker(client: Client, task_queue: str, executor: ThreadPoolExecutor) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows.ALL,
        activities=activities.ALL,
        activity_executor=executor,
        max_concurrent_activities=executor._max_workers,
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(POLLERS),
        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(POLLERS),
    )


async def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    for chatty in ("httpx", "httpx2", "botocore", "boto3"):  # one line per request drowns the runbook's own
        logging.getLogger(chatty).setLevel(logging.WARNING)
    config = settings.load()
    load_policy_file(config.policy_path)  # a broken policy stops the worker at start, not mid-incident
    missing = [name for name, value in (("PAGERDUTY_ROUTING_KEY", config.pagerduty_routing_key),
                                        ("PAGERDUTY_API_TOKEN", config.pagerduty_api_token)) if not value]  # fmt: skip
    if missing:  # else every incident would go unpaged, found out only in the middle of one
        raise SystemExit(f"worker: {', '.join(missing)} not set; incidents could not page anyone")
    client = await connect(config)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    with ThreadPoolExecutor(max_workers=50, thread_name_prefix="activity") as executor:
        worker = build_worker(client, config.task_queue, executor)
        logging.info(
            "worker polling %s (namespace %s, queue %s), policy %s",
            config.temporal_address, config.temporal_namespace, config.task_queue, config.policy_path,
        )  # fmt: skip
        async with worker:
            await stop.wait()
    logging.info("worker stopped")


if __name__ == "__main__":
    asyncio.run(main())
    # sdk-python issue 300: the interpreter may crash at exit after a clean shutdown.
    os._exit(0)
