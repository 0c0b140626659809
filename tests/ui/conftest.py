"""Capsules the UI tests look at (a classifier in two versions and a regressor, with evaluations, and an
older capsule saved without one, as every capsule written before evaluations existed), and a real
``capsule serve`` of them on 127.0.0.1 for the page and browser tests."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import cross_val_score

import modelcapsule as mc


@pytest.fixture(scope="session")
def capsules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ui-capsules")
    x, y = load_iris(return_X_y=True, as_frame=True)
    out: dict[str, Path] = {}
    for version, c in ((1, 0.05), (2, 1.0)):
        model = LogisticRegression(C=c, max_iter=500)
        scores = cross_val_score(model, x[::2], y[::2], cv=5)
        model.fit(x[::2], y[::2])
        out[f"iris{version}"] = path = root / f"iris-{version}.capsule"
        mc.save(model, path, name="iris", sample=x[:4], training_data=(x[::2], y[::2]),
                metrics={"cv_accuracy": scores}, evaluation=(x[1::2], y[1::2]),
                metadata={"owner": "plants-team", "intended_use": "Sorting iris flowers by species.",
                          "license": "apache-2.0", "tags": ["demo", "tabular"]})
    xd, yd = load_diabetes(return_X_y=True)
    out["diabetes"] = root / "diabetes.capsule"
    mc.save(Ridge().fit(xd[:300], yd[:300]), out["diabetes"], name="diabetes", sample=xd[:3],
            metrics={"cv_r2": [0.41, 0.45, 0.39]}, evaluation=(xd[300:], yd[300:]))
    out["old"] = root / "old.capsule"
    mc.save(LogisticRegression(max_iter=500).fit(x, y), out["old"], name="old", sample=x[:2], source=False)
    return out


class AsgiClient:
    """Requests to an ASGI app in this process (httpx over ASGITransport; no server, no thread)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ui.test") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


@pytest.fixture(scope="session")
def served(capsules: dict[str, Path], capsule_cmd: list[str], subprocess_env: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``capsule serve`` of a repository (iris v1 and v2 labelled stable and canary, diabetes, old); its URL."""
    repo = tmp_path_factory.mktemp("ui-repo")
    for model, version, key in (("iris", 1, "iris1"), ("iris", 2, "iris2"), ("diabetes", 1, "diabetes"),
                                ("old", 1, "old")):
        (repo / model / str(version)).mkdir(parents=True)
        shutil.copyfile(capsules[key], repo / model / str(version) / "model.capsule")
    (repo / "serving.toml").write_text(
        '[models.iris]\nversion_policy = "all"\nlabels = { stable = 1, canary = 2 }\n')
    logs = tmp_path_factory.mktemp("ui-serve-logs")
    for _attempt in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            grpc_port = s.getsockname()[1]
        with open(logs / "stderr.txt", "wb") as err:
            process = subprocess.Popen([*capsule_cmd, "serve", str(repo), "--port", str(port), "--grpc-port",
                                        str(grpc_port)], env=subprocess_env, stdout=subprocess.DEVNULL, stderr=err)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + "/v2/health/ready", timeout=5).status_code == 200:
                    break
            time.sleep(0.2)
        if process.poll() is None:
            break
    else:
        raise RuntimeError("capsule serve did not start: " + (logs / "stderr.txt").read_text())
    try:
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
