"""An emulator of the AWS Lambda operations that moto lacks, in Lambda's own wire format.

moto 5.2.5 has no provisioned concurrency, so the local stack runs this beside it and points
boto3's Lambda client here with `AWS_ENDPOINT_URL_LAMBDA` (moto serves every other service
through `AWS_ENDPOINT_URL`). Production code stays unaware: it calls boto3 as against AWS.

It speaks REST-JSON, as botocore's model of Lambda (2015-03-31) describes it:

- `PUT    /2019-09-30/functions/{FunctionName}/provisioned-concurrency?Qualifier=Q`
  PutProvisionedConcurrencyConfig, 202. The allocation is IN_PROGRESS for `--ready-after`
  seconds, then READY (or FAILED, for a function seeded with a `fail_reason`); the allocated
  and available counts follow it.
- `GET    (same path)` GetProvisionedConcurrencyConfig, 200; 404
  ProvisionedConcurrencyConfigNotFoundException when the qualifier has none.
- `DELETE (same path)` DeleteProvisionedConcurrencyConfig, 204.
- `GET    /2015-03-31/functions/{FunctionName}/configuration[?Qualifier=Q]` GetFunctionConfiguration.

Functions exist only if seeded at start (`--functions F.json` and/or `--function NAME:Q1,Q2`);
F.json is `{"functions": [{"name": "hybrid-router", "qualifiers": ["live"]}]}`, an entry may
add `"fail_reason": "..."` to make every allocation of that function end FAILED with it.
Errors are what Lambda sends: the code in the `x-amzn-ErrorType` header and a JSON body
`{"Type": "User", "message": ...}` (`Message` for ResourceNotFoundException, as in the model).
Every mutating request is appended to `--recording R.jsonl` (one JSON object a line: time,
operation, method, path, qualifier, body, status), like moto's MOTO_RECORDER_FILEPATH, so
tests count calls. State lives in memory, like moto's: a restart forgets it.

    python -m devstack.lambda_emulator --port 5001 --functions F.json --recording R.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"  # moto's default account, so ARNs agree across the two emulators
DEFAULT_REGION = "us-east-1"
DEFAULT_READY_AFTER = 2.0
# Lambda's own limit: concurrency is capped per account and Region (1000 by default).
MAX_CONCURRENCY = 1000
MAX_BODY_BYTES = 64 * 1024
STATUS_PATH = "/lambda-emulator/"

_PROVISIONED = re.compile(r"^/2019-09-30/functions/(?P<name>[^/]+)/provisioned-concurrency/?$")
_CONFIGURATION = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/configuration/?$")
# The credential scope of a SigV4 Authorization header names the Region the client signed for.
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[a-z0-9-]+)/lambda/aws4_request")
_ARN = re.compile(r"^(?:arn:aws[a-z-]*:lambda:[a-z0-9-]+:)?\d{12}:function:(?P<rest>.+)$")


class LambdaError(Exception):
    """An error answer as Lambda sends it."""

    # Lambda's model spells the message member `Message` for this code and `message` elsewhere.
    _CAPITALISED = frozenset({"ResourceNotFoundException"})

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, str]:
        return {"Type": "User", ("Message" if self.code in self._CAPITALISED else "message"): self.message}


@dataclass
class Answer:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionSeed:
    name: str
    qualifiers: tuple[str, ...]
    fail_reason: str | None = None


@dataclass
class Allocation:
    """One qualifier's provisioned concurrency: what was asked, and since when."""

    requested: int
    allocated_before: int  # what stays allocated while the new request is IN_PROGRESS
    requested_at: float  # on the emulator's clock
    last_modified: str
    fail_reason: str | None


class LambdaEmulator:
    """The operations, free of HTTP: `handle` maps one request to one answer."""

    def __init__(
        self,
        functions: Sequence[FunctionSeed],
        ready_after: float = DEFAULT_READY_AFTER,
        recording: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.functions = {f.name: f for f in functions}
        self.ready_after = ready_after
        self.recording = recording
        self.clock = clock
        self.allocations: dict[tuple[str, str], Allocation] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ dispatch

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        url = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        region = _region(headers)
        operation = "Unknown"
        answer: Answer
        try:
            if (found := _PROVISIONED.match(url.path)) is not None:
                operation, act = {
                    "PUT": ("PutProvisionedConcurrencyConfig", self.put_provisioned),
                    "GET": ("GetProvisionedConcurrencyConfig", self.get_provisioned),
                    "DELETE": ("DeleteProvisionedConcurrencyConfig", self.delete_provisioned),
                }.get(method, (operation, None))
                if act is None:
                    raise _unknown(method, url.path)
                answer = act(unquote(found["name"]), query.get("Qualifier"), body, region)
            elif (found := _CONFIGURATION.match(url.path)) is not None and method == "GET":
                operation = "GetFunctionConfiguration"
                answer = self.get_configuration(unquote(found["name"]), query.get("Qualifier"), region)
            elif url.path == STATUS_PATH and method == "GET":
                answer = Answer(200, self.snapshot())
            else:
                raise _unknown(method, url.path)
        except LambdaError as err:
            answer = Answer(err.status, err.body(), {"x-amzn-ErrorType": err.code})
        if method in ("PUT", "POST", "DELETE", "PATCH"):
            self._record(operation, method, url.path, query.get("Qualifier"), body, answer.status)
        answer.headers.setdefault("x-amzn-RequestId", str(uuid.uuid4()))
        return answer

    # ------------------------------------------------------------------ operations

    def put_provisioned(self, name: str, qualifier: str | None, body: bytes, region: str) -> Answer:
        function, qualifier = self._qualified(name, qualifier, region)
        wanted = _json(body).get("ProvisionedConcurrentExecutions")
        if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1:
            raise LambdaError(
                400,
                "InvalidParameterValueException",
                f"ProvisionedConcurrentExecutions must be a positive integer, not {wanted!r}",
            )
        if wanted > MAX_CONCURRENCY:
            raise LambdaError(
                400,
                "InvalidParameterValueException",
                f"Requested Provisioned Concurrency ({wanted}) exceeds the account's concurrency limit "
                f"({MAX_CONCURRENCY}).",
            )
        with self._lock:
            now = self.clock()
            before = self.allocations.get((function.name, qualifier))
            self.allocations[(function.name, qualifier)] = Allocation(
                requested=wanted,
                allocated_before=self._view(before, now)["AllocatedProvisionedConcurrentExecutions"] if before else 0,
                requested_at=now,
                last_modified=_timestamp(),
                fail_reason=function.fail_reason,
            )
            return Answer(202, self._view(self.allocations[(function.name, qualifier)], now))

    def get_provisioned(self, name: str, qualifier: str | None, _body: bytes, region: str) -> Answer:
        function, qualifier = self._qualified(name, qualifier, region)
        with self._lock:
            allocation = self.allocations.get((function.name, qualifier))
            if allocation is None:
                raise LambdaError(
                    404,
                    "ProvisionedConcurrencyConfigNotFoundException",
                    "No Provisioned Concurrency Config found for this function",
                )
            return Answer(200, self._view(allocation, self.clock()))

    def delete_provisioned(self, name: str, qualifier: str | None, _body: bytes, region: str) -> Answer:
        function, qualifier = self._qualified(name, qualifier, region)
        with self._lock:
            self.allocations.pop((function.name, qualifier), None)
        return Answer(204)

    def get_configuration(self, name: str, qualifier: str | None, region: str) -> Answer:
        bare, named_qualifier = _split_name(name)
        qualifier = qualifier or named_qualifier
        function = self._function(bare, region)
        if qualifier not in (None, "$LATEST") and qualifier not in function.qualifiers:
            raise LambdaError(404, "ResourceNotFoundException", f"Function not found: {_arn(bare, region, qualifier)}")
        # A seeded alias points at version 1; numeric qualifiers are versions themselves.
        version = "$LATEST" if qualifier in (None, "$LATEST") else (qualifier if qualifier.isdigit() else "1")
        return Answer(
            200,
            {
                "FunctionName": bare,
                "FunctionArn": _arn(bare, region, qualifier),
                "Runtime": "python3.12",
                "Role": f"arn:aws:iam::{ACCOUNT_ID}:role/{bare}-role",
                "Handler": "app.handler",
                "CodeSize": 1024,
                "Description": "seeded by the local stack's Lambda emulator",
                "Timeout": 30,
                "MemorySize": 512,
                "LastModified": "2026-01-01T00:00:00.000+0000",
                "CodeSha256": "0" * 43 + "=",
                "Version": version,
                "State": "Active",
                "LastUpdateStatus": "Successful",
                "PackageType": "Zip",
                "Architectures": ["x86_64"],
            },
        )

    # ------------------------------------------------------------------ helpers

    def _function(self, name: str, region: str) -> FunctionSeed:
        function = self.functions.get(name)
        if function is None:
            raise LambdaError(404, "ResourceNotFoundException", f"Function not found: {_arn(name, region)}")
        return function

    def _qualified(self, name: str, qualifier: str | None, region: str) -> tuple[FunctionSeed, str]:
        bare, named_qualifier = _split_name(name)
        qualifier = qualifier or named_qualifier
        function = self._function(bare, region)
        if not qualifier:
            raise LambdaError(400, "InvalidParameterValueException", "Qualifier is required")
        if qualifier == "$LATEST":
            raise LambdaError(
                400,
                "InvalidParameterValueException",
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
            )
        if qualifier not in function.qualifiers:
            raise LambdaError(404, "ResourceNotFoundException", f"Function not found: {_arn(bare, region, qualifier)}")
        return function, qualifier

    def _view(self, allocation: Allocation, now: float) -> dict[str, Any]:
        settled = now - allocation.requested_at >= self.ready_after
        if not settled:
            status, allocated = "IN_PROGRESS", allocation.allocated_before
        elif allocation.fail_reason:
            status, allocated = "FAILED", allocation.allocated_before
        else:
            status, allocated = "READY", allocation.requested
        view: dict[str, Any] = {
            "RequestedProvisionedConcurrentExecutions": allocation.requested,
            "AvailableProvisionedConcurrentExecutions": allocated,
            "AllocatedProvisionedConcurrentExecutions": allocated,
            "Status": status,
            "LastModified": allocation.last_modified,
        }
        if status == "FAILED":
            view["StatusReason"] = allocation.fail_reason
        return view

    def snapshot(self) -> dict[str, Any]:
        """The emulator's state, for people and health checks (not an AWS operation)."""
        with self._lock:
            now = self.clock()
            return {
                "functions": {f.name: list(f.qualifiers) for f in self.functions.values()},
                "provisioned_concurrency": {
                    f"{name}:{qualifier}": self._view(allocation, now)
                    for (name, qualifier), allocation in self.allocations.items()
                },
                "ready_after": self.ready_after,
            }

    def _record(self, operation: str, method: str, path: str, qualifier: str | None, body: bytes, status: int) -> None:
        if self.recording is None:
            return
        entry = {
            "time": datetime.now(UTC).isoformat(),
            "operation": operation,
            "method": method,
            "path": path,
            "qualifier": qualifier,
            "body": body.decode(errors="replace"),
            "status": status,
        }
        with self._lock, self.recording.open("a") as out:
            out.write(json.dumps(entry) + "\n")


def _unknown(method: str, path: str) -> LambdaError:
    return LambdaError(404, "UnknownOperationException", f"The Lambda emulator serves no {method} {path}")


def _json(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        raise LambdaError(400, "InvalidRequestContentException", "Could not parse request body into json") from None
    if not isinstance(parsed, dict):
        raise LambdaError(400, "InvalidRequestContentException", "The request body must be a JSON object")
    return parsed


def _split_name(name: str) -> tuple[str, str | None]:
    """`my-function`, `my-function:live`, or a (partial) ARN of either, as Lambda accepts them."""
    found = _ARN.match(name)
    rest = found["rest"] if found else name
    bare, _, qualifier = rest.partition(":")
    return bare, qualifier or None


def _arn(name: str, region: str, qualifier: str | None = None) -> str:
    arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def _region(headers: dict[str, str]) -> str:
    found = _SCOPE.search(headers.get("authorization", ""))
    return found["region"] if found else DEFAULT_REGION


def _timestamp() -> str:
    """Lambda's timestamp format: ISO 8601 with milliseconds and a +0000 offset."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


# ---------------------------------------------------------------------- HTTP


def make_server(host: str, port: int, emulator: LambdaEmulator) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # botocore keeps connections open

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                answer = Answer(413, {"Type": "User", "message": "Request must be smaller than 65536 bytes"})
                answer.headers["x-amzn-ErrorType"] = "RequestTooLargeException"
                self.close_connection = True
            else:
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = emulator.handle(self.command, self.path, headers, body)
            payload = b"" if answer.body is None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            for key, value in answer.headers.items():
                self.send_header(key, value)
            if answer.body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_DELETE = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            log.info("%s %s", self.address_string(), format % args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def load_functions(path: Path | None, specs: Sequence[str]) -> list[FunctionSeed]:
    """Seeds from a JSON file (`{"functions": [...]}` or a bare list) and `NAME:Q1,Q2` arguments."""
    entries: list[Any] = []
    if path is not None:
        loaded = json.loads(path.read_text())
        entries = loaded.get("functions", []) if isinstance(loaded, dict) else loaded
    seeds = [
        FunctionSeed(
            name=str(entry["name"]),
            qualifiers=tuple(str(q) for q in entry.get("qualifiers", [])),
            fail_reason=entry.get("fail_reason"),
        )
        for entry in entries
    ]
    for spec in specs:
        name, _, qualifiers = spec.partition(":")
        seeds.append(FunctionSeed(name=name, qualifiers=tuple(q for q in qualifiers.split(",") if q)))
    return seeds


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.lambda_emulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--functions", type=Path, default=None, help="JSON file of the functions that exist")
    parser.add_argument(
        "--function", action="append", default=[], metavar="NAME:Q1,Q2", help="a function and its qualifiers"
    )
    parser.add_argument("--recording", type=Path, default=None, help="append every mutating request here (JSONL)")
    parser.add_argument(
        "--ready-after", type=float, default=DEFAULT_READY_AFTER, help="seconds an allocation stays IN_PROGRESS"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        functions = load_functions(args.functions, args.function)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        parser.error(f"cannot read the functions: {err}")
    emulator = LambdaEmulator(functions, ready_after=args.ready_after, recording=args.recording)
    server = make_server(args.host, args.port, emulator)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    listed = ", ".join(f"{f.name}:{','.join(f.qualifiers)}" for f in functions) or "none"
    log.info("Lambda emulator on http://%s:%d (functions: %s)", args.host, args.port, listed)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
