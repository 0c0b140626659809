"""A bounded closed-loop load generator for V2 gRPC ``ModelInfer`` (used by ``benchmarks.serving``).

    python -m benchmarks.grpc_load --port P --model M --rows 1 --concurrency 16 --seconds 5

``--concurrency`` coroutines on one ``grpc.aio`` channel each send a request, wait for its answer and
send the next, for ``--warmup`` then ``--seconds`` seconds; the input is sent as
``raw_input_contents`` (what Triton's client sends by default). Prints one JSON line: requests/s, p50,
p99 (ms) and errors. The generator is Python and shares the machine's cores with the server, so at high
rates it is part of what is measured (the benchmark says so next to the figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import grpc
import numpy as np

from modelcapsule.serving.grpc import grpc_service_pb2 as pb
from modelcapsule.serving.grpc import grpc_service_pb2_grpc as pb_grpc


def _request(model: str, rows: int, width: int, name: str) -> object:
    data = np.random.default_rng(0).normal(size=(rows, width))
    tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype="FP64", shape=[rows, width])
    return pb.ModelInferRequest(model_name=model, inputs=[tensor], raw_input_contents=[data.tobytes()])


async def _run(args: argparse.Namespace) -> dict[str, float]:
    request = _request(args.model, args.rows, args.width, args.input)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{args.port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
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
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_run(args))))


if __name__ == "__main__":
    main()
