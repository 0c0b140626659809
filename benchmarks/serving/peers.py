"""The servers a scikit-learn user would pick instead of ``capsule serve``, each in its own venv.

Each peer runs twice: in its **defaults** (what its quick-start does) and in its **best**
configuration for a 1-row-per-request tree model on 2 cores (its own adaptive batching at our
settings, 32 rows / 2 ms, where it has one; else one worker per core). Every peer loads the same
joblib file (or, for MLflow, a model saved by MLflow from that file) and is asked for the same rows;
its first answer is checked against the model before any load is timed (``core.check_answer``).

| peer | defaults | best configuration |
|---|---|---|
| ``mlflow models serve`` (MLflow 3.x) | ``--env-manager local`` | ``--workers 2`` (it has no batching) |
| BentoML 1.4 | ``@bentoml.api`` | ``batchable=True, max_batch_size=32`` (``max_latency_ms``: a 503 deadline, default) |
| LitServe | ``LitServer(api)`` | ``max_batch_size=32, batch_timeout=0.002`` |
| Ray Serve | one replica | ``@serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)`` |
| KServe ModelServer | 1 worker | 2 workers (batching is the Knative agent's, not the Python server's) |
| MLServer 1.7.1 | its defaults (``core``) | its adaptive batching at our settings (``core``) |
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .core import ROOT, WORK, Endpoint, Spec, free_port, ready_post
from .venvs import ensure_venv

__all__ = ["PEERS", "PeerCase", "peer_cases"]


@dataclass(frozen=True)
class PeerCase:
    """One peer in one configuration: how to start it and how to ask it."""

    label: str
    spec: Spec
    path: str
    make_body: Callable[[list[list[float]]], bytes]
    first: Callable[[Any], Any]
    best: bool

    def endpoint(self) -> Endpoint:
        return Endpoint(self.label, self.spec.port, self.path, self.make_body, self.first)


def _env(bin_dir: Path, model_file: Path, best: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(ROOT),
               BENCH_MODEL=str(model_file), BENCH_BEST="1" if best else "0",
               VIRTUAL_ENV=str(bin_dir.parent))
    return env


def _rows_body(key: str) -> Callable[[list[list[float]]], bytes]:
    return lambda rows: json.dumps({key: rows}).encode()


def _first(key: str) -> Callable[[Any], Any]:
    def first(doc: Any) -> Any:
        values = doc[key] if isinstance(doc, dict) else doc
        return values[0]

    return first


def mlflow_model(bin_dir: Path, joblib_file: Path) -> Path:
    """The forest saved by ``mlflow.sklearn.save_model`` (pickle serialisation), once, in the MLflow venv."""
    folder = WORK / "mlflow-model"
    if (folder / "MLmodel").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    script = ("import joblib, sys, mlflow.sklearn; "
              "mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2], serialization_format='pickle')")
    subprocess.run([str(bin_dir / "python"), "-c", script, str(joblib_file), str(folder)], check=True,
                   timeout=600, env=_env(bin_dir, joblib_file, False))
    return folder


def _mlflow(bin_dir: Path, joblib_file: Path, best: bool, probe: list[list[float]]) -> PeerCase:
    port = free_port()
    argv = [str(bin_dir / "mlflow"), "models", "serve", "-m", str(mlflow_model(bin_dir, joblib_file)),
            "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    if best:
        argv += ["--workers", "2"]
    body = _rows_body("inputs")
    label = f"mlflow models serve, {'--workers 2' if best else 'defaults'}"
    spec = Spec(label, argv, port, ready_post("/invocations", body(probe)), _env(bin_dir, joblib_file, best), WORK)
    return PeerCase(label, spec, "/invocations", body, _first("predictions"), best)


def _bentoml(bin_dir: Path, joblib_file: Path, best: bool, probe: list[list[float]]) -> PeerCase:
    port = free_port()
    argv = [str(bin_dir / "bentoml"), "serve", "benchmarks.peers.bentoml_service:Forest", "--host", "127.0.0.1",
            "--port", str(port)]
    body = _rows_body("rows")
    label = f"BentoML 1.4, {'adaptive batching' if best else 'defaults'}"
    spec = Spec(label, argv, port, ready_post("/predict", body(probe)), _env(bin_dir, joblib_file, best), ROOT)
    return PeerCase(label, spec, "/predict", body, _first("predictions"), best)


def _litserve(bin_dir: Path, joblib_file: Path, best: bool, probe: list[list[float]]) -> PeerCase:
    port = free_port()
    argv = [str(bin_dir / "python"), "-m", "benchmarks.peers.litserve_app", str(port)]
    body = _rows_body("rows")
    label = f"LitServe, {'batching' if best else 'defaults'}"
    spec = Spec(label, argv, port, ready_post("/predict", body(probe)), _env(bin_dir, joblib_file, best), ROOT)
    return PeerCase(label, spec, "/predict", body, _first("prediction"), best)


def _ray(bin_dir: Path, joblib_file: Path, best: bool, probe: list[list[float]]) -> PeerCase:
    port = free_port()
    argv = [str(bin_dir / "python"), "-m", "benchmarks.peers.ray_serve_app", str(port)]
    body = _rows_body("rows")
    label = f"Ray Serve, {'@serve.batch' if best else 'defaults'}"
    env = _env(bin_dir, joblib_file, best)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    spec = Spec(label, argv, port, ready_post("/predict", body(probe)), env, ROOT)
    return PeerCase(label, spec, "/predict", body, _first("prediction"), best)


def _kserve(bin_dir: Path, joblib_file: Path, best: bool, probe: list[list[float]]) -> PeerCase:
    port = free_port()
    argv = [str(bin_dir / "python"), "-m", "benchmarks.peers.kserve_model", str(port), str(free_port())]
    body = _rows_body("instances")
    label = f"KServe ModelServer, {'2 workers' if best else 'defaults'}"
    path = "/v1/models/forest:predict"
    spec = Spec(label, argv, port, ready_post(path, body(probe)), _env(bin_dir, joblib_file, best), ROOT)
    return PeerCase(label, spec, path, body, _first("predictions"), best)


PEERS: dict[str, Callable[[Path, Path, bool, list[list[float]]], PeerCase]] = {
    "mlflow": _mlflow,
    "bentoml": _bentoml,
    "litserve": _litserve,
    "ray": _ray,
    "kserve": _kserve,
}
"""MLServer is started by ``core`` (it was there first); these are the others."""


def peer_cases(names: list[str], joblib_file: Path, probe: list[list[float]],
               progress: Callable[[str], None]) -> list[PeerCase]:
    """Each named peer, defaults then best, for the peers whose venv installs; the others are reported."""
    cases: list[PeerCase] = []
    for name in names:
        bin_dir = ensure_venv(name, progress)
        if bin_dir is None:
            continue
        for best in (False, True):
            try:
                cases.append(PEERS[name](bin_dir, joblib_file, best, probe))
            except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                progress(f"{name}: could not be prepared ({exc})")
    return cases


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.serving.peers [NAME...]``: start each peer (defaults, then best), check one
    answer against the model, print its time to the first answered prediction, stop it. No load."""
    import sys

    from .core import WORK, build_models, check_answer, rows_for, running, stop_all

    names = (argv if argv is not None else sys.argv[1:]) or list(PEERS)
    WORK.mkdir(parents=True, exist_ok=True)
    forest, _ = build_models(True)
    rows = rows_for(forest.x, 1)
    expected = forest.estimator.predict(forest.x[:1])[0]
    failed = 0
    try:
        for case in peer_cases(names, forest.joblib_file, rows, print):
            try:
                with running(case.spec) as server:
                    check_answer(case.endpoint(), rows, expected)
                    print(f"ok    {case.label}: answered correctly, {server.startup_s:.1f} s after start")
            except (RuntimeError, OSError) as exc:
                failed += 1
                print(f"FAIL  {case.label}: {exc}")
    finally:
        stop_all()
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
