"""Where a safe load's time goes: each stage of ``mc.load``, timed in a fresh process.

The loader's own functions are wrapped with timers (wall and CPU time of the thread that runs them), so
the breakdown shows which stages sit on the main thread's path and which run beside it on the hash
thread. Used by :mod:`benchmarks.load` for the forest; runnable alone on any capsule:

    python -m benchmarks.load_stages PATH [--repeat N] [--every-check]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

STAGES = r"""
import functools, gc, importlib, json, sys, threading, time
import numpy as np, sklearn.ensemble, sklearn.neighbors
import modelcapsule as mc
import modelcapsule.security.defaults as td; td.default_names()
import modelcapsule.formats.safepickle, modelcapsule.security.pickle_rules, modelcapsule.frameworks as fw
for module in fw.BUILTIN_MODULES: __import__(module)
from modelcapsule.core import container
from modelcapsule.formats import safepickle
load = importlib.import_module("modelcapsule.load")
times = {}

def timed(owner, attr, label):
    original = getattr(owner, attr)
    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            side = "main" if threading.current_thread() is threading.main_thread() else "hash thread"
            w, c = times.get((side, label), (0.0, 0.0))
            times[(side, label)] = (w + time.perf_counter() - wall, c + time.thread_time() - cpu)
    setattr(owner, attr, wrapper)

timed(load, "open_capsule", "open the capsule, parse the manifest")
timed(container.PendingBytes, "fill", "read members into private memory")
timed(load.CapsuleReader, "close", "close the capsule (free the private copies)")
timed(load.CapsuleReader, "release_file", "detach the model from the file, end the read lease")
timed(container, "sha256_of", "SHA-256 of every member")
timed(safepickle.SafePickleFormat, "audit", "dry run of the pickle stream (audit)")
timed(safepickle.SafePickleFormat, "load", "restricted unpickling (construct)")
timed(load, "validate_model", "state checks (tree indices...)")
timed(load, "framework_of", "framework of the loaded object")
timed(load, "_check_sample", "golden sample")
gc.collect()
wall, cpu = time.perf_counter(), time.process_time()
mc.load(sys.argv[1])
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
rows = [[side, label, w, c] for (side, label), (w, c) in times.items()]
print(json.dumps({"total": [wall, cpu], "rows": rows}))
"""


def measure(path: Path, repeat: int, env: dict[str, str]) -> dict[str, Any]:
    """Median wall and CPU time of each stage over ``repeat`` fresh processes (after one warm-up)."""
    env = dict(env, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]))

    def once() -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-c", STAGES, str(path)], capture_output=True, text=True,
                             env=env, check=True)
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result

    once()
    runs = [once() for _ in range(repeat)]
    stages: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for run in runs:
        for side, label, wall, cpu in run["rows"]:
            stages.setdefault((side, label), []).append((wall, cpu))
    return {
        "total": (statistics.median(r["total"][0] for r in runs), statistics.median(r["total"][1] for r in runs)),
        "stages": {key: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
                   for key, v in stages.items()},
    }


def render(results: dict[str, dict[str, Any]]) -> str:
    """One table: a row per stage, a wall/CPU column pair per kind of load."""
    kinds = list(results)
    keys: list[tuple[str, str]] = []
    for result in results.values():
        keys += [k for k in result["stages"] if k not in keys]
    keys.sort(key=lambda k: k[0] != "main")
    head = " | ".join(f"{kind}: wall | CPU" for kind in kinds)
    lines = [f"| thread | stage | {head} |", "|---|---|" + "---|---|" * len(kinds)]
    for side, label in keys:
        cells = []
        for kind in kinds:
            wall, cpu = results[kind]["stages"].get((side, label), (None, None))
            cells += ["–", "–"] if wall is None else [f"{wall * 1000:.1f} ms", f"{cpu * 1000:.1f} ms"]
        lines.append(f"| {side} | {label} | {' | '.join(cells)} |")
    totals = []
    for kind in kinds:
        wall, cpu = results[kind]["total"]
        totals += [f"**{wall * 1000:.1f} ms**", f"{cpu * 1000:.1f} ms (both threads)"]
    lines.append(f"| | **the whole load** | {' | '.join(totals)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--every-check", action="store_true", help="no record of passed checks is used")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.every_check:
        env["MODELCAPSULE_CHECK_CACHE"] = "off"
    print(render({"load": measure(args.path, args.repeat, env)}))


if __name__ == "__main__":
    main()
