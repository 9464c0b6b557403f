"""Benchmark: an alert storm through the intake, next to bare signal-with-start (the floor).

    .venv/bin/python bench/intake_storm.py [--alerts 5000] [--targets 100] [--concurrency 200] [--short]

Starts its own Temporal dev server (SQLite file in WAL mode, as `make run` does) and the
intake as its own process, then sends the same number of alerts two ways against the same
server: as HTTP POSTs to the intake's generic endpoint, and as signal-with-start calls made
directly with the Temporal client. No worker runs, so nothing else competes for the two
cores: this measures the hand-over only. Prints alerts per second and latency percentiles.

--short is the smoke run the test suite makes (tests/test_benches.py): 100 alerts for 10
targets, 10 in flight; its figures say only that the bench still works.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts import Alert  # noqa: E402
from devstack.net import free_port, wait_for_http  # noqa: E402
from devstack.stack import Stack, StackConfig  # noqa: E402
from intake.ui import hash_password  # noqa: E402
from settings import PROJECT_ROOT  # noqa: E402
from signing import Signer  # noqa: E402
from starter import open_or_join_incident  # noqa: E402

TOKEN = "bench-token"


def percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": cuts[49] * 1000, "p95": cuts[94] * 1000, "p99": cuts[98] * 1000}


def operators_file(directory: Path) -> Path:
    """The intake refuses to start without its approval page's operators file
    (APPROVAL_OPERATORS_FILE, which the stack's client_env points into the data folder):
    one throwaway operator whose password nobody knows, as the stack writes its demo ones."""
    path = directory / "operators.json"
    path.write_text(json.dumps({"bench-nobody": hash_password(secrets.token_urlsafe(16), rounds=1000)}))
    return path


def wait_until_up(process: subprocess.Popen, url: str, timeout: float = 30) -> None:
    """Like wait_for_http, but a child that died says so at once instead of after the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the intake exited with code {process.returncode} before answering {url}")
        try:
            wait_for_http(url, timeout=0.5)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


def bench_policy(directory: Path, targets: int) -> Path:
    policy = yaml.safe_load((PROJECT_ROOT / "policy" / "default.yaml").read_text())
    template = policy["services"]["hybrid-router"]
    policy["services"] = {f"bench-{n:03d}": template for n in range(targets)}
    policy.pop("scaling", None)  # its limits name the services this bench replaces
    policy.pop("failover", None)  # and so does its failover section
    policy["routes"] = [{"name": "by-service-label", "match": {}}]
    path = directory / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def storm_targets(alerts: int, targets: int) -> list[int]:
    """Which target each alert of the storm is for: every target as often, in random order
    (seeded, so both paths get the same order)."""
    order = [n % targets for n in range(alerts)]
    random.Random(7).shuffle(order)
    return order


async def timed(gate: asyncio.Semaphore, call) -> float:  # noqa: ANN001
    async with gate:
        started = time.perf_counter()
        await call()
        return time.perf_counter() - started


class KeepAlive:
    """A minimal HTTP/1.1 keep-alive client: httpx costs more CPU per request than the intake
    itself does, and on two cores the load generator must not be what is measured."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-length: {len(body)}\r\n{head}\r\n".encode() + body
        )
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def through_intake(url: str, alerts: list[dict], concurrency: int) -> tuple[float, list[float]]:
    parsed = httpx.URL(url)
    pool: asyncio.Queue[KeepAlive] = asyncio.Queue()
    for _ in range(concurrency):
        pool.put_nowait(KeepAlive(parsed.host, parsed.port or 80))
    headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}

    async def post(alert: dict) -> float:
        connection = await pool.get()
        try:
            started = time.perf_counter()
            status = await connection.post("/v1/alerts", json.dumps(alert).encode(), headers)
            if status != 202:
                raise RuntimeError(f"intake answered {status}")
            return time.perf_counter() - started
        finally:
            pool.put_nowait(connection)

    started = time.perf_counter()
    latencies = await asyncio.gather(*(post(a) for a in alerts))
    elapsed = time.perf_counter() - started
    while not pool.empty():
        pool.get_nowait().close()
    return elapsed, latencies


async def bare_signal_with_start(client: Client, alerts: list[dict], concurrency: int) -> tuple[float, list[float]]:
    gate = asyncio.Semaphore(concurrency)
    now = datetime.now(UTC)
    signer = Signer.generate("intake")  # signed as the intake signs: the floor is the same call

    def start(alert: dict):  # noqa: ANN202
        model = Alert(
            source="bench",
            service=alert["service"],
            region="floor",
            summary=alert["summary"],
            delivery_id=alert["id"],
            received_at=now,
        )
        return lambda: open_or_join_incident(client, model, "bench", "bench-floor", signer)

    started = time.perf_counter()
    latencies = await asyncio.gather(*(timed(gate, start(a)) for a in alerts))
    return time.perf_counter() - started, latencies


def cpu_seconds(pid: int) -> float:
    """The process's user and system CPU time so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def handoff_histogram(url: str) -> str:
    lines = httpx.get(f"{url}/metrics").text.splitlines()
    count = next((ln.split()[-1] for ln in lines if ln.startswith("intake_handoff_seconds_count")), "?")
    total = next((ln.split()[-1] for ln in lines if ln.startswith("intake_handoff_seconds_sum")), "?")
    signals = next((ln.split()[-1] for ln in lines if ln.startswith("intake_handovers_total")), "?")
    try:
        return (
            f"{float(total) / float(count) * 1000:.1f} ms mean over {float(count):.0f} alerts, "
            f"in {float(signals):.0f} signals ({float(count) / float(signals):.1f} alerts per signal)"
        )
    except ValueError:
        return "n/a"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--short", action="store_true", help="a smoke run of a few seconds (the test suite's)")
    args = parser.parse_args()
    if args.short:
        args.alerts, args.targets, args.concurrency = 100, 10, 10
    warm_up = min(20 if args.short else 200, args.alerts)
    load_before = os.getloadavg()[0]  # the figures mean little on a machine busy with something else

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        stack = Stack(
            StackConfig(
                temporal_port=free_port(),
                temporal_ui_port=free_port(),
                data_dir=directory,
                policy=bench_policy(directory, args.targets),
                intake_port=free_port(),
                operator_port=free_port(),  # not 8081: a stack of `make run` may be up beside it
            )
        )
        stack.prepare_identity()  # the stack's keys, and the policy that trusts them
        stack.start_temporal()
        operators = operators_file(directory)
        if Path(stack.config.client_env()["APPROVAL_OPERATORS_FILE"]) != operators:
            raise RuntimeError("the stack's APPROVAL_OPERATORS_FILE is not where the bench wrote it")
        intake_env = {
            **os.environ,
            **stack.config.client_env(),
            "INTAKE_GENERIC_TOKEN": TOKEN,
            "RUNBOOK_TASK_QUEUE": "bench-intake",
            "LOG_LEVEL": "WARNING",
        }
        intake = subprocess.Popen([sys.executable, "-m", "intake"], env=intake_env, cwd=PROJECT_ROOT)
        url = stack.config.url(stack.config.intake_port)
        try:
            wait_until_up(intake, f"{url}/healthz")
            run = uuid.uuid4().hex[:6]
            alerts = [
                {"id": f"{run}-{i}", "service": f"bench-{target:03d}", "summary": f"alert {i}"}
                for i, target in enumerate(storm_targets(args.alerts, args.targets))
            ]
            await through_intake(url, alerts[:warm_up], args.concurrency)  # warm-up
            client = await Client.connect(stack.config.temporal_address, data_converter=pydantic_data_converter)
            floor_alerts = [{**a, "id": f"floor-{a['id']}"} for a in alerts]
            await bare_signal_with_start(client, floor_alerts[:warm_up], args.concurrency)  # warm-up

            cpu_before = cpu_seconds(intake.pid)
            intake_seconds, intake_latencies = await through_intake(url, alerts, args.concurrency)
            intake_cpu = cpu_seconds(intake.pid) - cpu_before
            floor_seconds, floor_latencies = await bare_signal_with_start(client, floor_alerts, args.concurrency)
            server_side = handoff_histogram(url)
        finally:
            intake.terminate()
            intake.wait(timeout=10)
            stack.stop()

    rows = [
        ("through the intake (HTTP POST -> 202)", intake_seconds, intake_latencies),
        ("bare signal-with-start (the floor)", floor_seconds, floor_latencies),
    ]
    print(
        f"{args.alerts} alerts, {args.targets} targets, concurrency {args.concurrency}, dev server on SQLite (WAL); "
        f"{os.cpu_count()} cores, load average {load_before:.2f} before the run"
    )
    print("| path | alerts/s | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for name, seconds, latencies in rows:
        cut = percentiles(latencies)
        print(f"| {name} | {len(latencies) / seconds:.0f} | {cut['p50']:.1f} | {cut['p95']:.1f} | {cut['p99']:.1f} |")
    print(f"intake's own hand-over histogram: {server_side}")
    print(f"intake process CPU: {intake_cpu * 1000 / args.alerts:.2f} ms per alert")


if __name__ == "__main__":
    asyncio.run(main())
    os._exit(0)  # sdk-python issue 300
