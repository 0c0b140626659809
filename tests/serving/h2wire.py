"""A raw HTTP/2 client for tests: frames built by hand with ``struct``, header blocks with ``hpack``.

Well-behaved clients (grpcio, tritonclient) never send a malformed frame, an oversized header block
or DATA beyond a window; this client sends whatever a test writes, byte for byte, and shows every
frame the server answers with. It keeps just enough state to be a correct peer when a test wants one:
it acknowledges the server's SETTINGS and PINGs, tracks both send windows (so that large bodies wait
for the server's WINDOW_UPDATEs) and, unless told not to, gives back the window of every DATA frame it
receives. Header blocks (HEADERS + CONTINUATION) are decoded with one ``hpack.Decoder`` for the whole
connection, as HTTP/2 requires.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types (RFC 9113 §6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# flags
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
# settings (RFC 9113 §6.5.2)
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = (
    range(1, 7)
)
# error codes (RFC 9113 §7)
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED = range(6)
FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM = range(6, 12)

DEFAULT_WINDOW = 65_535
INFER = "/inference.GRPCInferenceService/ModelInfer"


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One frame: 24-bit length, type, flags, 31-bit stream id, payload (the length is not checked)."""
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream) + payload


def settings(values: dict[int, int] | None = None) -> bytes:
    payload = b"".join(struct.pack(">HI", k, v) for k, v in (values or {}).items())
    return frame(SETTINGS, 0, 0, payload)


def window_update(stream: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", increment))


def rst_stream(stream: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream, struct.pack(">I", code))


def goaway(last_stream: int, code: int = NO_ERROR) -> bytes:
    return frame(GOAWAY, 0, 0, struct.pack(">II", last_stream, code))


def grpc_message(payload: bytes, compressed: bool = False) -> bytes:
    """A gRPC length-prefixed message: compressed flag, 32-bit length, bytes."""
    return struct.pack(">BI", int(compressed), len(payload)) + payload


def grpc_messages(body: bytes) -> list[bytes]:
    """The messages of a gRPC body (uncompressed ones; the flag is asserted to be 0)."""
    out, at = [], 0
    while at < len(body):
        flag, length = struct.unpack_from(">BI", body, at)
        assert flag == 0, "the server compressed an answer nobody asked to be compressed"
        out.append(body[at + 5 : at + 5 + length])
        at += 5 + length
    assert at == len(body), "the body ends inside a message"
    return out


@dataclass
class Frame:
    kind: int
    flags: int
    stream: int
    payload: bytes
    headers: list[tuple[str, str]] | None = None
    """For HEADERS: the decoded header list of the whole block (CONTINUATIONs included)."""

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)

    @property
    def error_code(self) -> int:
        """RST_STREAM's code, or GOAWAY's."""
        return int(struct.unpack_from(">I", self.payload, 4 if self.kind == GOAWAY else 0)[0])


@dataclass
class Response:
    """What the server answered on one stream."""

    stream: int
    headers: dict[str, str] = field(default_factory=dict)
    trailers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    data_frames: list[int] = field(default_factory=list)
    """Payload length of each DATA frame, in order."""
    reset: int | None = None
    ended: bool = False

    @property
    def trailers_only(self) -> bool:
        return not self.trailers and "grpc-status" in self.headers

    @property
    def grpc_status(self) -> int:
        return int((self.headers if self.trailers_only else self.trailers)["grpc-status"])

    @property
    def grpc_message(self) -> str:
        """The percent-decoded ``grpc-message`` (gRPC PROTOCOL-HTTP2 §Responses)."""
        raw = (self.headers if self.trailers_only else self.trailers).get("grpc-message", "")
        return urllib.parse.unquote(raw, errors="strict")

    @property
    def raw_grpc_message(self) -> str:
        return (self.headers if self.trailers_only else self.trailers).get("grpc-message", "")

    def messages(self) -> list[bytes]:
        return grpc_messages(bytes(self.body))


class Closed(Exception):
    """The server closed the connection."""


class H2Client:
    """One HTTP/2 connection to a server, driven frame by frame.

    ``connect`` opens the socket; ``handshake`` sends the preface and the client's SETTINGS and reads
    the server's own up to its first SETTINGS frame (kept in ``server_settings``, the frames seen in
    ``opening``)."""

    def __init__(self, address: str, *, timeout: float = 10.0, auto_window: bool = True) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.auto_window = auto_window
        self.buffer = bytearray()
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder(max_header_list_size=1 << 30)
        self.server_settings: dict[int, int] = {}
        self.opening: list[Frame] = []
        self.log: list[Frame] = []
        self.conn_send_window = DEFAULT_WINDOW
        self.stream_send_windows: dict[int, int] = {}
        self.responses: dict[int, Response] = {}
        self.goaway: Frame | None = None
        self.settings_acked = 0
        self._block: tuple[Frame, bytearray] | None = None

    # -- connection ---------------------------------------------------------------------------------
    def handshake(self, client_settings: dict[int, int] | None = None, *, connection_window: int = 1 << 24) -> None:
        """Preface, SETTINGS (``client_settings``) and a connection WINDOW_UPDATE of ``connection_window``
        (0: none); then read until the server's SETTINGS has come and been acknowledged."""
        out = PREFACE + settings(client_settings)
        if connection_window:
            out += window_update(0, connection_window)
        self.send(out)
        while not self.server_settings and not self.opening_has_settings():
            self.opening.append(self.recv())

    def opening_has_settings(self) -> bool:
        return any(f.kind == SETTINGS and not f.has(ACK) for f in self.opening)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _reply(self, data: bytes) -> None:
        """A frame the client owes (ACK, WINDOW_UPDATE): if the server has closed by now, the read side says
        so; the reply is not worth an error of its own."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------------
    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no frame from the server in time")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 20)
        except TimeoutError:
            raise TimeoutError("no frame from the server in time") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise Closed("the server closed the connection")
        self.buffer += chunk

    def read_frame(self, timeout: float | None = None) -> Frame:
        """The next frame as sent, with no bookkeeping (raises Closed at EOF, TimeoutError)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buffer) < 9:
            self._fill(deadline)
        length = int.from_bytes(self.buffer[:3], "big")
        while len(self.buffer) < 9 + length:
            self._fill(deadline)
        kind, flags, stream = struct.unpack_from(">BBI", self.buffer, 3)
        payload = bytes(self.buffer[9 : 9 + length])
        del self.buffer[: 9 + length]
        return Frame(kind, flags, stream & 0x7FFF_FFFF, payload)

    def recv(self, timeout: float | None = None) -> Frame:
        """The next frame, after the client's bookkeeping: SETTINGS and PING acknowledged, windows
        tracked, header blocks decoded (a HEADERS frame is returned once its block is complete, with
        ``headers`` set), answers gathered in ``responses``."""
        while True:
            f = self.read_frame(timeout)
            self.log.append(f)
            if self._block is not None:
                assert f.kind == CONTINUATION and f.stream == self._block[0].stream, "server broke a header block"
                self._block[1].extend(f.payload)
                if not f.has(END_HEADERS):
                    continue
                f, block = self._block[0], bytes(self._block[1])
                self._block = None
                f.headers = [(str(k), str(v)) for k, v in self.decoder.decode(block)]
            elif f.kind == HEADERS:
                block = strip_padding(f)
                if f.has(PRIORITY_FLAG):
                    block = block[5:]
                if not f.has(END_HEADERS):
                    self._block = (f, bytearray(block))
                    continue
                f.headers = [(str(k), str(v)) for k, v in self.decoder.decode(block)]
            self._account(f)
            return f

    def _account(self, f: Frame) -> None:
        if f.kind == SETTINGS and not f.has(ACK):
            for at in range(0, len(f.payload) - len(f.payload) % 6, 6):
                key, value = struct.unpack_from(">HI", f.payload, at)
                if key == INITIAL_WINDOW_SIZE:
                    delta = value - self.server_settings.get(INITIAL_WINDOW_SIZE, DEFAULT_WINDOW)
                    for s in self.stream_send_windows:
                        self.stream_send_windows[s] += delta
                self.server_settings[key] = value
            self._reply(frame(SETTINGS, ACK, 0))
        elif f.kind == SETTINGS:
            self.settings_acked += 1
        elif f.kind == PING and not f.has(ACK):
            self._reply(frame(PING, ACK, 0, f.payload))
        elif f.kind == WINDOW_UPDATE:
            increment = struct.unpack(">I", f.payload)[0] & 0x7FFF_FFFF
            if f.stream == 0:
                self.conn_send_window += increment
            elif f.stream in self.stream_send_windows:
                self.stream_send_windows[f.stream] += increment
        elif f.kind == GOAWAY:
            self.goaway = f
        elif f.kind in (HEADERS, DATA, RST_STREAM) and f.stream:
            answer = self.responses.setdefault(f.stream, Response(f.stream))
            if f.kind == HEADERS:
                assert f.headers is not None
                (answer.trailers if answer.headers else answer.headers).update(f.headers)
            elif f.kind == DATA:
                answer.body += strip_padding(f)
                answer.data_frames.append(len(f.payload))
                if self.auto_window and f.payload:
                    self._reply(window_update(0, len(f.payload)) + (b"" if f.has(END_STREAM) else
                                                                   window_update(f.stream, len(f.payload))))
            else:
                answer.reset = f.error_code
            if f.kind != RST_STREAM and f.has(END_STREAM):
                answer.ended = True

    def response(self, stream: int, timeout: float | None = None) -> Response:
        """Read until ``stream`` is answered (END_STREAM or RST_STREAM)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            answer = self.responses.get(stream)
            if answer is not None and (answer.ended or answer.reset is not None):
                return answer
            self.recv(max(0.0, deadline - time.monotonic()))

    def expect_goaway(self, timeout: float | None = None) -> Frame:
        """Read until a GOAWAY comes, then until the server closes the connection; the GOAWAY."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while self.goaway is None:
                self.recv(max(0.0, deadline - time.monotonic()))
        except Closed:
            raise AssertionError("the server closed the connection without a GOAWAY") from None
        self.expect_closed(max(0.1, deadline - time.monotonic()))
        return self.goaway

    def expect_closed(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while True:
                self.recv(max(0.0, deadline - time.monotonic()))
        except Closed:
            return

    def readable(self, timeout: float) -> bool:
        if len(self.buffer) >= 9:
            return True
        return bool(select.select([self.sock], [], [], timeout)[0])

    def frames_for(self, stream: int) -> list[Frame]:
        return [f for f in self.log if f.stream == stream]

    # -- requests -----------------------------------------------------------------------------------
    def header_block(self, headers: Iterable[tuple[str, str]]) -> bytes:
        return bytes(self.encoder.encode(list(headers)))

    def send_headers(self, stream: int, headers: Sequence[tuple[str, str]], *, end_stream: bool = False) -> None:
        self.stream_send_windows.setdefault(stream, self.server_settings.get(INITIAL_WINDOW_SIZE, DEFAULT_WINDOW))
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        self.send(frame(HEADERS, flags, stream, self.header_block(headers)))

    def send_data(self, stream: int, body: bytes, *, end_stream: bool = True, chunk: int = 16_384) -> None:
        """``body`` as DATA frames of at most ``chunk`` bytes, waiting for window when it runs out."""
        at = 0
        while True:
            size = min(chunk, len(body) - at)
            while size and min(self.conn_send_window, self.stream_send_windows[stream]) < size:
                self.recv()
            piece = body[at : at + size]
            at += size
            last = at >= len(body)
            self.conn_send_window -= size
            self.stream_send_windows[stream] -= size
            self.send(frame(DATA, END_STREAM if last and end_stream else 0, stream, piece))
            if last:
                return

    def request(self, stream: int, message: bytes | None, headers: Sequence[tuple[str, str]] | None = None) -> None:
        """A unary gRPC call: request headers, then ``message`` as one gRPC message (None: headers only,
        END_STREAM on them)."""
        self.send_headers(stream, headers or grpc_headers(), end_stream=message is None)
        if message is not None:
            self.send_data(stream, grpc_message(message))

    def call(self, stream: int, message: bytes | None, headers: Sequence[tuple[str, str]] | None = None) -> Response:
        self.request(stream, message, headers)
        return self.response(stream)


def parse_frames(data: bytes) -> list[Frame]:
    """The frames in ``data``, which must be whole HTTP/2 frames and nothing else."""
    frames, at = [], 0
    while at + 9 <= len(data):
        length = int.from_bytes(data[at : at + 3], "big")
        kind, flags, stream = struct.unpack_from(">BBI", data, at + 3)
        frames.append(Frame(kind, flags, stream, data[at + 9 : at + 9 + length]))
        at += 9 + length
    assert at == len(data), f"the server sent something that is not HTTP/2 frames: {data[:80]!r}"
    return frames


def strip_padding(f: Frame) -> bytes:
    if not f.has(PADDED):
        return f.payload
    pad = f.payload[0]
    return f.payload[1 : len(f.payload) - pad]


def grpc_headers(path: str = INFER, *, method: str = "POST", content_type: str = "application/grpc",
                 extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """Request headers as a gRPC client sends them (PROTOCOL-HTTP2 §Requests)."""
    return [(":method", method), (":scheme", "http"), (":path", path), (":authority", "127.0.0.1"),
            ("te", "trailers"), ("content-type", content_type), *extra]
