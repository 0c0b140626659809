"""HTTP/2 server connections (RFC 9113) for request/response exchanges, read on the event loop.

One :class:`Connection` per client: an :class:`asyncio.Protocol` that reads frames as they arrive,
keeps every stream's state and both directions' flow-control windows, decodes header blocks with the
``hpack`` package (RFC 7541), and hands each stream to a :class:`StreamHandler` twice: when its headers
are complete, and when its body is. The handler answers through :meth:`Connection.answer`. Nothing here
knows gRPC; :mod:`.calls` is the handler that does.

Why our own: a unary call on grpcio's server costs about as much CPU as a whole V2 REST request with the
model (docs/benchmarks-grpc-floor.md). Here a call costs the frames it is made of: a read can carry
many streams' frames, and answers finished in one turn of the loop leave in one write.

What a peer owes us, checked (each a connection error, answered with GOAWAY and a close, unless noted):
the preface; frame sizes (``FRAME_SIZE_ERROR``); header blocks in one piece, CONTINUATION-only until
``END_HEADERS`` and at most :attr:`Limits.max_header_block` compressed bytes (``ENHANCE_YOUR_CALM``,
so a CONTINUATION flood is cut off rather than buffered); HPACK that decodes (``COMPRESSION_ERROR``);
odd, increasing stream ids; flow control both ways; SETTINGS values; no PUSH_PROMISE; no resetting most
streams before their answer once past a tolerance (the "rapid reset" flood). A client that stops
reading is not read either, so acknowledgements cannot pile up in memory. Stream errors
(RST_STREAM) leave the connection up: too many open streams (``REFUSED_STREAM``), DATA on a closed
stream (``STREAM_CLOSED``), a malformed request (``PROTOCOL_ERROR``). Every header block is decoded,
even for a stream being refused, so the HPACK table stays in step with the client's.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import hpack

__all__ = ["Connection", "Limits", "Stream", "StreamHandler", "literal_field"]

log = logging.getLogger("modelcapsule.serving")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types, flags, error codes and settings (RFC 9113 §6, §7, §6.5.2)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
(NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, FRAME_SIZE_ERROR,
 REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM) = range(12)  # fmt: skip
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = (
    range(1, 7))  # fmt: skip

DEFAULT_WINDOW = 65_535
MAX_WINDOW = 2**31 - 1
_HARD_HEADER_LIST = 256 << 10  # decoded bytes past which a header block is an attack, not a request
_RESET_MEMORY = 64  # streams we reset whose late frames are ignored rather than answered
_RESETS_TOLERATED = 128  # then a client resetting most of its streams before their answer is cut off
_CONNECTION_HEADERS = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"})
_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":path", b":authority"})


@dataclass(frozen=True)
class Limits:
    """What a server connection allows its peer; the first four are advertised in its SETTINGS."""

    max_concurrent_streams: int = 1024
    initial_window: int = 1 << 20  # each stream's receive window
    max_frame_size: int = 16_384
    max_header_list: int = 16_384  # decoded header list, RFC 7541 §4.1 sizes; larger requests are refused
    connection_window: int = 16 << 20
    max_header_block: int = 64 << 10  # compressed bytes of one header block (HEADERS + CONTINUATION)
    max_body: int = 64 << 20  # request body bytes of one stream; the handler is told when one is larger
    preface_timeout: float = 10.0  # seconds for a new connection to send the client preface


class PeerError(Exception):
    """A connection error (RFC 9113 §5.4.1): the connection ends with GOAWAY carrying ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class Stream:
    """One client-initiated stream: its request as it arrives and its answer as it leaves.

    ``headers`` may be shared by streams whose header blocks were the same bytes: read it, never change it."""

    __slots__ = ("answered", "body", "body_size", "context", "headers", "id", "oversized", "pending", "recv_credit",
                 "request_ended", "send_window", "task", "too_many_headers", "trailers")  # fmt: skip

    def __init__(self, stream_id: int, send_window: int) -> None:
        self.id = stream_id
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.body_size = 0
        self.request_ended = False
        self.answered = False  # the handler's answer has been queued (it may still wait for window)
        self.oversized = False  # the body went past Limits.max_body: no longer kept
        self.too_many_headers = False  # decoded header list past Limits.max_header_list
        self.send_window = send_window
        self.recv_credit = 0  # received bytes not yet given back with WINDOW_UPDATE
        self.pending: memoryview | None = None  # answer DATA waiting for flow-control window
        self.trailers: bytes | None = None  # sent once ``pending`` is out
        self.context: Any = None  # the handler's own state of the stream
        self.task: asyncio.Task[None] | None = None


class StreamHandler(Protocol):
    """What a :class:`Connection` calls; :mod:`.calls` implements it for gRPC."""

    def headers_received(self, conn: Connection, stream: Stream) -> None:
        """A stream's request headers are complete (``stream.headers``); the handler may answer at once."""

    def request_received(self, conn: Connection, stream: Stream) -> None:
        """The request is complete (``stream.body``), or ``stream.oversized``; the handler answers it."""

    def stream_closed(self, conn: Connection, stream: Stream) -> None:
        """The stream ended before its answer was sent (reset by the client, connection lost): stop its work."""


def encode_int(value: int, prefix_bits: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541 §5.1) with ``first``'s high bits as the representation's pattern."""
    top = (1 << prefix_bits) - 1
    if value < top:
        return bytes((first | value,))
    out = bytearray((first | top,))
    value -= top
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal_field(name: bytes, value: bytes) -> bytes:
    """A header field as an HPACK literal without indexing and without Huffman coding (RFC 7541 §6.2.2):
    it never touches either side's dynamic table, so answers need no encoder state."""
    return b"\x00" + encode_int(len(name), 7, 0) + name + encode_int(len(value), 7, 0) + value


def frame(kind: int, flags: int, stream_id: int, payload: bytes | memoryview = b"") -> bytes:
    return struct.pack(">IBBI", len(payload), kind, flags, stream_id)[1:] + bytes(payload)


def _skip_int(block: bytes, i: int, prefix_bits: int) -> tuple[int, int]:
    """The HPACK integer at ``block[i]`` (RFC 7541 §5.1) and the index after it."""
    top = (1 << prefix_bits) - 1
    value = block[i] & top
    i += 1
    if value < top:
        return value, i
    shift = 0
    while True:
        byte = block[i]  # an IndexError past the end: the caller decodes the block for real
        value += (byte & 0x7F) << shift
        shift += 7
        i += 1
        if not byte & 0x80:
            return value, i


def _leaves_table(block: bytes) -> bool:
    """Whether decoding ``block`` leaves the dynamic table as it is: every field is indexed (RFC 7541 §6.1)
    or a literal without indexing / never indexed (§6.2.2, §6.2.3). Such a block decodes to the same list
    until some other block changes the table, so its decoding can be kept. Clients repeat these blocks
    call after call: once the first call has indexed its fields, a call's headers are indexes, plus the
    literals their encoder never indexes (nghttp2, for one, keeps ``:path`` and ``content-length`` out)."""
    i, end = 0, len(block)
    try:
        while i < end:
            byte = block[i]
            if byte & 0x80:
                i = _skip_int(block, i, 7)[1]
            elif byte & 0xE0:  # 01xxxxxx literal with indexing, 001xxxxx table size update
                return False
            else:
                name_index, i = _skip_int(block, i, 4)
                for _ in range(1 if name_index else 2):  # the name when not indexed, then the value
                    length, i = _skip_int(block, i, 7)
                    i += length
        return i == end
    except IndexError:
        return False


class Connection(asyncio.Protocol):
    """One HTTP/2 connection on the server side (see the module docstring)."""

    def __init__(self, handler: StreamHandler, limits: Limits, on_close: Any = None) -> None:
        self.handler = handler
        self.limits = limits
        self.on_close = on_close
        self.transport: Any = None
        self.buffer = bytearray()
        self.preface_seen = False
        self.decoder = hpack.Decoder(max_header_list_size=_HARD_HEADER_LIST)
        self.decoded: dict[bytes, tuple[dict[bytes, bytes] | None, int]] = {}  # see _decode
        self.streams: dict[int, Stream] = {}
        self.last_stream = 0
        self.reset_recently: deque[int] = deque(maxlen=_RESET_MEMORY)
        self.open_block: tuple[int, int, bytearray] | None = None  # stream, HEADERS flags, block so far
        self.send_window = DEFAULT_WINDOW
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_frame = 16_384
        self.peer_table_size = 4_096  # the client's HPACK table size, which our (unused) encoder table keeps under
        self.table_size_update = b""  # owed at the start of the next header block sent
        self.recv_window = limits.connection_window
        self.recv_credit = 0
        self.credit_due: set[Stream] = set()  # streams that have used half their receive window
        self.opened = 0  # streams the client opened, and how many of them it reset before their answer
        self.client_resets = 0
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.blocked: dict[int, Stream] = {}  # streams with answer DATA waiting for window
        self.writing_paused = False
        self.going_away = False  # GOAWAY sent or received: no new streams; close when the last ends
        self.closed = False
        self.loop = asyncio.get_running_loop()
        self.preface_timer: asyncio.TimerHandle | None = None

    # -- the transport's side -------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self.transport = transport
        limits = self.limits
        settings = struct.pack(
            ">HIHIHIHIHI",
            MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams, INITIAL_WINDOW_SIZE, limits.initial_window,
            MAX_FRAME_SIZE, limits.max_frame_size, MAX_HEADER_LIST_SIZE, limits.max_header_list, ENABLE_PUSH, 0,
        )  # fmt: skip
        self.out.append(frame(SETTINGS, 0, 0, settings))
        if limits.connection_window > DEFAULT_WINDOW:
            increment = limits.connection_window - DEFAULT_WINDOW
            self.out.append(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", increment)))
        self._flush()
        self.preface_timer = self.loop.call_later(limits.preface_timeout, self._preface_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.preface_timer is not None:
            self.preface_timer.cancel()
        for stream in list(self.streams.values()):
            if not stream.answered or stream.pending is not None:
                self.handler.stream_closed(self, stream)
        self.streams.clear()
        self.blocked.clear()
        if self.on_close is not None:
            self.on_close(self)

    def pause_writing(self) -> None:
        """The client is not reading: stop reading its frames too (each may ask for an answer)."""
        self.writing_paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.transport.resume_reading()
        self._send_blocked()
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        buffer = self.buffer
        buffer += data
        try:
            if not self.preface_seen:
                if len(buffer) < len(PREFACE):
                    if not PREFACE.startswith(bytes(buffer)):
                        raise PeerError(PROTOCOL_ERROR, "this port speaks HTTP/2 (gRPC) only")
                    return
                if buffer[: len(PREFACE)] != PREFACE:
                    raise PeerError(PROTOCOL_ERROR, "this port speaks HTTP/2 (gRPC) only")
                del buffer[: len(PREFACE)]
                self.preface_seen = True
                if self.preface_timer is not None:
                    self.preface_timer.cancel()
                    self.preface_timer = None
            pos, end, max_frame = 0, len(buffer), self.limits.max_frame_size
            try:
                while end - pos >= 9:
                    length = int.from_bytes(buffer[pos : pos + 3], "big")
                    if length > max_frame:
                        raise PeerError(FRAME_SIZE_ERROR, f"a frame of {length} bytes (at most {max_frame})")
                    if end - pos < 9 + length:
                        break
                    kind, flags = buffer[pos + 3], buffer[pos + 4]
                    stream_id = int.from_bytes(buffer[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
                    payload = bytes(buffer[pos + 9 : pos + 9 + length])
                    pos += 9 + length
                    self._frame(kind, flags, stream_id, payload)
                    if self.closed:
                        return
            finally:
                del buffer[:pos]
            self._give_credit()
        except PeerError as exc:
            self.abort(exc.code, str(exc))
            return
        self._flush()

    # -- frames -----------------------------------------------------------------------------------------

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self.open_block is not None and (kind != CONTINUATION or stream_id != self.open_block[0]):
            raise PeerError(PROTOCOL_ERROR, "a header block was interrupted by another frame")
        if kind == DATA:
            self._data(flags, stream_id, payload)
        elif kind == HEADERS:
            self._headers(flags, stream_id, payload)
        elif kind == CONTINUATION:
            if self.open_block is None:
                raise PeerError(PROTOCOL_ERROR, "CONTINUATION without an open header block")
            self._extend_block(payload)
            if flags & END_HEADERS:
                sid, first_flags, block = self.open_block
                self.open_block = None
                self._header_block(first_flags, sid, bytes(block))
        elif kind == SETTINGS:
            self._settings(flags, stream_id, payload)
        elif kind == PING:
            if stream_id:
                raise PeerError(PROTOCOL_ERROR, "PING on a stream")
            if len(payload) != 8:
                raise PeerError(FRAME_SIZE_ERROR, "PING payload is not 8 bytes")
            if not flags & ACK:
                self.out.append(frame(PING, ACK, 0, payload))
        elif kind == WINDOW_UPDATE:
            self._window_update(stream_id, payload)
        elif kind == RST_STREAM:
            if not stream_id:
                raise PeerError(PROTOCOL_ERROR, "RST_STREAM on stream 0")
            if len(payload) != 4:
                raise PeerError(FRAME_SIZE_ERROR, "RST_STREAM payload is not 4 bytes")
            if stream_id > self.last_stream:
                raise PeerError(PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            stream = self.streams.pop(stream_id, None)
            if stream is not None:
                self.blocked.pop(stream_id, None)
                if not stream.answered:
                    self.client_resets += 1
                    if self.client_resets > _RESETS_TOLERATED and 2 * self.client_resets > self.opened:
                        raise PeerError(ENHANCE_YOUR_CALM, "most streams are reset before their answer")
                self._closed_early(stream)
        elif kind == GOAWAY:
            if stream_id:
                raise PeerError(PROTOCOL_ERROR, "GOAWAY on a stream")
            self.going_away = True
            self._close_if_idle()
        elif kind == PRIORITY:
            if not stream_id:
                raise PeerError(PROTOCOL_ERROR, "PRIORITY on stream 0")
            if len(payload) != 5:
                self._reset(stream_id, FRAME_SIZE_ERROR)
        elif kind == PUSH_PROMISE:
            raise PeerError(PROTOCOL_ERROR, "clients cannot push")
        # other frame types are extensions: ignored (RFC 9113 §5.5)

    def _data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id:
            raise PeerError(PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        self.recv_window -= size
        if self.recv_window < 0:
            raise PeerError(FLOW_CONTROL_ERROR, "DATA beyond the connection's flow-control window")
        self.recv_credit += size
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self.last_stream:
                raise PeerError(PROTOCOL_ERROR, "DATA on an idle stream")
            if stream_id not in self.reset_recently:
                self._reset(stream_id, STREAM_CLOSED)
            return
        if stream.request_ended:
            self._reset_stream(stream, STREAM_CLOSED)
            return
        stream.recv_credit += size
        if stream.recv_credit > self.limits.initial_window:
            raise PeerError(FLOW_CONTROL_ERROR, "DATA beyond the stream's flow-control window")
        if stream.recv_credit >= self.limits.initial_window // 2 and not flags & END_STREAM:
            self.credit_due.add(stream)
        body = _unpad(flags, payload)
        if not stream.oversized and not stream.answered:
            stream.body_size += len(body)
            if stream.body_size > self.limits.max_body:
                stream.oversized, stream.body = True, []
                stream.request_ended = bool(flags & END_STREAM)
                self.handler.request_received(self, stream)
                return
            if body:
                stream.body.append(body)
        if flags & END_STREAM:
            self._request_ended(stream)

    def _headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id:
            raise PeerError(PROTOCOL_ERROR, "HEADERS on stream 0")
        block = _unpad(flags, payload)
        if flags & PRIORITY_FLAG:
            if len(block) < 5:
                raise PeerError(FRAME_SIZE_ERROR, "HEADERS too short for its priority fields")
            block = block[5:]
        if flags & END_HEADERS:
            self._header_block(flags, stream_id, block)
        else:
            self.open_block = (stream_id, flags, bytearray())
            self._extend_block(block)

    def _extend_block(self, payload: bytes) -> None:
        assert self.open_block is not None
        block = self.open_block[2]
        block += payload
        if len(block) > self.limits.max_header_block:
            raise PeerError(ENHANCE_YOUR_CALM, f"a header block over {self.limits.max_header_block} bytes")

    def _header_block(self, flags: int, stream_id: int, block: bytes) -> None:
        headers, size = self._decode(block)
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers from the client: they must end the request
            if stream.request_ended or not flags & END_STREAM:
                self._reset_stream(stream, PROTOCOL_ERROR)
            else:
                self._request_ended(stream)
            return
        if stream_id % 2 == 0:
            raise PeerError(PROTOCOL_ERROR, f"client stream {stream_id} has an even id")
        if stream_id <= self.last_stream:
            if stream_id in self.reset_recently:
                return
            raise PeerError(PROTOCOL_ERROR, f"stream {stream_id} was already used")
        self.last_stream = stream_id
        self.opened += 1
        if self.going_away or len(self.streams) >= self.limits.max_concurrent_streams:
            self._reset(stream_id, REFUSED_STREAM)
            return
        if headers is None:
            self._reset(stream_id, PROTOCOL_ERROR)
            return
        stream = Stream(stream_id, self.peer_initial_window)
        stream.headers = headers
        stream.too_many_headers = size > self.limits.max_header_list
        self.streams[stream_id] = stream
        self.handler.headers_received(self, stream)
        if flags & END_STREAM and stream_id in self.streams:
            self._request_ended(stream)

    def _decode(self, block: bytes) -> tuple[dict[bytes, bytes] | None, int]:
        """The block's request fields (None when malformed) and their RFC 7541 size; a block that does not
        decode ends the connection. Blocks that leave the table as it is are remembered decoded, checked."""
        known = self.decoded.get(block)
        if known is not None:
            return known
        try:
            fields = [(bytes(n), bytes(v)) for n, v in self.decoder.decode(block, raw=True)]
        except hpack.OversizedHeaderListError:
            raise PeerError(ENHANCE_YOUR_CALM, "a header list too large to decode") from None
        except hpack.HPACKError as exc:
            raise PeerError(COMPRESSION_ERROR, f"undecodable header block: {exc}") from None
        decoded = _request_headers(fields), sum(len(n) + len(v) + 32 for n, v in fields)
        if _leaves_table(block):
            if len(self.decoded) >= 64:
                self.decoded.clear()
            self.decoded[block] = decoded
        else:  # the table may have changed: what was kept may no longer mean the same
            self.decoded.clear()
        return decoded

    def _request_ended(self, stream: Stream) -> None:
        stream.request_ended = True
        if stream.answered:
            self._forget_if_done(stream)
        else:
            self.handler.request_received(self, stream)

    def _settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise PeerError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise PeerError(FRAME_SIZE_ERROR, "SETTINGS acknowledgement with a payload")
            return
        if len(payload) % 6:
            raise PeerError(FRAME_SIZE_ERROR, "SETTINGS payload is not a multiple of 6 bytes")
        for i in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, i)
            if key == ENABLE_PUSH and value > 1:
                raise PeerError(PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH is neither 0 nor 1")
            if key == INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise PeerError(FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1")
                delta, self.peer_initial_window = value - self.peer_initial_window, value
                for stream in self.streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        raise PeerError(FLOW_CONTROL_ERROR, "a stream's send window over 2^31-1")
            elif key == MAX_FRAME_SIZE:
                if not 16_384 <= value <= 16_777_215:
                    raise PeerError(PROTOCOL_ERROR, f"SETTINGS_MAX_FRAME_SIZE {value} out of range")
                self.peer_max_frame = value
            elif key == HEADER_TABLE_SIZE and value < self.peer_table_size:
                # answers never use the dynamic table, but a smaller maximum must still be acknowledged by a
                # dynamic table size update at the start of the next header block sent (RFC 7541 §4.2)
                self.peer_table_size = value
                self.table_size_update = encode_int(value, 5, 0x20)
            # the others only bound what we send
        self.out.append(frame(SETTINGS, ACK, 0))
        self._send_blocked()

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise PeerError(FRAME_SIZE_ERROR, "WINDOW_UPDATE payload is not 4 bytes")
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if not stream_id:
            if not increment:
                raise PeerError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0 on the connection")
            self.send_window += increment
            if self.send_window > MAX_WINDOW:
                raise PeerError(FLOW_CONTROL_ERROR, "the connection's send window over 2^31-1")
            self._send_blocked()
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self.last_stream:
                raise PeerError(PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
            return  # a closed stream: the update may have crossed our END_STREAM
        if not increment:
            self._reset_stream(stream, PROTOCOL_ERROR)
            return
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            self._reset_stream(stream, FLOW_CONTROL_ERROR)
            return
        if stream.pending is not None:
            self._send_data(stream)

    # -- answers ----------------------------------------------------------------------------------------

    def answer(self, stream: Stream, headers: bytes, body: bytes | None = None, trailers: bytes | None = None) -> None:
        """Queue ``stream``'s answer: a header block, then (optionally) a body and a trailer block; the last
        of them carries END_STREAM. DATA waits for flow-control window; everything queued in one turn of the
        event loop leaves in one write."""
        if stream.answered or self.closed or self.streams.get(stream.id) is not stream:
            return
        stream.answered = True
        ends = body is None and trailers is None
        self._header_frame(stream.id, END_STREAM if ends else 0, headers)
        if ends:
            self._answer_sent(stream)
        else:
            stream.pending = memoryview(body or b"")
            stream.trailers = trailers if trailers is not None else b""
            self._send_data(stream)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _send_data(self, stream: Stream) -> None:
        pending = stream.pending
        assert pending is not None
        out, limit = self.out, self.peer_max_frame
        while pending and not self.writing_paused:
            size = min(len(pending), limit, self.send_window, stream.send_window)
            if size <= 0:
                break
            out.append(frame(DATA, 0, stream.id, pending[:size]))
            pending = pending[size:]
            self.send_window -= size
            stream.send_window -= size
        if pending:
            stream.pending = pending
            self.blocked[stream.id] = stream
            return
        self.blocked.pop(stream.id, None)
        stream.pending = None
        if stream.trailers:
            self._header_frame(stream.id, END_STREAM, stream.trailers)
        else:
            out.append(frame(DATA, END_STREAM, stream.id))
        self._answer_sent(stream)

    def _header_frame(self, stream_id: int, flags: int, block: bytes) -> None:
        if self.table_size_update:
            block, self.table_size_update = self.table_size_update + block, b""
        self.out.append(frame(HEADERS, END_HEADERS | flags, stream_id, block))

    def _send_blocked(self) -> None:
        for stream in list(self.blocked.values()):
            if self.send_window <= 0 or self.writing_paused:
                return
            self._send_data(stream)

    def _answer_sent(self, stream: Stream) -> None:
        if stream.request_ended:
            self._forget_if_done(stream)
        else:  # answered before the request ended (a refusal): the rest of the request is not wanted
            self.streams.pop(stream.id, None)
            self.reset_recently.append(stream.id)
            self.out.append(frame(RST_STREAM, 0, stream.id, struct.pack(">I", NO_ERROR)))
            self._close_if_idle()

    def _forget_if_done(self, stream: Stream) -> None:
        if stream.answered and stream.pending is None and stream.request_ended:
            self.streams.pop(stream.id, None)
            self._close_if_idle()

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.out and not self.transport.is_closing():
            out, self.out = self.out, []
            self.transport.write(b"".join(out))

    def _give_credit(self) -> None:
        """Hand back receive window once half of it has been used (connection, and each open stream)."""
        if self.recv_credit >= self.limits.connection_window // 2:
            self.out.append(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self.recv_credit)))
            self.recv_window += self.recv_credit
            self.recv_credit = 0
        for stream in self.credit_due:
            if not stream.request_ended and self.streams.get(stream.id) is stream:
                self.out.append(frame(WINDOW_UPDATE, 0, stream.id, struct.pack(">I", stream.recv_credit)))
                stream.recv_credit = 0
        self.credit_due.clear()

    # -- ends -------------------------------------------------------------------------------------------

    def _reset(self, stream_id: int, code: int) -> None:
        self.out.append(frame(RST_STREAM, 0, stream_id, struct.pack(">I", code)))
        self.reset_recently.append(stream_id)

    def _reset_stream(self, stream: Stream, code: int) -> None:
        self.streams.pop(stream.id, None)
        self.blocked.pop(stream.id, None)
        self._reset(stream.id, code)
        self._closed_early(stream)

    def _closed_early(self, stream: Stream) -> None:
        if not stream.answered or stream.pending is not None:
            self.handler.stream_closed(self, stream)
        self._close_if_idle()

    def shutdown(self) -> None:
        """Graceful end: GOAWAY naming the last stream taken; those finish, new ones are refused."""
        if self.closed or self.going_away:
            return
        self.going_away = True
        self.out.append(frame(GOAWAY, 0, 0, struct.pack(">II", self.last_stream, NO_ERROR)))
        self._flush()
        self._close_if_idle()

    def abort(self, code: int, reason: str) -> None:
        """End the connection now with GOAWAY ``code``; streams in flight are dropped."""
        if self.closed:
            return
        log.info("closing an HTTP/2 connection: %s", reason)
        self.out.append(frame(GOAWAY, 0, 0, struct.pack(">II", self.last_stream, code) + reason.encode()[:256]))
        self._flush()
        self.closed = True
        self.transport.close()

    def _close_if_idle(self) -> None:
        if self.going_away and not self.streams and not self.closed:
            self._flush()
            self.closed = True
            self.transport.close()

    def _preface_late(self) -> None:
        self.preface_timer = None
        if not self.preface_seen and not self.closed:
            self.closed = True
            self.transport.close()


def _unpad(flags: int, payload: bytes) -> bytes:
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise PeerError(PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1 : len(payload) - payload[0]]


def _request_headers(fields: list[tuple[bytes, bytes]]) -> dict[bytes, bytes] | None:
    """The request's fields as a dict, or None when it is malformed (RFC 9113 §8.2-8.3): an upper-case or
    connection-specific name, a pseudo-header that is unknown, repeated or after a regular field, ``te`` other
    than ``trailers``, or a missing ``:method``, ``:scheme`` or ``:path``."""
    headers: dict[bytes, bytes] = {}
    regular = False
    for name, value in fields:
        if name.startswith(b":"):
            if regular or name not in _REQUEST_PSEUDO or name in headers:
                return None
        else:
            regular = True
            if name != name.lower() or name in _CONNECTION_HEADERS or (name == b"te" and value != b"trailers"):
                return None
        if name in headers:
            headers[name] += b"," + value
        else:
            headers[name] = value
    if not headers.get(b":path") or b":method" not in headers or b":scheme" not in headers:
        return None
    return headers
