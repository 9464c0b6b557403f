"""Test keys and a signing client: what the sign-in service and the intake do, for tests.

`SIGNIN` and `INTAKE` are the keys the test policies trust (`tests.policies`). `signing_client`
wraps a client so that operator Updates and signals without an assertion get one, the way the
sign-in service and the intake sign them; a request that carries an assertion (a forged or stale
one, in the refusal tests) goes as it is. The raw client sends what it is given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from temporalio import client as temporal

from signing import Signer

Clock = Callable[[], Awaitable[datetime]]
SIGNIN = Signer.generate("signin")
INTAKE = Signer.generate("intake")
OTHER = Signer.generate("signin")  # a key no policy trusts


def _unsigned(args: Any) -> BaseModel | None:
    first = args[0] if args else None
    if isinstance(first, BaseModel) and "assertion" in type(first).model_fields:
        return first if first.model_dump(include={"assertion"})["assertion"] is None else None
    return None


async def first_run_id(client: temporal.Client, workflow_id: str) -> str:
    """The run chain's first run id, which operators' assertions name."""
    description = await client.get_workflow_handle(workflow_id).describe()
    return description.raw_description.workflow_execution_info.first_run_id or description.run_id


def operator_assertion(
    request: Any, action: str, workflow_id: str, run_id: str, signer: Signer = SIGNIN, **kw: Any
) -> Any:
    """`request` signed by `signer` as the sign-in service would (keywords override the statement)."""
    statement: dict[str, Any] = {
        "subject": request.by,
        "action": action,
        "workflow_id": workflow_id,
        "run_id": run_id,
        "plan_id": getattr(request, "plan_id", None),
    }
    statement.update(kw)
    return signer.sign(request, **statement)


class _Outbound(temporal.OutboundInterceptor):
    def __init__(self, next: temporal.OutboundInterceptor, raw: temporal.Client, clock: Clock | None) -> None:
        super().__init__(next)
        self.raw, self.clock = raw, clock

    async def now(self) -> float | None:
        return (await self.clock()).timestamp() if self.clock is not None else None

    async def start_workflow_update(
        self, input: temporal.StartWorkflowUpdateInput
    ) -> temporal.WorkflowUpdateHandle[Any]:
        request = _unsigned(input.args)
        if request is not None:
            run_id = input.first_execution_run_id or await first_run_id(self.raw, input.id)
            signed = operator_assertion(request, input.update, input.id, run_id, issued_at=await self.now())
            input = dataclasses.replace(input, args=[signed, *input.args[1:]])
        return await super().start_workflow_update(input)

    async def signal_workflow(self, input: temporal.SignalWorkflowInput) -> None:
        payload = _unsigned(input.args)
        if payload is not None:
            signed = INTAKE.sign(
                payload, subject="intake/test", action=input.signal, workflow_id=input.id, issued_at=await self.now()
            )
            input = dataclasses.replace(input, args=[signed, *input.args[1:]])
        await super().signal_workflow(input)


class _Signing(temporal.Interceptor):
    def __init__(self, raw: temporal.Client, clock: Clock | None) -> None:
        self.raw, self.clock = raw, clock

    def intercept_client(self, next: temporal.OutboundInterceptor) -> temporal.OutboundInterceptor:
        return _Outbound(next, self.raw, self.clock)


def signing_client(raw: temporal.Client, clock: Clock | None = None) -> temporal.Client:
    """`raw`, with operators' Updates and the intake's signals signed as the real signers do.

    `clock`: the server's time (the time-skipping server's runs ahead of the machine's)."""
    config = raw.config()
    config["interceptors"] = [*config.get("interceptors", []), _Signing(raw, clock)]
    return temporal.Client(**config)
