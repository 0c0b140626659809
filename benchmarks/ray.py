"""Ray benchmark: capsules on Ray Serve and Ray Data against plain Ray and against modelcapsule alone.

    python -m benchmarks.ray            # the full run (about 5 minutes on 2 cores)
    python -m benchmarks.ray --quick    # a smoke run (about 2 minutes)

Needs the ``ray`` extra and ``wrk`` (``apt-get install -y wrk``). One run on 127.0.0.1:

- the same ``RandomForestClassifier(n_estimators=100, max_depth=10)`` fitted on ``make_classification``
  20k×20, saved as a capsule and as a joblib file;
- Ray Serve, on one local cluster (``ray.init(num_cpus=2)``), the same number of replicas each, 1-row
  JSON bodies from ``wrk`` at concurrency 16 (closed loop, one thread), a warm-up then a fixed time:
  (a) the capsule application (:func:`modelcapsule.integrations.ray.capsule_app`, adaptive batching
  at 16 rows / 2 ms) on ``/predict`` through Ray's HTTP proxy; (b) the same with ``ingress="direct"``:
  each replica serves the node's port itself with ``capsule serve``'s HTTP server; (c) a plain Ray Serve
  deployment calling ``model.predict`` on the joblib file through ``@serve.batch`` (16 rows / 2 ms),
  through Ray's proxy (its default) — given the same ``max_ongoing_requests``, since Ray's default of 5
  would cap its batches at 5 rows; (d) the same plain deployment with Ray's own experimental direct
  ingress (HAProxy in front of replicas that serve HTTP themselves: its best configuration), measured
  on a second cluster started with ``RAY_SERVE_ENABLE_DIRECT_INGRESS=1 RAY_SERVE_ENABLE_HA_PROXY=1``
  in a child process (Ray reads those when it starts);
- (e) ``capsule serve --batch-size 16`` on its own (no Ray), same body and route;
- Ray Data: rows per second of ``predict_dataset`` (one actor, on the cluster already running, so its
  start-up is not counted; the start-up is reported apart) against ``capsule predict``'s
  ``predict_file`` on the same Parquet file.

It prints a Markdown table and writes it to ``docs/benchmarks-ray.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))
WORK = ROOT / "benchmarks" / ".work" / "ray"
BATCH = 16
WAIT_MS = 2.0
CONCURRENCY = 16
WIDTH = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wrk(port: int, path: str, body: Path, seconds: float) -> dict[str, Any]:
    """The serving benchmark's wrk run at this benchmark's concurrency."""
    from benchmarks.serving.core import run_wrk

    r = run_wrk(port, path, body, CONCURRENCY, seconds)
    return {"rps": r["requests"] / (r["duration_us"] / 1e6), "p50_ms": r["p50_us"] / 1000,
            "p99_ms": r["p99_us"] / 1000, "errors": r["status"] + r["socket"]}


def post(port: int, path: str, body: bytes) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def measure(label: str, port: int, body: Path, expected: Any, seconds: float, warmup: float) -> dict[str, Any]:
    answer = post(port, "/predict", body.read_bytes())
    if answer["prediction"] != expected:
        raise RuntimeError(f"{label}: answered {answer!r}, expected {expected!r}")
    wrk(port, "/predict", body, warmup)
    result = wrk(port, "/predict", body, seconds)
    print(f"  {label}: {result['rps']:,.0f} req/s, p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms",
          flush=True)
    return {"label": label, **result}


def build(quick: bool) -> tuple[Path, Path, np.ndarray[Any, Any], Any]:
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    import modelcapsule as mc

    WORK.mkdir(parents=True, exist_ok=True)
    x, y = make_classification(n_samples=20_000, n_features=WIDTH, random_state=0)
    model = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0, n_jobs=1).fit(x, y)
    capsule, plain = WORK / "forest.capsule", WORK / "forest.joblib"
    mc.save(model, capsule, sample=x[:20], overwrite=True)
    joblib.dump(model, plain)
    return capsule, plain, x, model


def plain_ray_app(model_file: Path, replicas: int, ongoing: int) -> Any:
    """The plain Ray Serve recipe: load the joblib file, batch with @serve.batch, call model.predict."""
    from ray import serve
    from starlette.requests import Request

    @serve.deployment(num_replicas=replicas, max_ongoing_requests=ongoing, ray_actor_options={"num_cpus": 1},
                      logging_config={"log_level": "WARNING", "enable_access_log": False})
    class SklearnBatched:
        def __init__(self, path: str) -> None:
            import joblib

            self.model = joblib.load(path)

        @serve.batch(max_batch_size=BATCH, batch_wait_timeout_s=WAIT_MS / 1000)
        async def predict(self, rows: list[list[float]]) -> list[Any]:
            answer: list[Any] = self.model.predict(np.asarray(rows)).tolist()
            return answer

        async def __call__(self, request: Request) -> dict[str, Any]:
            body = await request.json()
            return {"prediction": [await self.predict(body["inputs"][0])]}

    return SklearnBatched.bind(str(model_file))  # type: ignore[attr-defined]


def ray_serve_points(capsule: Path, plain: Path, body: Path, expected: Any, replicas: int,
                     seconds: float, warmup: float, plain_only: bool = False) -> tuple[list[dict[str, Any]], float]:
    import ray
    from ray import serve

    from modelcapsule.integrations.ray import capsule_app
    from modelcapsule.serving import ServerOptions, ServeSettings

    port, direct_port = free_port(), free_port()
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    points = []
    startup = 0.0
    ray_direct = os.environ.get("RAY_SERVE_ENABLE_DIRECT_INGRESS") == "1"
    try:
        options = ServerOptions(batch_size=BATCH, batch_wait_ms=WAIT_MS)
        ongoing = max(64, 2 * BATCH)
        if not plain_only:
            serve.run(capsule_app([capsule], replicas=replicas, options=options), name="capsule", route_prefix="/")
            startup = time.perf_counter() - started
            points.append(measure(f"capsule app on Ray Serve, {'Ray direct ingress' if ray_direct else 'proxy'} "
                                  f"({replicas} replica)", port, body, expected, seconds, warmup))
            serve.delete("capsule")
            direct = ServeSettings(port=direct_port, read_timeout=30.0)
            serve.run(capsule_app([capsule], replicas=replicas, options=options, ingress="direct", direct=direct),
                      name="capsule-direct", route_prefix="/")
            points.append(measure(f"capsule app on Ray Serve, direct ingress ({replicas} replica)", direct_port,
                                  body, expected, seconds, warmup))
            serve.delete("capsule-direct")
        serve.run(plain_ray_app(plain, replicas, ongoing), name="plain", route_prefix="/predict")
        points.append(measure(f"plain Ray Serve + @serve.batch, {'Ray direct ingress' if ray_direct else 'proxy'} "
                              f"({replicas} replica)", port, body, expected, seconds, warmup))
        serve.delete("plain")
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
    return points, startup


def ray_direct_ingress_point(replicas: int, seconds: float, warmup: float) -> dict[str, Any]:
    """The plain deployment under Ray's own direct ingress, on a cluster of its own in a child process
    (Ray reads the switches when its processes start)."""
    env = {**os.environ, "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "benchmarks.ray", "--plain-point", "--replicas", str(replicas),
            "--seconds", str(seconds), "--warmup", str(warmup)]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False,
                          timeout=2 * (seconds + warmup) + 600)
    for line in done.stdout.splitlines():
        if line.startswith("  "):
            print(line, flush=True)
        if line.startswith("POINT "):
            point: dict[str, Any] = json.loads(line[len("POINT "):])
            return point
    raise RuntimeError(f"the Ray direct ingress point failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")


def standalone_point(capsule: Path, body: Path, expected: Any, seconds: float, warmup: float) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "modelcapsule", "serve", str(capsule), "--port", str(port), "--no-grpc",
            "--no-access-log", "--batch-size", str(BATCH), "--batch-wait-ms", str(WAIT_MS)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("capsule serve did not start") from None
                time.sleep(0.2)
        return measure("capsule serve alone (1 worker)", port, body, expected, seconds, warmup)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def data_points(capsule: Path, x: np.ndarray[Any, Any], rows: int) -> dict[str, float]:
    import pandas as pd
    import ray

    import modelcapsule as mc
    from modelcapsule.integrations.ray import predict_dataset

    source = WORK / "rows.parquet"
    reps = -(-rows // len(x))
    frame = pd.DataFrame(np.tile(x, (reps, 1))[:rows], columns=[f"x{i}" for i in range(WIDTH)])
    frame.to_parquet(source, index=False)
    local = mc.predict_file(capsule, source, WORK / "local.parquet")
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    cluster_start = time.perf_counter() - started
    try:
        remote = predict_dataset(capsule, [source], WORK / "ray.parquet", actors=1)
    finally:
        ray.shutdown()
    return {"rows": rows, "local_rps": local.rows_per_second, "local_s": local.seconds + local.load_seconds,
            "ray_rps": remote.rows_per_second, "ray_s": remote.seconds, "cluster_start_s": cluster_start}


def render(serve_points: list[dict[str, Any]], startup: float, data: dict[str, float] | None,
           args: argparse.Namespace) -> str:
    by = {p["label"].split(" (")[0]: p for p in serve_points}
    ours = by["capsule app on Ray Serve, direct ingress"]["rps"]
    plains = {k: p["rps"] for k, p in by.items() if k.startswith("plain Ray Serve")}
    lines = [
        "# Ray benchmark",
        "",
        f"Measured by `python -m benchmarks.ray{' --quick' if args.quick else ''}` on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, Ray {ray_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} (load average before the run: {args.load}). "
        f"100-tree forest (depth 10, 20 features), 1-row JSON to `/predict`, wrk c={CONCURRENCY}, "
        f"{args.seconds:g} s per point after {args.warmup:g} s of warm-up; batching at {BATCH} rows / "
        f"{WAIT_MS:g} ms everywhere. Other work may have shared the machine: compare rows of one run, not runs.",
        "",
        "| server | req/s | p50 | p99 | errors |",
        "|---|---|---|---|---|",
    ]
    for p in serve_points:
        cells = [p["label"], f"{p['rps']:,.0f}", f"{p['p50_ms']:.1f} ms", f"{p['p99_ms']:.1f} ms", str(p["errors"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for label, rps in plains.items():
        verdict = "holds" if ours >= 3 * rps else "does not hold"
        lines.append(f"- capsule app with direct ingress / {label}: **{ours / rps:.2f}×** (goal: ≥ 3×; {verdict}).")
    if startup:
        lines.append(f"- Ray cluster start plus the capsule application ready: {startup:.1f} s.")
    lines.append("")
    if data is not None:
        lines += [
            "| batch scoring | rows | rows/s | seconds |",
            "|---|---|---|---|",
            f"| `capsule predict` (one process) | {data['rows']:,.0f} | {data['local_rps']:,.0f} | "
            f"{data['local_s']:.1f} (with the load) |",
            f"| `capsule predict --ray` (Ray Data, 1 actor) | {data['rows']:,.0f} | {data['ray_rps']:,.0f} | "
            f"{data['ray_s']:.1f} (on a running cluster; starting one took {data['cluster_start_s']:.1f} s more) |",
            "",
        ]
    return "\n".join(lines)


def ray_version() -> str:
    import ray

    return str(ray.__version__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="Print the table only.")
    parser.add_argument("--serve-only", action="store_true", help="Measure Ray Serve only (no standalone, no Data).")
    parser.add_argument(
        "--direct-ingress",
        action="store_true",
        help="Run the whole Ray Serve section under Ray Serve's experimental throughput mode: HAProxy in front of "
        "replicas that serve HTTP themselves (RAY_SERVE_ENABLE_DIRECT_INGRESS=1, RAY_SERVE_ENABLE_HA_PROXY=1).",
    )
    parser.add_argument("--plain-point", action="store_true", help=argparse.SUPPRESS)  # the child of (d)
    parser.add_argument("--seconds", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.direct_ingress:
        os.environ["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "1"
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
    seconds, warmup = (5.0, 2.0) if args.quick else (15.0, 5.0)
    args.seconds = args.seconds or seconds
    args.warmup = args.warmup or warmup
    args.load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    rows = 100_000 if args.quick else 1_000_000
    capsule, plain, x, model = build(args.quick)
    body = WORK / "one-row.json"
    body.write_text(json.dumps({"inputs": [x[0].tolist()]}))
    expected = model.predict(x[:1]).tolist()
    if args.plain_point:
        (point,), _ = ray_serve_points(capsule, plain, body, expected, args.replicas, args.seconds, args.warmup,
                                       plain_only=True)
        print("POINT " + json.dumps(point), flush=True)
        return
    print("Ray Serve (same cluster, one application at a time):", flush=True)
    serve_points, startup = ray_serve_points(capsule, plain, body, expected, args.replicas, args.seconds, args.warmup)
    if not args.direct_ingress:
        print("Ray Serve with Ray's direct ingress (a cluster of its own):", flush=True)
        serve_points.append(ray_direct_ingress_point(args.replicas, args.seconds, args.warmup))
    data = None
    if not args.serve_only:
        print("standalone:", flush=True)
        serve_points.append(standalone_point(capsule, body, expected, args.seconds, args.warmup))
        print("batch scoring:", flush=True)
        data = data_points(capsule, x, rows)
    table = render(serve_points, startup, data, args)
    print(table)
    if not args.no_write and not args.serve_only:
        (ROOT / "docs" / "benchmarks-ray.md").write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()
