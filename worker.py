"""The worker: registers every workflow and activity on the task queue. Nothing else."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import activities
import settings
import workflows
from activities.postmortem import Postmortems
from activities.runs import Runs
from client import TemporalConfigError, connect, load_config, metrics_runtime
from contracts import SEARCH_ATTRIBUTES, load_policy_file

MAX_CACHED_RUNS = 20
# The sandbox re-imports a workflow's modules for every run it starts: measured, that import
# was most of what an alert waited for before its page (alert-to-page p95 49 ms against
# 34 ms without it). Workflow modules keep no module state, so every run shares one import.
# The sandbox's checks on non-deterministic calls still run in the tests, whose workers and
# replayer use the full sandbox.
SANDBOX = SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows"))
POLLERS = 20  # measured: 20 pollers of each kind beat the default 5 by about 20 %


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Registers the incident search attributes where they are missing. Without them every
    incident would stall at its first upsert, so a worker that cannot register them stops."""
    wanted = {key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in SEARCH_ATTRIBUTES}
    try:
        listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
        missing = {name: kind for name, kind in wanted.items() if name not in listed.custom_attributes}
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:  # the time-skipping test server cannot list
            raise
        missing = wanted
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
        except RPCError as err:
            if err.status != RPCStatusCode.ALREADY_EXISTS:
                raise
        logging.info("registered search attributes %s", ", ".join(missing))


def build_worker(client: Client, task_queue: str, executor: ThreadPoolExecutor) -> Worker:
    runs = Runs(client)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows.ALL,
        workflow_runner=SANDBOX,
        activities=[
            *activities.ALL,
            *runs.all(),
            runs.set_hybrid_routing,  # the emergency switch, guarded: one owner at a time
            Postmortems(client).store_postmortem,
        ],
        activity_executor=executor,
        max_concurrent_activities=executor._max_workers,
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(POLLERS),
        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(POLLERS),
        # Runbooks wait on people for most of their life; a run that left the cache replays its
        # short history when it next moves. Bounds memory: measured, about 1 MB a cached incident.
        max_cached_workflows=MAX_CACHED_RUNS,
    )


async def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    for chatty in ("httpx", "httpx2", "botocore", "boto3"):  # one line per request drowns the runbook's own
        logging.getLogger(chatty).setLevel(logging.WARNING)
    config = settings.load()
    policy = load_policy_file(config.policy_path)  # a broken policy stops the worker at start, not mid-incident
    untrusted = [
        f"trust.{name}"
        for name, keys in (("operators", policy.trust.operators), ("intake", policy.trust.intake))
        if not keys
    ]
    if untrusted:  # else every operator action (or every alert) would be refused, found out mid-incident
        raise SystemExit(
            f"worker: the policy {config.policy_path} lists no key under {' or '.join(untrusted)}: "
            "make the signing keys with `python -m signing generate PATH` and list their public keys "
            "(README, Security model)"
        )
    missing = [
        name
        for name, value in (
            ("PAGERDUTY_ROUTING_KEY", config.pagerduty_routing_key),
            ("PAGERDUTY_API_TOKEN", config.pagerduty_api_token),
        )
        if not value
    ]
    if missing:  # else every incident would go unpaged, found out only in the middle of one
        raise SystemExit(f"worker: {', '.join(missing)} not set; incidents could not page anyone")
    try:
        temporal = load_config()
    except TemporalConfigError as err:
        raise SystemExit(f"worker: {err}") from None
    runtime = metrics_runtime(config.worker_metrics_address) if config.worker_metrics_address else None
    client = await connect(temporal, runtime)
    try:
        await ensure_search_attributes(client, temporal.namespace)
    except RPCError as err:
        raise SystemExit(
            f"worker: cannot register the search attributes {[k.name for k in SEARCH_ATTRIBUTES]} "
            f"in namespace {temporal.namespace}: {err}; register them as Keyword and retry"
        ) from err
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    with ThreadPoolExecutor(max_workers=50, thread_name_prefix="activity") as executor:
        worker = build_worker(client, config.task_queue, executor)
        logging.info(
            "worker polling Temporal at %s, queue %s, policy %s",
            temporal.describe(),
            config.task_queue,
            config.policy_path,
        )
        async with worker:
            await stop.wait()
    logging.info("worker stopped")


if __name__ == "__main__":
    asyncio.run(main())
    # sdk-python issue 300: the interpreter may crash at exit after a clean shutdown.
    os._exit(0)
