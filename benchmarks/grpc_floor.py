"""What a V2 gRPC call costs against V2 REST, and against their floors, back to back.

    python -m benchmarks.grpc_floor                 # 3 rounds of 4 s points, writes docs/benchmarks-grpc-floor.md
    python -m benchmarks.grpc_floor --runs 5 --seconds 8

Four servers run at once on 127.0.0.1 (each started and stopped here), and each round measures every one
of them in turn, so that the machine's load (shared, 2 cores) weighs on all of them alike:

- ``capsule serve`` on the serving benchmark's 100-tree forest, with its batching settings
  (``--batch-size 32 --batch-wait-ms 2 --no-access-log --workers 1``): V2 REST from ``wrk`` and V2 gRPC
  from ``h2load`` (one HTTP/2 connection carrying *c* streams), the same 1-row request as
  ``benchmarks.serving``;
- the HTTP floor: Starlette answering a constant on uvicorn + httptools (``benchmarks/peers/starlette_app.py``);
- grpcio's floor: grpcio's asyncio server answering every ``ModelInfer`` with a prebuilt response, with
  the options ``capsule serve`` gave it when it served gRPC through grpcio
  (``benchmarks/peers/grpc_constant.py aio``): what grpcio's server alone costs a call;
- the HTTP/2 framing lower bound: three prebuilt frames per request stream, no HPACK, no state
  (``benchmarks/peers/grpc_constant.py frames``): what the wire format alone costs in Python on uvloop.

Each point: 1 s warm-up, then the measured seconds; requests/s from the load generator and the server
process's CPU per request (its utime + stime over the measured seconds, all threads, divided by the
requests answered), the figure least disturbed by other processes on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.grpc_load import _check_once, _request, grpc_frame
from benchmarks.serving.core import (
    CAPSULE_BATCH,
    FLOOR,
    ROOT,
    WORK,
    Spec,
    body_v2,
    build_models,
    capsule_spec,
    child_env,
    free_port,
    grpc_port_of,
    rows_for,
    run_wrk,
    running,
    stop_all,
)

__all__ = ["Point", "main", "render"]

REST = f"{CAPSULE_BATCH} (V2 REST)"
GRPC = f"{CAPSULE_BATCH} (V2 gRPC)"
GRPC_FLOOR = "grpcio's server answering a constant (grpc.aio)"
FRAMES = "HTTP/2 framing lower bound (3 prebuilt frames, no HPACK)"


READING = [
    "How to read it: the floors answer a constant, so they cost only their transport. `capsule serve` "
    "reads gRPC with its own HTTP/2 transport on the event loop (`serving/grpc/http2.py`); grpcio's "
    "server, which it used before, is measured answering a constant with the options `capsule serve` gave "
    "it (same uvloop loop, the request parsed by the generated class): alone, before any data plane or "
    "model work, it costs more CPU per call than `capsule serve`'s whole V2 gRPC call. The framing lower "
    "bound is not a server (no HPACK, no stream state, no limits): it bounds from below what a unary-gRPC "
    "transport on the event loop can cost, as the HTTP floor does for HTTP/1.1.",
]


@dataclass(frozen=True)
class Target:
    """One endpoint: how to load it and which process answers it."""

    label: str
    grpc: bool
    port: int
    pid: int
    path: str = ""


@dataclass
class Point:
    rps: float
    cpu_us: float
    """The server process's CPU µs per request, all threads."""
    loop_us: float = float("nan")
    """The part of it spent on the process's main thread: the event loop (the model runs on other threads,
    and so do grpcio's completion-queue poller and its C core)."""


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """utime + stime of a process, all its threads (``/proc/PID/stat``), or of one of its threads."""
    path = Path(f"/proc/{pid}/stat") if tid is None else Path(f"/proc/{pid}/task/{tid}/stat")
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def h2load(port: int, body: Path, concurrency: int, seconds: int) -> int:
    """Requests answered by ``h2load`` (one connection, ``concurrency`` streams) in ``seconds``; fails on any
    HTTP/2 error (h2load does not read the gRPC status in the trailers: each endpoint's answer is checked with
    grpcio before the load starts)."""
    argv = ["h2load", "-t", "1", "-c", "1", "-m", str(concurrency), "-D", str(seconds), "-d", str(body),
            "-H", "content-type: application/grpc", "-H", "te: trailers",
            f"http://127.0.0.1:{port}/inference.GRPCInferenceService/ModelInfer"]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    found = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if found is None or int(found.group(2)) or int(found.group(3)):
        raise RuntimeError(f"h2load failed on port {port}:\n{out[-1500:]}")
    return int(found.group(1))


def measure(target: Target, grpc_body: Path, rest_body: Path, concurrency: int, seconds: int) -> Point:
    """A 1 s warm-up, then ``seconds`` of load: requests/s and the server's CPU µs per request."""

    def load(secs: int) -> int:
        if target.grpc:
            return h2load(target.port, grpc_body, concurrency, secs)
        result = run_wrk(target.port, target.path, rest_body, concurrency, secs)
        if result["status"] or result["socket"]:
            raise RuntimeError(f"{target.label}: {result['status']} HTTP and {result['socket']} socket errors")
        return int(result["requests"])

    load(1)
    before, loop_before = cpu_seconds(target.pid), cpu_seconds(target.pid, target.pid)
    requests = load(seconds)
    used, loop_used = cpu_seconds(target.pid) - before, cpu_seconds(target.pid, target.pid) - loop_before
    return Point(requests / seconds, used * 1e6 / max(1, requests), loop_used * 1e6 / max(1, requests))


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def constant_spec(label: str, kind: str) -> Spec:
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.peers.grpc_constant", kind, str(port)]
    return Spec(label, argv, port, listening, child_env(), ROOT)


def floor_http_spec() -> Spec:
    from benchmarks.serving.core import floor_spec

    return floor_spec(FLOOR)


def render(results: dict[str, list[Point]], load: tuple[tuple[float, ...], tuple[float, ...]], args: argparse.Namespace,
           minutes: float) -> str:  # fmt: skip
    """The report: median req/s and CPU µs per request of each endpoint, each round's figures, ratios to V2 REST."""
    rest = statistics.median(p.rps for p in results[REST]) if results.get(REST) else float("nan")
    lines = [
        "# V2 gRPC against V2 REST and their floors",
        "",
        f"`python -m benchmarks.grpc_floor --runs {args.runs} --seconds {args.seconds}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, {minutes:.1f} minutes. "
        f"Load average (1/5/15 min) {'/'.join(f'{x:.1f}' for x in load[0])} before and "
        f"{'/'.join(f'{x:.1f}' for x in load[1])} after. Every round measures every endpoint in turn "
        f"(1 s warm-up, {args.seconds} s measured, c={args.concurrency}, 1 row); the figures are medians of "
        f"{args.runs} rounds, each round's in brackets. CPU: the answering process's utime + stime over the "
        "measured seconds (all its threads) per request answered.",
        "",
        "| endpoint | req/s | ratio to V2 REST | server CPU µs / request | of which the event loop's thread |",
        "|---|---|---|---|---|",
    ]
    for label, points in results.items():
        rps = statistics.median(p.rps for p in points)
        cpu = statistics.median(p.cpu_us for p in points)
        loop = statistics.median(p.loop_us for p in points)
        lines.append(
            f"| {label} | {rps:,.0f} ({', '.join(f'{p.rps:,.0f}' for p in points)}) | {rps / rest:.2f}× | "
            f"{cpu:.0f} ({', '.join(f'{p.cpu_us:.0f}' for p in points)}) | {loop:.0f} |"
        )
    lines += ["", *READING]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> str:
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    WORK.mkdir(parents=True, exist_ok=True)
    print("… training the forest", file=sys.stderr, flush=True)
    forest, _ = build_models(quick=False)
    row = rows_for(forest.x, 1)
    grpc_body, rest_body = WORK / "grpc-floor-request.bin", WORK / "grpc-floor-request.json"
    grpc_body.write_bytes(grpc_frame(_request(forest.name, 1, len(row[0]), "input").SerializeToString()))  # type: ignore[attr-defined]
    rest_body.write_bytes(body_v2(row))
    capsule = capsule_spec(CAPSULE_BATCH, forest.capsule, batching=True, grpc=True)
    specs = [capsule, floor_http_spec(), constant_spec(GRPC_FLOOR, "aio"), constant_spec(FRAMES, "frames")]
    results: dict[str, list[Point]] = {}
    with contextlib.ExitStack() as stack:
        ours, http_floor, aio, frames = (stack.enter_context(running(spec)) for spec in specs)
        targets = [
            Target(REST, False, capsule.port, ours.process.pid, f"/v2/models/{forest.name}/infer"),
            Target(GRPC, True, grpc_port_of(capsule), ours.process.pid),
            Target(FLOOR, False, http_floor.spec.port, http_floor.process.pid, "/predict"),
            Target(GRPC_FLOOR, True, aio.spec.port, aio.process.pid),
            Target(FRAMES, True, frames.spec.port, frames.process.pid),
        ]
        request = _request(forest.name, 1, len(row[0]), "input")
        for target in targets:  # one grpcio call each: a wrong answer or a non-OK status fails the run
            if target.grpc:
                _check_once(argparse.Namespace(port=target.port, rows=1), request)
        for round_ in range(args.runs):
            for target in targets:
                point = measure(target, grpc_body, rest_body, args.concurrency, args.seconds)
                results.setdefault(target.label, []).append(point)
                figures = f"{point.rps:,.0f} req/s, {point.cpu_us:.0f} µs CPU/request ({point.loop_us:.0f} on the loop)"
                print(f"… round {round_ + 1}: {target.label}: {figures}", file=sys.stderr, flush=True)
    return render(results, (load_before, os.getloadavg()), args, (time.perf_counter() - t0) / 60)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="rounds; each measures every endpoint once")
    parser.add_argument("--seconds", type=int, default=4, help="measured seconds per point")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks-grpc-floor.md")
    args = parser.parse_args(argv)
    try:
        text = run(args)
    finally:
        stop_all()
    print(text)
    args.output.write_text(text)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
