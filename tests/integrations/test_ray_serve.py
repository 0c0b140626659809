"""``capsule serve --ray`` on a real local Ray cluster: the same answers as ``capsule serve``, nothing left.

Two commands, run as a user runs them: ``capsule serve --ray`` starts a private local cluster, deploys
two replicas that each load the capsule with every check, and serves every REST protocol on Ray Serve's
HTTP proxy; plain ``capsule serve`` serves the same capsule on its own. Each answer (status and body)
must be the same from both; then Ctrl-C must stop the application and the cluster, leaving none of the
processes the command started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.ensemble import RandomForestClassifier

import modelcapsule as mc

pytestmark = pytest.mark.slow
pytest.importorskip("ray.serve", reason="needs the ray extra")
COLUMNS = ["a", "b", "c", "d"]
ROWS = [[0.1, -0.2, 0.3, 0.4], [-1.5, 0.2, 0.0, 2.0], [0.7, 0.7, -0.1, 0.0]]


@pytest.fixture(scope="module")
def capsule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(200, 4)).round(3), columns=COLUMNS)
    y = np.where(x["a"] - x["d"] > 0, "yes", "no")
    path = tmp_path_factory.mktemp("ray-serve") / "churn.capsule"
    mc.save(RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(x, y), path, sample=x[:8])
    return path


def requests_to_compare() -> list[tuple[str, str, Any]]:
    """(method, path, JSON body) for every REST protocol, plus requests that must be refused."""
    flat = [v for row in ROWS for v in row]
    return [
        ("GET", "/v2/health/ready", None),
        ("GET", "/v2/models/churn", None),
        ("POST", "/predict", {"inputs": ROWS}),
        ("POST", "/v2/models/churn/infer",
         {"inputs": [{"name": "input", "datatype": "FP64", "shape": [3, 4], "data": flat}]}),
        ("POST", "/v2/models/churn/infer",
         {"inputs": [{"name": "input", "datatype": "FP64", "shape": [3, 4], "data": flat}],
          "outputs": [{"name": "predict_proba"}]}),
        ("POST", "/v1/models/churn:predict", {"instances": ROWS}),
        ("POST", "/invocations", {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}),
        ("POST", "/api/v1.0/predictions", {"data": {"names": COLUMNS, "ndarray": ROWS}}),
        ("POST", "/v2/models/churn/infer",
         {"inputs": [{"name": "wrong", "datatype": "FP64", "shape": [1], "data": [1]}]}),
        ("POST", "/v1/models/nosuchmodel:predict", {"instances": ROWS}),
    ]


def start(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str], threading.Event]:
    """Start a server command; the event is set once it prints its "listening on" line."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("listening on"):
                    ready.set()

    threading.Thread(target=read, daemon=True).start()
    return proc, lines, ready


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    deadline = time.monotonic() + 10
    while proc.stdout is not None and not proc.stdout.closed and time.monotonic() < deadline:
        time.sleep(0.05)  # the reader closes the pipe once it has read the last line


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(root: int) -> dict[int, str]:
    """Every process below ``root``, with its start time (so a reused pid is not mistaken for it)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        starts[int(entry.name)] = fields[19]
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = starts[child]
            todo.append(child)
    return found


def still_running(pid: int, start: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == start and fields[0] != "Z"


@pytest.mark.timeout(400)
def test_ray_serve_answers_like_the_local_server_and_leaves_no_process(
    capsule: Path, capsule_cmd: list[str], subprocess_env: dict
) -> None:
    port, local_port = free_port(), free_port()
    env = {k: v for k, v in subprocess_env.items() if k != "RAY_ADDRESS"}
    serve = [*capsule_cmd, "serve", str(capsule), "--batch-size", "8"]
    proc, lines, ready = start([*serve, "--ray", "--replicas", "2", "--port", str(port)], env)
    local, local_lines, local_ready = start([*serve, "--port", str(local_port), "--no-grpc", "--no-access-log"], env)
    try:
        assert local_ready.wait(120), "".join(local_lines)
        assert ready.wait(240), "".join(lines)
        assert any("2 replica(s), ready" in line for line in lines), "".join(lines)
        for method, path, body in requests_to_compare():
            remote = requests.request(method, f"http://127.0.0.1:{port}{path}", json=body, timeout=30)
            expected = requests.request(method, f"http://127.0.0.1:{local_port}{path}", json=body, timeout=30)
            assert (remote.status_code, remote.json()) == (expected.status_code, expected.json()), path
        started = descendants(proc.pid)
        assert len(started) >= 3  # GCS, raylet, workers: a real cluster
    finally:
        stop(local)
        stop(proc)
    assert proc.returncode == 0, "".join(lines)
    deadline = time.monotonic() + 30
    left = [pid for pid, start in started.items() if still_running(pid, start)]
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = [pid for pid, start in started.items() if still_running(pid, start)]
    assert not left, f"processes left behind: {left}"
