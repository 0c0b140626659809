"""Slow clients: a request must arrive whole within ``read_timeout`` seconds, or its connection is closed.

Why: uvicorn times out idle keep-alive connections, but a client that opens a connection and sends its
headers or body a byte at a time (slowloris) keeps the connection, its buffers and a slot under
``--max-connections`` for as long as it likes. The event loop is never blocked by such a client, but
enough of them fill every slot. This protocol (uvicorn's httptools protocol with one timer, answering
inference POSTs itself, :mod:`.http_direct`, and writing each answer with one send, :mod:`.http_writes`)
starts a timer when a connection opens and when a request's first byte arrives, stops it when the
request is complete, and when it fires answers ``408 Request Timeout`` (if no answer has started) and
closes the connection. The handler waiting for that body sees the client go away and is never given a
model call.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .http_direct import DirectHttpTools

__all__ = ["guarded_protocol"]

_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: 49\r\n\r\nthe request did not arrive in time; send it whole"
)


class _GuardedHttpTools(DirectHttpTools):
    """Two deadlines, one lazy timer per connection.

    A request sets its read deadline (``_read_by``) when its first byte arrives and completing it clears
    it. An answered request sets the connection's idle deadline (``_idle_until``, uvicorn's keep-alive
    timeout) and the next bytes clear it. One loop timer fires at the earliest deadline it may have to
    enforce and, when that deadline has moved, arms itself again. uvicorn arms and cancels a loop timer
    for every request's keep-alive, and a timer per request for the read deadline cost as much: about
    2 µs of the event loop's time per request each. The deadlines enforced are the same."""

    read_timeout = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._read_by: float | None = self.loop.time() + self.read_timeout
        self._idle_until: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._arm(self._read_by)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._read_by is None:  # else the connection's (or a previous byte's) deadline still stands
            self._read_by = self.loop.time() + self.read_timeout
            self._arm(self._read_by)

    def on_message_complete(self) -> None:
        self._read_by = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """uvicorn's, with the keep-alive deadline set instead of a timer armed."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_until = None
        self.flow.resume_reading()
        if self.pipeline:  # the next pipelined request starts
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_until = self.loop.time() + self.timeout_keep_alive
            self._arm(self._idle_until)

    def _unset_keepalive_if_required(self) -> None:  # uvicorn calls it when bytes arrive
        self._idle_until = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._read_by = self._idle_until = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def _arm(self, when: float) -> None:
        """Have the timer fire by ``when``."""
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer, self._timer_at = self.loop.call_at(when, self._check_deadlines), when

    def _check_deadlines(self) -> None:
        self._timer = None
        now = self.loop.time()
        if self._read_by is not None and now >= self._read_by:
            self._timed_out()
        elif self._idle_until is not None and now >= self._idle_until:
            self._idle_until = None
            self.timeout_keep_alive_handler()
        else:  # a later deadline, or none (the next request or answer arms the timer again)
            pending = [t for t in (self._read_by, self._idle_until) if t is not None]
            if pending:
                self._arm(min(pending))

    def _timed_out(self) -> None:
        self._read_by = None
        if self.transport.is_closing():
            return
        cycle: Any = self.cycle
        if cycle is None or not cycle.response_started:
            self.transport.write(_TIMEOUT_ANSWER)
        self.transport.close()


def guarded_protocol(read_timeout: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, closing connections whose request takes over ``read_timeout`` s (and,
    as uvicorn does, idle keep-alive connections after its ``timeout_keep_alive``)."""
    return type("GuardedHttpTools", (_GuardedHttpTools,), {"read_timeout": float(read_timeout)})
