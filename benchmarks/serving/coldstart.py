"""Cold start: process start → first answered prediction, and the memory the server then holds.

Each server is started fresh as users run it, gRPC on (the ONNX capsule also with ``--no-grpc``); the
OS page cache is warm (the model file and the packages were read before, as on any machine that
restarts a service), and a 1-row prediction request is sent every 5 ms from the moment the process
is spawned; the time of the first correct answer is the cold start. Each start waits for an idle
machine first (:func:`wait_until_idle`): the servers of the load points before it, peers' included,
can leave processes behind that are still exiting (Ray's daemons, worker pools), and a start measured
against them measures them.
Then, still before any load: the resident memory of the server's main process (``VmRSS``), the total
PSS of its process tree, and whether scikit-learn and SciPy are in the process (their extension
modules in ``/proc/PID/maps``: deterministic, unlike the times).

The package's bytecode is compiled first, as ``pip install`` does: a checkout run with
``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile every module of modelcapsule from source at each
start (~0.2 s of CPU, measured), a cost no installed server pays.

Targets (docs/benchmarks-serving.md): an ONNX-runtime capsule ≤ 0.4 s and ≤ 100 MiB without
importing scikit-learn; a scikit-learn capsule ≤ 1.0 s.
"""

from __future__ import annotations

import compileall
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .core import (
    COLD_ONNX,
    COLD_ONNX_NO_GRPC,
    COLD_PYTHON,
    COLD_PYTHON_OBJECT,
    ROOT,
    WORK,
    Endpoint,
    Spec,
    body_plain,
    body_v2,
    capsule_spec,
    check_answer,
    first_plain,
    first_v2,
    mlserver_spec,
    process_tree,
    pss_bytes,
    ready_post,
    rows_for,
    running,
)

__all__ = ["ColdStart", "cold_start", "cold_starts", "render_cold_starts"]

MIB = 1 << 20


@dataclass
class ColdStart:
    label: str
    seconds: list[float]
    rss_mib: float
    pss_mib: float
    sklearn: bool
    scipy: bool
    error: str | None = None
    busy: float = 0.0
    """The busiest the machine was (share of all cores) in the second before any of the starts."""
    retried: int = 0
    """Starts that failed (say, their port was taken before they bound it) and were made again."""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def maps_mention(pid: int, needle: str) -> bool:
    """Whether any process of the tree has a file under a ``needle`` package directory mapped."""
    for p in process_tree(pid):
        try:
            if f"/{needle}/" in Path(f"/proc/{p}/maps").read_text():
                return True
        except OSError:
            continue
    return False


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from ``/proc/stat``."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


IDLE_BUSY = 0.10
"""A machine at most this busy (share of all cores, over one second) counts as idle for a cold start."""


def wait_until_idle(limit_s: float = 30.0) -> float:
    """Wait until one second passes with the machine at most :data:`IDLE_BUSY` busy (at most ``limit_s``);
    return the busy share of that last second, which the table reports."""
    deadline = time.monotonic() + limit_s
    while True:
        busy0, total0 = cpu_times()
        time.sleep(1.0)
        busy1, total1 = cpu_times()
        busy = (busy1 - busy0) / max(1, total1 - total0)
        if busy <= IDLE_BUSY or time.monotonic() > deadline:
            return busy


def compile_bytecode() -> None:
    """Compile ``src/modelcapsule`` to ``__pycache__`` as an installed package has it (see module doc)."""
    compileall.compile_dir(ROOT / "src" / "modelcapsule", quiet=1)


def cold_start(make: Callable[[], tuple[Spec, Endpoint]], rows: list[list[float]], expected: object,
               repeats: int) -> ColdStart:
    """``repeats`` fresh starts of the server ``make()`` builds (new ports each time); memory from the last."""
    seconds: list[float] = []
    label = "?"
    rss = pss = 0.0
    sklearn = scipy = False
    retried = 0
    busy = 0.0
    try:
        for _ in range(repeats):
            for attempt in (1, 2):
                busy = max(busy, wait_until_idle())
                spec, endpoint = make()
                label = spec.label
                try:
                    with running(spec) as server:
                        check_answer(endpoint, rows, expected)
                        seconds.append(server.startup_s)  # counted once the answer is right
                        pid = server.process.pid
                        rss = rss_bytes(pid) / MIB
                        pss = sum(pss_bytes(p) for p in process_tree(pid)) / MIB
                        sklearn, scipy = maps_mention(pid, "sklearn"), maps_mention(pid, "scipy")
                    break
                except (RuntimeError, OSError):
                    # a port picked free can be taken before the server binds it (Ray's own services pick
                    # ports too): one more start on new ports, counted in the table
                    if attempt == 2:
                        raise
                    retried += 1
    except (RuntimeError, OSError) as exc:
        return ColdStart(label, seconds, rss, pss, sklearn, scipy, str(exc).splitlines()[0][:200], busy)
    return ColdStart(label, seconds, rss, pss, sklearn, scipy, busy=busy, retried=retried)


def render_cold_starts(results: list[ColdStart]) -> str:
    lines = ["| server | process start → first answered prediction, s (each start) | main process RSS, MiB "
             "| PSS of all its processes, MiB | scikit-learn / SciPy loaded "
             "| machine busy before a start (the most of its starts) |",
             "|---|---|---|---|---|---|"]
    for r in results:
        if r.error is not None:
            lines.append(f"| {r.label} | failed: {r.error} | – | – | – | {r.busy:.0%} |")
            continue
        times = ", ".join(f"{s:.2f}" for s in r.seconds)
        if r.retried:
            times += f"; {r.retried} failed start(s) made again"
        lines.append(f"| {r.label} | **{r.median:.2f}** ({times}) | {r.rss_mib:.0f} | {r.pss_mib:.0f} | "
                     f"{'yes' if r.sklearn else 'no'} / {'yes' if r.scipy else 'no'} | {r.busy:.0%} |")
    return "\n".join(lines)


def cold_starts(forest: Any, onnx: bool, peer_names: list[str], mlserver: Path | None, repeats: int,
                progress: Callable[[str], None]) -> list[ColdStart]:
    """``capsule serve`` (scikit-learn capsule; ONNX runtime) and every peer in its defaults."""
    compile_bytecode()
    rows = rows_for(forest.x, 1)
    expected = forest.estimator.predict(forest.x[:1])[0]

    def capsule(label: str, path: Path, *extra: str, grpc: bool = True) -> Callable[[], tuple[Spec, Endpoint]]:
        def make() -> tuple[Spec, Endpoint]:  # gRPC on, as `capsule serve` runs unless told otherwise
            spec = capsule_spec(label, path, batching=True, grpc=grpc, extra=list(extra))
            spec.ready = ready_post("/predict", body_plain(rows))  # the first answered prediction
            return spec, Endpoint(label, spec.port, "/predict", body_plain, first_plain)
        return make

    makers = [capsule(COLD_PYTHON, forest.capsule),
              capsule(COLD_PYTHON_OBJECT, forest.capsule, "--runtime", "python")]
    if onnx:
        makers.append(capsule(COLD_ONNX, WORK / "forest-onnx.capsule", "--runtime", "onnx"))
        makers.append(capsule(COLD_ONNX_NO_GRPC, WORK / "forest-onnx.capsule", "--runtime", "onnx", grpc=False))
    if peer_names:
        from .peers import PEERS
        from .venvs import ensure_venv

        for name in peer_names:
            bin_dir = ensure_venv(name, progress)
            if bin_dir is None:
                continue

            def make(name: str = name, bin_dir: Path = bin_dir) -> tuple[Spec, Endpoint]:
                case = PEERS[name](bin_dir, forest.joblib_file, False, rows)
                return case.spec, case.endpoint()
            makers.append(make)
    if mlserver is not None:
        def make_mlserver() -> tuple[Spec, Endpoint]:
            spec = mlserver_spec("MLServer 1.7.1, defaults", mlserver, forest, batching=False)
            path = f"/v2/models/{forest.name}/infer"
            spec.ready = ready_post(path, body_v2(rows, "predict"))
            return spec, Endpoint(spec.label, spec.port, path, lambda r: body_v2(r, "predict"), first_v2)
        makers.append(make_mlserver)
    results = []
    for maker in makers:
        results.append(cold_start(maker, rows, expected, repeats))
        progress(f"cold start of {results[-1].label}: {results[-1].seconds} {results[-1].error or ''}")
    return results
