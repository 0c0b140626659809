"""``capsule serve --runtime onnx`` (gRPC on, as users run it) answers from onnxruntime alone: after its
first answer the server process has mapped no extension module of scikit-learn, SciPy, the ``onnx``
package (the graph check declares the fields it reads) or Jinja2 (the pages load their templates when
first browsed). Extension modules are what
``/proc/PID/maps`` shows: a package that was imported has its compiled parts mapped."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from sklearn.ensemble import RandomForestClassifier

import modelcapsule as mc

from .conftest import start_server

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/maps")

ABSENT = ("sklearn", "scipy", "onnx", "markupsafe", "grpc")  # gRPC is served without grpcio


def mapped_packages(pid: int) -> set[str]:
    """Top-level packages under site-packages with a file mapped in process ``pid``."""
    found = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        path = line.split(maxsplit=5)[-1]
        if "-packages/" in path:
            found.add(path.split("-packages/", 1)[1].split("/", 1)[0])
    return found


def test_an_onnx_served_forest_maps_only_what_it_runs(tmp_path: Path, capsule_cmd: list[str],
                                                      subprocess_env: dict[str, str]) -> None:
    x = np.random.default_rng(0).normal(size=(200, 5)).astype(np.float32)
    model = RandomForestClassifier(10, max_depth=4, random_state=0).fit(x, x[:, 0] > 0)
    mc.save(model, tmp_path / "forest.capsule", sample=x[:10], onnx=True)
    server = start_server(capsule_cmd, subprocess_env, tmp_path / "logs", str(tmp_path / "forest.capsule"),
                          "--runtime", "onnx", "--no-access-log")
    try:
        answer = requests.post(f"{server.url}/predict", json={"inputs": x[:3].tolist()}, timeout=30).json()
        assert answer == {"prediction": model.predict(x[:3]).tolist()}
        mapped = mapped_packages(server.process.pid)
        assert {"onnxruntime", "numpy", "google"} <= mapped  # the check sees packages that are there (protobuf)
        assert not mapped & set(ABSENT), sorted(mapped & set(ABSENT))
    finally:
        assert server.stop() == 0
