"""Slow clients: a request must arrive whole within ``read_timeout`` seconds, or its connection is closed.

Why: uvicorn times out idle keep-alive connections, but a client that opens a connection and sends its
headers or body a byte at a time (slowloris) keeps the connection, its buffers and a slot under
``--max-connections`` for as long as it likes. The event loop is never blocked by such a client, but
enough of them fill every slot. This protocol (uvicorn's httptools protocol with one timer, writing each
answer with one send: :mod:`.http_writes`) starts a timer when a connection opens and when a request's
first byte arrives, stops it when the request is complete, and when it fires answers ``408 Request
Timeout`` (if no answer has started) and closes the connection. The handler waiting for that body sees
the client go away and is never given a model call.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .http_writes import CoalescingHttpTools

__all__ = ["guarded_protocol"]

_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: 49\r\n\r\nthe request did not arrive in time; send it whole"
)


class _GuardedHttpTools(CoalescingHttpTools):
    """The timer is lazy: a request only sets its deadline (``_read_by``) and completing it clears it; one
    loop timer per connection fires at the earliest deadline it may have to enforce and, when that
    deadline has moved, arms itself again. Arming and cancelling a loop timer for every request cost
    ~2 µs of the event loop's time per request; the deadlines enforced are the same."""

    read_timeout = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._read_by: float | None = self.loop.time() + self.read_timeout
        self._read_timer: asyncio.TimerHandle | None = self.loop.call_at(self._read_by, self._check_deadline)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._read_by is None:  # else the connection's (or a previous byte's) deadline still stands
            self._read_by = self.loop.time() + self.read_timeout
            if self._read_timer is None:
                self._read_timer = self.loop.call_at(self._read_by, self._check_deadline)

    def on_message_complete(self) -> None:
        self._read_by = None
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._read_by = None
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        super().connection_lost(exc)

    def _check_deadline(self) -> None:
        self._read_timer = None
        if self._read_by is None:  # nothing being read: the next request arms the timer again
            return
        if self.loop.time() < self._read_by:  # a later request's deadline: wait for it
            self._read_timer = self.loop.call_at(self._read_by, self._check_deadline)
            return
        self._timed_out()

    def _timed_out(self) -> None:
        self._read_by = None
        if self.transport.is_closing():
            return
        cycle: Any = self.cycle
        if cycle is None or not cycle.response_started:
            self.transport.write(_TIMEOUT_ANSWER)
        self.transport.close()


def guarded_protocol(read_timeout: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, closing connections whose request takes over ``read_timeout`` s."""
    return type("GuardedHttpTools", (_GuardedHttpTools,), {"read_timeout": float(read_timeout)})
