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
  (431 beyond it, counted as the parser reads it), and each listener takes at most
  `max_connections` connections and requests at once (uvicorn's `limit_concurrency`: 503
  beyond it).
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


class HeadTooLarge(Exception):
    """Raised from the parser's callbacks: the request head passed `max_header_bytes`."""


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools (llhttp) protocol with a deadline for each request's head and a limit
    on its size (see the module's doc)."""

    header_timeout: float = 10.0
    max_header_bytes: int = 16 * 1024
    _deadline: asyncio.TimerHandle | None = None
    _reading = False  # a request is arriving: from its first byte until its body's last
    _head_done = False  # that request's head is in
    _head_bytes = 0
    _too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never speaks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading, self._head_done, self._head_bytes = True, False, 0
        self._arm()  # from the first byte of each request, the first on the connection or a later one

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_header_bytes:
            self._too_large = True
            raise HeadTooLarge  # the parser stops; uvicorn answers through send_400_response

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        if not self._too_large:
            super().send_400_response(msg)
            return
        said = f"the request head is larger than {self.max_header_bytes} bytes".encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"connection: close\r\ncontent-length: " + str(len(said)).encode() + b"\r\n\r\n" + said
        )
        self.transport.close()

    def on_headers_complete(self) -> None:
        self._head_done = True
        self._disarm()  # the head is in (the app's own deadline covers the body)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading = False
        if self.cycle is None or self.cycle.response_complete:
            self._disarm()  # the rest of a body answered early has come: nothing is owed

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._reading and self._deadline is None:
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
        if not self._head_done:  # no answer started: say why
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
