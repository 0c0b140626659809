"""Fixtures for the serving tests: small real capsules, and the real server started on a free port.

Servers run as child processes (``capsule serve`` from this checkout) on 127.0.0.1; every wait is
bounded, and every server is stopped with SIGTERM (graceful shutdown) when its fixture ends.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import modelcapsule as mc

START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running ``capsule serve``: its URLs, its process, and what it printed."""

    url: str
    grpc_address: str
    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log_dir: Path

    def stdout(self) -> str:
        return (self.log_dir / "stdout.txt").read_text()

    def stderr(self) -> str:
        return (self.log_dir / "stderr.txt").read_text()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful shutdown); the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


class PortTakenError(RuntimeError):
    """Another process took the port between choosing it and the server binding it."""


def start_server(capsule_cmd: list[str], env: dict[str, str], log_dir: Path, *args: str) -> Server:
    """Start ``capsule serve ARGS`` on free ports, its output in ``log_dir``; return once it answers.

    A port taken by another process in the moment between choosing and binding it is retried twice."""
    for attempt in range(3):
        try:
            return _start_server(capsule_cmd, env, log_dir / f"try{attempt}" if attempt else log_dir, *args)
        except PortTakenError:
            continue
    raise RuntimeError("could not find free ports for capsule serve in three attempts")


def _start_server(capsule_cmd: list[str], env: dict[str, str], log_dir: Path, *args: str) -> Server:
    http_port, grpc_port = free_port(), free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "stdout.txt", "wb") as out, open(log_dir / "stderr.txt", "wb") as err:
        process = subprocess.Popen(
            [*capsule_cmd, "serve", *args, "--port", str(http_port), "--grpc-port", str(grpc_port)],
            env=env,
            stdout=out,
            stderr=err,
        )
    server = Server(f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", process, http_port, grpc_port, log_dir)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                if "cannot listen" in server.stderr() or "address already in use" in server.stderr().lower():
                    raise PortTakenError(server.stderr())
                raise RuntimeError(
                    f"capsule serve exited with {process.returncode}:\n{server.stdout()}\n{server.stderr()}"
                )
            # the socket listens before the workers answer: a connection may wait in the backlog
            with contextlib.suppress(requests.RequestException):
                if requests.get(server.url + "/v2/health/live", timeout=10).status_code == 200:
                    return server
            time.sleep(0.1)
        raise RuntimeError("capsule serve did not answer within the start timeout")
    except BaseException:
        server.stop()
        raise


@dataclass(frozen=True)
class Models:
    """The fitted models behind the test capsules, to compare the server's answers with."""

    X: np.ndarray
    frame: pd.DataFrame
    iris: LogisticRegression
    iris_df: LogisticRegression
    half: LinearRegression
    iris_path: Path
    iris_df_path: Path
    half_path: Path
    people: pd.DataFrame
    mixed: Pipeline
    mixed_path: Path


@pytest.fixture(autouse=True)
def thawed_heap() -> Iterator[None]:
    """A data plane in this process freezes the heap (serving.heap); later tests get a normal collector."""
    yield
    gc.unfreeze()


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    root = tmp_path_factory.mktemp("capsules")
    X, y = load_iris(return_X_y=True)
    frame = pd.DataFrame(X, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])
    iris = LogisticRegression(max_iter=1000).fit(X, y)
    iris_df = LogisticRegression(max_iter=1000).fit(frame, y)
    x = np.array([[0.0], [1.0], [2.0], [4.0]])
    half = LinearRegression().fit(x, 0.5 * x[:, 0] + 3.0)  # TF Serving's half_plus_three example model
    mc.save(iris, root / "iris.capsule", sample=X[:10], name="iris")
    mc.save(iris_df, root / "iris_df.capsule", sample=frame[:10], name="iris_df")
    mc.save(half, root / "half.capsule", sample=x, name="half_plus_three")
    people, mixed = _mixed_pipeline()
    mc.save(mixed, root / "mixed.capsule", sample=people[:10], name="mixed")
    return Models(
        X,
        frame,
        iris,
        iris_df,
        half,
        root / "iris.capsule",
        root / "iris_df.capsule",
        root / "half.capsule",
        people,
        mixed,
        root / "mixed.capsule",
    )


def _mixed_pipeline() -> tuple[pd.DataFrame, Pipeline]:
    """A DataFrame of mixed column types (int, string, float) and a pipeline with string class labels."""
    rng = np.random.default_rng(0)
    people = pd.DataFrame(
        {
            "age": rng.integers(18, 80, 300),
            "city": rng.choice(["Oslo", "Lima", "Pune"], 300),
            "income": rng.normal(50, 10, 300).round(2),
        }
    )
    label = np.where(people["income"] + (people["city"] == "Oslo") * 5 > 52, "yes", "no")
    pipeline = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), ["age", "income"]), ("cat", OneHotEncoder(), ["city"])]),
        LogisticRegression(),
    )
    return people, pipeline.fit(people, label)


@pytest.fixture(scope="session")
def server(
    models: Models,
    capsule_cmd: list[str],
    subprocess_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """One server for the protocol tests: three models, batching on."""
    srv = start_server(
        capsule_cmd,
        subprocess_env,
        tmp_path_factory.mktemp("server"),
        str(models.iris_path),
        str(models.iris_df_path),
        str(models.half_path),
        str(models.mixed_path),
        "--batch-size",
        "32",
        "--batch-wait-ms",
        "2",
        "--max-body-bytes",
        "1000000",
    )
    yield srv
    srv.stop()


def add_version(repo: Path, model: str, version: int, capsule: Path) -> Path:
    """Drop a capsule into ``repo/model/version/`` atomically (copied under a dot name, then renamed)."""
    tmp = repo / model / f".tmp-{version}"
    tmp.mkdir(parents=True)
    shutil.copyfile(capsule, tmp / "model.capsule")
    final = repo / model / str(version)
    os.rename(tmp, final)
    return final
