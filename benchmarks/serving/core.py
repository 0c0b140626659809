"""Serving benchmark: ``capsule serve`` against the Flask recipe, minimal Starlette, MLServer and the floors.

    python -m benchmarks.serving            # the full run (about 7-9 minutes on 2 cores)
    python -m benchmarks.serving --quick    # a smoke run of every server (about 1-2 minutes)

One run on 127.0.0.1, every server started and stopped by the benchmark on a free port:

- the same ``RandomForestClassifier(n_estimators=100, max_depth=10)`` fitted on ``make_classification``
  20k×20 (and a small pipeline, scaler + logistic regression) served by ``capsule serve`` (V2 REST,
  TF Serving REST, the plain ``/predict`` route and V2 gRPC; with adaptive batching and without), the
  classic Flask recipe (development server, and gunicorn with 2 sync workers), a minimal
  Starlette/uvicorn endpoint calling ``model.predict``, a Starlette/uvicorn endpoint answering a
  constant (the HTTP floor), and MLServer 1.7.1 with its scikit-learn runtime, with its defaults and
  with its adaptive batching at the same settings as ours (installed by the benchmark into its own
  venv under ``benchmarks/.work/``, scikit-learn pinned to ours so it loads the same joblib file);
- the in-process ``model.predict`` rate for 1 row and for 100 rows (the compute floor);
- load from ``wrk`` (closed loop, one thread, ``--latency``; HTTP) and from ``benchmarks.grpc_load``
  (gRPC), at concurrency 1, 16 and 64 with 1-row bodies and 16 with 100-row bodies, each point a
  short warm-up then a fixed number of seconds; every answer's first prediction is checked against
  the model before the load starts;
- V2 gRPC against V2 REST in three alternating rounds on one server (the gRPC ≥ REST target);
- start-up: seconds from process start to the first 200 on ``/v2/health/ready`` (capsule, MLServer), and
  cold start to the first answered prediction of ours and every peer (five starts each, each on an idle
  machine);
- memory: the PSS of every process of ``capsule serve --workers 1`` and ``--workers 4`` on a brute-force
  KNN holding a 1M×32 training array, read from ``/proc/<pid>/smaps_rollup``, and on two forests before
  and after a version swap (``benchmarks/swap_memory.py``);
- the function calls of one prediction of each way to call a tree ensemble (``benchmarks/serving/calls.py``).

It prints the tables and the acceptance checks of the serving performance goals (holds / does not
hold, with the figures) and writes them to ``docs/benchmarks-serving.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client as http_client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "src") not in sys.path:  # save capsules with this checkout's code, the one the servers run
    sys.path.insert(0, str(ROOT / "src"))
WORK = ROOT / "benchmarks" / ".work" / "serving"
BATCH_SIZE = 32
BATCH_WAIT_MS = 2.0
WIDTH = 20
READY_TIMEOUT = 120.0

# --------------------------------------------------------------------------------------------------
# Results and their rendering


@dataclass(frozen=True)
class Measurement:
    """One load point against one endpoint."""

    server: str
    model: str
    rows: int
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    rows_per_call: float | None = None
    """Mean rows per model call during the point (capsule serve's metrics; shows whether batches merged)."""


@dataclass(frozen=True)
class Check:
    """One acceptance point: holds (True/False) or could not be measured (None), with the figures."""

    goal: str
    holds: bool | None
    figures: str

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "does not hold", None: "open"}[self.holds]


def fmt_rps(rps: float) -> str:
    return f"{rps:,.0f}" if rps >= 10 else f"{rps:.1f}"


def fmt_ms(ms: float) -> str:
    if ms != ms:  # NaN: nothing measured
        return "–"
    return f"{ms:.2f}" if ms < 10 else f"{ms:.0f}"


def render_cell(m: Measurement | None) -> str:
    """``req/s (p50 / p99 ms)``, or ``–`` when the point was not measured; errors are shown."""
    if m is None:
        return "–"
    text = f"{fmt_rps(m.rps)} ({fmt_ms(m.p50_ms)} / {fmt_ms(m.p99_ms)})"
    if m.errors:
        text += f" **{m.errors} errors**"
    return text


def render_row(label: str, cells: Sequence[Measurement | None]) -> str:
    """One Markdown table row: the endpoint, then one cell per load point."""
    return "| " + " | ".join([label, *(render_cell(c) for c in cells)]) + " |"


def render_checks(checks: Sequence[Check]) -> str:
    lines = ["| goal | verdict | measured |", "|---|---|---|"]
    lines += [f"| {c.goal} | **{c.verdict}** | {c.figures} |" for c in checks]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Processes: every server is ours, in its own process group, stopped on any exit


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every child: this checkout's ``src`` and the repository root importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


@dataclass
class Spec:
    """How to start one server and how to tell that it is ready."""

    label: str
    argv: list[str]
    port: int
    ready: Callable[[int], bool]
    env: dict[str, str] = field(default_factory=child_env)
    cwd: Path | None = None
    refused: str | None = None
    """A line in the log that means the server will never be ready (stop waiting at once)."""


@dataclass
class Running:
    spec: Spec
    process: subprocess.Popen[bytes]
    startup_s: float
    log: Path


_live: list[subprocess.Popen[bytes]] = []
FAILURES: list[str] = []
"""Servers that could not be measured in this run, with why (listed in the report)."""


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # any worker left behind in the group
        os.killpg(process.pid, signal.SIGKILL)
    if process in _live:
        _live.remove(process)


def stop_all() -> None:
    for process in list(_live):
        _stop(process)


COLD_STARTS = 5
"""Fresh starts per server in the cold-start table (its figure is their median): one start can meet a busy
second of a shared machine, and the median of five is moved by two such seconds, not one."""

READY_POLL = 0.005
"""Seconds between readiness checks: start-up times are read to within this (a 20 ms poll added up to
20 ms, ~10 on average, to a cold start measured against 0.4 s)."""


@contextlib.contextmanager
def running(spec: Spec) -> Iterator[Running]:
    """Start ``spec`` in a new process group, wait until it is ready, stop the whole group afterwards."""
    log = WORK / "logs" / (spec.label.replace(" ", "_").replace("/", "_") + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(
            spec.argv, stdout=out, stderr=subprocess.STDOUT, env=spec.env, cwd=spec.cwd, start_new_session=True
        )
    _live.append(process)
    try:
        deadline = start + READY_TIMEOUT
        while not spec.ready(spec.port):
            if process.poll() is not None:
                raise RuntimeError(f"{spec.label} exited with {process.returncode}; log:\n{_tail(log)}")
            if spec.refused is not None and spec.refused in log.read_text(errors="replace"):
                raise RuntimeError(f"{spec.label} refused its model; log:\n{_tail(log)}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{spec.label} not ready after {READY_TIMEOUT:.0f} s; log:\n{_tail(log)}")
            time.sleep(READY_POLL)
        yield Running(spec, process, time.perf_counter() - start, log)
    finally:
        _stop(process)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def http(port: int, path: str, body: bytes | None = None, timeout: float = 30.0) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def ready_get(path: str) -> Callable[[int], bool]:
    def ready(port: int) -> bool:
        try:
            return http(port, path, timeout=2)[0] == 200
        except (OSError, http_client.HTTPException):  # not listening yet, or something else answers there
            return False

    return ready


def ready_post(path: str, body: bytes) -> Callable[[int], bool]:
    def ready(port: int) -> bool:
        try:
            return http(port, path, body, timeout=10)[0] == 200
        except (OSError, http_client.HTTPException):  # not listening yet, or something else answers there
            return False

    return ready


# --------------------------------------------------------------------------------------------------
# Request bodies and how to read the first prediction back from each protocol


def rows_for(x: np.ndarray[Any, Any], n: int) -> list[list[float]]:
    return [[float(v) for v in row] for row in x[:n]]


def body_plain(rows: list[list[float]]) -> bytes:
    return json.dumps({"inputs": rows}).encode()


def body_tfserving(rows: list[list[float]]) -> bytes:
    return json.dumps({"instances": rows}).encode()


def body_v2(rows: list[list[float]], name: str = "input") -> bytes:
    tensor = {"name": name, "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": rows}
    return json.dumps({"inputs": [tensor], "outputs": [{"name": "predict"}]}).encode()


def first_plain(doc: Any) -> Any:
    return doc["prediction"][0]


def first_tfserving(doc: Any) -> Any:
    first = doc["predictions"][0]
    return first["predict"] if isinstance(first, dict) else first


def first_v2(doc: Any) -> Any:
    output = next(o for o in doc["outputs"] if o["name"] == "predict")
    data = output["data"]
    return data[0][0] if isinstance(data[0], list) else data[0]


@dataclass(frozen=True)
class Endpoint:
    """One way of asking one running server for predictions."""

    label: str
    port: int
    path: str
    make_body: Callable[[list[list[float]]], bytes]
    first: Callable[[Any], Any]
    grpc_model: str | None = None
    metrics_port: int | None = None
    """The HTTP port of a single-process capsule server whose /metrics count rows per model call."""


def check_answer(endpoint: Endpoint, rows: list[list[float]], expected: Any) -> None:
    """The endpoint's first prediction for ``rows`` must be the model's (a wrong server is not measured)."""
    if endpoint.grpc_model is not None:
        return  # benchmarks.grpc_load makes one call and fails loudly before it starts the clock
    status, raw = http(endpoint.port, endpoint.path, endpoint.make_body(rows))
    if status != 200:
        raise RuntimeError(f"{endpoint.label}: HTTP {status}: {raw[:300]!r}")
    got = endpoint.first(json.loads(raw))
    if float(got) != float(expected):
        raise RuntimeError(f"{endpoint.label}: predicted {got!r}, the model says {expected!r}")


# --------------------------------------------------------------------------------------------------
# Load generators

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("{body}", "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "status": %d, "socket": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def wrk_script(body: str) -> str:
    """The Lua script that makes wrk POST the JSON in file ``body`` and print its figures as one JSON line."""
    return WRK_SCRIPT.format(body=body)


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(
            "wrk is needed for the HTTP load: install it with `apt-get install -y wrk` (Debian/Ubuntu) "
            "or `brew install wrk`, then run the benchmark again."
        )
    return path


def run_wrk(port: int, path: str, body: Path, concurrency: int, seconds: float) -> dict[str, Any]:
    """``seconds`` of closed-loop POSTs of the file ``body`` to ``path`` on 127.0.0.1:``port`` from one wrk
    thread with ``concurrency`` connections: wrk's figures as printed by :data:`WRK_SCRIPT` (requests,
    duration_us, p50_us, p99_us, status and socket errors)."""
    script = body.with_suffix(".lua")
    script.write_text(wrk_script(str(body)))
    argv = [
        wrk_path(), "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "20s", "--latency",
        "-s", str(script), f"http://127.0.0.1:{port}{path}",
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    result: dict[str, Any] = json.loads(line[len("BENCH ") :])
    return result


def load_point(
    endpoint: Endpoint, model: str, rows: list[list[float]], concurrency: int, seconds: float, warmup: float
) -> Measurement:
    """Warm up, then measure ``seconds`` of closed-loop load at ``concurrency`` with ``len(rows)``-row bodies.

    On a capsule server the rows per model call during the measured seconds are read from its metrics
    (taken after the warm-up, so calls still running from the previous point are not counted)."""
    if endpoint.grpc_model is not None:
        time.sleep(1.0)  # let the previous point's last calls finish before the counters are read
        before = batch_counters(endpoint.metrics_port)
        argv = [
            sys.executable, "-m", "benchmarks.grpc_load", "--port", str(endpoint.port), "--model",
            endpoint.grpc_model, "--rows", str(len(rows)), "--width", str(len(rows[0])), "--concurrency",
            str(concurrency), "--seconds", str(seconds), "--warmup", str(warmup),
        ]  # fmt: skip
        out = subprocess.run(
            argv, check=False, capture_output=True, text=True, env=child_env(), timeout=seconds + warmup + 60
        )
        if out.returncode != 0:
            raise RuntimeError(f"{endpoint.label}: gRPC load failed:\n{out.stderr[-2000:]}")
        g = json.loads(out.stdout.strip().splitlines()[-1])
        return Measurement(endpoint.label, model, len(rows), concurrency, g["rps"], g["p50_ms"], g["p99_ms"],
                           int(g["errors"]), _rows_per_call(before, batch_counters(endpoint.metrics_port)))
    body = WORK / "bodies" / f"{endpoint.label}-{len(rows)}.json".replace(" ", "_").replace("/", "_")
    body.parent.mkdir(parents=True, exist_ok=True)
    body.write_bytes(endpoint.make_body(rows))
    if warmup > 0:
        run_wrk(endpoint.port, endpoint.path, body, concurrency, warmup)
    before = batch_counters(endpoint.metrics_port)
    r = run_wrk(endpoint.port, endpoint.path, body, concurrency, seconds)
    return Measurement(
        endpoint.label, model, len(rows), concurrency, r["requests"] / (r["duration_us"] / 1e6),
        r["p50_us"] / 1000, r["p99_us"] / 1000, int(r["status"]) + int(r["socket"]),
        _rows_per_call(before, batch_counters(endpoint.metrics_port)),
    )  # fmt: skip


def _rows_per_call(before: tuple[float, float] | None, after: tuple[float, float] | None) -> float | None:
    if before is None or after is None or after[0] <= before[0]:
        return None
    return (after[1] - before[1]) / (after[0] - before[0])


# --------------------------------------------------------------------------------------------------
# Models


@dataclass
class Model:
    name: str
    description: str
    estimator: Any
    x: np.ndarray[Any, Any]
    capsule: Path
    joblib_file: Path


def build_models(quick: bool) -> tuple[Model, Model]:
    """The forest and the pipeline, saved once as a capsule and as a joblib file (what the peers load)."""
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import modelcapsule as mc

    x, y = make_classification(n_samples=20_000, n_features=WIDTH, n_informative=10, random_state=0)
    forest = RandomForestClassifier(n_estimators=100, max_depth=10, n_jobs=-1, random_state=0).fit(x, y)
    forest.n_jobs = None  # what the served model uses: one thread per call
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    models = []
    for name, description, estimator in (
        ("forest", "RandomForestClassifier(n_estimators=100, max_depth=10), 20k×20", forest),
        ("pipeline", "StandardScaler + LogisticRegression, 20k×20", pipeline),
    ):
        capsule = WORK / f"{name}.capsule"
        mc.save(estimator, capsule, sample=x[:20], name=name, source=False, overwrite=True)
        joblib_file = WORK / f"{name}.joblib"
        joblib.dump(estimator, joblib_file)
        models.append(Model(name, description, estimator, x, capsule, joblib_file))
    return models[0], models[1]


def compute_floor(model: Model, seconds: float) -> dict[str, dict[int, float]]:
    """In-process calls per second on 1 row and on 100 rows (one thread): the model's own ``predict``,
    and the predictor ``capsule serve`` calls (which may take a shortcut to the same bits)."""
    from threadpoolctl import threadpool_limits

    import modelcapsule as mc

    predictor = mc.load_capsule(model.capsule).predictor
    name = predictor.signature.inputs[0].name
    calls_of: dict[str, Callable[[Any], Any]] = {
        "model": model.estimator.predict,
        "predictor": lambda rows: predictor.predict({name: rows}, ["predict"]),
    }
    rates: dict[str, dict[int, float]] = {}
    with threadpool_limits(limits=1):
        for label, call in calls_of.items():
            rates[label] = {}
            for n in (1, 100):
                batch = model.x[:n]
                call(batch)
                calls, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds:
                    call(batch)
                    calls += 1
                rates[label][n] = calls / (time.perf_counter() - start)
    return rates


# --------------------------------------------------------------------------------------------------
# Servers


def capsule_spec(label: str, capsule: Path, *, batching: bool, workers: int = 1, grpc: bool = False,
                 extra: Sequence[str] = ()) -> Spec:  # fmt: skip
    port = free_port()
    argv = [sys.executable, "-m", "modelcapsule", "serve", str(capsule), "--port", str(port), "--no-access-log",
            "--workers", str(workers), *extra]  # fmt: skip
    argv += ["--grpc-port", str(free_port())] if grpc else ["--no-grpc"]
    if batching:
        argv += ["--batch-size", str(BATCH_SIZE), "--batch-wait-ms", str(BATCH_WAIT_MS)]
    return Spec(label, argv, port, ready_get("/v2/health/ready"), refused="refused:")


def grpc_port_of(spec: Spec) -> int:
    return int(spec.argv[spec.argv.index("--grpc-port") + 1])


def peer_specs(model: Model) -> dict[str, Spec]:
    probe = body_plain(rows_for(model.x, 1))
    env = child_env(BENCH_MODEL=str(model.joblib_file))
    specs = {}
    port = free_port()
    specs["Flask recipe, dev server"] = Spec(
        "Flask recipe, dev server", [sys.executable, "-m", "benchmarks.peers.flask_app", str(port)], port,
        ready_post("/predict", probe), env, ROOT,
    )  # fmt: skip
    port = free_port()
    specs["Flask recipe, gunicorn 2 sync workers"] = Spec(
        "Flask recipe, gunicorn 2 sync workers",
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "benchmarks.peers.flask_app:app"],
        port, ready_post("/predict", probe), env, ROOT,
    )  # fmt: skip
    port = free_port()
    specs["minimal Starlette/uvicorn"] = Spec(
        "minimal Starlette/uvicorn",
        [sys.executable, "-m", "uvicorn", "benchmarks.peers.starlette_app:app", "--host", "127.0.0.1", "--port",
         str(port), "--no-access-log", "--log-level", "warning"],
        port, ready_post("/predict", probe), env, ROOT,
    )  # fmt: skip
    return specs


def floor_spec(label: str, *uvicorn_args: str) -> Spec:
    port = free_port()
    return Spec(
        label,
        [sys.executable, "-m", "uvicorn", "benchmarks.peers.starlette_app:floor", "--host", "127.0.0.1", "--port",
         str(port), "--no-access-log", "--log-level", "warning", *uvicorn_args],
        port, ready_post("/predict", b"{}"), child_env(), ROOT,
    )  # fmt: skip


def ensure_mlserver(progress: Callable[[str], None]) -> Path | None:
    """MLServer's ``mlserver`` command in its own venv (benchmarks/serving/venvs.py); None if it cannot be installed."""
    from .venvs import ensure_venv

    bin_dir = ensure_venv("mlserver", progress)
    return None if bin_dir is None else bin_dir / "mlserver"


def mlserver_spec(label: str, mlserver: Path, model: Model, *, batching: bool) -> Spec:
    folder = WORK / ("mlserver-batching" if batching else "mlserver-defaults")
    shutil.rmtree(folder, ignore_errors=True)
    (folder / model.name).mkdir(parents=True)
    shutil.copy(model.joblib_file, folder / model.name / "model.joblib")
    port = free_port()
    settings = {"host": "127.0.0.1", "http_port": port, "grpc_port": free_port(), "metrics_port": free_port()}
    (folder / "settings.json").write_text(json.dumps(settings))
    model_settings: dict[str, Any] = {
        "name": model.name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
    }
    if batching:  # MLServer's adaptive batching, at our settings (its max_batch_time is in seconds)
        model_settings.update(max_batch_size=BATCH_SIZE, max_batch_time=BATCH_WAIT_MS / 1000)
    (folder / model.name / "model-settings.json").write_text(json.dumps(model_settings))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{mlserver.parent}{os.pathsep}{env.get('PATH', '')}"
    return Spec(label, [str(mlserver), "start", str(folder)], port, ready_ready_model(model.name), env, folder)


def ready_ready_model(name: str) -> Callable[[int], bool]:
    """Ready means the server says so on /v2/health/ready (MLServer answers it once its models are loaded)."""
    del name
    return ready_get("/v2/health/ready")


# --------------------------------------------------------------------------------------------------
# Memory: PSS of a server's processes


def pss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no Pss line in /proc/{pid}/smaps_rollup")


def process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        with contextlib.suppress(FileNotFoundError):
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
    return pids


def memory_case(quick: bool, progress: Callable[[str], None]) -> dict[Any, Any]:
    """PSS of ``capsule serve --workers 1`` and ``--workers 4`` on a brute-force KNN (array-heavy)."""
    from sklearn.neighbors import KNeighborsClassifier

    import modelcapsule as mc

    n_rows = 100_000 if quick else 1_000_000
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_rows, 32))
    knn = KNeighborsClassifier(algorithm="brute").fit(x, rng.integers(0, 2, n_rows))
    capsule = WORK / "knn.capsule"
    progress(f"saving brute KNN on {n_rows:,}×32 ({x.nbytes / 2**20:.0f} MiB array)")
    mc.save(knn, capsule, sample=x[:5], name="knn", source=False, overwrite=True)
    del knn
    body = body_v2(rows_for(x, 1))
    result: dict[Any, Any] = {"rows": n_rows, "array_mib": x.nbytes / 2**20}
    for workers in (1, 4):
        progress(f"capsule serve --workers {workers} on the KNN")
        spec = capsule_spec(f"capsule serve knn workers {workers}", capsule, batching=False, workers=workers)
        with running(spec) as server:
            # `python -m modelcapsule serve` is the server itself; ready means one worker answers, so wait
            # until all of them are forked (a worker missing from the sum would flatter the figure)
            pids = process_tree(server.process.pid)
            deadline = time.monotonic() + 60
            while workers > 1 and len(pids) < workers + 1:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"--workers {workers}: only {len(pids) - 1} worker(s) after 60 s")
                time.sleep(0.1)
                pids = process_tree(server.process.pid)
            workers_pids = pids[1:] if workers > 1 else pids
            # the kernel hands connections to whichever worker accepts first: keep predicting until every
            # worker has read the whole array (its resident pages of the capsule file show it), or give up
            for _ in range(40):
                _predict_concurrently(spec.port, body, requests=16)
                touched = {pid: mapped_rss(pid, capsule) for pid in workers_pids}
                if min(touched.values()) >= 0.9 * x.nbytes:
                    break
            per_process = {pid: pss_bytes(pid) for pid in pids}
            result[workers] = {"total": sum(per_process.values()), "processes": per_process, "touched": touched}
    return result


def mapped_rss(pid: int, path: Path) -> int:
    """Resident bytes of ``path``'s mappings in process ``pid`` (pages it has touched), from /proc/pid/smaps."""
    total, inside = 0, False
    target = str(path.resolve())
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(None, 5)
        if len(head) >= 5 and "-" in head[0] and ":" in head[3]:  # a mapping's header line
            inside = len(head) == 6 and head[5] == target
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1]) * 1024
    return total


def _predict_concurrently(port: int, body: bytes, requests: int) -> None:
    """``requests`` predictions at once, each on its own connection."""
    errors: list[str] = []

    def one() -> None:
        status, raw = http(port, "/v2/models/knn/infer", body, timeout=120)
        if status != 200:
            errors.append(raw[:200].decode(errors="replace"))

    threads = [threading.Thread(target=one) for _ in range(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"KNN predictions failed: {errors[0]}")


# --------------------------------------------------------------------------------------------------
# The run


@dataclass
class Plan:
    seconds: float
    warmup: float
    single_row_concurrency: tuple[int, ...]
    batch_rows: int = 100
    batch_concurrency: int = 16


def measure_endpoints(
    endpoints: Sequence[Endpoint], model: Model, plan: Plan, results: list[Measurement],
    progress: Callable[[str], None], single_only: tuple[int, ...] | None = None,
) -> None:  # fmt: skip
    one = rows_for(model.x, 1)
    many = rows_for(model.x, plan.batch_rows)
    expected = model.estimator.predict(model.x[:1])[0]
    for endpoint in endpoints:
        check_answer(endpoint, one, expected)
        points = [(one, c) for c in single_only or plan.single_row_concurrency]
        if single_only is None:
            points.append((many, plan.batch_concurrency))
        for rows, c in points:
            progress(f"{model.name}: {endpoint.label}, {len(rows)} row(s), c={c}")
            results.append(load_point(endpoint, model.name, rows, c, plan.seconds, plan.warmup))


CALL_COUNTS: list[str] = []
"""The table of :func:`benchmarks.serving.calls.calls_table`, when the run counted them (not in ``--quick``)."""

SIDE_BY_SIDE_ROUNDS = 3
SIDE_BY_SIDE: list[tuple[Measurement, Measurement]] = []
"""(V2 REST, V2 gRPC) of each round of :func:`side_by_side`."""


def side_by_side(rest: Endpoint, grpc: Endpoint, model: Model, plan: Plan, progress: Callable[[str], None]) -> None:
    """V2 REST and V2 gRPC on one server at c=16, 1 row, in alternating rounds (REST, gRPC, REST, gRPC...),
    for the gRPC ≥ REST target: the machine's slow stretches (minutes apart on a shared host) fall on
    both protocols alike, which the main table's points, taken about a minute apart, cannot promise."""
    one = rows_for(model.x, 1)
    seconds = max(1.0, plan.seconds / 2)
    for n in range(SIDE_BY_SIDE_ROUNDS):
        progress(f"{model.name}: V2 REST and V2 gRPC side by side, round {n + 1} of {SIDE_BY_SIDE_ROUNDS}")
        pair = tuple(load_point(e, model.name, one, 16, seconds, plan.warmup) for e in (rest, grpc))
        SIDE_BY_SIDE.append((pair[0], pair[1]))


def render_side_by_side() -> str:
    lines = ["| round | V2 REST req/s (p50 / p99 ms) | V2 gRPC req/s (p50 / p99 ms) | gRPC / REST |",
             "|---|---|---|---|"]
    for n, (rest, grpc) in enumerate(SIDE_BY_SIDE, 1):
        lines.append(f"| {n} | {fmt_rps(rest.rps)} ({fmt_ms(rest.p50_ms)} / {fmt_ms(rest.p99_ms)}) | "
                     f"{fmt_rps(grpc.rps)} ({fmt_ms(grpc.p50_ms)} / {fmt_ms(grpc.p99_ms)}) | "
                     f"{grpc.rps / rest.rps:.2f}× |")
    return "\n".join(lines)


def side_by_side_medians() -> tuple[float, float] | None:
    """Median req/s of the rounds: (V2 REST, V2 gRPC); None when they were not run."""
    if not SIDE_BY_SIDE:
        return None
    return (statistics.median(r.rps for r, _ in SIDE_BY_SIDE), statistics.median(g.rps for _, g in SIDE_BY_SIDE))


def batch_counters(port: int | None) -> tuple[float, float] | None:
    """(model calls, rows) so far, from ``modelcapsule_batch_rows`` on a capsule server's /metrics."""
    if port is None:
        return None
    status, raw = http(port, "/metrics")
    if status != 200:
        return None
    calls = rows = 0.0
    for line in raw.decode().splitlines():
        if line.startswith("modelcapsule_batch_rows_count"):
            calls += float(line.rsplit(" ", 1)[1])
        elif line.startswith("modelcapsule_batch_rows_sum"):
            rows += float(line.rsplit(" ", 1)[1])
    return calls, rows


def capsule_endpoints(prefix: str, spec: Spec, model: Model, *, every_protocol: bool) -> list[Endpoint]:
    single = spec.argv[spec.argv.index("--workers") + 1] == "1"
    metrics = spec.port if single else None
    v2 = Endpoint(f"{prefix} (V2 REST)", spec.port, f"/v2/models/{model.name}/infer", body_v2, first_v2,
                  metrics_port=metrics)  # fmt: skip
    if not every_protocol:
        return [v2]
    return [
        v2,
        Endpoint(f"{prefix} (TF Serving REST)", spec.port, f"/v1/models/{model.name}:predict", body_tfserving,
                 first_tfserving, metrics_port=metrics),
        Endpoint(f"{prefix} (plain /predict)", spec.port, "/predict", body_plain, first_plain, metrics_port=metrics),
        Endpoint(f"{prefix} (V2 gRPC)", grpc_port_of(spec), "", body_v2, first_v2, grpc_model=model.name,
                 metrics_port=metrics),
    ]  # fmt: skip


def onnx_capsule_for(model: Model, progress: Callable[[str], None]) -> str | None:
    """Save the forest with its ONNX export for ``capsule serve --runtime onnx``; why not, if it cannot be."""
    import modelcapsule as mc
    from modelcapsule.errors import UnsupportedModelError

    if not has_onnx_runtime():
        return "`capsule serve --runtime onnx` does not exist in this checkout"
    progress("saving the forest with its ONNX export")
    try:
        mc.save(model.estimator, WORK / "forest-onnx.capsule", sample=model.x[:20], name=model.name, source=False,
                overwrite=True, onnx=True)  # fmt: skip
    except UnsupportedModelError as exc:
        return f"`capsule serve --runtime onnx` exists, but this checkout cannot save the ONNX export ({exc})"
    return None


def has_onnx_runtime() -> bool:
    argv = [sys.executable, "-m", "modelcapsule", "serve", "--help"]
    out = subprocess.run(argv, check=False, capture_output=True, text=True, env=child_env())
    return "--runtime" in out.stdout


CAPSULE_BATCH = "capsule serve, batching"
CAPSULE_NOBATCH = "capsule serve, no batching"
CAPSULE_BATCH_2 = "capsule serve --workers 2, batching"
FLASK = "Flask recipe, dev server"
GUNICORN = "Flask recipe, gunicorn 2 sync workers"
MINIMAL = "minimal Starlette/uvicorn"
FLOOR = "HTTP floor (Starlette constant)"
FLOOR_H11 = "HTTP floor, pure-Python parser (Starlette constant, uvicorn --http h11 --loop asyncio)"
ML_DEFAULTS = "MLServer 1.7.1, defaults"
ML_BATCH = "MLServer 1.7.1, adaptive batching"
ONNX = "capsule serve --runtime onnx, batching"
DEFAULT_PEERS: list[str] = []
"""Labels of the peers measured in their defaults in this run (filled by ``run``)."""
BEST_PEERS: list[str] = []
"""Labels of the peers measured in their best configuration in this run."""


def run(args: argparse.Namespace) -> str:
    def progress(message: str) -> None:
        print(f"… [{time.perf_counter() - t0:5.0f} s] {message}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    wrk_path()
    load_before = os.getloadavg()
    WORK.mkdir(parents=True, exist_ok=True)
    plan = (
        Plan(seconds=1, warmup=0.5, single_row_concurrency=(1, 16))
        if args.quick
        else Plan(seconds=args.seconds, warmup=1, single_row_concurrency=(1, 16, 64))
    )
    mlserver = None if args.no_mlserver else ensure_mlserver(progress)
    progress("training the forest and the pipeline")
    forest, pipeline = build_models(args.quick)
    floor_rates = compute_floor(forest, 1.0 if args.quick else 3.0)
    results: list[Measurement] = []
    startup: dict[str, list[float]] = {}

    def serve(spec: Spec, endpoints: Callable[[Spec], list[Endpoint]], model: Model,
              single_only: tuple[int, ...] | None = None, then: Callable[[list[Endpoint]], None] | None = None,
              ) -> None:  # fmt: skip
        progress(f"starting {spec.label}")
        try:
            with running(spec) as server:
                startup.setdefault(spec.label, []).append(server.startup_s)
                measured = endpoints(spec)
                measure_endpoints(measured, model, plan, results, progress, single_only)
                if then is not None:
                    then(measured)
        except (RuntimeError, subprocess.SubprocessError) as exc:  # reported; the other servers still run
            progress(f"{spec.label} failed: {exc}")
            FAILURES.append(f"{spec.label}: {str(exc).splitlines()[0]}")

    def plain_endpoint(label: str) -> Callable[[Spec], list[Endpoint]]:
        return lambda spec: [Endpoint(label, spec.port, "/predict", body_plain, first_plain)]

    SIDE_BY_SIDE.clear()
    serve(capsule_spec(CAPSULE_BATCH, forest.capsule, batching=True, grpc=True),
          lambda s: capsule_endpoints(CAPSULE_BATCH, s, forest, every_protocol=True), forest,
          then=lambda e: side_by_side(e[0], e[3], forest, plan, progress))
    serve(capsule_spec(CAPSULE_NOBATCH, forest.capsule, batching=False),
          lambda s: capsule_endpoints(CAPSULE_NOBATCH, s, forest, every_protocol=False), forest)
    serve(capsule_spec(CAPSULE_BATCH_2, forest.capsule, batching=True, workers=2),
          lambda s: capsule_endpoints(CAPSULE_BATCH_2, s, forest, every_protocol=False), forest,
          single_only=plan.single_row_concurrency)
    # our ONNX runtime next to our other points, before any peer: each is then measured on a machine
    # no peer has run on yet (some leave processes behind for a while, e.g. Ray's)
    onnx_note = onnx_capsule_for(forest, progress)
    if onnx_note is None:
        spec = capsule_spec(ONNX, WORK / "forest-onnx.capsule", batching=True, extra=["--runtime", "onnx"])
        serve(spec, lambda s: [*capsule_endpoints(ONNX, s, forest, every_protocol=False),
                               Endpoint(f"{ONNX} (plain /predict)", s.port, "/predict", body_plain, first_plain,
                                        metrics_port=s.port)],
              forest, single_only=plan.single_row_concurrency)  # fmt: skip
    peers = peer_specs(forest)
    for label in (MINIMAL, GUNICORN, FLASK):
        serve(peers[label], plain_endpoint(label), forest)
    serve(floor_spec(FLOOR), plain_endpoint(FLOOR), forest, single_only=plan.single_row_concurrency)
    serve(floor_spec(FLOOR_H11, "--http", "h11", "--loop", "asyncio"), plain_endpoint(FLOOR_H11), forest,
          single_only=plan.single_row_concurrency)
    if mlserver is not None:
        for label, batching in ((ML_DEFAULTS, False), (ML_BATCH, True))[1 if args.quick else 0 :]:
            spec = mlserver_spec(label, mlserver, forest, batching=batching)
            serve(spec, lambda s, label=label: [  # type: ignore[misc]
                Endpoint(label + " (V2 REST)", s.port, f"/v2/models/{forest.name}/infer",
                         lambda rows: body_v2(rows, "predict"), first_v2)], forest)  # fmt: skip
    peer_names = [] if args.peers == "none" else [n for n in args.peers.split(",") if n]
    if peer_names:
        from .peers import peer_cases

        for case in peer_cases(peer_names, forest.joblib_file, rows_for(forest.x, 1), progress):
            (BEST_PEERS if case.best else DEFAULT_PEERS).append(case.label)
            serve(case.spec, lambda s, case=case: [case.endpoint()], forest,  # type: ignore[misc]
                  single_only=(1, 16))
    if mlserver is not None:
        DEFAULT_PEERS.append(ML_DEFAULTS + " (V2 REST)")
        BEST_PEERS.append(ML_BATCH + " (V2 REST)")
    # the pipeline: the ratios at c=16, single row, against the peers that matter
    pipe_plan_c = (1, 16)
    pipe_results: list[Measurement] = []
    for spec, endpoints in (
        (capsule_spec(f"{CAPSULE_BATCH} (pipeline)", pipeline.capsule, batching=True),
         lambda s: capsule_endpoints(CAPSULE_BATCH, s, pipeline, every_protocol=False)),
        (capsule_spec(f"{CAPSULE_NOBATCH} (pipeline)", pipeline.capsule, batching=False),
         lambda s: capsule_endpoints(CAPSULE_NOBATCH, s, pipeline, every_protocol=False)),
        (peer_specs(pipeline)[MINIMAL], plain_endpoint(MINIMAL)),
        (peer_specs(pipeline)[GUNICORN], plain_endpoint(GUNICORN)),
    ):  # fmt: skip
        progress(f"starting {spec.label} (pipeline)")
        try:
            with running(spec):
                measure_endpoints(endpoints(spec), pipeline, plan, pipe_results, progress, single_only=pipe_plan_c)
        except (RuntimeError, subprocess.SubprocessError) as exc:
            progress(f"{spec.label} failed: {exc}")
            FAILURES.append(f"{spec.label} (pipeline): {str(exc).splitlines()[0]}")

    # start-up to /v2/health/ready: one more fresh start each, next to the ones above
    for _ in range(0 if args.quick else 1):
        spec = capsule_spec(CAPSULE_NOBATCH, forest.capsule, batching=False)
        with running(spec) as server:
            startup[spec.label].append(server.startup_s)

    from .coldstart import cold_starts

    cold = cold_starts(forest, onnx_note is None, peer_names, mlserver, 1 if args.quick else COLD_STARTS, progress)
    try:
        memory = memory_case(args.quick, progress)
    except RuntimeError as exc:  # the rest of the run stays reported
        progress(f"memory case failed: {exc}")
        memory = {"error": str(exc).splitlines()[0]}
    from ..swap_memory import swap_table

    try:  # tree ensembles with workers, a version swap included (benchmarks/swap_memory.py)
        memory["trees"] = swap_table(["forest"] if args.quick else ["forest", "forest-deep"], args.quick,
                                     free_port(), progress)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        progress(f"tree memory case failed: {exc}")
        FAILURES.append(f"memory with workers on tree ensembles: {str(exc).splitlines()[0]}")
    CALL_COUNTS.clear()
    if not args.quick:
        from .calls import calls_table

        progress("counting the function calls of one prediction (benchmarks/serving/calls.py)")
        CALL_COUNTS.append(calls_table())
    load_after = os.getloadavg()
    elapsed = time.perf_counter() - t0
    return report(args, forest, pipeline, plan, results, pipe_results, floor_rates, startup, memory,
                  onnx_note, load_before, load_after, elapsed, mlserver is not None, cold)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# The report


def find(results: Sequence[Measurement], server: str, rows: int, c: int) -> Measurement | None:
    for m in results:
        if m.server == server and m.rows == rows and m.concurrency == c:
            return m
    return None


def ratio(a: Measurement | None, b: Measurement | None) -> float | None:
    if a is None or b is None or b.rps <= 0:
        return None
    return a.rps / b.rps


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def checks(results: Sequence[Measurement], memory: dict[Any, Any], onnx_note: str | None,
           elapsed: float, quick: bool) -> list[Check]:  # fmt: skip
    batch = find(results, CAPSULE_BATCH + " (V2 REST)", 1, 16)
    nobatch = find(results, CAPSULE_NOBATCH + " (V2 REST)", 1, 16)
    minimal = find(results, MINIMAL, 1, 16)
    flask = find(results, FLASK, 1, 16)
    ml_batch = find(results, ML_BATCH + " (V2 REST)", 1, 16)
    ml_def = find(results, ML_DEFAULTS + " (V2 REST)", 1, 16)
    floor = find(results, FLOOR, 1, 16)
    onnx = find(results, ONNX + " (V2 REST)", 1, 16)
    out: list[Check] = []

    def at_least(goal: str, a: Measurement | None, b: Measurement | None, factor: float, extra: str = "") -> None:
        r = ratio(a, b)
        figures = (
            "not measured"
            if r is None or a is None or b is None
            else f"{fmt_rps(a.rps)} vs {fmt_rps(b.rps)} req/s = {r:.2f}×{extra}"
        )
        out.append(Check(goal, None if r is None else r >= factor, figures))

    at_least("c=16, 1 row: batching ≥ 8× minimal Starlette", batch, minimal, 8)
    at_least("c=16, 1 row: batching ≥ 20× Flask recipe (dev server)", batch, flask, 20)
    at_least("c=16, 1 row: no batching ≥ 0.9× minimal Starlette", nobatch, minimal, 0.9)
    for goal, peer, factor in (
        ("c=16, 1 row, V2 REST: ≥ 2× MLServer with its adaptive batching, lower p99", ml_batch, 2.0),
        ("c=16, 1 row, V2 REST: ≥ 8× MLServer defaults, lower p99", ml_def, 8.0),
    ):
        r = ratio(batch, peer)
        if r is None or batch is None or peer is None:
            out.append(Check(goal, None, "not measured"))
        else:
            holds = r >= factor and batch.p99_ms < peer.p99_ms
            out.append(Check(goal, holds, f"{fmt_rps(batch.rps)} vs {fmt_rps(peer.rps)} req/s = {r:.2f}×; p99 "
                                          f"{fmt_ms(batch.p99_ms)} vs {fmt_ms(peer.p99_ms)} ms"))  # fmt: skip
    if onnx_note is None:
        strict = ratio(onnx, floor)
        at_least("ONNX-served forest, c=16, 1 row ≥ 50% of the HTTP floor (a Starlette constant on uvicorn's "
                 "default pure-Python parser, the configuration of the ~7,500 req/s reference)",
                 onnx, find(results, FLOOR_H11, 1, 16), 0.5,
                 f"; against the floor on httptools + uvloop, the parser capsule serve itself runs on: {_x(strict)}")
    else:
        out.append(Check("ONNX-served forest, c=16, 1 row ≥ 50% of the HTTP floor", None,
                         f"{onnx_note}; HTTP floor "
                         f"{fmt_rps(floor.rps) if floor else '–'} req/s"))  # fmt: skip
    for label in (CAPSULE_BATCH, CAPSULE_NOBATCH):
        ours = find(results, label + " (V2 REST)", 1, 1)
        mini1 = find(results, MINIMAL, 1, 1)
        goal = f"c=1: p50 ≤ minimal Starlette's + 1 ms ({label.removeprefix('capsule serve, ')})"
        if ours is None or mini1 is None:
            out.append(Check(goal, None, "not measured"))
        else:
            out.append(Check(goal, ours.p50_ms <= mini1.p50_ms + 1.0,
                             f"{fmt_ms(ours.p50_ms)} ms vs {fmt_ms(mini1.p50_ms)} ms"))  # fmt: skip
    if "error" in memory:
        out.append(Check("4 workers on brute KNN use ≤ 1.5× one worker's PSS", None, memory["error"]))
    if 1 in memory and 4 in memory:
        one, four = memory[1]["total"], memory[4]["total"]
        out.append(Check(
            f"4 workers on brute KNN {memory['rows']:,}×32 use ≤ 1.5× one worker's PSS",
            four <= 1.5 * one,
            f"{four / 2**20:.0f} MiB vs {one / 2**20:.0f} MiB = {four / one:.2f}×",
        ))  # fmt: skip
    out.append(Check("the whole benchmark, every peer included, finishes in under 30 minutes",
                     elapsed < 1800 if not quick else None,
                     f"{elapsed / 60:.1f} min" + (" (quick run)" if quick else "")))  # fmt: skip
    return out


def round2_checks(results: Sequence[Measurement], cold: Sequence[Any]) -> list[Check]:
    """The round-2 targets: against every peer, the tree floor, gRPC ≥ REST, cold starts."""
    out: list[Check] = []
    ours = find(results, CAPSULE_BATCH + " (V2 REST)", 1, 16)
    for aim, labels, factor in (("≥ 10× each peer in its defaults", DEFAULT_PEERS, 10.0),
                                ("≥ 3× the best peer in its best configuration", BEST_PEERS, 3.0)):
        peers = [m for m in (find(results, label, 1, 16) for label in labels) if m is not None]
        goal = f"c=16, 1 row, forest: capsule serve {aim}, with lower p99"
        if ours is None or not peers:
            out.append(Check(goal, None, "not measured"))
            continue
        worst = max(peers, key=lambda m: m.rps) if factor == 3.0 else min(peers, key=lambda m: ours.rps / m.rps)
        holds = all(ours.rps >= factor * m.rps and ours.p99_ms < m.p99_ms for m in peers)
        out.append(Check(goal, holds, f"closest: {worst.server} {fmt_rps(worst.rps)} req/s, p99 "
                                      f"{fmt_ms(worst.p99_ms)} ms vs ours {fmt_rps(ours.rps)}, "
                                      f"{fmt_ms(ours.p99_ms)} ms = {_x(ratio(ours, worst))}"))
    floor = find(results, FLOOR, 1, 16)
    trees = [m for m in (find(results, CAPSULE_BATCH + " (V2 REST)", 1, 16), find(results, ONNX + " (V2 REST)", 1, 16),
                         find(results, CAPSULE_BATCH + " (plain /predict)", 1, 16),
                         find(results, ONNX + " (plain /predict)", 1, 16)) if m is not None]
    # one process, as the floor is: --workers 2 is not compared with a one-process floor
    best = max(trees, key=lambda m: m.rps) if trees else None
    r = ratio(best, floor)
    out.append(Check("tree ensemble ≥ 0.5× the httptools HTTP floor, c=16, 1 row, our best one-process configuration",
                     None if r is None else r >= 0.5,
                     "not measured" if r is None or best is None or floor is None
                     else f"{best.server}: {fmt_rps(best.rps)} vs {fmt_rps(floor.rps)} req/s = {r:.2f}×"))
    medians = side_by_side_medians()
    goal = "V2 gRPC ≥ V2 REST req/s, c=16, 1 row (h2load vs wrk), median of rounds side by side"
    if medians is None:
        out.append(Check(goal, None, "not measured"))
    else:
        rest_rps, grpc_rps = medians
        out.append(Check(goal, grpc_rps >= rest_rps, f"{fmt_rps(grpc_rps)} vs {fmt_rps(rest_rps)} req/s = "
                                                      f"{grpc_rps / rest_rps:.2f}×"))
    by_label = {c.label: c for c in cold if c.error is None}
    onnx_cold = by_label.get(COLD_ONNX)
    out.append(Check("cold start, ONNX-runtime capsule: ≤ 0.4 s, ≤ 100 MiB RSS, scikit-learn not imported",
                     None if onnx_cold is None else (onnx_cold.median <= 0.4 and onnx_cold.rss_mib <= 100
                                                     and not onnx_cold.sklearn),
                     "not measured" if onnx_cold is None else
                     f"{onnx_cold.median:.2f} s, {onnx_cold.rss_mib:.0f} MiB, scikit-learn "
                     f"{'loaded' if onnx_cold.sklearn else 'not loaded'}"))
    py_cold = by_label.get(COLD_PYTHON)
    out.append(Check("cold start, scikit-learn capsule: ≤ 1.0 s", None if py_cold is None else py_cold.median <= 1.0,
                     "not measured" if py_cold is None else f"{py_cold.median:.2f} s, {py_cold.rss_mib:.0f} MiB"))
    return out


COLD_PYTHON = "capsule serve (scikit-learn capsule)"
"""The default runtime: the capsule's stored flat trees, without importing scikit-learn."""
COLD_PYTHON_OBJECT = "capsule serve --runtime python (scikit-learn capsule, the saved object)"
COLD_ONNX = "capsule serve --runtime onnx"
COLD_ONNX_NO_GRPC = "capsule serve --runtime onnx --no-grpc"


def report(
    args: argparse.Namespace, forest: Model, pipeline: Model, plan: Plan, results: list[Measurement],
    pipe_results: list[Measurement], floor_rates: dict[str, dict[int, float]], startup: dict[str, list[float]],
    memory: dict[Any, Any], onnx_note: str | None, load_before: tuple[float, float, float],
    load_after: tuple[float, float, float], elapsed: float, mlserver: bool, cold: list[Any] | None = None,
) -> str:  # fmt: skip
    import sklearn

    servers = list(dict.fromkeys(m.server for m in results))
    cols = [(1, c) for c in plan.single_row_concurrency] + [(plan.batch_rows, plan.batch_concurrency)]
    head = ["server / protocol"] + [f"{r} row{'s' if r > 1 else ''}, c={c}" for r, c in cols]
    lines = [
        f"## {forest.description}",
        "",
        "req/s (p50 / p99 ms); closed loop: each of *c* connections sends its next request when the "
        "previous one is answered.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += [render_row(s, [find(results, s, r, c) for r, c in cols]) for s in servers]
    merged = [s for s in servers if any(m.server == s and m.rows_per_call is not None for m in results)]
    if merged:
        lines += ["", "Rows per model call in `capsule serve` during each point (from its `/metrics`; more than "
                  "the rows of one request means that batches merged):", "",
                  "| server / protocol | " + " | ".join(head[1:]) + " |", "|" + "---|" * len(head)]  # fmt: skip
        for s in merged:
            calls = [find(results, s, r, c) for r, c in cols]
            lines.append("| " + " | ".join([s, *(
                f"{m.rows_per_call:.1f}" if m is not None and m.rows_per_call is not None else "–" for m in calls
            )]) + " |")  # fmt: skip
    lines += [
        "",
        f"In-process `predict` (the compute floor, one thread): {floor_rates['model'][1]:,.0f} calls/s on 1 row, "
        f"{floor_rates['model'][100]:,.0f} calls/s on 100 rows ({floor_rates['model'][100] * 100:,.0f} rows/s). "
        "Through the predictor `capsule serve` calls, which sums the forest's trees directly instead of through "
        "scikit-learn's per-tree joblib dispatch (same bits; see docs/serving.md): "
        f"{floor_rates['predictor'][1]:,.0f} calls/s on 1 row, {floor_rates['predictor'][100]:,.0f} on 100 rows.",
        "",
        "### Ratios of `capsule serve` with batching (V2 REST) to each peer, 1 row, c=16",
        "",
        "| peer | req/s | ratio | p99 ms (ours / theirs) |",
        "|---|---|---|---|",
    ]
    ours = find(results, CAPSULE_BATCH + " (V2 REST)", 1, 16)
    for s in servers:
        peer = find(results, s, 1, 16)
        if peer is None or ours is None or s == ours.server:
            continue
        lines.append(f"| {s} | {fmt_rps(peer.rps)} | {_x(ratio(ours, peer))} | "
                     f"{fmt_ms(ours.p99_ms)} / {fmt_ms(peer.p99_ms)} |")  # fmt: skip
    pipe_servers = list(dict.fromkeys(m.server for m in pipe_results))
    lines += [
        "",
        f"## {pipeline.description}",
        "",
        "| server / protocol | 1 row, c=1 | 1 row, c=16 |",
        "|---|---|---|",
    ]
    lines += [render_row(s, [find(pipe_results, s, 1, 1), find(pipe_results, s, 1, 16)]) for s in pipe_servers]
    lines += ["", "## Start-up: process start to the first 200 on `/v2/health/ready`", "",
              "| server | seconds (each fresh start) |", "|---|---|"]  # fmt: skip
    for label, values in startup.items():
        if label in (CAPSULE_NOBATCH, CAPSULE_BATCH, ML_DEFAULTS, ML_BATCH, ONNX):
            lines.append(f"| {label} | {', '.join(f'{v:.2f}' for v in values)} |")
    lines += ["", "Other servers' time to their first answered prediction: "
              + "; ".join(f"{k} {', '.join(f'{v:.2f}' for v in vals)} s" for k, vals in startup.items()
                          if k not in (CAPSULE_NOBATCH, CAPSULE_BATCH, ML_DEFAULTS, ML_BATCH, ONNX)) + "."]  # fmt: skip
    if 1 in memory and 4 in memory:
        lines += [
            "",
            f"## Memory: `capsule serve --workers N` on brute KNN {memory['rows']:,}×32 "
            f"({memory['array_mib']:.0f} MiB training array)",
            "",
            "| workers | PSS of every process, MiB | total PSS | capsule file resident per worker, MiB |",
            "|---|---|---|---|",
        ]
        for n in (1, 4):
            per = memory[n]["processes"]
            touched = ", ".join(f"{v / 2**20:.0f}" for v in memory[n]["touched"].values())
            lines.append(f"| {n} | {', '.join(f'{v / 2**20:.0f}' for v in per.values())} | "
                         f"{memory[n]['total'] / 2**20:.0f} MiB | {touched} |")  # fmt: skip
        lines += ["", "With 4 workers the first figure is the parent (it loads the model, then forks), the "
                  "others the workers, counted once all of them are forked. Requests were sent until every "
                  "worker had read the array, or 40 rounds of 16: the last column is each worker's resident "
                  "pages of the capsule file, 0 by default, where the parent reads the array into its own "
                  "memory before it forks and the workers share those pages; with `MODELCAPSULE_MAP_FILES=1` "
                  "the array is mapped from the file instead and the column shows it."]  # fmt: skip
    if "trees" in memory:
        lines += ["", "## Memory with workers on tree ensembles, a version swap included", "",
                  "`capsule serve --workers N` on a repository (`benchmarks/swap_memory.py`): the total PSS of the "
                  "server's processes serving version 1, then after version 2 (another fit, same size) replaced "
                  "it in every worker. `forest` is the benchmark's 100-tree forest (depth 10); `forest-deep` "
                  "the same without a depth limit. Versions loaded at start are loaded once in the parent and "
                  "shared by the forked workers; a version that arrives later is loaded by each worker.", "",
                  memory["trees"]]
    if SIDE_BY_SIDE:
        lines += ["", "## V2 gRPC and V2 REST side by side", "",
                  f"`{CAPSULE_BATCH}`, c=16, 1 row, after its points above: {len(SIDE_BY_SIDE)} rounds, each "
                  f"a V2 REST point then a V2 gRPC point of {max(1.0, plan.seconds / 2):g} s (after "
                  f"{plan.warmup:g} s of warm-up), so that both protocols meet the same minutes of the machine. "
                  "The gRPC ≥ REST target compares the medians of the rounds.", "", render_side_by_side()]
    if cold:
        from .coldstart import render_cold_starts

        lines += ["", "## Cold start: process start to the first answered 1-row prediction", "",
                  render_cold_starts(cold)]
    if CALL_COUNTS:
        lines += ["", "## Function calls of one prediction", "",
                  "Calls made by one `predict_proba` of each way to call a tree ensemble (Python and C "
                  "function calls, counted with `sys.setprofile` after one warm call; `benchmarks/serving/"
                  "calls.py`): counts, not times, so the same on any machine with the same packages. The "
                  "last line of each model is the candidate the tree shortcut chose at load (by timing).", "",
                  CALL_COUNTS[0]]
    if FAILURES:
        lines += ["", "## Not measured in this run", "", *(f"- {f}" for f in FAILURES)]
    lines += ["", "## Acceptance", "", render_checks(checks(results, memory, onnx_note, elapsed, args.quick)
                                                     + round2_checks(results, cold or []))]
    mode = "quick smoke run" if args.quick else "full run"
    header = [
        "# Serving benchmark",
        "",
        f"`python -m benchmarks.serving` ({mode}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, scikit-learn {sklearn.__version__}; "
        f"{elapsed / 60:.1f} minutes. Load average (1/5/15 min) {'/'.join(f'{v:.1f}' for v in load_before)} "
        f"before and {'/'.join(f'{v:.1f}' for v in load_after)} after: the machine was "
        + ("shared with other work, so absolute figures are lower than on an idle machine; the ratios come from "
           "the same run." if load_before[0] > 1.5 else "otherwise idle; the ratios come from the same run."),
        "",
        f"Every point: {plan.warmup:g} s warm-up, then {plan.seconds:g} s measured. HTTP load from `wrk -t1 "
        "--latency` with a Lua script for the POST body; gRPC load from `python -m benchmarks.grpc_load` "
        "(h2load, C, one thread, one HTTP/2 connection with *c* streams, a prebuilt `ModelInfer` message with "
        "`raw_input_contents`; one grpcio call checks the answer first). The load generator always runs on the "
        "same cores as the server. Peers run in their own venvs (benchmarks/serving/venvs.py) with the same "
        "scikit-learn, joblib and numpy, on the same joblib file; each answer is checked before timing. "
        f"Batching settings, ours and MLServer's: max batch size {BATCH_SIZE}, max wait {BATCH_WAIT_MS:g} ms. "
        "V2 bodies ask for the `predict` output only (what the Flask and Starlette recipes compute). "
        "`capsule serve` runs with `--no-access-log`, uvicorn with `--no-access-log`; MLServer with its "
        "settings untouched except the ports"
        + ("" if mlserver else " (MLServer could not be installed in this run: its rows are empty)")
        + ".",
        "",
    ]
    return "\n".join(header + lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short points, fewer concurrencies: a smoke run")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per load point")
    parser.add_argument("--no-mlserver", action="store_true", help="skip MLServer (no venv is created)")
    parser.add_argument("--peers", default="mlflow,bentoml,litserve,ray,kserve",
                        help="comma-separated peers from benchmarks.serving.peers, or 'none'")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks-serving.md")
    args = parser.parse_args(argv)

    def on_signal(signum: int, _frame: Any) -> None:
        stop_all()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    try:
        text = run(args)
    finally:
        stop_all()
    print(text)
    output = args.output if not args.quick else WORK / "benchmarks-serving-quick.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(f"written to {output}")


if __name__ == "__main__":
    main()
