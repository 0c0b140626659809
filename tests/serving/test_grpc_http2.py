"""The V2 gRPC server's HTTP/2 transport is a real and safe HTTP/2 server (RFC 9113, RFC 7541).

Every test opens its own connection to ``capsule serve``'s gRPC port: with grpcio as a client where a
well-behaved client shows the behaviour, and with the raw client of :mod:`.h2wire` for what such clients
never send. A connection error is a GOAWAY carrying RFC 9113's error code and then the connection closed;
a stream error is a RST_STREAM and the connection goes on. After every hostile case the server must still
answer a normal grpcio ``ModelInfer``: a broken connection never breaks the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Iterator

import grpc
import hpack
import numpy as np
import pytest

from modelcapsule.serving.grpc import grpc_service_pb2 as pb
from modelcapsule.serving.grpc import grpc_service_pb2_grpc as pb_grpc

from . import h2wire as w
from .conftest import Models, Server, start_server

SERVER_SETTINGS = {
    w.MAX_CONCURRENT_STREAMS: 1024,
    w.INITIAL_WINDOW_SIZE: 1 << 20,
    w.MAX_FRAME_SIZE: 16_384,
    w.MAX_HEADER_LIST_SIZE: 16_384,
    w.ENABLE_PUSH: 0,
}


# -- helpers shared with test_grpc_http2_calls --------------------------------------------------------
def iris_request(rows: np.ndarray, *outputs: str, model: str = "iris") -> pb.ModelInferRequest:
    """A V2 ``ModelInferRequest`` for the iris capsule, the rows as one raw FP64 buffer."""
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="input", datatype="FP64", shape=list(rows.shape))
    request.raw_input_contents.append(np.ascontiguousarray(rows, dtype="<f8").tobytes())
    for name in outputs:
        request.outputs.add(name=name)
    return request


def outputs_of(answer: bytes | pb.ModelInferResponse) -> dict[str, np.ndarray]:
    """The outputs of a ``ModelInferResponse`` (serialized or parsed), by name."""
    response = pb.ModelInferResponse.FromString(answer) if isinstance(answer, bytes) else answer
    dtypes = {"INT64": "<i8", "FP64": "<f8", "INT32": "<i4", "FP32": "<f4"}
    return {
        out.name: np.frombuffer(raw, dtype=dtypes[out.datatype]).reshape(list(out.shape))
        for out, raw in zip(response.outputs, response.raw_output_contents, strict=True)
    }


def assert_iris_answer(answer: bytes | pb.ModelInferResponse, models: Models, rows: np.ndarray) -> None:
    outputs = outputs_of(answer)
    if "predict" in outputs:
        np.testing.assert_array_equal(outputs["predict"], models.iris.predict(rows))
    if "predict_proba" in outputs:
        np.testing.assert_allclose(outputs["predict_proba"], models.iris.predict_proba(rows))
    assert outputs, "the answer has no outputs"


def still_serving(server: Server, models: Models) -> None:
    """A fresh grpcio channel gets a correct ModelInfer answer: the server keeps serving."""
    rows = models.X[7:9]
    with grpc.insecure_channel(server.grpc_address) as channel:
        answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(iris_request(rows), timeout=10)
    assert_iris_answer(answer, models, rows)


def raw_infer(rows: np.ndarray, *outputs: str) -> bytes:
    return bytes(iris_request(rows, *outputs).SerializeToString())


@pytest.fixture
def h2(server: Server) -> Iterator[w.H2Client]:
    """A raw HTTP/2 connection to the shared server, handshake done."""
    with w.H2Client(server.grpc_address) as client:
        client.handshake()
        yield client


def connection_error(client: w.H2Client, data: bytes) -> int:
    """Send ``data``; the server must answer with a GOAWAY and close: its error code."""
    client.send(data)
    return client.expect_goaway().error_code


# -- the connection's opening ---------------------------------------------------------------------------
def test_server_settings_come_first_and_widen_the_connection_window(server: Server) -> None:
    with w.H2Client(server.grpc_address) as client:
        client.handshake()
        first = client.opening[0]
        assert first.kind == w.SETTINGS and not first.has(w.ACK), "the server's preface is a SETTINGS frame"
        for key, value in SERVER_SETTINGS.items():
            assert client.server_settings.get(key) == value, (key, client.server_settings)
        deadline = time.monotonic() + 5
        while not (client.settings_acked and any(f.kind == w.WINDOW_UPDATE and f.stream == 0 for f in client.log)):
            client.recv(max(0.0, deadline - time.monotonic()))
        raise_window = next(f for f in client.log if f.kind == w.WINDOW_UPDATE and f.stream == 0)
        assert struct.unpack(">I", raise_window.payload)[0] > 0
        assert client.settings_acked == 1, "the client's SETTINGS are acknowledged once"


def test_ping_is_answered_with_the_same_bytes(h2: w.H2Client) -> None:
    h2.send(w.frame(w.PING, 0, 0, b"8 bytes!"))
    while True:
        f = h2.recv()
        if f.kind == w.PING:
            break
    assert f.has(w.ACK) and f.payload == b"8 bytes!" and f.stream == 0


def test_a_grpcio_client_is_answered(server: Server, models: Models) -> None:
    still_serving(server, models)


# -- connection errors: GOAWAY with the code, then closed ------------------------------------------------
@pytest.mark.parametrize(
    "opening",
    [b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + b"\0" * 16],
    ids=["garbled-preface", "http1"],
)
def test_a_bad_preface_closes_the_connection(server: Server, models: Models, opening: bytes) -> None:
    with w.H2Client(server.grpc_address) as client:
        client.send(opening + w.settings())
        received = bytearray()
        deadline = time.monotonic() + 10
        while True:
            assert time.monotonic() < deadline, "the server kept the connection open after a bad preface"
            client.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = client.sock.recv(65_536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    frames = parse_frames(bytes(received))
    assert {f.kind for f in frames} <= {w.SETTINGS, w.WINDOW_UPDATE, w.GOAWAY}, frames
    assert all(f.error_code == w.PROTOCOL_ERROR for f in frames if f.kind == w.GOAWAY)
    still_serving(server, models)


def parse_frames(data: bytes) -> list[w.Frame]:
    frames, at = [], 0
    while at + 9 <= len(data):
        length = int.from_bytes(data[at : at + 3], "big")
        kind, flags, stream = struct.unpack_from(">BBI", data, at + 3)
        frames.append(w.Frame(kind, flags, stream, data[at + 9 : at + 9 + length]))
        at += 9 + length
    assert at == len(data), f"the server sent something that is not HTTP/2 frames: {data[:80]!r}"
    return frames


def test_a_frame_longer_than_max_frame_size_is_frame_size_error(h2: w.H2Client, server: Server,
                                                                models: Models) -> None:
    h2.send_headers(1, w.grpc_headers())
    assert connection_error(h2, w.frame(w.DATA, 0, 1, b"\0" * 16_385)) == w.FRAME_SIZE_ERROR
    still_serving(server, models)


@pytest.mark.parametrize(
    "bad",
    [w.frame(w.SETTINGS, 0, 0, b"\0\x03\0\0\0\x10\0"), w.frame(w.PING, 0, 0, b"7 bytes")],
    ids=["settings-not-a-multiple-of-6", "ping-not-8-bytes"],
)
def test_malformed_control_frames_are_frame_size_error(h2: w.H2Client, server: Server, models: Models,
                                                       bad: bytes) -> None:
    assert connection_error(h2, bad) == w.FRAME_SIZE_ERROR
    still_serving(server, models)


def test_an_open_header_block_admits_only_continuation(h2: w.H2Client, server: Server, models: Models) -> None:
    block = h2.header_block(w.grpc_headers())
    h2.send(w.frame(w.HEADERS, 0, 1, block[:5]))  # no END_HEADERS: a CONTINUATION must follow
    assert connection_error(h2, w.frame(w.PING, 0, 0, b"12345678")) == w.PROTOCOL_ERROR
    still_serving(server, models)


def test_a_header_block_that_does_not_decode_is_compression_error(h2: w.H2Client, server: Server,
                                                                  models: Models) -> None:
    garbage = b"\xe4\xff\xff\xff\xff\x0f"  # indexed field 100: the dynamic table is empty
    assert connection_error(h2, w.frame(w.HEADERS, w.END_HEADERS | w.END_STREAM, 1, garbage)) == w.COMPRESSION_ERROR
    still_serving(server, models)


def test_a_client_stream_with_an_even_id_is_protocol_error(h2: w.H2Client, server: Server, models: Models) -> None:
    block = h2.header_block(w.grpc_headers())
    assert connection_error(h2, w.frame(w.HEADERS, w.END_HEADERS, 2, block)) == w.PROTOCOL_ERROR
    still_serving(server, models)


def test_a_stream_id_lower_than_the_last_opened_is_protocol_error(h2: w.H2Client, server: Server,
                                                                  models: Models) -> None:
    assert h2.call(5, raw_infer(models.X[:1])).grpc_status == 0
    block = h2.header_block(w.grpc_headers())  # stream 3 was never used, but 5 closed it implicitly
    assert connection_error(h2, w.frame(w.HEADERS, w.END_HEADERS, 3, block)) == w.PROTOCOL_ERROR
    still_serving(server, models)


class _Wire:
    """The transport side of an in-process connection: what the server wrote, and whether it closed."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


class _Handler:
    def headers_received(self, conn: object, stream: object) -> None: ...
    def request_received(self, conn: object, stream: object) -> None: ...
    def stream_closed(self, conn: object, stream: object) -> None: ...


@pytest.mark.parametrize("over", ["nothing", "stream", "connection"])
def test_data_beyond_the_advertised_window_is_flow_control_error(over: str) -> None:
    """A client that sends more DATA than the window the server advertised, all arriving in one read.

    In-process, on the transport's own connection class: over a socket the server reads at most a few
    hundred KiB at a time and hands window back as it goes, so no client can get ahead of a window that
    large from outside; fed as one read, the overrun is seen."""
    from modelcapsule.serving.grpc import http2

    async def feed() -> _Wire:
        limits = http2.Limits()
        conn = http2.Connection(_Handler(), limits)
        wire = _Wire()
        conn.connection_made(wire)
        fill = limits.initial_window // 16_384  # frames that fill one stream's window
        if over == "nothing":  # a stream's whole window, exactly: no error
            plan = [(1, fill)]
        elif over == "stream":  # one stream, 16 KiB past its window
            plan = [(1, fill + 1)]
        else:  # streams each within their own window, together 16 KiB or more past the connection's
            count = limits.connection_window // limits.initial_window + 1
            plan = [(1 + 2 * i, fill) for i in range(count)]
        encoder = hpack.Encoder()
        data = bytearray(w.PREFACE + w.settings())
        chunk = b"\0" * 16_384
        for stream, frames in plan:  # short of END_STREAM: the requests are never complete
            data += w.frame(w.HEADERS, w.END_HEADERS, stream, encoder.encode(w.grpc_headers()))
            data += b"".join(w.frame(w.DATA, 0, stream, chunk) for _ in range(frames))
        conn.data_received(bytes(data))
        return wire

    wire = asyncio.run(feed())
    goaways = [f for f in parse_frames(bytes(wire.written)) if f.kind == w.GOAWAY]
    if over == "nothing":
        assert not wire.closed and not goaways
    else:
        assert wire.closed and len(goaways) == 1 and goaways[0].error_code == w.FLOW_CONTROL_ERROR


def test_a_zero_window_update_on_the_connection_is_protocol_error(h2: w.H2Client, server: Server,
                                                                  models: Models) -> None:
    assert connection_error(h2, w.window_update(0, 0)) == w.PROTOCOL_ERROR
    still_serving(server, models)


def test_a_window_update_past_2_31_minus_1_is_flow_control_error(h2: w.H2Client, server: Server,
                                                                 models: Models) -> None:
    assert connection_error(h2, w.window_update(0, (1 << 31) - 1)) == w.FLOW_CONTROL_ERROR
    still_serving(server, models)


def test_an_initial_window_size_past_2_31_minus_1_is_flow_control_error(h2: w.H2Client, server: Server,
                                                                        models: Models) -> None:
    assert connection_error(h2, w.settings({w.INITIAL_WINDOW_SIZE: 1 << 31})) == w.FLOW_CONTROL_ERROR
    still_serving(server, models)


@pytest.mark.parametrize("size", [16_383, 1 << 24])
def test_a_max_frame_size_out_of_range_is_protocol_error(h2: w.H2Client, server: Server, models: Models,
                                                         size: int) -> None:
    assert connection_error(h2, w.settings({w.MAX_FRAME_SIZE: size})) == w.PROTOCOL_ERROR
    still_serving(server, models)


def test_push_promise_from_a_client_is_protocol_error(h2: w.H2Client, server: Server, models: Models) -> None:
    h2.send_headers(1, w.grpc_headers())
    promise = struct.pack(">I", 2) + h2.header_block(w.grpc_headers())
    assert connection_error(h2, w.frame(w.PUSH_PROMISE, w.END_HEADERS, 1, promise)) == w.PROTOCOL_ERROR
    still_serving(server, models)


def test_a_continuation_flood_is_cut_off_with_enhance_your_calm(h2: w.H2Client, server: Server,
                                                                models: Models) -> None:
    """A header block never ends (no END_HEADERS): the server stops it past 64 KiB instead of buffering it."""
    h2.send(w.frame(w.HEADERS, 0, 1, h2.header_block(w.grpc_headers())))
    field = b"\x00\x05x-pad\x7f\x81\x7c" + b"a" * 16_000  # a literal field of 16,000 bytes, not indexed
    filler = w.frame(w.CONTINUATION, 0, 1, field)
    sent = 0
    while h2.goaway is None:
        assert sent < (4 << 20), "the server kept reading a header block of 4 MiB"
        if h2.readable(0.02):
            h2.recv()
            continue
        try:
            h2.send(filler)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(filler)
    assert h2.expect_goaway().error_code == w.ENHANCE_YOUR_CALM
    still_serving(server, models)


def _headers_on(stream: int) -> bytes:
    return w.frame(w.HEADERS, w.END_HEADERS, stream, bytes(hpack.Encoder().encode(w.grpc_headers())))


OTHER_CONNECTION_ERRORS = {  # beyond the list above, each a MUST of RFC 9113
    "data-on-an-idle-stream": (w.frame(w.DATA, 0, 9, b"x"), w.PROTOCOL_ERROR),  # §5.1 idle
    "data-on-stream-0": (w.frame(w.DATA, 0, 0, b"x"), w.PROTOCOL_ERROR),  # §6.1
    "headers-on-stream-0": (_headers_on(0), w.PROTOCOL_ERROR),  # §6.2
    "continuation-without-headers": (w.frame(w.CONTINUATION, w.END_HEADERS, 1, b"\x82"), w.PROTOCOL_ERROR),  # §6.10
    "rst-stream-on-an-idle-stream": (w.rst_stream(9, w.CANCEL), w.PROTOCOL_ERROR),  # §6.4
    "settings-ack-with-a-payload": (w.frame(w.SETTINGS, w.ACK, 0, b"\0\x03\0\0\0\x10"), w.FRAME_SIZE_ERROR),  # §6.5
    "settings-on-a-stream": (w.frame(w.SETTINGS, 0, 1), w.PROTOCOL_ERROR),  # §6.5
    "enable-push-2": (w.settings({w.ENABLE_PUSH: 2}), w.PROTOCOL_ERROR),  # §6.5.2
    "ping-on-a-stream": (w.frame(w.PING, 0, 1, b"12345678"), w.PROTOCOL_ERROR),  # §6.7
    "goaway-on-a-stream": (w.frame(w.GOAWAY, 0, 1, b"\0" * 8), w.PROTOCOL_ERROR),  # §6.8
    "window-update-not-4-bytes": (w.frame(w.WINDOW_UPDATE, 0, 0, b"\0\0\x10"), w.FRAME_SIZE_ERROR),  # §6.9
}


@pytest.mark.parametrize("case", OTHER_CONNECTION_ERRORS)
def test_other_protocol_violations_are_connection_errors(h2: w.H2Client, server: Server, models: Models,
                                                         case: str) -> None:
    data, code = OTHER_CONNECTION_ERRORS[case]
    assert connection_error(h2, data) == code
    still_serving(server, models)


def test_the_goaway_reaches_a_client_still_sending(h2: w.H2Client, server: Server, models: Models) -> None:
    """A connection error while the client's frames are still arriving: the GOAWAY must reach the client
    (a server that closes with input unread makes its kernel answer with a TCP reset, which can destroy
    the GOAWAY on its way), then the connection ends."""
    junk = w.frame(w.PING, 0, 0, b"12345678") * 120_000  # 2 MB the server will never read
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        h2.send(w.window_update(0, 0) + junk)
    assert h2.expect_goaway().error_code == w.PROTOCOL_ERROR
    still_serving(server, models)


# -- stream errors: RST_STREAM, the connection goes on --------------------------------------------------
def test_a_zero_window_update_on_a_stream_resets_only_that_stream(h2: w.H2Client, server: Server,
                                                                  models: Models) -> None:
    h2.send_headers(1, w.grpc_headers())
    h2.send(w.window_update(1, 0))
    assert h2.response(1).reset == w.PROTOCOL_ERROR
    answer = h2.call(3, raw_infer(models.X[:2]))
    assert answer.grpc_status == 0 and h2.goaway is None
    assert_iris_answer(answer.messages()[0], models, models.X[:2])
    still_serving(server, models)


def test_streams_past_max_concurrent_streams_are_refused(h2: w.H2Client, server: Server, models: Models) -> None:
    opened = [2 * i + 1 for i in range(1024)]
    extra = opened[-1] + 2
    h2.send(b"".join(w.frame(w.HEADERS, w.END_HEADERS, s, h2.header_block(w.grpc_headers())) for s in [*opened, extra]))
    for s in [*opened, extra]:
        h2.stream_send_windows[s] = h2.server_settings[w.INITIAL_WINDOW_SIZE]
    assert h2.response(extra).reset == w.REFUSED_STREAM
    assert all(h2.responses.get(s) is None for s in opened), "the 1024 open streams are left alone"
    h2.send(w.rst_stream(1, w.CANCEL))  # one slot frees up: the next stream is served
    answer = h2.call(extra + 2, raw_infer(models.X[:1]))
    assert answer.grpc_status == 0 and h2.goaway is None
    h2.send_data(3, w.grpc_message(raw_infer(models.X[3:4])))  # and an old open stream still completes
    assert h2.response(3).grpc_status == 0
    still_serving(server, models)


def test_a_window_update_past_2_31_minus_1_on_a_stream_resets_it(h2: w.H2Client, models: Models) -> None:
    h2.send_headers(1, w.grpc_headers())
    h2.send(w.window_update(1, (1 << 31) - 1))  # the stream's send window starts at 65,535
    assert h2.response(1).reset == w.FLOW_CONTROL_ERROR  # RFC 9113 §6.9.1: a stream error
    assert h2.call(3, raw_infer(models.X[:1])).grpc_status == 0 and h2.goaway is None


MALFORMED = {  # RFC 9113 §8.1.1: a malformed request is a stream error of type PROTOCOL_ERROR
    "no-path": [h for h in w.grpc_headers() if h[0] != ":path"],
    "uppercase-name": [*w.grpc_headers(), ("X-Upper", "1")],
    "connection-header": [*w.grpc_headers(), ("connection", "keep-alive")],
    "te-not-trailers": [h for h in w.grpc_headers() if h[0] != "te"] + [("te", "gzip")],
    "pseudo-after-regular": [*w.grpc_headers(), (":method", "POST")],
    "unknown-pseudo": [*w.grpc_headers()[:2], (":protocol", "grpc"), *w.grpc_headers()[2:]],
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_request_is_reset_with_protocol_error(h2: w.H2Client, server: Server, models: Models,
                                                          case: str) -> None:
    h2.send_headers(1, MALFORMED[case], end_stream=True)
    assert h2.response(1).reset == w.PROTOCOL_ERROR
    assert h2.call(3, raw_infer(models.X[:1])).grpc_status == 0 and h2.goaway is None
    still_serving(server, models)


def test_request_trailers_are_read(h2: w.H2Client, models: Models) -> None:
    """A request may end with a trailer block instead of END_STREAM on its last DATA (RFC 9113 §8.1)."""
    h2.send_headers(1, w.grpc_headers())
    h2.send_data(1, w.grpc_message(raw_infer(models.X[:2])), end_stream=False)
    h2.send(w.frame(w.HEADERS, w.END_HEADERS | w.END_STREAM, 1, h2.header_block([("x-checksum", "none")])))
    answer = h2.response(1)
    assert answer.grpc_status == 0
    assert_iris_answer(answer.messages()[0], models, models.X[:2])


def test_a_client_without_a_dynamic_table_is_answered(server: Server, models: Models) -> None:
    """SETTINGS_HEADER_TABLE_SIZE=0: the server's encoder shrinks its table to 0 and says so with a dynamic
    table size update at the start of its next header block (RFC 7541 §4.2), as strict decoders require."""
    with w.H2Client(server.grpc_address) as client:
        client.decoder.max_allowed_table_size = 0
        client.handshake({w.HEADER_TABLE_SIZE: 0})
        for stream in (1, 3):
            answer = client.call(stream, raw_infer(models.X[:1]))
            assert answer.grpc_status == 0


def test_rapid_resets_leave_the_server_serving(h2: w.H2Client, server: Server, models: Models) -> None:
    """Thousands of calls opened and at once reset (CVE-2023-44487): the server may end the connection
    (GOAWAY ENHANCE_YOUR_CALM) or go on with it, but other clients are served all along."""
    body = w.grpc_message(raw_infer(models.X[:1]))
    burst = bytearray()
    for stream in range(1, 2 * 5000, 2):
        burst += w.frame(w.HEADERS, w.END_HEADERS, stream, h2.header_block(w.grpc_headers()))
        burst += w.frame(w.DATA, w.END_STREAM, stream, body) + w.rst_stream(stream, w.CANCEL)
    started = time.monotonic()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        h2.send(bytes(burst))
    still_serving(server, models)
    assert time.monotonic() - started < 10
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        h2.send(w.frame(w.PING, 0, 0, b"still up"))
    with contextlib.suppress(w.Closed):
        while not (h2.goaway or any(f.kind == w.PING and f.has(w.ACK) and f.payload == b"still up" for f in h2.log)):
            h2.recv()
    if h2.goaway is not None:  # the connection was ended, as it may be: with the code that says why
        assert h2.goaway.error_code == w.ENHANCE_YOUR_CALM
    else:
        assert any(f.kind == w.PING and f.has(w.ACK) for f in h2.log), "the connection ended without a GOAWAY"


@pytest.mark.parametrize("which", ["finished", "skipped"])
def test_data_on_a_closed_stream_is_stream_closed_and_counts_for_the_connection_window(
    h2: w.H2Client, server: Server, models: Models, which: str
) -> None:
    """DATA on a stream that is over (or whose id was skipped) is refused with STREAM_CLOSED, yet the server
    gives its bytes back to the connection window: twice that window of such DATA passes, and a call after it."""
    assert h2.call(5, raw_infer(models.X[:1])).grpc_status == 0
    closed = 5 if which == "finished" else 3
    target = min(2 * h2.conn_send_window, 64 << 20)
    sent = 0
    while sent < target:
        while h2.conn_send_window < 16_384:
            h2.recv()
        h2.send(w.frame(w.DATA, 0, closed, b"\0" * 16_384))
        h2.conn_send_window -= 16_384
        sent += 16_384
    assert h2.response(closed).reset == w.STREAM_CLOSED
    answer = h2.call(7, raw_infer(models.X[:1]))
    assert answer.grpc_status == 0 and h2.goaway is None
    still_serving(server, models)


# -- framing features every server must read -------------------------------------------------------------
def test_headers_padded_with_priority_and_split_over_continuations(h2: w.H2Client, models: Models) -> None:
    block = h2.header_block(w.grpc_headers())
    pad = 9
    first = bytes([pad]) + struct.pack(">IB", 0, 15) + block[:4] + b"\0" * pad
    h2.stream_send_windows[1] = h2.server_settings[w.INITIAL_WINDOW_SIZE]
    h2.send(
        w.frame(w.HEADERS, w.PADDED | w.PRIORITY_FLAG, 1, first)
        + w.frame(w.CONTINUATION, 0, 1, block[4:9])
        + w.frame(w.CONTINUATION, 0, 1, b"")
        + w.frame(w.CONTINUATION, w.END_HEADERS, 1, block[9:])
    )
    h2.send_data(1, w.grpc_message(raw_infer(models.X[:3])))
    answer = h2.response(1)
    assert answer.grpc_status == 0
    assert_iris_answer(answer.messages()[0], models, models.X[:3])


def test_data_padded_and_split_over_many_frames(h2: w.H2Client, models: Models) -> None:
    h2.send_headers(1, w.grpc_headers())
    body = w.grpc_message(raw_infer(models.X[:5]))
    pieces = [body[at : at + 7] for at in range(0, len(body), 7)]
    frames = [w.frame(w.DATA, w.PADDED, 1, bytes([3]) + p + b"\0\0\0") for p in pieces]
    frames.append(w.frame(w.DATA, w.PADDED | w.END_STREAM, 1, b"\x02\0\0"))  # empty, padded, ends the stream
    h2.send(b"".join(frames))
    answer = h2.response(1)
    assert answer.grpc_status == 0
    assert_iris_answer(answer.messages()[0], models, models.X[:5])


def test_priority_frames_and_unknown_frame_types_are_ignored(h2: w.H2Client, models: Models) -> None:
    h2.send(
        w.frame(w.PRIORITY, 0, 1, struct.pack(">IB", 0, 200))  # on a stream not yet opened
        + w.frame(0xFA, 0x7, 0, b"an extension frame on the connection")
        + w.frame(0xFB, 0, 9, b"and on a stream no one opened")
    )
    h2.send_headers(1, w.grpc_headers())
    h2.send(w.frame(w.PRIORITY, 0, 1, struct.pack(">IB", 0, 3)) + w.frame(0xFA, 0, 1, b"mid-stream"))
    h2.send_data(1, w.grpc_message(raw_infer(models.X[:1])))
    answer = h2.response(1)
    assert answer.grpc_status == 0 and h2.goaway is None
    assert_iris_answer(answer.messages()[0], models, models.X[:1])


# -- HPACK ------------------------------------------------------------------------------------------------
def test_a_refused_header_list_still_updates_the_dynamic_table(h2: w.H2Client, server: Server,
                                                               models: Models) -> None:
    """A header list over MAX_HEADER_LIST_SIZE (RFC 7541 sizes: name + value + 32 per field) is refused with
    RESOURCE_EXHAUSTED, but its block is decoded whole: the next request, which refers to the dynamic-table
    entries that block inserted, is read right."""
    big = [*w.grpc_headers(), ("x-refused-once", "yes"), *[("x-pad", "a" * 1000)] * 20]  # ~21 KB decoded
    assert sum(len(k) + len(v) + 32 for k, v in big) > 16_384
    h2.request(1, raw_infer(models.X[:1]), big)
    refused = h2.response(1)
    assert refused.headers.get(":status") == "200" and refused.trailers_only
    assert refused.grpc_status == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    again = [*w.grpc_headers(), ("x-refused-once", "yes"), ("x-pad", "a" * 1000)]
    block = h2.header_block(again)
    assert len(block) < 16, "the second block is made of references to the first block's entries"
    h2.stream_send_windows[3] = h2.server_settings[w.INITIAL_WINDOW_SIZE]
    h2.send(w.frame(w.HEADERS, w.END_HEADERS, 3, block))
    h2.send_data(3, w.grpc_message(raw_infer(models.X[:2])))
    answer = h2.response(3)
    assert answer.grpc_status == 0 and h2.goaway is None
    assert_iris_answer(answer.messages()[0], models, models.X[:2])
    still_serving(server, models)


# -- flow control with real clients --------------------------------------------------------------------
@pytest.fixture(scope="module")
def roomy(models: Models, capsule_cmd: list[str], subprocess_env: dict[str, str],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that takes request bodies up to 32 MiB."""
    srv = start_server(capsule_cmd, subprocess_env, tmp_path_factory.mktemp("roomy"), str(models.iris_path),
                       "--max-body-bytes", str(32 << 20), "--no-access-log")
    yield srv
    srv.stop()


def test_a_request_of_several_mib_arrives_whole(roomy: Server, models: Models) -> None:
    rows = np.tile(models.X, (700, 1))[:100_000]  # 3.2 MB of FP64 in one message
    with grpc.insecure_channel(roomy.grpc_address) as channel:
        answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(iris_request(rows, "predict"), timeout=30)
    assert_iris_answer(answer, models, rows)


def test_an_answer_larger_than_the_clients_window_arrives_whole(server: Server, models: Models) -> None:
    rows = np.tile(models.X, (134, 1))[:20_000]  # 480 KB of probabilities: many times grpcio's 64 KiB window
    with grpc.insecure_channel(server.grpc_address) as channel:
        answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(iris_request(rows, "predict_proba"),
                                                                      timeout=30)
    assert_iris_answer(answer, models, rows)


@pytest.mark.parametrize("opened_by", ["window-update", "settings"])
def test_no_data_is_sent_into_a_zero_window(server: Server, models: Models, opened_by: str) -> None:
    """With SETTINGS_INITIAL_WINDOW_SIZE=0 the answer's headers come, its DATA only once the client opens the
    stream's window: by WINDOW_UPDATE, or by raising SETTINGS_INITIAL_WINDOW_SIZE, which changes the window
    of every open stream (RFC 9113 §6.9.2)."""
    rows = models.X[np.arange(3000) % len(models.X)]  # 72 KB of probabilities
    with w.H2Client(server.grpc_address, auto_window=False) as client:
        client.handshake({w.INITIAL_WINDOW_SIZE: 0})
        client.request(1, raw_infer(rows, "predict_proba"))
        while client.responses.get(1) is None or not client.responses[1].headers:
            client.recv()
        assert client.responses[1].headers[":status"] == "200"
        quiet_until = time.monotonic() + 0.5
        while client.readable(max(0.0, quiet_until - time.monotonic())) and time.monotonic() < quiet_until:
            assert client.recv().kind != w.DATA, "DATA sent into a window of 0"
        if opened_by == "window-update":
            client.send(w.window_update(1, 1 << 24))
        else:
            client.send(w.settings({w.INITIAL_WINDOW_SIZE: 1 << 24}))
        answer = client.response(1)
    assert answer.grpc_status == 0
    assert_iris_answer(answer.messages()[0], models, rows)


def test_one_window_is_shared_by_every_stream_of_the_connection(server: Server, models: Models) -> None:
    """Streams with wide windows on a connection whose window stays at 65,535: the answers together stop at
    65,535 bytes of DATA until the client widens the connection's window."""
    rows = models.X[np.arange(3000) % len(models.X)]  # 72 KB of probabilities per answer
    with w.H2Client(server.grpc_address, auto_window=False) as client:
        client.handshake({w.INITIAL_WINDOW_SIZE: 1 << 24}, connection_window=0)
        for stream in (1, 3, 5):
            client.request(stream, raw_infer(rows, "predict_proba"))
        quiet_until = time.monotonic() + 1.0
        while client.readable(max(0.0, quiet_until - time.monotonic())) and time.monotonic() < quiet_until:
            client.recv()
        sent = sum(sum(r.data_frames) for r in client.responses.values())
        assert 0 < sent <= w.DEFAULT_WINDOW
        client.send(w.window_update(0, 1 << 24))
        for stream in (1, 3, 5):
            answer = client.response(stream)
            assert answer.grpc_status == 0
            assert_iris_answer(answer.messages()[0], models, rows)


def test_the_connection_window_comes_back_after_every_call(server: Server, models: Models) -> None:
    """32 MB of requests, twice the window the server advertises for the connection, over one connection."""
    rows = models.X[np.arange(20_000) % len(models.X)]  # 640 KB per request
    message = raw_infer(rows, "predict")
    with w.H2Client(server.grpc_address) as client:
        client.handshake()
        for stream in range(1, 101, 2):
            answer = client.call(stream, message)
            assert answer.grpc_status == 0
        assert_iris_answer(answer.messages()[0], models, rows)


def test_stream_slots_are_freed_when_calls_end(server: Server, models: Models) -> None:
    """More calls than MAX_CONCURRENT_STREAMS, 100 at a time, over one connection: none is refused."""
    message = w.grpc_message(raw_infer(models.X[:1]))
    with w.H2Client(server.grpc_address) as client:
        client.handshake()
        streams = list(range(1, 2 * 1300, 2))
        for at in range(0, len(streams), 100):
            wave = streams[at : at + 100]
            client.send(b"".join(w.frame(w.HEADERS, w.END_HEADERS, s, client.header_block(w.grpc_headers()))
                                 + w.frame(w.DATA, w.END_STREAM, s, message) for s in wave))
            for s in wave:
                answer = client.response(s)
                assert answer.reset is None and answer.grpc_status == 0, (s, answer.reset)


@pytest.mark.parametrize("max_frame", [None, 32_768])
def test_data_frames_never_exceed_the_clients_max_frame_size(server: Server, models: Models,
                                                             max_frame: int | None) -> None:
    rows = models.X[np.arange(20_000) % len(models.X)]
    with w.H2Client(server.grpc_address) as client:
        client.handshake({w.MAX_FRAME_SIZE: max_frame} if max_frame else {})
        answer = client.call(1, raw_infer(rows, "predict_proba"))
    assert answer.grpc_status == 0 and len(answer.data_frames) > 1
    assert max(answer.data_frames) <= (max_frame or 16_384)
    assert_iris_answer(answer.messages()[0], models, rows)
