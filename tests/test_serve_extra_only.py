"""The demo needs only ``pip install -e ".[serve]"``: run it where every other extra fails to import.

The launcher below makes ``pandas``, ``pyarrow``, ``torch``, ``onnx``, ``grpc``... raise
``ModuleNotFoundError`` as if they were not installed, then runs the ``capsule`` command line.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

NOT_IN_THE_SERVE_EXTRA = (
    "pandas", "pyarrow", "torch", "safetensors", "onnx", "onnxruntime", "skl2onnx", "onnxmltools", "keras",
    "h5py", "xgboost", "lightgbm", "grpc", "hpack", "tensorflow",
)

LAUNCHER = f'''
import importlib.abc, sys

BLOCKED = {NOT_IN_THE_SERVE_EXTRA!r}


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (only the serve extra is installed)", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
from modelcapsule.cli import main

sys.exit(main(sys.argv[1:]))
'''


def _capsule_with_serve_extra_only(tmp_path: Path) -> list[str]:
    launcher = tmp_path / "capsule_with_serve_extra_only.py"
    launcher.write_text(LAUNCHER)
    return [sys.executable, str(launcher)]


def test_the_demo_trains_saves_loads_and_verifies_without_other_extras(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    result = subprocess.run(
        [*_capsule_with_serve_extra_only(tmp_path), "demo", "--no-serve", "--dir", str(tmp_path / "repo")],
        env=subprocess_env, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks pass" in result.stdout
    assert (tmp_path / "repo" / "breast-cancer" / "1" / "model.capsule").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_the_demo_serves_over_http_without_grpc_or_other_extras(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    port = _free_port()
    command = [*_capsule_with_serve_extra_only(tmp_path), "demo", "--dir", str(tmp_path / "repo"), "--port", str(port)]
    with open(tmp_path / "out.txt", "wb") as out, open(tmp_path / "err.txt", "wb") as err:
        process = subprocess.Popen(command, env=subprocess_env, stdout=out, stderr=err, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5).status_code == 200:
                    break
            time.sleep(0.2)
        logs = (tmp_path / "out.txt").read_text() + (tmp_path / "err.txt").read_text()
        assert process.poll() is None, logs
        answer = requests.post(f"http://127.0.0.1:{port}/predict", json={"inputs": [[0.0] * 30]}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["prediction"] in ([0], [1])
        assert "gRPC is off: it needs the grpc extra" in logs
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
