"""The V2 gRPC server answers calls as gRPC's PROTOCOL-HTTP2 says: HTTP-level refusals, gRPC status codes in
trailers, compression, deadlines, many calls at once, cancellation, a client's GOAWAY, and a graceful stop.

Well-behaved clients (grpcio) show what users see; the raw client of :mod:`.h2wire` shows the exact wire
answer where grpcio would hide it or refuse to send the request at all.
"""

from __future__ import annotations

import asyncio
import gzip
import signal
import socket
import ssl
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from sklearn.neighbors import KNeighborsRegressor
from tritonclient.grpc import service_pb2_grpc as pb_grpc  # see v2grpc: tritonclient's messages in tests

import modelcapsule as mc

from . import h2wire as w
from .certs import Certificates, make_certificates, start_tls_server
from .conftest import Models, Server, start_server
from .v2grpc import assert_iris_answer, iris_request, outputs_of, raw_infer, still_serving

CODE = {code.name: code.value[0] for code in grpc.StatusCode}


@pytest.fixture
def h2(server: Server) -> Iterator[w.H2Client]:
    with w.H2Client(server.grpc_address) as client:
        client.handshake()
        yield client


def all_headers(answer: w.Response) -> dict[str, str]:
    return {**answer.headers, **answer.trailers}


# -- HTTP-level refusals ---------------------------------------------------------------------------------
def test_a_method_other_than_post_is_405(h2: w.H2Client, server: Server, models: Models) -> None:
    h2.send_headers(1, w.grpc_headers(method="GET"), end_stream=True)
    answer = h2.response(1)
    assert answer.headers[":status"] == "405" and answer.ended and not answer.body and not answer.trailers
    still_serving(server, models)


def test_a_content_type_other_than_grpc_is_415(h2: w.H2Client, server: Server, models: Models) -> None:
    h2.send_headers(1, w.grpc_headers(content_type="application/json"), end_stream=True)
    answer = h2.response(1)
    assert answer.headers[":status"] == "415" and answer.ended and not answer.body and not answer.trailers
    still_serving(server, models)


def test_content_type_with_a_subtype_is_grpc(h2: w.H2Client, models: Models) -> None:
    answer = h2.call(1, raw_infer(models.X[:1]), w.grpc_headers(content_type="application/grpc+proto"))
    assert answer.headers[":status"] == "200" and answer.grpc_status == 0


# -- gRPC status codes -----------------------------------------------------------------------------------
def test_an_answer_is_headers_message_trailers(h2: w.H2Client, models: Models) -> None:
    answer = h2.call(1, raw_infer(models.X[:2]))
    assert answer.headers[":status"] == "200"
    assert answer.headers["content-type"].startswith("application/grpc")
    assert answer.trailers["grpc-status"] == "0"
    [message] = answer.messages()
    assert_iris_answer(message, models, models.X[:2])


def test_an_unknown_method_is_unimplemented(server: Server, models: Models) -> None:
    with grpc.insecure_channel(server.grpc_address) as channel:
        for path in ["/inference.GRPCInferenceService/NoSuchMethod", "/no.such.Service/ModelInfer"]:
            with pytest.raises(grpc.RpcError) as err:
                channel.unary_unary(path)(b"", timeout=10)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, path
    still_serving(server, models)


def test_a_request_over_the_body_limit_is_resource_exhausted(server: Server, models: Models) -> None:
    rows = np.tile(models.X, (300, 1))[:40_000]  # 1.28 MB; the server takes 1,000,000 bytes
    with grpc.insecure_channel(server.grpc_address) as channel, pytest.raises(grpc.RpcError) as err:
        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(iris_request(rows), timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    still_serving(server, models)


def test_a_body_over_the_limit_is_refused_before_it_ends(h2: w.H2Client, server: Server, models: Models) -> None:
    """The refusal comes as soon as the body passes the limit: the server does not wait for (and keep) the rest."""
    h2.send_headers(1, w.grpc_headers())
    h2.send_data(1, w.grpc_message(b"\0" * 1_200_000)[:1_040_000], end_stream=False)  # within the window, never ended
    answer = h2.response(1)
    assert answer.grpc_status == CODE["RESOURCE_EXHAUSTED"]
    assert h2.call(3, raw_infer(models.X[:1])).grpc_status == 0 and h2.goaway is None
    still_serving(server, models)


def test_the_data_planes_errors_keep_their_code_and_text(server: Server, models: Models) -> None:
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(iris_request(np.zeros((1, 3))), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "expected [-1, 4]" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(iris_request(models.X[:1], model="modèle 100%"), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "'modèle 100%'" in err.value.details()


def test_grpc_message_is_percent_encoded(h2: w.H2Client) -> None:
    request = iris_request(np.zeros((1, 4)), model="modèle 100%").SerializeToString()
    answer = h2.call(1, request)
    assert answer.grpc_status == CODE["NOT_FOUND"]
    raw = answer.raw_grpc_message
    assert raw.isascii() and "%C3%A8" in raw and "100%25" in raw, raw
    assert "'modèle 100%'" in answer.grpc_message


# -- compression ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("compression", [grpc.Compression.Gzip, grpc.Compression.Deflate], ids=["gzip", "deflate"])
def test_grpcio_compressed_requests_are_answered(server: Server, models: Models,
                                                 compression: grpc.Compression) -> None:
    rows = models.X[:50]
    with grpc.insecure_channel(server.grpc_address, compression=compression) as channel:
        answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(iris_request(rows), timeout=10)
    assert_iris_answer(answer, models, rows)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_messages_on_the_wire_are_inflated(h2: w.H2Client, models: Models, encoding: str) -> None:
    message = raw_infer(models.X[:20])
    packed = gzip.compress(message) if encoding == "gzip" else zlib.compress(message)
    h2.send_headers(1, w.grpc_headers(extra=[("grpc-encoding", encoding)]))
    h2.send_data(1, w.grpc_message(packed, compressed=True))
    answer = h2.response(1)
    assert answer.grpc_status == 0
    assert_iris_answer(answer.messages()[0], models, models.X[:20])


def test_an_unsupported_encoding_is_unimplemented_and_says_what_is(h2: w.H2Client, server: Server,
                                                                   models: Models) -> None:
    h2.send_headers(1, w.grpc_headers(extra=[("grpc-encoding", "snappy")]))
    h2.send_data(1, w.grpc_message(b"\x12\x34 not snappy at all", compressed=True))
    answer = h2.response(1)
    assert answer.grpc_status == CODE["UNIMPLEMENTED"]
    accepted = {e.strip() for e in all_headers(answer)["grpc-accept-encoding"].split(",")}
    assert {"gzip", "deflate"} <= accepted and "snappy" not in accepted
    still_serving(server, models)


def test_a_compressed_message_without_an_encoding_is_internal(h2: w.H2Client, server: Server,
                                                              models: Models) -> None:
    h2.send_headers(1, w.grpc_headers())
    h2.send_data(1, w.grpc_message(gzip.compress(raw_infer(models.X[:1])), compressed=True))
    assert h2.response(1).grpc_status == CODE["INTERNAL"]
    still_serving(server, models)


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


def test_a_gzip_bomb_is_resource_exhausted_without_inflating_it(h2: w.H2Client, server: Server,
                                                                models: Models) -> None:
    """300 MB of zeros in ~300 KB of gzip, against a 1,000,000-byte limit: refused, never held in memory."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    bomb = b"".join(packer.compress(zeros) for _ in range(300)) + packer.flush()
    assert len(bomb) < 1_000_000
    before = peak_rss(server.process.pid)
    h2.send_headers(1, w.grpc_headers(extra=[("grpc-encoding", "gzip")]))
    h2.send_data(1, w.grpc_message(bomb, compressed=True))
    assert h2.response(1).grpc_status == CODE["RESOURCE_EXHAUSTED"]
    assert peak_rss(server.process.pid) - before < 100 << 20, "the server inflated the bomb"
    still_serving(server, models)


# -- message count --------------------------------------------------------------------------------------
def test_a_unary_call_with_no_message_is_invalid_argument(h2: w.H2Client, server: Server, models: Models) -> None:
    h2.send_headers(1, w.grpc_headers(), end_stream=True)
    assert h2.response(1).grpc_status == CODE["INVALID_ARGUMENT"]
    h2.send_headers(3, w.grpc_headers())
    h2.send(w.frame(w.DATA, w.END_STREAM, 3, b""))
    assert h2.response(3).grpc_status == CODE["INVALID_ARGUMENT"]
    still_serving(server, models)


def test_a_unary_call_with_two_messages_is_invalid_argument(h2: w.H2Client, server: Server,
                                                            models: Models) -> None:
    one = w.grpc_message(raw_infer(models.X[:1]))
    h2.send_headers(1, w.grpc_headers())
    h2.send_data(1, one + one)
    assert h2.response(1).grpc_status == CODE["INVALID_ARGUMENT"]
    still_serving(server, models)


def test_a_message_cut_short_is_invalid_argument(h2: w.H2Client, server: Server, models: Models) -> None:
    h2.send_headers(1, w.grpc_headers())
    h2.send_data(1, w.grpc_message(raw_infer(models.X[:1]))[:-3])
    assert h2.response(1).grpc_status in (CODE["INVALID_ARGUMENT"], CODE["INTERNAL"])
    still_serving(server, models)


# -- deadlines --------------------------------------------------------------------------------------------
def test_a_passed_grpc_timeout_is_deadline_exceeded(h2: w.H2Client, models: Models) -> None:
    answer = h2.call(1, raw_infer(models.X[:1]), w.grpc_headers(extra=[("grpc-timeout", "1n")]))
    assert answer.grpc_status == CODE["DEADLINE_EXCEEDED"]
    patient = h2.call(3, raw_infer(models.X[:1]), w.grpc_headers(extra=[("grpc-timeout", "30S")]))
    assert patient.grpc_status == 0


@pytest.mark.parametrize("timeout", ["1n", "20u"])
def test_an_answer_ready_after_the_deadline_is_deadline_exceeded(h2: w.H2Client, models: Models, timeout: str) -> None:
    """No call here completes in 20 µs, so the answer is DEADLINE_EXCEEDED even when the result is ready before the
    deadline's timer runs: a server never sends OK for a call whose deadline it knows has passed. (grpcio is no
    judge of this: with ``timeout=0.0001`` it sends ``grpc-timeout: 1n`` or a few dozen µs, and a fast OK that
    reaches it before its own timer runs is returned as a success.)"""
    for stream in range(1, 41, 2):
        answer = h2.call(stream, raw_infer(models.X[:1]), w.grpc_headers(extra=[("grpc-timeout", timeout)]))
        assert answer.grpc_status == CODE["DEADLINE_EXCEEDED"], f"call {stream // 2 + 1} answered {answer.grpc_status}"


@pytest.mark.parametrize("timeout", ["soon", "10x", "123456789S", "-1S", "S"])
def test_a_malformed_grpc_timeout_is_invalid_argument(h2: w.H2Client, timeout: str) -> None:
    answer = h2.call(1, raw_infer(np.zeros((1, 4))), w.grpc_headers(extra=[("grpc-timeout", timeout)]))
    assert answer.grpc_status == CODE["INVALID_ARGUMENT"]


# -- many calls, cancelled calls ------------------------------------------------------------------------
def test_200_concurrent_calls_on_one_channel(server: Server, models: Models) -> None:
    async def main() -> None:
        async with grpc.aio.insecure_channel(server.grpc_address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            picks = [models.X[[i % 150, (7 * i) % 150]] for i in range(200)]
            answers = await asyncio.gather(*(stub.ModelInfer(iris_request(rows), timeout=60) for rows in picks))
            for rows, answer in zip(picks, answers, strict=True):
                assert_iris_answer(answer, models, rows)

    asyncio.run(main())


def test_a_cancelled_call_leaves_the_channel_working(server: Server, models: Models) -> None:
    async def main() -> None:
        async with grpc.aio.insecure_channel(server.grpc_address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            assert_iris_answer(await stub.ModelInfer(iris_request(models.X[:1]), timeout=10), models, models.X[:1])
            rows = np.tile(models.X, (100, 1))  # 480 KB: still being sent or computed when cancelled
            for pause in (0.0, 0.001, 0.005):
                call = stub.ModelInfer(iris_request(rows), timeout=10)
                await asyncio.sleep(pause)
                if call.cancel():  # False: it was answered first
                    with pytest.raises(asyncio.CancelledError):
                        await call
                assert_iris_answer(await stub.ModelInfer(iris_request(models.X[3:5]), timeout=10), models,
                                   models.X[3:5])

    asyncio.run(main())


def test_a_reset_half_sent_request_leaves_the_connection_working(h2: w.H2Client, models: Models) -> None:
    h2.send_headers(1, w.grpc_headers())
    h2.send_data(1, w.grpc_message(raw_infer(models.X[:1]))[:10], end_stream=False)
    h2.send(w.rst_stream(1, w.CANCEL))
    answer = h2.call(3, raw_infer(models.X[:2]))
    assert answer.grpc_status == 0 and h2.goaway is None
    assert_iris_answer(answer.messages()[0], models, models.X[:2])
    assert not [f for f in h2.frames_for(1) if f.kind in (w.DATA, w.HEADERS)], "a reset stream is not answered"


# -- ending connections -----------------------------------------------------------------------------------
def test_after_a_client_goaway_in_flight_calls_are_answered_then_closed(h2: w.H2Client, models: Models) -> None:
    h2.request(1, raw_infer(models.X[:3]))
    h2.request(3, raw_infer(models.X[3:6]))
    h2.send(w.goaway(0))
    for stream, rows in ((1, models.X[:3]), (3, models.X[3:6])):
        answer = h2.response(stream)
        assert answer.grpc_status == 0
        assert_iris_answer(answer.messages()[0], models, rows)
    h2.expect_closed(5)


@dataclass(frozen=True)
class SlowModel:
    """A brute-force KNN: a call of 2,000 rows takes about a second, long enough to stop the server during it."""

    model: KNeighborsRegressor
    path: Path
    rows: np.ndarray


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> SlowModel:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300_000, 16))
    model = KNeighborsRegressor(algorithm="brute").fit(X, rng.normal(size=len(X)))
    path = tmp_path_factory.mktemp("slow") / "slow.capsule"
    mc.save(model, path, sample=X[:3], name="slow")
    return SlowModel(model, path, X[:2000])


@pytest.fixture
def slow_server(slow: SlowModel, capsule_cmd: list[str], subprocess_env: dict[str, str],
                tmp_path: Path) -> Iterator[Server]:
    srv = start_server(capsule_cmd, subprocess_env, tmp_path / "slow", str(slow.path), "--no-access-log")
    yield srv
    srv.stop()


def test_sigterm_finishes_the_call_in_flight_says_goaway_and_exits_0(slow_server: Server, slow: SlowModel) -> None:
    request = iris_request(slow.rows, model="slow").SerializeToString()
    with w.H2Client(slow_server.grpc_address, timeout=30) as client:
        client.handshake()
        client.request(1, request)
        waiting = time.monotonic() + 0.3
        while time.monotonic() < waiting:
            if client.readable(0.05):
                client.recv()
        assert 1 not in client.responses, "the call is still being computed"
        slow_server.process.send_signal(signal.SIGTERM)
        answer = client.response(1)
        assert answer.grpc_status == 0
        [predict] = outputs_of(answer.messages()[0]).values()
        assert predict.shape == (2000,)
        np.testing.assert_allclose(predict[:50], slow.model.predict(slow.rows[:50]))
        farewell = client.expect_goaway(30)
    assert farewell.error_code == w.NO_ERROR
    assert struct.unpack(">I", farewell.payload[:4])[0] >= 1, "the GOAWAY counts the call it finished as processed"
    assert slow_server.process.wait(30) == 0


def test_a_deadline_that_passes_during_the_call_is_deadline_exceeded(slow_server: Server, slow: SlowModel) -> None:
    """The call takes about a second; its 300 ms deadline is answered when it passes, not when the model ends."""
    request = iris_request(slow.rows, model="slow").SerializeToString()
    with w.H2Client(slow_server.grpc_address, timeout=30) as client:
        client.handshake()
        started = time.monotonic()
        answer = client.call(1, request, w.grpc_headers(extra=[("grpc-timeout", "300m")]))
        took = time.monotonic() - started
    assert answer.grpc_status == CODE["DEADLINE_EXCEEDED"]
    assert took < 0.9, f"answered after {took:.2f} s"


def test_large_answers_to_concurrent_calls_arrive_whole(server: Server, models: Models) -> None:
    async def main() -> None:
        async with grpc.aio.insecure_channel(server.grpc_address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            picks = [models.X[(np.arange(12_000) + i) % len(models.X)] for i in range(8)]  # 288 KB answers
            answers = await asyncio.gather(*(stub.ModelInfer(iris_request(rows, "predict_proba"), timeout=60)
                                             for rows in picks))
            for rows, answer in zip(picks, answers, strict=True):
                assert_iris_answer(answer, models, rows)

    asyncio.run(main())


# -- TLS --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def test_tls_negotiates_h2_by_alpn(models: Models, certs: Certificates, capsule_cmd: list[str],
                                   subprocess_env: dict[str, str], tmp_path: Path) -> None:
    srv = start_tls_server(capsule_cmd, subprocess_env, tmp_path / "tls", certs, str(models.iris_path))
    try:
        context = ssl.create_default_context(cafile=str(certs.ca))
        context.set_alpn_protocols(["h2"])
        with socket.create_connection(("127.0.0.1", srv.grpc_port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == "h2"
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        assert srv.stop() == 0
