"""Registry benchmark: 2,000 versions across 40 models on SQLite and PostgreSQL, against MLflow's model
registry (MlflowClient on a SQLite store) on the same data, in the same run.

    python -m benchmarks.registry             # full run, writes docs/benchmarks-registry.md
    python -m benchmarks.registry --quick     # 400 versions, writes benchmarks/.work/registry/…-quick.md

Measured per backend:
- full registrations/s: ``Registry.register`` end to end (copy + hash, every load check, blob rename,
  rows) on distinct small capsules;
- row registrations/s: the 2,000 versions written through the same transaction as registration
  (``Store.add_version``: lock the model row, number, insert version, tags, event, alias) without re-running
  the load checks on 2,000 distinct files: the figure comparable to MLflow's ``create_model_version``,
  which checks nothing;
- ``get("name@champion")`` p50/p99 in-process, against ``get_model_version_by_alias``;
- tag search (``search(tags={"team": …}, max_results=100)``) p50/p99, against
  ``search_model_versions("tags.team = '…'", max_results=100)``.
Targets (issue #15, which measures alias lookups by p50/p99 and tag search by p99): alias lookup p99 ≤ 2 ms
in-process; tag search p99 ≥ 5× faster than MLflow's. The p50 ratio is printed too.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work" / "registry"
TEAMS = 20


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def make_capsules(n: int, where: Path) -> list[Path]:
    import numpy as np
    from sklearn.linear_model import LinearRegression

    import modelcapsule as mc

    where.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(0).normal(size=(50, 3))
    paths = []
    for i in range(n):
        path = where / f"m{i}.capsule"
        if not path.exists():
            mc.save(LinearRegression().fit(x, x @ [1.0, 2.0, float(i)]), path, sample=x[:3])
        paths.append(path)
    return paths


def load_postgres_helper() -> Any:
    spec = importlib.util.spec_from_file_location("mc_bench_postgres", ROOT / "tests" / "registry" / "postgres.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_modelcapsule(label: str, url: str, store: Path, capsules: list[Path], n_models: int, n_versions: int,
                       lookups: int, searches: int) -> dict[str, Any]:
    from modelcapsule.registry import Registry
    from modelcapsule.registry.actors import Actor
    from modelcapsule.registry.local import LocalRegistry
    from modelcapsule.registry.store import NewVersion

    reg = Registry(url, store=store, actor=Actor("bench", "admin"))
    backend = reg.backend
    assert isinstance(backend, LocalRegistry)
    start = time.perf_counter()
    for i, path in enumerate(capsules):
        reg.register("full-registration", path, tags={"team": f"t{i % TEAMS}"})
    full_rate = len(capsules) / (time.perf_counter() - start)
    template = reg.get("full-registration/1")
    per_model = n_versions // n_models
    start = time.perf_counter()
    for v in range(per_model):
        for m in range(n_models):
            name = f"model-{m:02d}"
            digest = "sha256:" + hashlib.sha256(f"{name}/{v}".encode()).hexdigest()
            new = NewVersion(digest=digest, size=template.size, description="", parent=None,
                             tags={"team": f"t{(m * per_model + v) % TEAMS}", "stage": "prod" if v % 5 == 0 else "dev"},
                             trusted=[], audit=template.audit, manifest=template.manifest)
            backend.store.add_version(backend.actor, name, new, alias="champion" if v == per_model // 2 else None)
    row_rate = n_versions / (time.perf_counter() - start)
    rng = random.Random(1)
    names = [f"model-{m:02d}" for m in range(n_models)]
    for name in names[:5]:  # warm
        reg.get(f"{name}@champion")
    get_times = timed(lambda: reg.get(f"{rng.choice(names)}@champion"), lookups)
    search_times = timed(lambda: reg.search(tags={"team": f"t{rng.randrange(TEAMS)}"}, max_results=100), searches)
    found = len(reg.search(tags={"team": "t3"}, max_results=100))
    reg.close()
    return {"label": label, "full_rate": full_rate, "row_rate": row_rate, "get": percentiles(get_times),
            "search": percentiles(search_times), "found": found}


def bench_mlflow(where: Path, n_models: int, n_versions: int, lookups: int, searches: int) -> dict[str, Any]:
    import logging

    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    uri = f"sqlite:///{where / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    names = [f"model-{m:02d}" for m in range(n_models)]
    for name in names:
        client.create_registered_model(name)
    per_model = n_versions // n_models
    start = time.perf_counter()
    for v in range(per_model):
        for m, name in enumerate(names):
            mv = client.create_model_version(name, source=str(where / f"{name}-{v}"), tags={
                "team": f"t{(m * per_model + v) % TEAMS}", "stage": "prod" if v % 5 == 0 else "dev"})
            if v == per_model // 2:
                client.set_registered_model_alias(name, "champion", mv.version)
    row_rate = n_versions / (time.perf_counter() - start)
    rng = random.Random(1)
    for name in names[:5]:
        client.get_model_version_by_alias(name, "champion")
    get_times = timed(lambda: client.get_model_version_by_alias(rng.choice(names), "champion"), lookups)
    search_times = timed(lambda: client.search_model_versions(f"tags.team = 't{rng.randrange(TEAMS)}'",
                                                              max_results=100), searches)
    found = len(client.search_model_versions("tags.team = 't3'", max_results=100))
    import mlflow

    return {"label": f"MLflow {mlflow.__version__} (SQLite store)", "full_rate": None, "row_rate": row_rate,
            "get": percentiles(get_times), "search": percentiles(search_times), "found": found}


def render(results: list[dict[str, Any]], args: argparse.Namespace, notes: list[str]) -> str:
    lines = [
        "# Registry benchmark", "",
        f"`python -m benchmarks.registry{' --quick' if args.quick else ''}`: {args.versions:,} versions across "
        f"{args.models} models; {args.full} full registrations; {args.lookups:,} alias lookups and {args.searches} "
        f"tag searches per backend (max_results=100, {TEAMS} team tags). Machine: {os.cpu_count()} cores, shared; "
        f"load average at the end of the run {os.getloadavg()[0]:.1f} (p99s above ~2 ms mostly measure other "
        "processes' time slices when it exceeds the core count).",
        "",
        "| backend | full registrations/s | row registrations/s | `get(name@alias)` p50 / p99 | tag search p50 / p99 "
        "| hits |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        full = "—" if r["full_rate"] is None else f"{r['full_rate']:.1f}"
        lines.append(f"| {r['label']} | {full} | {r['row_rate']:,.0f} | {r['get'][0]:.2f} / {r['get'][1]:.2f} ms | "
                     f"{r['search'][0]:.2f} / {r['search'][1]:.2f} ms | {r['found']} |")
    lines.append("")
    mlflow = next((r for r in results if r["label"].startswith("MLflow")), None)
    for r in results:
        if r is mlflow:
            continue
        target = "holds" if r["get"][1] <= 2.0 else "MISSED"
        line = f"- {r['label']}: alias lookup p99 {r['get'][1]:.2f} ms (target ≤ 2 ms: {target})"
        if mlflow is not None:
            p50, p99 = (mlflow["search"][i] / r["search"][i] for i in (0, 1))
            verdict = "holds" if p99 >= 5 else "MISSED"  # the issue measures tag search by its p99
            line += (f"; tag search p99 {p99:.1f}× faster than MLflow's (target ≥ 5×: {verdict}; at p50, which the "
                     f"target does not name, {p50:.1f}×)")
        lines.append(line)
    lines += ["", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="400 versions, fewer samples; output in .work/")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args(argv)
    args.versions, args.models = (400, 40) if args.quick else (2000, 40)
    args.full, args.lookups, args.searches = (10, 300, 50) if args.quick else (40, 2000, 200)
    shutil.rmtree(WORK / "run", ignore_errors=True)
    (WORK / "run").mkdir(parents=True)
    os.environ.setdefault("MODELCAPSULE_CACHE_DIR", str(WORK / "cache"))
    capsules = make_capsules(args.full, WORK / "capsules")
    results, notes = [], []
    print("SQLite …", flush=True)
    results.append(bench_modelcapsule("modelcapsule, SQLite (embedded)", f"sqlite:///{WORK / 'run' / 'reg.db'}",
                                      WORK / "run" / "blobs-sqlite", capsules, args.models, args.versions,
                                      args.lookups, args.searches))
    if not args.no_postgres:
        helper = load_postgres_helper()
        bindir, why = helper.find_bindir()
        if bindir is None:
            notes.append(f"PostgreSQL skipped: {why}")
        else:
            print("PostgreSQL …", flush=True)
            server = helper.PostgresServer(bindir).start()
            try:
                results.append(bench_modelcapsule("modelcapsule, PostgreSQL 15 (localhost, fsync off)",
                                                  server.create_database(), WORK / "run" / "blobs-pg", capsules,
                                                  args.models, args.versions, args.lookups, args.searches))
            finally:
                server.stop()
    if not args.no_mlflow:
        try:
            print("MLflow …", flush=True)
            results.append(bench_mlflow(WORK / "run", args.models, args.versions, args.lookups, args.searches))
        except ImportError as exc:
            notes.append(f"MLflow column left empty: {exc}")
    notes.append("Full registrations run every load check (structure, hashes, audit, construction, golden sample) "
                 "and write the blob; MLflow's create_model_version records a row and checks nothing, so it "
                 "compares with the row figure.")
    notes.append("The 2,000 versions are written through Store.add_version, the transaction registration commits "
                 "(model row locked, number, version, tags, event, alias), with synthetic digests: re-running the "
                 "load checks on 2,000 distinct files would measure the checks, already measured in the first column.")
    text = render(results, args, notes)
    print(text)
    out = WORK / "benchmarks-registry-quick.md" if args.quick else ROOT / "docs" / "benchmarks-registry.md"
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
