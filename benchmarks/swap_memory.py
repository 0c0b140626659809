"""What a version swap costs in memory with ``capsule serve --workers N``.

    python -m benchmarks.swap_memory            # 1M×32 KNN and a 100-tree forest, 1 and 4 workers
    python -m benchmarks.swap_memory --quick    # smaller models
    python -m benchmarks.swap_memory --kinds forest,forest-deep   # tree ensembles only

``forest-deep`` is a 100-tree forest without a depth limit (tens of MiB of node arrays), where what
each worker holds of its own is visible: the trees' node arrays and the flat arrays the tree shortcut
builds from them (frameworks/tree_runtime.py; built at load, so shared by forked workers for the
versions loaded at start, and built by each worker for a version that arrives later).

Models loaded at start are loaded once, in the parent, and shared by the forked workers; a version that
arrives later is loaded by every worker on its own. How much of it is shared then depends on the
format: arrays stored out of band (safepickle's raw members) are memory-mapped from the capsule file,
so every worker maps the same page-cache pages; tree ensembles copy their node arrays on load, so each
worker holds its own copy. This measures both: the total PSS of the server's processes serving version
1, then after version 2 (same size) has replaced it in every worker. Writes a table to stdout.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.serving import ROOT, process_tree, pss_bytes

WORK = ROOT / "benchmarks" / ".work" / "swap-memory"
SETTLE_SECONDS = 3.0


def make_versions(kind: str, quick: bool) -> tuple[Path, Path, float]:
    """Two capsules of one model (different fits, same size) and the size of the model's main arrays."""
    import modelcapsule as mc

    rng = np.random.default_rng(0)
    paths = []
    if kind == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        rows = 100_000 if quick else 1_000_000
        for seed in (1, 2):
            x = np.random.default_rng(seed).normal(size=(rows, 32))
            model = KNeighborsClassifier(algorithm="brute").fit(x, rng.integers(0, 2, rows))
            path = WORK / f"knn-{seed}.capsule"
            mc.save(model, path, sample=x[:5], name="m", source=False, overwrite=True)
            paths.append(path)
        return paths[0], paths[1], rows * 32 * 8 / 2**20
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(n_samples=5_000 if quick else 20_000, n_features=20, random_state=0)
    arrays = 0
    depth = None if kind == "forest-deep" else 10
    for seed in (1, 2):
        forest = RandomForestClassifier(n_estimators=30 if quick else 100, max_depth=depth, random_state=seed,
                                        n_jobs=-1).fit(x, y)
        forest.n_jobs = None
        arrays = sum(e.tree_.__getstate__()["nodes"].nbytes + e.tree_.value.nbytes for e in forest.estimators_)
        path = WORK / f"{kind}-{seed}.capsule"
        mc.save(forest, path, sample=x[:5], name="m", source=False, overwrite=True)
        paths.append(path)
    return paths[0], paths[1], arrays / 2**20


def total_pss(pid: int) -> tuple[int, int]:
    """PSS of the server process itself and of its workers (with one worker, the server is the worker)."""
    pids = process_tree(pid)
    parent = pss_bytes(pid)
    return parent, sum(pss_bytes(p) for p in pids[1:])


def wait_ready(port: int, path: str, timeout: float = 300.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{path} not ready after {timeout} s")


def measure(kind: str, workers: int, v1: Path, v2: Path, port: int) -> tuple[tuple[int, int], tuple[int, int]]:
    repo = WORK / f"repo-{kind}-{workers}"
    shutil.rmtree(repo, ignore_errors=True)
    (repo / "m" / "1").mkdir(parents=True)
    shutil.copyfile(v1, repo / "m" / "1" / "model.capsule")
    server = subprocess.Popen(
        [sys.executable, "-m", "modelcapsule", "serve", str(repo), "--workers", str(workers), "--no-grpc",
         "--port", str(port), "--poll-seconds", "0.5", "--no-access-log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(port, "/v2/models/m/versions/1/ready")
        time.sleep(SETTLE_SECONDS)
        before = total_pss(server.pid)
        staging = repo / "m" / ".tmp-2"
        staging.mkdir()
        shutil.copyfile(v2, staging / "model.capsule")
        staging.rename(repo / "m" / "2")
        for _ in range(workers * 8):  # connections land on every worker: each must answer version 2
            wait_ready(port, "/v2/models/m/versions/2/ready")
        time.sleep(SETTLE_SECONDS + 2 * workers)  # every worker's poll has loaded it and dropped version 1
        after = total_pss(server.pid)
        return before, after
    finally:
        server.terminate()
        server.wait(timeout=60)


def _mib(pss: tuple[int, int]) -> str:
    server, workers = pss
    if not workers:
        return f"{server / 2**20:.0f} MiB"
    return f"{(server + workers) / 2**20:.0f} MiB ({server / 2**20:.0f} + {workers / 2**20:.0f})"


def swap_table(kinds: list[str], quick: bool, port: int, progress: Callable[[str], None] = print) -> str:
    """The table of :func:`measure` for every kind with 1 and 4 workers (``progress`` gets each row)."""
    WORK.mkdir(parents=True, exist_ok=True)
    rows = ["| model | main arrays | workers | PSS serving v1 (server + workers) | after the swap to v2 | growth |",
            "|---|---|---|---|---|---|"]
    for kind in kinds:
        v1, v2, arrays_mib = make_versions(kind, quick)
        for workers in (1, 4):
            before, after = measure(kind, workers, v1, v2, port)
            growth = (sum(after) - sum(before)) / 2**20
            rows.append(f"| {kind} | {arrays_mib:.1f} MiB | {workers} | {_mib(before)} | {_mib(after)} | "
                        f"{growth:+.0f} MiB |")
            progress(rows[-1])
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--kinds", default="knn,forest", help="comma-separated: knn, forest, forest-deep")
    args = parser.parse_args()
    print(swap_table(args.kinds.split(","), args.quick, args.port, lambda row: print(row, flush=True)))


if __name__ == "__main__":
    main()
