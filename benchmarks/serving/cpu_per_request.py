"""Server CPU per request of ``capsule serve``'s inference routes: the figure to trust on a shared, noisy machine.

    python -m benchmarks.serving.cpu_per_request                      # flat and onnx, 3 rounds of 5 s
    python -m benchmarks.serving.cpu_per_request --runtimes onnx --rounds 5
    python -m benchmarks.serving.cpu_per_request --route plain        # POST /predict instead of V2 REST
    python -m benchmarks.serving.cpu_per_request --src before=/tmp/old/src --src after=src   # A/B two trees

On demand only (not part of ``python -m benchmarks.serving``). Requests per second move with whatever else
runs on the machine; the CPU the server spends per request much less so. For each source tree (``--src``,
default this checkout's ``src``) and each runtime (``flat``, the default stored flat trees, and ``onnx``)
it starts ``capsule serve`` on the serving benchmark's 100-tree forest (``benchmarks.serving.core``: the
same capsules, the same 1-row V2 body (or the plain recipe's with ``--route plain``), the same
``--batch-size 32 --batch-wait-ms 2 --no-access-log --no-grpc --workers 1``), and the HTTP floor
(Starlette answering a constant on uvicorn + httptools + uvloop) unless ``--no-floor``. All servers run
at once and every round measures each one in turn, so the machine's load weighs on all of them alike
and two source trees are compared in the same minutes.

One point: ``wrk -t1 -c16`` for 1 s of warm-up, then ``--seconds`` measured; the server process's
utime + stime (all its threads, ``/proc/PID/stat``) before and after, divided by the requests wrk
completed, gives µs of server CPU per request; the main thread's share (the event loop: HTTP parsing,
routing, decoding, the data plane, encoding; the model runs on an executor thread) is given apart. The
table shows medians over the rounds with the lowest and highest values. A point with any HTTP or socket
error fails the run. The capsules are built once under ``benchmarks/.work/serving/`` and reused
(``--rebuild`` makes them again).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.grpc_floor import cpu_seconds
from benchmarks.serving.core import (
    BATCH_SIZE,
    BATCH_WAIT_MS,
    FLOOR,
    ROOT,
    WORK,
    Endpoint,
    Spec,
    body_plain,
    body_v2,
    check_answer,
    first_plain,
    first_v2,
    floor_spec,
    free_port,
    ready_get,
    run_wrk,
    running,
    stop_all,
)

__all__ = ["Point", "main"]

MODEL = "forest"
PATH = f"/v2/models/{MODEL}/infer"
ROUTES = {"v2": (PATH, body_v2, first_v2), "plain": ("/predict", body_plain, first_plain)}
"""``--route``: the inference route measured, its request body and how its answer is read."""


@dataclass(frozen=True)
class Point:
    rps: float
    cpu_us: float
    """Server CPU µs per request, all threads."""
    loop_us: float
    """Of which the main thread (the event loop)."""


def capsules(rebuild: bool) -> tuple[dict[str, Path], list[float], float]:
    """The forest's capsules by runtime, one row of the benchmark's data, and the model's answer for it."""
    import numpy as np
    from sklearn.datasets import make_classification

    from benchmarks.serving.core import WIDTH, build_models, onnx_capsule_for

    paths = {"flat": WORK / "forest.capsule", "onnx": WORK / "forest-onnx.capsule"}
    if rebuild or not all(p.exists() for p in paths.values()):
        print("… training and saving the forest", file=sys.stderr, flush=True)
        forest, _ = build_models(quick=False)
        why = onnx_capsule_for(forest, lambda m: print(f"… {m}", file=sys.stderr, flush=True))
        if why is not None:
            raise SystemExit(why)
    x, _ = make_classification(n_samples=20_000, n_features=WIDTH, n_informative=10, random_state=0)
    row = [float(v) for v in np.asarray(x[0])]
    import modelcapsule as mc

    predictor = mc.load_capsule(paths["flat"]).predictor
    name = predictor.signature.inputs[0].name
    expected = predictor.predict({name: x[:1]}, ["predict"])["predict"][0]
    return paths, row, float(expected)


def capsule_spec(label: str, src: Path, capsule: Path, runtime: str) -> Spec:
    """``capsule serve`` from the source tree ``src``, with the serving benchmark's batching settings."""
    port = free_port()
    argv = [sys.executable, "-m", "modelcapsule", "serve", str(capsule), "--port", str(port), "--no-access-log",
            "--workers", "1", "--no-grpc", "--batch-size", str(BATCH_SIZE),
            "--batch-wait-ms", str(BATCH_WAIT_MS)]  # fmt: skip
    if runtime != "flat":
        argv += ["--runtime", runtime]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src.resolve()), str(ROOT)])
    return Spec(label, argv, port, ready_get("/v2/health/ready"), env, refused="refused:")


def measure(port: int, pid: int, path: str, body: Path, concurrency: int, seconds: int) -> Point:
    """1 s of warm-up, then ``seconds`` of load; the server's CPU per request answered."""
    run_wrk(port, path, body, concurrency, 1)
    before, loop_before = cpu_seconds(pid), cpu_seconds(pid, pid)
    result = run_wrk(port, path, body, concurrency, seconds)
    used, loop_used = cpu_seconds(pid) - before, cpu_seconds(pid, pid) - loop_before
    if result["status"] or result["socket"]:
        raise RuntimeError(f"port {port}: {result['status']} HTTP and {result['socket']} socket errors")
    requests = max(1, int(result["requests"]))
    return Point(requests / (result["duration_us"] / 1e6), used * 1e6 / requests, loop_used * 1e6 / requests)


def render(results: dict[str, list[Point]], args: argparse.Namespace, load: tuple[float, float]) -> str:
    def spread(values: list[float], fmt: str) -> str:
        return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"

    lines = [
        f"c={args.concurrency}, 1 row, {args.rounds} rounds of {args.seconds} s; load average {load[0]:.1f} before, "
        f"{load[1]:.1f} after. Medians (lowest–highest).",
        "",
        "| server | req/s | server CPU µs / request | of which the event loop |",
        "|---|---|---|---|",
    ]
    for label, points in results.items():
        lines.append(
            f"| {label} | {spread([p.rps for p in points], ',.0f')} | {spread([p.cpu_us for p in points], '.1f')} "
            f"| {spread([p.loop_us for p in points], '.1f')} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> str:
    load_before = os.getloadavg()[0]
    paths, row, expected = capsules(args.rebuild)
    route, encode, first = ROUTES[args.route]
    body = WORK / "bodies" / f"cpu-per-request-{args.route}-1.json"
    body.parent.mkdir(parents=True, exist_ok=True)
    body.write_bytes(encode([row]))
    sources = dict(args.src) if args.src else {"this checkout": ROOT / "src"}
    specs: list[tuple[Spec, str]] = []
    for src_label, src in sources.items():
        for runtime in args.runtimes.split(","):
            label = f"capsule serve --runtime {runtime}" + (f" [{src_label}]" if len(sources) > 1 else "")
            specs.append((capsule_spec(label, Path(src), paths[runtime], runtime), route))
    if args.floor:
        specs.append((floor_spec(FLOOR), "/predict"))
    results: dict[str, list[Point]] = {}
    with contextlib.ExitStack() as stack:
        servers = [(stack.enter_context(running(spec)), path) for spec, path in specs]
        for server, path in servers:
            if path == route:  # a wrong server is not measured
                check_answer(Endpoint(server.spec.label, server.spec.port, path, encode, first), [row], expected)
        for round_ in range(args.rounds):
            for server, path in servers:
                point = measure(server.spec.port, server.process.pid, path, body, args.concurrency, args.seconds)
                results.setdefault(server.spec.label, []).append(point)
                print(f"… round {round_ + 1}: {server.spec.label}: {point.rps:,.0f} req/s, {point.cpu_us:.1f} µs "
                      f"CPU/request ({point.loop_us:.1f} on the loop)", file=sys.stderr, flush=True)  # fmt: skip
    return render(results, args, (load_before, os.getloadavg()[0]))


def _source(text: str) -> tuple[str, str]:
    label, sep, path = text.partition("=")
    if not sep or not (Path(path) / "modelcapsule").is_dir():
        raise argparse.ArgumentTypeError(f"--src wants LABEL=PATH with PATH/modelcapsule a package, not {text!r}")
    return label, path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtimes", default="flat,onnx", help="comma-separated: flat, onnx")
    parser.add_argument("--src", type=_source, action="append", help="LABEL=PATH of a source tree (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--route", choices=sorted(ROUTES), default="v2",
                        help="the V2 REST route (default) or the plain /predict recipe")
    parser.add_argument("--no-floor", dest="floor", action="store_false", help="do not measure the HTTP floor")
    parser.add_argument("--rebuild", action="store_true", help="train and save the capsules again")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        text = run(args)
    finally:
        stop_all()
    print(text)
    print(f"({(time.perf_counter() - started) / 60:.1f} minutes)", file=sys.stderr)


if __name__ == "__main__":
    main()
