"""An emulator of the Bedrock and IAM operations that moto lacks, in AWS's own wire formats.

moto 5.2.5 implements neither Bedrock's `ListFoundationModels` nor IAM's
`SimulatePrincipalPolicy`, so the local stack runs this beside it and points boto3 here with
`AWS_ENDPOINT_URL_BEDROCK`, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` and `AWS_ENDPOINT_URL_IAM`
(moto serves every other service through `AWS_ENDPOINT_URL`). Production code stays unaware.

It speaks, as botocore's models describe them:

- Bedrock (REST-JSON): `GET /foundation-models` ListFoundationModels (`byProvider`,
  `byOutputModality`, `byInferenceType` filters); `GET /foundation-models/{modelIdentifier}`
  GetFoundationModel (404 ResourceNotFoundException). Errors: the code in `x-amzn-ErrorType`,
  a JSON body `{"message": ...}`.
- Bedrock runtime (REST-JSON): `POST /model/{modelId}/invoke` InvokeModel, answered with a
  small canned completion, for the demo platform's Bedrock client. The caller's role is taken as
  the seeded client role (the emulator does not check signatures), so a role that lost the
  permission is answered 403 AccessDeniedException, as AWS would.
- IAM (query protocol, XML): `POST /` with `Action=SimulatePrincipalPolicy`: each action on each
  resource evaluated against the role's seeded inline policies, AWS's way: an explicit Deny
  wins, else an Allow, else an implicit deny; the matched statements with their positions in the
  policy document. Errors: `<ErrorResponse>` (NoSuchEntity 404, InvalidInput 400).

Faults for the demo (`runbook demo break|deny|heal bedrock`), `POST /bedrock-emulator/faults`
with `{"bedrock": "ok" | "down" | "slow", "deny": true | false}`: down answers every Bedrock call
with 500 InternalServerException, slow delays each by `--slow-seconds`; deny detaches the
role's policy that allows InvokeModel (and heal puts it back). `GET /bedrock-emulator/` shows the
state and counts the calls. State lives in memory: a restart forgets it.

    python -m devstack.bedrock_emulator --port 5002
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import re
import signal
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

log = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"  # moto's default account, so ARNs agree across the emulators
CLIENT_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/hybrid-router-bedrock-client"
INVOKE_POLICY = "bedrock-invoke"  # the client role's inline policy that `deny` detaches
STATUS_PATH = "/bedrock-emulator/"
FAULTS_PATH = "/bedrock-emulator/faults"
MAX_BODY_BYTES = 256 * 1024
IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"

_MODEL = re.compile(r"^/foundation-models/(?P<id>[^/]+)/?$")
_INVOKE = re.compile(r"^/model/(?P<id>[^/]+)/invoke/?$")
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[a-z0-9-]+)/")
_MEMBER = re.compile(r"^(?P<name>\w+)\.member\.(?P<index>\d+)$")


@dataclass(frozen=True)
class Model:
    model_id: str
    name: str
    provider: str
    status: str = "ACTIVE"  # ACTIVE or LEGACY

    def summary(self, region: str) -> dict[str, Any]:
        return {
            "modelArn": f"arn:aws:bedrock:{region}::foundation-model/{self.model_id}",
            "modelId": self.model_id,
            "modelName": self.name,
            "providerName": self.provider,
            "inputModalities": ["TEXT"],
            "outputModalities": ["TEXT"],
            "responseStreamingSupported": True,
            "customizationsSupported": [],
            "inferenceTypesSupported": ["ON_DEMAND"],
            "modelLifecycle": {"status": self.status},
        }


MODELS = (
    Model("anthropic.claude-3-5-sonnet-20240620-v1:0", "Claude 3.5 Sonnet", "Anthropic"),
    Model("anthropic.claude-3-haiku-20240307-v1:0", "Claude 3 Haiku", "Anthropic"),
    Model("amazon.titan-text-express-v1", "Titan Text G1 - Express", "Amazon"),
    Model("anthropic.claude-v2", "Claude", "Anthropic", status="LEGACY"),
)


def invoke_policy() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "InvokeFoundationModels",
                "Effect": "Allow",
                "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                "Resource": "arn:aws:bedrock:*::foundation-model/*",
            }
        ],
    }


def read_policy() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "ListModels", "Effect": "Allow", "Action": "bedrock:List*", "Resource": "*"}],
    }


class AwsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, body: Any) -> Answer:
    return Answer(status, json.dumps(body).encode())


@dataclass
class Statement:
    effect: str
    actions: list[str]
    resources: list[str]
    start: tuple[int, int]  # (line, column) in the policy document as AWS shows it
    end: tuple[int, int]

    def matches(self, action: str, resource: str) -> bool:
        return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in self.actions) and any(
            fnmatch.fnmatchcase(resource, r) for r in self.resources
        )


def statements(document: dict[str, Any]) -> list[Statement]:
    """A policy's statements with their positions in its pretty-printed document (lines from 1)."""
    found = document.get("Statement", [])
    listed = found if isinstance(found, list) else [found]
    line = 4  # '{', '  "Version": ...', '  "Statement": [' come first
    out = []
    for statement in listed:
        text = json.dumps(statement, indent=2).splitlines()
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        out.append(
            Statement(
                effect=str(statement.get("Effect", "Deny")),
                actions=[actions] if isinstance(actions, str) else list(actions),
                resources=[resources] if isinstance(resources, str) else list(resources),
                start=(line, 5),
                end=(line + len(text) - 1, 5 + len(text[-1])),
            )
        )
        line += len(text)
    return out


class BedrockEmulator:
    """The operations, free of HTTP: `handle` maps one request to one answer."""

    def __init__(self, slow_seconds: float = 8.0) -> None:
        self.models = {m.model_id: m for m in MODELS}
        self.roles: dict[str, dict[str, dict[str, Any]]] = {
            CLIENT_ROLE: {INVOKE_POLICY: invoke_policy(), "bedrock-read": read_policy()}
        }
        self.detached: dict[str, dict[str, Any]] = {}
        self.bedrock = "ok"  # ok, down, slow
        self.slow_seconds = slow_seconds
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ dispatch

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        url = urlsplit(target)
        path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        region = _region(headers)
        if path == STATUS_PATH and method == "GET":
            return _json(200, self.snapshot())
        if path == FAULTS_PATH and method == "POST":
            return self.set_faults(body)
        if method == "POST" and path == "/" and "x-www-form-urlencoded" in headers.get("content-type", ""):
            return self.iam(body)
        try:
            if method == "GET" and path.rstrip("/") == "/foundation-models":
                self._count("ListFoundationModels")
                self.bedrock_weather()
                return self.list_models(region, query)
            if method == "GET" and (found := _MODEL.match(path)) is not None:
                self._count("GetFoundationModel")
                self.bedrock_weather()
                return self.get_model(region, unquote(found["id"]))
            if method == "POST" and (found := _INVOKE.match(path)) is not None:
                self._count("InvokeModel")
                self.bedrock_weather()
                return self.invoke(region, unquote(found["id"]))
            raise AwsError(404, "UnknownOperationException", f"no operation at {method} {path}")
        except AwsError as err:
            return Answer(
                err.status, json.dumps({"message": err.message}).encode(), headers={"x-amzn-ErrorType": err.code}
            )

    # ------------------------------------------------------------------ Bedrock

    def bedrock_weather(self) -> None:
        if self.bedrock == "down":
            raise AwsError(500, "InternalServerException", "An internal server error occurred. Retry your request.")
        if self.bedrock == "slow":
            time.sleep(self.slow_seconds)

    def list_models(self, region: str, query: dict[str, str]) -> Answer:
        models = list(self.models.values())
        if "byProvider" in query:
            models = [m for m in models if m.provider.lower() == query["byProvider"].lower()]
        if query.get("byOutputModality") not in (None, "TEXT"):
            models = []
        if query.get("byInferenceType") not in (None, "ON_DEMAND"):
            models = []
        return _json(200, {"modelSummaries": [m.summary(region) for m in models]})

    def get_model(self, region: str, identifier: str) -> Answer:
        model_id = identifier.rsplit("/", 1)[-1]  # an ARN names the model after its last slash
        model = self.models.get(model_id)
        if model is None:
            raise AwsError(404, "ResourceNotFoundException", f"The model {identifier} does not exist.")
        return _json(200, {"modelDetails": model.summary(region)})

    def invoke(self, region: str, model_id: str) -> Answer:
        model = self.models.get(model_id)
        if model is None:
            raise AwsError(404, "ResourceNotFoundException", f"The model {model_id} does not exist.")
        resource = f"arn:aws:bedrock:{region}::foundation-model/{model_id}"
        decision, _ = self.evaluate(CLIENT_ROLE, "bedrock:InvokeModel", resource)
        if decision != "allowed":
            raise AwsError(
                403,
                "AccessDeniedException",
                f"User: {CLIENT_ROLE} is not authorized to perform: bedrock:InvokeModel on resource: {resource}",
            )
        answer = {"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "model": model_id}
        return _json(200, answer)

    # ------------------------------------------------------------------ IAM

    def iam(self, body: bytes) -> Answer:
        params = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        action = params.get("Action")
        request_id = str(uuid.uuid4())
        try:
            if action != "SimulatePrincipalPolicy":
                raise AwsError(400, "InvalidAction", f"Could not find operation {action} for version 2010-05-08")
            self._count("SimulatePrincipalPolicy")
            return self.simulate(params, request_id)
        except AwsError as err:
            kind = "Receiver" if err.status >= 500 else "Sender"
            xml = (
                f'<ErrorResponse xmlns="{IAM_NS}"><Error><Type>{kind}</Type><Code>{err.code}</Code>'
                f"<Message>{escape(err.message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            )
            return Answer(err.status, xml.encode(), content_type="text/xml")

    def simulate(self, params: dict[str, str], request_id: str) -> Answer:
        source = params.get("PolicySourceArn")
        if not source:
            raise AwsError(400, "ValidationError", "1 validation error detected: PolicySourceArn must not be null")
        if source not in self.roles:
            name = source.rsplit("/", 1)[-1]
            raise AwsError(404, "NoSuchEntity", f"The role with name {name} cannot be found.")
        actions = _members(params, "ActionNames")
        if not actions:
            raise AwsError(400, "ValidationError", "1 validation error detected: ActionNames must not be empty")
        resources = _members(params, "ResourceArns") or ["*"]
        results = []
        for action in actions:
            for resource in resources:
                decision, matched = self.evaluate(source, action, resource)
                results.append(_result_xml(action, resource, decision, matched))
        xml = (
            f'<SimulatePrincipalPolicyResponse xmlns="{IAM_NS}"><SimulatePrincipalPolicyResult>'
            f"<IsTruncated>false</IsTruncated><EvaluationResults>{''.join(results)}</EvaluationResults>"
            f"</SimulatePrincipalPolicyResult><ResponseMetadata><RequestId>{request_id}</RequestId>"
            "</ResponseMetadata></SimulatePrincipalPolicyResponse>"
        )
        return Answer(200, xml.encode(), content_type="text/xml")

    def evaluate(self, role: str, action: str, resource: str) -> tuple[str, list[tuple[str, Statement]]]:
        """AWS's order: an explicit Deny wins; else any Allow; else an implicit deny."""
        with self._lock:
            policies = dict(self.roles.get(role, {}))
        denies: list[tuple[str, Statement]] = []
        allows: list[tuple[str, Statement]] = []
        for name, document in policies.items():
            for statement in statements(document):
                if statement.matches(action, resource):
                    (denies if statement.effect == "Deny" else allows).append((name, statement))
        if denies:
            return "explicitDeny", denies
        if allows:
            return "allowed", allows
        return "implicitDeny", []

    # ------------------------------------------------------------------ faults and state

    def set_faults(self, body: bytes) -> Answer:
        try:
            wanted = json.loads(body or b"{}")
        except ValueError:
            return _json(400, {"error": "the body is not JSON"})
        if not isinstance(wanted, dict):
            return _json(400, {"error": "the body is not an object"})
        bedrock = wanted.get("bedrock")
        if bedrock is not None and bedrock not in ("ok", "down", "slow"):
            return _json(400, {"error": "bedrock: one of ok, down, slow"})
        deny = wanted.get("deny")
        if deny is not None and not isinstance(deny, bool):
            return _json(400, {"error": "deny: true or false"})
        with self._lock:
            if bedrock is not None:
                self.bedrock = bedrock
            policies = self.roles[CLIENT_ROLE]
            if deny is True and INVOKE_POLICY in policies:
                self.detached[INVOKE_POLICY] = policies.pop(INVOKE_POLICY)
            elif deny is False and INVOKE_POLICY in self.detached:
                policies[INVOKE_POLICY] = self.detached.pop(INVOKE_POLICY)
        return _json(200, self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "bedrock": self.bedrock,
                "denied": INVOKE_POLICY in self.detached,
                "roles": {role: sorted(policies) for role, policies in self.roles.items()},
                "calls": dict(self.calls),
            }

    def _count(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1


def _members(params: dict[str, str], name: str) -> list[str]:
    """The query protocol's list: `Name.member.1`, `Name.member.2`, ... in order."""
    found = []
    for key, value in params.items():
        match = _MEMBER.match(key)
        if match is not None and match["name"] == name:
            found.append((int(match["index"]), value))
    return [value for _, value in sorted(found)]


def _result_xml(action: str, resource: str, decision: str, matched: list[tuple[str, Statement]]) -> str:
    statements_xml = "".join(
        "<member>"
        f"<SourcePolicyId>{escape(name)}</SourcePolicyId><SourcePolicyType>role</SourcePolicyType>"
        f"<StartPosition><Line>{s.start[0]}</Line><Column>{s.start[1]}</Column></StartPosition>"
        f"<EndPosition><Line>{s.end[0]}</Line><Column>{s.end[1]}</Column></EndPosition>"
        "</member>"
        for name, s in matched
    )
    return (
        "<member>"
        f"<EvalActionName>{escape(action)}</EvalActionName><EvalResourceName>{escape(resource)}</EvalResourceName>"
        f"<EvalDecision>{decision}</EvalDecision><MatchedStatements>{statements_xml}</MatchedStatements>"
        "<MissingContextValues/>"
        "</member>"
    )


def _region(headers: dict[str, str]) -> str:
    found = _SCOPE.search(headers.get("authorization", ""))
    return found["region"] if found else "us-east-1"


# ---------------------------------------------------------------------- HTTP


def make_server(host: str, port: int, emulator: BedrockEmulator) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # botocore keeps connections open

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                answer = _json(413, {"message": "Request too large"})
                self.close_connection = True
            else:
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = emulator.handle(self.command, self.path, headers, body)
            self.send_response(answer.status)
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            log.info("%s %s", self.address_string(), format % args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.bedrock_emulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5002)
    parser.add_argument("--slow-seconds", type=float, default=8.0, help="how long a slow Bedrock takes to answer")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = make_server(args.host, args.port, BedrockEmulator(slow_seconds=args.slow_seconds))

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    log.info("Bedrock and IAM emulator on http://%s:%d", args.host, args.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
