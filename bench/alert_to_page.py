"""Benchmark: alert-to-page latency of a P0 incident, next to the floor, and the worker's memory.

    .venv/bin/python bench/alert_to_page.py [--alerts 200] [--gap 0.2] [--short]

The first side effect of a P0 incident is its PagerDuty page. For each of N alerts (each for
its own target, so N incidents) this measures from the signal-with-start call
(`starter.open_or_join_incident`, the call the intake makes) to the moment the page's
Events API trigger reaches PagerDuty. In the same run, against the same server, it measures
the floor: signal-with-start of a trivial workflow defined here whose only step is one
activity, from the call to the moment that activity starts. The two are interleaved (one
alert, one floor, ...), one at a time with `--gap` seconds between samples, so neither
competes with the other or with itself.

What runs, all on loopback:
- the Temporal dev server with the local stack's flags (devstack.stack.Stack.start_temporal:
  SQLite in WAL mode, history.transferProcessorMaxPollRPS=1000, the search attributes);
- the real worker (worker.py, every workflow and activity registered) as its own process, as
  `make run` starts it, with a bench policy giving every bench target a service entry;
- the floor's worker as its own process too (this file with --floor-worker), with the same
  poller settings as the real one;
- the PagerDuty emulator (devstack.pagerduty_emulator.create_app, TLS, the stack's routing
  key and token) served by uvicorn in a thread of this process, behind a small ASGI wrapper
  that reads time.monotonic() when a POST /v2/enqueue arrives (request line and headers
  parsed, before the body is read) and keeps it once the emulator has answered 202 to a
  trigger. The trigger is matched to its target by the target's name anywhere in the event,
  so nothing depends on the workflow's activity names or dedup key format.

Both ends use time.monotonic(): CLOCK_MONOTONIC is one clock for every process on a Linux
machine, so the floor activity's start (read in the floor worker process) and the page's
arrival (read in this process) are on the clock the call was timed with, to microseconds.

Prints p50/p95/p99 of both, the ratio of the p95s against the project's targets, and the
real worker's resident memory (VmRSS from /proc/<pid>/status) after its first incident and
after all the alerts: their incidents are still open (awaiting acknowledgement), so they sit
in the worker's workflow cache, as open incidents do in production.

--short is the smoke run the test suite makes (tests/test_benches.py): 5 alerts, a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    import yaml
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

    if not workflow.unsafe.in_sandbox():  # the sandbox may not resolve paths (and needs none)
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    from contracts import Alert, Severity
    from settings import PROJECT_ROOT
    from signing import Signer

TASK_QUEUE = "bench-runbooks"
FLOOR_TASK_QUEUE = "bench-floor"
TARGETS_PREFIX = "bench-page-"
TARGET_P95_RATIO = 1.3
TARGET_P95_MS = 150.0
TARGET_RSS_MB = 150.0


# --------------------------------------------------------------------------- the floor


@activity.defn
async def floor_activity_started() -> float:
    """When the floor's one activity starts, on the clock the bench timed the call with."""
    return time.monotonic()


@workflow.defn
class FloorWorkflow:
    """A trivial one-activity workflow, started the way incidents are: signal-with-start."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    @workflow.run
    async def run(self) -> float:
        return await workflow.execute_activity(floor_activity_started, start_to_close_timeout=timedelta(seconds=30))

    @workflow.signal
    def alert(self, alert: Alert) -> None:
        self.alerts.append(alert)


async def floor_worker_main() -> None:
    """`--floor-worker`: the floor's worker process, polled like worker.build_worker polls."""
    # The sandbox re-imports a workflow's module by name, which `__main__` is not.
    import alert_to_page as this

    from worker import POLLERS

    client = await Client.connect(os.environ["TEMPORAL_ADDRESS"], data_converter=pydantic_data_converter)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    worker = Worker(
        client,
        task_queue=FLOOR_TASK_QUEUE,
        workflows=[this.FloorWorkflow],
        activities=[this.floor_activity_started],
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(POLLERS),
        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(POLLERS),
    )
    async with worker:
        await stop.wait()


# --------------------------------------------------------------------------- observing PagerDuty


class PageClock:
    """ASGI wrapper around the PagerDuty emulator: when did a trigger for a target arrive?"""

    def __init__(self, app) -> None:  # noqa: ANN001 - an ASGI app
        self.app = app
        self.lock = threading.Lock()
        self.arrivals: dict[str, float] = {}  # target -> monotonic time of its first accepted trigger
        self.waiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[float]]] = {}
        self.triggers = 0

    def expect(self, target: str) -> asyncio.Future[float]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        with self.lock:
            if target in self.arrivals:
                future.set_result(self.arrivals[target])
            else:
                self.waiting[target] = (loop, future)
        return future

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/v2/enqueue":
            await self.app(scope, receive, send)
            return
        arrived = time.monotonic()
        body = bytearray()
        status = 0

        async def receive_body():  # noqa: ANN202
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        async def send_status(message) -> None:  # noqa: ANN001
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive_body, send_status)
        if status == 202:
            self.record(arrived, bytes(body))

    def record(self, arrived: float, body: bytes) -> None:
        event = json.loads(body)
        if event.get("event_action") != "trigger":
            return
        text = json.dumps(event)
        with self.lock:
            self.triggers += 1
            for target in _targets_in(text):
                if target in self.arrivals:
                    continue  # a retried or repeated trigger: the first one paged
                self.arrivals[target] = arrived
                if target in self.waiting:
                    loop, future = self.waiting.pop(target)
                    loop.call_soon_threadsafe(_settle, future, arrived)


def _settle(future: asyncio.Future[float], value: float) -> None:
    if not future.done():
        future.set_result(value)


def _targets_in(text: str) -> list[str]:
    found, start = [], 0
    while (at := text.find(TARGETS_PREFIX, start)) >= 0:
        end = at + len(TARGETS_PREFIX)
        while end < len(text) and text[end].isdigit():
            end += 1
        found.append(text[at:end])
        start = end
    return found


def serve_in_thread(app, port: int, certfile: Path, keyfile: Path):  # noqa: ANN001, ANN201
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            ssl_certfile=str(certfile),
            ssl_keyfile=str(keyfile),
        )
    )
    thread = threading.Thread(target=server.run, name="pagerduty-emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the PagerDuty emulator did not start")
        time.sleep(0.02)
    return server, thread


# --------------------------------------------------------------------------- measuring


def percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": cuts[49] * 1000, "p95": cuts[94] * 1000, "p99": cuts[98] * 1000}


def bench_policy(directory: Path, targets: list[str], intake: Signer) -> tuple[Path, str]:
    policy = yaml.safe_load((PROJECT_ROOT / "policy" / "default.yaml").read_text())
    template = policy["services"]["hybrid-router"]
    policy["services"] = {**policy["services"], **{target: template for target in targets}}
    policy["trust"] = {"operators": [Signer.generate("signin").public_key], "intake": [intake.public_key]}
    path = directory / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path, template["region"]


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB, from /proc/<pid>/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024  # kB
    return fields["VmRSS"], fields["VmHWM"]


class Bench:
    def __init__(self, client: Client, clock: PageClock, region: str, run: str, intake: Signer) -> None:
        self.client, self.clock, self.region, self.run, self.intake = client, clock, region, run, intake

    def alert(self, target: str) -> Alert:
        return Alert(
            source="bench",
            service=target,
            region=self.region,
            summary=f"bench alert for {target}",
            severity=Severity.P0,
            delivery_id=f"{self.run}-{target}",
            received_at=datetime.now(UTC),
        )

    async def page(self, target: str, timeout: float) -> float:
        from starter import open_or_join_incident

        alert = self.alert(target)
        paged = self.clock.expect(target)
        called = time.monotonic()
        await open_or_join_incident(self.client, alert, "bench", TASK_QUEUE, self.intake)  # as the intake does
        try:
            arrived = await asyncio.wait_for(paged, timeout)
        except TimeoutError:
            raise RuntimeError(f"no page for {target} within {timeout:.0f}s (see the worker's log)") from None
        return arrived - called

    async def floor(self, target: str, timeout: float) -> float:
        alert = self.alert(target)
        called = time.monotonic()
        handle = await self.client.start_workflow(
            FloorWorkflow.run,
            id=f"floor/{self.run}/{target}",
            task_queue=FLOOR_TASK_QUEUE,
            start_signal="alert",
            start_signal_args=[alert],
        )
        started = await asyncio.wait_for(handle.result(), timeout)
        return started - called


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=200, help="alerts measured (each its own target and incident)")
    parser.add_argument("--warm-up", type=int, default=10, help="alerts and floor runs first, not measured")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between samples")
    parser.add_argument("--short", action="store_true", help="a smoke run of a few seconds (the test suite's)")
    parser.add_argument("--floor-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_worker:
        await floor_worker_main()
        return
    if args.short:
        args.alerts, args.warm_up, args.gap = 5, 2, 0.05

    from devstack.net import free_port
    from devstack.pagerduty_emulator import create_app, ensure_self_signed_cert
    from devstack.stack import DEMO_API_TOKEN, DEMO_ROUTING_KEY, Stack, StackConfig

    load_before = os.getloadavg()[0]  # the figures mean little on a machine busy with something else
    targets = [f"{TARGETS_PREFIX}{n:04d}" for n in range(args.warm_up + args.alerts)]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        intake = Signer.generate("intake")
        policy, region = bench_policy(directory, targets, intake)
        config = StackConfig(
            temporal_port=free_port(),
            temporal_ui_port=free_port(),
            pagerduty_port=free_port(),
            data_dir=directory,
            policy=policy,
        )
        stack = Stack(config)
        server = None
        try:
            stack.prepare_identity()  # the stack's keys, and the policy that trusts them
            stack.start_temporal()
            cert, key = ensure_self_signed_cert(config.pagerduty_tls_dir, (config.host,))
            clock = PageClock(create_app(None, {DEMO_ROUTING_KEY}, DEMO_API_TOKEN))
            server, thread = serve_in_thread(clock, config.pagerduty_port, cert, key)
            quiet = {"LOG_LEVEL": "WARNING"}
            worker = stack.spawn(
                "worker",
                [sys.executable, str(PROJECT_ROOT / "worker.py")],
                env={**quiet, "RUNBOOK_TASK_QUEUE": TASK_QUEUE},
            )
            stack.spawn("floor-worker", [sys.executable, str(Path(__file__).resolve()), "--floor-worker"], env=quiet)
            client = await Client.connect(config.temporal_address, data_converter=pydantic_data_converter)
            bench = Bench(client, clock, region, uuid.uuid4().hex[:6], intake)

            pages: list[float] = []
            floors: list[float] = []
            for n, target in enumerate(targets):
                warming = n < args.warm_up
                timeout = 90 if n == 0 else 30  # the first waits for both workers to come up
                for measure, samples in ((bench.page, pages), (bench.floor, floors)):
                    for child in stack.children:
                        if child.process.poll() is not None:
                            raise RuntimeError(
                                f"{child.name} exited with code {child.process.returncode}: "
                                f"{child.log_path.read_text()[-20000:]}"
                            )
                    seconds = await measure(target, timeout)
                    if not warming:
                        samples.append(seconds)
                    await asyncio.sleep(args.gap)
                if n == 0:  # up, everything imported and registered, one incident run
                    await asyncio.sleep(0.5)
                    first_rss, _ = rss_mb(worker.process.pid)
            await asyncio.sleep(0.5)  # the incidents' follow-up work (finding the PagerDuty incident, a note)
            rss, peak = rss_mb(worker.process.pid)
            incidents = len(clock.app.state.emulator.incidents)
            triggers = clock.triggers
        finally:
            if server is not None:
                server.should_exit = True
            stack.stop()

    page_cut, floor_cut = percentiles(pages), percentiles(floors)
    ratio = page_cut["p95"] / floor_cut["p95"]
    print(
        f"{args.alerts} alerts (P0, one target each), {args.warm_up} warm-up, one at a time, {args.gap} s apart; "
        f"dev server on SQLite (WAL); {os.cpu_count()} cores, load average {load_before:.2f} before the run"
    )
    print("| path | samples | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for name, samples, cut in (
        ("alert to page (signal-with-start -> trigger at PagerDuty)", pages, page_cut),
        ("floor (signal-with-start -> its one activity starts)", floors, floor_cut),
    ):
        print(f"| {name} | {len(samples)} | {cut['p50']:.1f} | {cut['p95']:.1f} | {cut['p99']:.1f} |")
    print(
        f"p95 ratio alert-to-page / floor: {ratio:.2f} (target <= {TARGET_P95_RATIO}: "
        f"{'met' if ratio <= TARGET_P95_RATIO else 'missed'}); alert-to-page p95 {page_cut['p95']:.1f} ms "
        f"(target <= {TARGET_P95_MS:.0f} ms: {'met' if page_cut['p95'] <= TARGET_P95_MS else 'missed'})"
    )
    print(
        f"worker RSS: {rss:.1f} MB (peak {peak:.1f} MB) with {len(targets)} incidents open in it "
        f"(target <= {TARGET_RSS_MB:.0f} MB: {'met' if rss <= TARGET_RSS_MB else 'missed'}); "
        f"{first_rss:.1f} MB after its first incident"
    )
    print(f"PagerDuty emulator: {incidents} incidents from {triggers} triggers")
    if incidents != len(targets):
        raise SystemExit(f"expected {len(targets)} PagerDuty incidents, the emulator has {incidents}")


if __name__ == "__main__":
    asyncio.run(main())
    os._exit(0)  # sdk-python issue 300
