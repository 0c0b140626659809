"""Unary gRPC calls over HTTP/2: the :class:`~.http2.StreamHandler` that turns streams into method calls.

It follows gRPC's "gRPC over HTTP2" protocol document: a call is a POST to ``/package.Service/Method``
with ``content-type: application/grpc``; its body is one length-prefixed message (a compressed flag,
a 4-byte big-endian length, the message), possibly compressed as ``grpc-encoding`` says; ``grpc-timeout``
is the client's deadline. The answer is ``:status 200``, the response message, and trailers carrying
``grpc-status`` and a percent-encoded ``grpc-message``; an error before any message is "trailers only",
one header block ending the stream. An HTTP request that is not gRPC gets an HTTP status instead (405
for a method other than POST, 415 for another content type), as the protocol document asks.

Checked here, each answered with its gRPC status and a message that says what to change: an unknown
method (``UNIMPLEMENTED``), an unsupported ``grpc-encoding`` (``UNIMPLEMENTED``, with
``grpc-accept-encoding``), a malformed ``grpc-timeout`` or body (``INVALID_ARGUMENT``), a compressed
message with no encoding (``INTERNAL``), a request or header list over the limits or past the concurrent
call limit (``RESOURCE_EXHAUSTED``; a compressed message is inflated only up to the limit), a bearer
token (``UNAUTHENTICATED`` / ``PERMISSION_DENIED``), and the deadline (``DEADLINE_EXCEEDED``, and the
call's task is cancelled).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..auth import GRPC_HEALTH
from ..errors import ServingError
from .http2 import Connection, Stream, encode_int, literal_field

__all__ = ["STATUS_CODES", "GrpcCalls", "Method", "RpcError"]

log = logging.getLogger("modelcapsule.serving")

STATUS_CODES = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9, "ABORTED": 10,
    "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}  # fmt: skip  (gRPC's status codes, doc/statuscodes.md)

_TIMEOUT = re.compile(rb"([0-9]{1,8})([HMSmun])")
_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
_INFLATE = {b"gzip": 31, b"deflate": 15}  # zlib window bits: gzip framing, zlib framing
_ACCEPT_ENCODING = b"identity,deflate,gzip"
_STATUS_200 = b"\x88"  # HPACK static table entry 8, ":status: 200"
_CONTENT_TYPE = literal_field(b"content-type", b"application/grpc")
_OK_HEADERS = _STATUS_200 + _CONTENT_TYPE + literal_field(b"grpc-accept-encoding", _ACCEPT_ENCODING)
_OK_TRAILERS = literal_field(b"grpc-status", b"0")
_MAX_MESSAGE_TEXT = 2048  # grpc-message bytes kept, so the trailers fit any client's header list limit


class RpcError(Exception):
    """A call's failure as a gRPC status name (a key of :data:`STATUS_CODES`) and a message for the client;
    ``fields``: more header fields for the answer (HPACK-encoded)."""

    def __init__(self, code: str, message: str, fields: bytes = b"") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields

    @classmethod
    def of(cls, exc: ServingError) -> RpcError:
        """The data plane's typed errors carry their gRPC status name."""
        return cls(exc.status.value, str(exc))


@dataclass(frozen=True)
class Method:
    """One unary method: how its request message parses, and the coroutine that answers it.

    ``call(request, deadline)`` gets the ``time.monotonic()`` deadline the client set (or None) and returns
    the response message (anything with ``SerializeToString``), or raises :class:`RpcError`."""

    parse: Callable[[bytes], Any]
    call: Callable[[Any, float | None], Awaitable[Any]]


@dataclass
class _CallState:
    method: Method
    timeout: float | None
    inflate: int | None  # zlib window bits when the messages are compressed
    timer: asyncio.TimerHandle | None = None


def percent_encode(text: str) -> bytes:
    """``grpc-message``'s encoding: UTF-8, with ``%`` and bytes outside printable ASCII as ``%XX``."""
    raw = text.encode("utf-8")[:_MAX_MESSAGE_TEXT]
    return b"".join(bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in raw)


def status_block(code: str, message: str = "", fields: bytes = b"") -> bytes:
    """A trailers-only answer: one header block with ``:status 200``, ``grpc-status`` (and ``grpc-message``)."""
    block = _STATUS_200 + _CONTENT_TYPE + fields + literal_field(b"grpc-status", str(STATUS_CODES[code]).encode())
    if message:
        block += literal_field(b"grpc-message", percent_encode(message))
    return block


def http_status(status: int) -> bytes:
    """A header block with only ``:status`` (a literal with the static table's ``:status`` name, index 8)."""
    value = str(status).encode()
    return b"\x08" + encode_int(len(value), 7, 0) + value


class GrpcCalls:
    """Turns each stream into one call of a :class:`Method` (see the module docstring).

    ``tokens``: the server's bearer tokens (:class:`~..auth.Tokens`, read from the ``authorization``
    metadata; the health methods are exempt unless they protect health too); ``max_message``: request
    bytes after inflation; ``max_calls``: calls in flight over every connection."""

    def __init__(self, methods: dict[bytes, Method], *, tokens: Any, max_message: int,
                 max_calls: int | None) -> None:
        self.methods = methods
        self.tokens = tokens
        self.max_message = max_message
        self.max_calls = max_calls
        self.in_flight = 0
        self.loop = asyncio.get_running_loop()

    # -- StreamHandler ------------------------------------------------------------------------------------

    def headers_received(self, conn: Connection, stream: Stream) -> None:
        headers = stream.headers
        if headers[b":method"] != b"POST":
            conn.answer(stream, http_status(405))
            return
        content_type = headers.get(b"content-type", b"")
        if content_type != b"application/grpc" and not content_type.startswith((b"application/grpc+",
                                                                                 b"application/grpc;")):
            conn.answer(stream, http_status(415))
            return
        try:
            stream.context = self._accept(stream, headers)
        except RpcError as exc:
            self._fail(conn, stream, exc)

    def request_received(self, conn: Connection, stream: Stream) -> None:
        state: _CallState | None = stream.context
        if stream.answered or state is None:
            return
        try:
            if stream.oversized:
                raise RpcError("RESOURCE_EXHAUSTED", f"the request is over the server's limit of {self.max_message} "
                                                     "bytes; send less per call or raise --max-body-bytes")
            request = state.method.parse(self._message(b"".join(stream.body), state))
        except RpcError as exc:
            self._fail(conn, stream, exc)
            return
        except Exception as exc:  # a message that does not parse as the method's request type
            self._fail(conn, stream, RpcError("INVALID_ARGUMENT", f"the request message does not parse: {exc}"))
            return
        deadline = None
        if state.timeout is not None:
            deadline = time.monotonic() + state.timeout
            state.timer = self.loop.call_later(state.timeout, self._deadline_passed, conn, stream)
        stream.body = []
        stream.task = self.loop.create_task(self._run(conn, stream, state, request, deadline))

    def stream_closed(self, conn: Connection, stream: Stream) -> None:
        state: _CallState | None = stream.context
        if state is not None and state.timer is not None:
            state.timer.cancel()
        if stream.task is not None:
            stream.task.cancel()

    # -- the call -----------------------------------------------------------------------------------------

    def _accept(self, stream: Stream, headers: dict[bytes, bytes]) -> _CallState:
        """What the headers alone decide: a refusal (raised), or the call's state."""
        path = headers[b":path"]
        if stream.too_many_headers:
            raise RpcError("RESOURCE_EXHAUSTED", "the request's metadata is over the server's header list limit")
        method = self.methods.get(path)
        if method is None:
            raise RpcError("UNIMPLEMENTED", f"no method {path.decode('latin-1')!r} here; this server answers "
                                            "inference.GRPCInferenceService")
        encoding = headers.get(b"grpc-encoding", b"identity")
        if encoding != b"identity" and encoding not in _INFLATE:
            raise RpcError("UNIMPLEMENTED", f"grpc-encoding {encoding.decode('latin-1')!r} is not supported; "
                                            "use identity, deflate or gzip",
                           literal_field(b"grpc-accept-encoding", _ACCEPT_ENCODING))
        timeout = None
        raw_timeout = headers.get(b"grpc-timeout")
        if raw_timeout is not None:
            match = _TIMEOUT.fullmatch(raw_timeout)
            if match is None:
                raise RpcError("INVALID_ARGUMENT", f"malformed grpc-timeout {raw_timeout.decode('latin-1')!r}: "
                                                   "expected up to 8 digits and a unit (H, M, S, m, u, n)")
            timeout = int(match[1]) * _TIMEOUT_UNITS[match[2]]
        if self.tokens is not None and (self.tokens.protect_health or path.decode("latin-1") not in GRPC_HEALTH):
            try:
                authorization = headers.get(b"authorization")
                self.tokens.check(None if authorization is None else authorization.decode("latin-1"))
            except ServingError as exc:
                raise RpcError.of(exc) from None
        if self.max_calls is not None and self.in_flight >= self.max_calls:
            raise RpcError("RESOURCE_EXHAUSTED", f"the server is at its limit of {self.max_calls} calls in flight; "
                                                 "retry later")
        return _CallState(method, timeout, _INFLATE.get(encoding))

    def _message(self, body: bytes, state: _CallState) -> bytes:
        """The one message of a unary request's body, inflated if compressed."""
        if len(body) < 5 or len(body) != 5 + int.from_bytes(body[1:5], "big"):
            raise RpcError("INVALID_ARGUMENT", "a unary call's request body must be exactly one length-prefixed "
                                               "message")
        flag, message = body[0], body[5:]
        if flag == 0:
            return message
        if flag != 1:
            raise RpcError("INTERNAL", f"compressed-flag {flag} is neither 0 nor 1")
        if state.inflate is None:
            raise RpcError("INTERNAL", "the message is marked compressed but the call has no grpc-encoding")
        inflater = zlib.decompressobj(state.inflate)
        try:
            plain = inflater.decompress(message, self.max_message + 1)
        except zlib.error as exc:
            raise RpcError("INTERNAL", f"the compressed message does not inflate: {exc}") from None
        if len(plain) > self.max_message or inflater.unconsumed_tail:
            raise RpcError("RESOURCE_EXHAUSTED", f"the request inflates past the server's limit of {self.max_message} "
                                                 "bytes; send less per call or raise --max-body-bytes")
        if not inflater.eof:
            raise RpcError("INTERNAL", "the compressed message is truncated")
        return plain

    async def _run(self, conn: Connection, stream: Stream, state: _CallState, request: Any,
                   deadline: float | None) -> None:
        self.in_flight += 1  # here, not when the task is made: a task cancelled before it starts runs nothing
        try:
            response = await state.method.call(request, deadline)
            payload: bytes = response.SerializeToString()
            conn.answer(stream, _OK_HEADERS, b"\0" + len(payload).to_bytes(4, "big") + payload, _OK_TRAILERS)
        except RpcError as exc:
            self._fail(conn, stream, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("gRPC call on stream %d failed", stream.id)
            self._fail(conn, stream, RpcError("INTERNAL", "the call failed in the server; its log has the details"))
        finally:
            self.in_flight -= 1
            if state.timer is not None:
                state.timer.cancel()

    def _deadline_passed(self, conn: Connection, stream: Stream) -> None:
        if not stream.answered:
            self._fail(conn, stream, RpcError("DEADLINE_EXCEEDED", "the call's deadline (grpc-timeout) passed"))
        if stream.task is not None:
            stream.task.cancel()

    @staticmethod
    def _fail(conn: Connection, stream: Stream, exc: RpcError) -> None:
        conn.answer(stream, status_block(exc.code, exc.message, exc.fields))
