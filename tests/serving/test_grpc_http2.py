"""The V2 gRPC server's HTTP/2 transport is a real and safe HTTP/2 server (RFC 9113, RFC 7541).

Every test opens its own connection to ``capsule serve``'s gRPC port: with grpcio as a client where a
well-behaved client shows the behaviour, and with the raw client of :mod:`.h2wire` for what such clients
never send. A connection error is a GOAWAY carrying RFC 9113's error code and then the connection closed;
a stream error is a RST_STREAM and the connection goes on. After every hostile case the server must still
answer a normal grpcio ``ModelInfer``: a broken connection never breaks the server.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Iterator

import grpc
import hpack
import pytest

from . import h2wire as w
from .conftest import Models, Server
from .v2grpc import assert_iris_answer, connection_error, raw_infer, still_serving

SERVER_SETTINGS = {
    w.MAX_CONCURRENT_STREAMS: 1024,
    w.INITIAL_WINDOW_SIZE: 1 << 20,
    w.MAX_FRAME_SIZE: 16_384,
    w.MAX_HEADER_LIST_SIZE: 16_384,
    w.ENABLE_PUSH: 0,
}


@pytest.fixture
def h2(server: Server) -> Iterator[w.H2Client]:
    """A raw HTTP/2 connection to the shared server, handshake done."""
    with w.H2Client(server.grpc_address) as client:
        client.handshake()
        yield client


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
    frames = w.parse_frames(bytes(received))
    assert {f.kind for f in frames} <= {w.SETTINGS, w.WINDOW_UPDATE, w.GOAWAY}, frames
    assert all(f.error_code == w.PROTOCOL_ERROR for f in frames if f.kind == w.GOAWAY)
    still_serving(server, models)


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


def test_a_client_that_never_reads_is_not_read_either(server: Server, models: Models) -> None:
    """A PING flood from a client that reads nothing back: once the server's answers pile up unsent it stops
    reading that connection (or ends it), so the client's own sends stall long before 32 MB: a client cannot
    make the server hold its answers without bound."""
    with w.H2Client(server.grpc_address) as client:
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.handshake()
        client.sock.settimeout(2.0)
        burst = w.frame(w.PING, 0, 0, b"12345678") * 4096  # 68 KB
        sent = 0
        with contextlib.suppress(TimeoutError, BrokenPipeError, ConnectionResetError):
            while sent < 32 << 20:
                client.sock.sendall(burst)
                sent += len(burst)
    assert sent < 32 << 20, "the server kept reading a client that never reads its answers"
    still_serving(server, models)


@pytest.mark.slow
def test_a_partial_preface_is_closed_after_a_timeout(server: Server, models: Models) -> None:
    """A connection that never finishes its preface is not held open for ever (the server's bound: 10 s)."""
    with w.H2Client(server.grpc_address, timeout=20) as client:
        client.send(w.PREFACE[:10])
        started = time.monotonic()
        client.sock.settimeout(20)
        with contextlib.suppress(ConnectionResetError):
            while client.sock.recv(65_536):
                pass
        assert time.monotonic() - started < 15
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


def test_frames_split_at_every_byte_are_read(server: Server, models: Models) -> None:
    """The preface, SETTINGS and a whole call arriving one byte per TCP segment: frames are reassembled
    whatever the reads cut them into."""
    with w.H2Client(server.grpc_address) as client:
        block = client.header_block(w.grpc_headers())
        data = (w.PREFACE + w.settings() + w.frame(w.HEADERS, w.END_HEADERS, 1, block)
                + w.frame(w.DATA, w.END_STREAM, 1, w.grpc_message(raw_infer(models.X[:2]))))
        for at in range(len(data)):
            client.send(data[at : at + 1])
            time.sleep(0.0005)
        answer = client.response(1)
    assert answer.grpc_status == 0
    assert_iris_answer(answer.messages()[0], models, models.X[:2])


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


@pytest.mark.parametrize(("size", "refused"), [(16_384, False), (16_385, True)])
def test_max_header_list_size_is_counted_as_rfc_7541_says(h2: w.H2Client, models: Models, size: int,
                                                            refused: bool) -> None:
    """A header list of exactly SETTINGS_MAX_HEADER_LIST_SIZE (name + value + 32 per field) is served; one
    byte more is RESOURCE_EXHAUSTED."""
    base = [*w.grpc_headers(), ("x-pad", "")]
    short = size - sum(len(k) + len(v) + 32 for k, v in base)
    headers = [*w.grpc_headers(), ("x-pad", "a" * short)]
    assert sum(len(k) + len(v) + 32 for k, v in headers) == size
    answer = h2.call(1, raw_infer(models.X[:1]), headers)
    assert answer.grpc_status == (grpc.StatusCode.RESOURCE_EXHAUSTED.value[0] if refused else 0)
