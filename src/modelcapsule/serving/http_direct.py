"""Inference POSTs answered on the connection: the protocol calls the endpoint and writes its answer.

Why: between uvicorn's HTTP/1.1 parser and an inference endpoint sit uvicorn's proxy-headers
middleware, the ASGI ``send`` exchange (two messages, each checked, every header searched with two
regular expressions) and Starlette's ``Response.__call__``. For a model that answers in microseconds
(ONNX, a linear model, a stored tree ensemble under batching) that machinery is about a tenth of the
server's CPU per request. Here, for a POST to an inference route (as :class:`~.app.InferenceFastLane`
matches it), the connection's protocol builds the Starlette request itself, awaits the endpoint, and
writes the status line, uvicorn's default headers (``date``, ``server``), the answer's headers and its
body with one ``write``: the same bytes uvicorn would write for the same answer.

What stays uvicorn's: the parser (httptools), keep-alive and its timeout, pipelined requests, flow
control, ``--max-connections``, graceful shutdown, ``Expect: 100-continue`` and reading the body (the
request runs in a subclass of uvicorn's ``RequestResponseCycle`` and reads its body through the
cycle's own ``receive``). Requests the app's layers could answer differently go through the app as
before: any with an ``X-Forwarded-*`` header (the proxy-headers middleware rewrites their client and
scheme), an upgrade, a server under a root path, a connection past ``--max-connections``, and any
answer that is not a complete body with its ``content-length`` (a streamed one, one with background
tasks, one setting ``connection`` or ``transfer-encoding``, a header value uvicorn would refuse).

This leans on uvicorn's protocol internals (as :mod:`.http_writes` does); :func:`supported` checks the
installed uvicorn has them, and without them every request goes through the app.
"""

from __future__ import annotations

import asyncio
import inspect
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import httptools
from starlette.requests import Request
from starlette.responses import Response
from uvicorn.config import Config
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE, STATUS_LINE, RequestResponseCycle
from uvicorn.server import ServerState

from .app import InferenceFastLane
from .http_writes import CoalescingHttpTools

__all__ = ["DirectHttpTools", "supported"]

Endpoint = Callable[[Request], Awaitable[Response]]

_CYCLE_ARGUMENTS = ("scope", "transport", "flow", "logger", "access_logger", "access_log", "default_headers",
                    "message_event", "expect_100_continue", "keep_alive", "on_response")


_LEFT_TO_SEND = (b"connection", b"transfer-encoding")
"""Answer headers that change how uvicorn frames the answer or the connection: such answers go through
its ``send``."""


def supported() -> bool:
    """Whether the installed uvicorn has the protocol internals the direct path relies on."""
    cycle = RequestResponseCycle.__init__
    return (tuple(inspect.signature(cycle).parameters)[1:] == _CYCLE_ARGUMENTS
            and all(hasattr(httptools_impl.HttpToolsProtocol, name)
                    for name in ("on_headers_complete", "_start_asgi_task", "on_response_complete")))


class DirectCycle(RequestResponseCycle):
    """One request for an inference endpoint: uvicorn's cycle (body, disconnect, keep-alive state)
    whose ``run_asgi`` calls the endpoint and writes its answer instead of running the ASGI app."""

    endpoint: Endpoint

    async def run_asgi(self, app: Any) -> None:  # ``app`` is the ASGI app, not called here
        scope: Any = self.scope
        receive: Any = self.receive
        try:
            response = await self.endpoint(Request(scope, receive))
            if not self._write_whole(response):
                await response(scope, receive, self.send)  # type: ignore[arg-type]
        except BaseException as exc:  # as uvicorn's own cycle: log, then a 500 or a closed connection
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            if not self.response_started:
                await self.send_500_response()
            else:
                self.transport.close()
        finally:
            self.on_response = lambda: None

    def _write_whole(self, response: Response) -> bool:
        """Write ``response`` in one piece and finish the cycle; False (nothing written) when it is not a
        whole body with a matching ``content-length``, or when writing must wait: ``send`` takes it."""
        if self.flow.write_paused or type(response).__call__ is not Response.__call__ or response.background:
            return False
        if self.disconnected:
            return True
        body = response.body
        parts: list[bytes | memoryview] = [STATUS_LINE[response.status_code]]
        for name, value in self.default_headers:
            parts += (name, b": ", value, b"\r\n")
        length = None
        for raw_name, value in response.raw_headers:
            name = raw_name.lower()
            if name == b"content-length":
                length = value
            elif name in _LEFT_TO_SEND or HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
                return False  # uvicorn's send handles these (and refuses a header it would not write)
            parts += (name, b": ", value, b"\r\n")
        if length is None or length != b"%d" % len(body):
            return False
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts += (b"\r\n", body)
        self.response_started = self.response_complete = True
        self.waiting_for_100_continue = False
        self.transport.write(b"".join(parts))
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()
        return True


class DirectHttpTools(CoalescingHttpTools):
    """uvicorn's httptools protocol (each answer sent with one write) that answers inference POSTs
    itself: :class:`DirectCycle` instead of the ASGI app for the routes the app's fast lane serves."""

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        lane = config.app
        self._lane = lane if isinstance(lane, InferenceFastLane) and not config.root_path and _SUPPORTED else None

    def on_headers_complete(self) -> None:
        lane = self._lane
        parser = self.parser
        if lane is None or parser.get_method() != b"POST" or parser.should_upgrade():
            super().on_headers_complete()
            return
        for name, _ in self.headers:
            if name.startswith(b"x-forwarded-"):
                super().on_headers_complete()
                return
        url = httptools.parse_url(self.url)
        raw_path = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        endpoint, params = lane.route(path)
        limit = self.limit_concurrency
        if endpoint is None or (limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit)):
            super().on_headers_complete()
            return
        http_version = parser.get_http_version()
        scope: Any = self.scope
        scope["method"] = "POST"
        if http_version != "1.1":
            scope["http_version"] = http_version
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = url.query or b""
        scope["path_params"] = dict(params)
        scope["app"] = lane.app
        previous = self.cycle
        cycle = DirectCycle(scope, self.transport, self.flow, self.logger, self.access_logger, self.access_log,
                            self.server_state.default_headers, asyncio.Event(), self.expect_100_continue,
                            http_version != "1.0" and parser.should_keep_alive(), self.on_response_complete)
        cycle.endpoint = endpoint
        self.cycle = cycle
        if previous is None or previous.response_complete:
            self._start_asgi_task(cycle, self.app)
        else:  # a pipelined request waits for the answer before it, as uvicorn's own do
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, self.app))


_SUPPORTED = supported()
