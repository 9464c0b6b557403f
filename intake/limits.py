"""Slow and greedy clients, on both listeners of `python -m intake` (issue 9).

- **Request head.** uvicorn arms no timer while a request's head is arriving: a client
  that connects and says nothing, or sends its headers a byte at a time (slowloris), holds a
  connection for ever, and its keep-alive timer is cancelled by every byte. `guarded_protocol`
  makes a protocol class (uvicorn's httptools one: llhttp parses in C, which in an alert
  storm costs the intake a fifth less CPU per alert than h11) that gives each request
  `header_timeout` seconds for its whole head, counted from the connection (the first
  request) or from the first byte of the next one (later requests; idle keep-alive
  connections are uvicorn's `timeout_keep_alive`), then answers 408 and closes. The same
  deadline applies to the rest of a body the app answered without reading: the connection
  closes if it has not arrived in time.
- **Request body.** `BodyDeadline` gives a request's whole body `body_timeout` seconds from the
  moment its head arrived: a receive that would wait past it raises `BodyTimeout`, which the
  body readers answer with 408 (and `BodyDeadline` itself for any other code).
- **Size and number.** The head (request line and headers) is at most `max_header_bytes`
  (431 beyond it; counted in the bytes as they arrive, and the parser is never fed more), and
  each listener takes at most `max_connections` connections and requests at once (uvicorn's
  `limit_concurrency`: 503 beyond it).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class ListenerLimitsError(ValueError):
    """A limit's variable cannot be used; the message names it."""


@dataclass(frozen=True)
class ListenerLimits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive: int = 5
    max_header_bytes: int = 16 * 1024
    max_connections: int = 1000

    @classmethod
    def from_env(cls, prefix: str, default_connections: int, env: Mapping[str, str] = os.environ) -> ListenerLimits:
        """INTAKE_HEADER_TIMEOUT, INTAKE_BODY_TIMEOUT, INTAKE_KEEP_ALIVE_TIMEOUT and
        INTAKE_MAX_HEADER_BYTES for both listeners; `{prefix}_MAX_CONNECTIONS` for each."""

        def number(name: str, default: float) -> float:
            text = env.get(name, "").strip()
            if not text:
                return default
            try:
                value = float(text)
            except ValueError:
                value = 0.0
            if not value > 0:
                raise ListenerLimitsError(f"{name}={text!r} is not a positive number")
            return value

        return cls(
            header_timeout=number("INTAKE_HEADER_TIMEOUT", cls.header_timeout),
            body_timeout=number("INTAKE_BODY_TIMEOUT", cls.body_timeout),
            keep_alive=max(1, round(number("INTAKE_KEEP_ALIVE_TIMEOUT", cls.keep_alive))),
            max_header_bytes=int(number("INTAKE_MAX_HEADER_BYTES", cls.max_header_bytes)),
            max_connections=int(number(f"{prefix}_MAX_CONNECTIONS", default_connections)),
        )

    def uvicorn_config(self, app: ASGIApp, **options: Any) -> uvicorn.Config:
        """A listener's uvicorn configuration with these limits (the app under `BodyDeadline`)."""
        return uvicorn.Config(
            BodyDeadline(app, self.body_timeout),
            http=guarded_protocol(self),
            ws="none",  # no listener serves WebSockets: an upgrade request is an ordinary request
            timeout_keep_alive=self.keep_alive,
            limit_concurrency=self.max_connections,
            **options,
        )


# --------------------------------------------------------------------------- the request head

_TIMED_OUT = b"the request did not arrive in time"
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: " + str(len(_TIMED_OUT)).encode() + b"\r\n\r\n" + _TIMED_OUT
)


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools (llhttp) protocol with a deadline for each request's head and a limit
    on its size (see the module's doc).

    "In a head" is the state from the connection, or from the end of a request, until the next
    request's headers are complete: every byte that arrives then counts towards the head
    (request line, headers, and any blank lines before them, which llhttp skips silently), and
    its first byte starts the deadline. The parser is never fed more of a head than the limit
    allows: a head not complete within it is refused whatever pieces it comes in."""

    header_timeout: float = 10.0
    max_header_bytes: int = 16 * 1024
    _deadline: asyncio.TimerHandle | None = None
    _in_head = True
    _head_bytes = 0
    _body_done = True  # the latest request's body has all arrived

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never speaks

    def data_received(self, data: bytes) -> None:
        if not self._in_head:
            super().data_received(data)
            return
        if self._deadline is None:
            self._arm()  # the first byte of a later request's head on a kept-alive connection
        allowance = self.max_header_bytes - self._head_bytes
        self._head_bytes += min(len(data), allowance)
        super().data_received(data[:allowance])
        if len(data) <= allowance or self.transport.is_closing():
            return
        if self._in_head:
            self._refuse_head()  # no end of the head within the limit
            return
        self.data_received(data[allowance:])  # the head ended within it: the rest is body, or more

    def _refuse_head(self) -> None:
        self._disarm()
        if self.cycle is None or self.cycle.response_complete:  # never into another answer
            said = f"the request head is larger than {self.max_header_bytes} bytes".encode()
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"connection: close\r\ncontent-length: " + str(len(said)).encode() + b"\r\n\r\n" + said
            )
        self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head, self._body_done = False, False
        self._disarm()  # the head is in (the app's own deadline covers the body)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes, self._body_done = True, 0, True
        if self.cycle is not None and self.cycle.response_complete and not self.transport.is_closing():
            # the rest of a body answered early has come: the connection is idle now, under
            # uvicorn's keep-alive as after any answer (the body's bytes cancelled it)
            self._disarm()
            self._unset_keepalive_if_required()
            idle = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
            self.timeout_keep_alive_task = idle

    def on_response_complete(self) -> None:
        super().on_response_complete()
        answered_latest = self.cycle is not None and self.cycle.response_complete
        if not self.transport.is_closing() and answered_latest and not self._body_done:
            self._arm()  # a body nobody read: it must end in time

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm()  # an answer is being made (a slow pipelined head waits behind it): not into it
            return
        if self._in_head:  # no answer under way: say why
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()  # or the answered request's unread body did not end in time


def guarded_protocol(limits: ListenerLimits) -> type[HeadDeadlineProtocol]:
    return type(
        "HeadDeadlineProtocol",
        (HeadDeadlineProtocol,),
        {"header_timeout": limits.header_timeout, "max_header_bytes": limits.max_header_bytes},
    )


# --------------------------------------------------------------------------- the request body


class BodyTimeout(Exception):
    def __init__(self, timeout: float) -> None:
        super().__init__(f"the body did not arrive within {timeout:g} s")
        self.timeout = timeout


class BodyDeadline:
    """The whole body within `timeout` seconds of the request's head. Body readers turn
    `BodyTimeout` into their own 408; an app that lets it escape gets a plain 408 from here
    (its own error answer is replaced). Either way the connection closes after it."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app, self.timeout = app, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        body_done = timed_out = answered = replaced = False

        async def receive_in_time() -> Message:
            nonlocal body_done, timed_out
            if body_done:
                return await receive()  # waiting for a disconnect is no body read
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                raise BodyTimeout(self.timeout) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def send_closing(message: Message) -> None:
            nonlocal answered, replaced
            if replaced:
                return  # the app's own answer to the timeout: a 408 went out instead
            if message["type"] == "http.response.start":
                answered = True
                if timed_out:
                    if message["status"] != 408:
                        replaced = True
                        await self.request_timeout(send)
                        return
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, receive_in_time, send_closing)
        except BodyTimeout:
            if not answered:
                await self.request_timeout(send)

    async def request_timeout(self, send: Send) -> None:
        body = json.dumps({"error": f"the body did not arrive within {self.timeout:g} s"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 408, "headers": headers})
        await send({"type": "http.response.body", "body": body})
