"""The gRPC floor benchmark's constant endpoints answer a real gRPC client, and its report renders; no timing here."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from benchmarks.grpc_floor import GRPC, GRPC_FLOOR, REST, Point, render
from benchmarks.serving import ROOT


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(params=["aio", "frames"])
def endpoint(request: pytest.FixtureRequest) -> Iterator[int]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.peers.grpc_constant", request.param, str(port)],
                               cwd=ROOT)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _listening(port):
            assert process.poll() is None and time.monotonic() < deadline, "the endpoint did not start"
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)


_CLIENT = """
import sys

import grpc

from benchmarks.peers.grpc_constant import answer
from modelcapsule.serving.grpc import grpc_service_pb2 as pb, grpc_service_pb2_grpc as pb_grpc

tensor = pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP64", shape=[1, 20])
request = pb.ModelInferRequest(model_name="forest", inputs=[tensor], raw_input_contents=[bytes(160)])
with grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}") as channel:
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    for _ in range(int(sys.argv[2])):
        got = stub.ModelInfer(request, timeout=10)
        assert got.SerializeToString() == answer(), got
print(got.outputs[0].datatype, list(got.outputs[0].shape))
"""


def test_each_constant_endpoint_answers_grpcio_with_the_prebuilt_response_call_after_call(endpoint: int) -> None:
    # In a child: the generated V2 messages must not be registered next to tritonclient's in this process.
    # 400 calls send ~78 KB, past the client's first connection window (64 KiB): the framing endpoint gives it back.
    out = subprocess.run([sys.executable, "-c", _CLIENT, str(endpoint), "400"], check=False, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["INT64", "[1]"]


def test_the_report_gives_medians_every_rounds_figures_and_ratios_to_v2_rest() -> None:
    args = argparse.Namespace(runs=3, seconds=4, concurrency=16)
    text = render(
        {REST: [Point(8000, 100, 80), Point(9000, 95, 78), Point(8500, 98, 79)],
         GRPC: [Point(11000, 65, 45), Point(10000, 70, 48), Point(10500, 60, 44)],
         GRPC_FLOOR: [Point(9000, 140, 85), Point(9500, 130, 84), Point(9900, 120, 83)]},
        ((1.0, 1.2, 1.3), (1.5, 1.3, 1.3)), args, 1.5,
    )  # fmt: skip
    rows = [line for line in text.splitlines() if line.startswith(("| capsule", "| grpcio"))]
    assert rows == [
        "| capsule serve, batching (V2 REST) | 8,500 (8,000, 9,000, 8,500) | 1.00× | 98 (100, 95, 98) | 79 |",
        "| capsule serve, batching (V2 gRPC) | 10,500 (11,000, 10,000, 10,500) | 1.24× | 65 (65, 70, 60) | 45 |",
        "| grpcio's server answering a constant (grpc.aio) | 9,500 (9,000, 9,500, 9,900) | 1.12× "
        "| 130 (140, 130, 120) | 84 |",
    ]
    assert "1.0/1.2/1.3 before and 1.5/1.3/1.3 after" in text
