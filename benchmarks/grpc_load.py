"""A bounded closed-loop load generator for V2 gRPC ``ModelInfer`` (used by ``benchmarks.serving``).

    python -m benchmarks.grpc_load --port P --model M --rows 1 --concurrency 16 --seconds 5
    python -m benchmarks.grpc_load --generator python ...     # the grpc.aio client instead

The default generator is ``h2load`` (Debian's ``nghttp2-client``; C, one thread, one HTTP/2
connection carrying ``--concurrency`` streams, as one gRPC channel does): the request is built once
with the generated protobuf classes, framed as a gRPC message (1-byte flag, 4-byte length) and sent
as the body of ``POST /inference.GRPCInferenceService/ModelInfer`` with ``content-type:
application/grpc`` and ``te: trailers``. Why not the Python client: at several thousand calls per
second grpc.aio spends more CPU per call than the server does and, on 2 cores, caps the rate it
measures (round 1 measured gRPC at 0.45× REST with it). Before the clock starts, one call through
``grpcio`` must answer with the right shape (the load itself cannot read gRPC status trailers, so
errors are read from the server's ``/metrics`` by the benchmark). Latencies come from h2load's
per-request log.

``--generator python``: ``--concurrency`` coroutines on one ``grpc.aio`` channel. The input is sent as
``raw_input_contents`` (what Triton's client sends by default). Prints one JSON line: requests/s, p50,
p99 (ms) and errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np


def _pb() -> tuple[Any, Any]:
    """The generated V2 messages and stubs, imported on use (importing them registers protobuf package
    ``inference``, which must not happen next to another V2 client's in one process)."""
    from modelcapsule.serving.grpc import grpc_service_pb2, grpc_service_pb2_grpc

    return grpc_service_pb2, grpc_service_pb2_grpc


def _request(model: str, rows: int, width: int, name: str) -> object:
    pb, _ = _pb()
    data = np.random.default_rng(0).normal(size=(rows, width))
    tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype="FP64", shape=[rows, width])
    return pb.ModelInferRequest(model_name=model, inputs=[tensor], raw_input_contents=[data.tobytes()])


async def _run(args: argparse.Namespace) -> dict[str, float]:
    request = _request(args.model, args.rows, args.width, args.input)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{args.port}") as channel:
        stub = _pb()[1].GRPCInferenceServiceStub(channel)
        await stub.ModelInfer(request, timeout=30)  # fails loudly if the request is wrong
        latencies: list[float] = []
        errors = 0
        start = time.perf_counter()
        measure_from = start + args.warmup
        stop = measure_from + args.seconds

        async def client() -> None:
            nonlocal errors
            while True:
                sent = time.perf_counter()
                if sent >= stop:
                    return
                try:
                    await stub.ModelInfer(request, timeout=30)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                if sent >= measure_from:
                    latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(client() for _ in range(args.concurrency)))
    ordered = np.sort(np.asarray(latencies)) * 1000
    return {
        "requests": len(latencies),
        "rps": len(latencies) / args.seconds,
        "p50_ms": float(np.percentile(ordered, 50)) if len(ordered) else float("nan"),
        "p99_ms": float(np.percentile(ordered, 99)) if len(ordered) else float("nan"),
        "errors": errors,
    }


def grpc_frame(message: bytes) -> bytes:
    """One uncompressed gRPC length-prefixed message."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def _check_once(args: argparse.Namespace, request: object) -> None:
    async def once() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{args.port}") as channel:
            answer = await _pb()[1].GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
            if not answer.outputs or answer.outputs[0].shape[0] != args.rows:
                raise SystemExit(f"unexpected answer: {answer}")

    asyncio.run(once())


def run_h2load(args: argparse.Namespace) -> dict[str, float]:
    h2load = shutil.which("h2load")
    if h2load is None:
        raise SystemExit("h2load not found: apt-get install -y nghttp2-client (or use --generator python)")
    request = _request(args.model, args.rows, args.width, args.input)
    _check_once(args, request)
    seconds = max(1, round(args.seconds))  # h2load takes whole seconds
    with tempfile.TemporaryDirectory() as tmp:
        body, log = Path(tmp) / "body", Path(tmp) / "log.tsv"
        body.write_bytes(grpc_frame(request.SerializeToString()))  # type: ignore[attr-defined]
        argv = [h2load, "-t", "1", "-c", "1", "-m", str(args.concurrency), "-D", str(seconds),
                "--warm-up-time", f"{max(1, round(args.warmup * 1000))}ms", "-d", str(body), "--log-file", str(log),
                "-H", "content-type: application/grpc", "-H", "te: trailers",
                f"http://127.0.0.1:{args.port}/inference.GRPCInferenceService/ModelInfer"]
        out = subprocess.run(argv, check=False, capture_output=True, text=True,
                             timeout=seconds + args.warmup + 60)
        if out.returncode != 0:
            raise SystemExit(f"h2load failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    durations = np.asarray([int(r[2]) for r in rows], dtype=np.float64) / 1000.0
    failed = sum(1 for r in rows if r[1] != "200")
    return {
        "requests": len(rows),
        "rps": len(rows) / seconds,
        "p50_ms": float(np.percentile(durations, 50)) if len(durations) else float("nan"),
        "p99_ms": float(np.percentile(durations, 99)) if len(durations) else float("nan"),
        "errors": failed,
        "generator": "h2load",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", default="input")
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--width", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--generator", choices=("h2load", "python"), default="h2load")
    args = parser.parse_args()
    result = run_h2load(args) if args.generator == "h2load" else asyncio.run(_run(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
