"""HTTP/2 flow control in the V2 gRPC server (RFC 9113 §5.2, §6.9): requests and answers larger than any
window arrive whole, the server never sends into a closed window or past the client's frame size, gives
the window back for every byte it reads (even bytes it refuses) and every stream slot when a call ends,
and ends a connection whose client outruns the window it advertised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import grpc
import hpack
import numpy as np
import pytest
from tritonclient.grpc import service_pb2_grpc as pb_grpc  # see v2grpc: tritonclient's messages in tests

from . import h2wire as w
from .conftest import Models, Server, start_server
from .v2grpc import assert_iris_answer, iris_request, raw_infer, still_serving


@pytest.fixture
def h2(server: Server) -> Iterator[w.H2Client]:
    """A raw HTTP/2 connection to the shared server, handshake done."""
    with w.H2Client(server.grpc_address) as client:
        client.handshake()
        yield client


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
    goaways = [f for f in w.parse_frames(bytes(wire.written)) if f.kind == w.GOAWAY]
    if over == "nothing":
        assert not wire.closed and not goaways
    else:
        assert wire.closed and len(goaways) == 1 and goaways[0].error_code == w.FLOW_CONTROL_ERROR


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


# -- many bytes, many calls -----------------------------------------------------------------------------
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
