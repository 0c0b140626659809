"""Helpers of the live Ray Serve tests: start and stop commands, compare answers, find leftover processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

COLUMNS = ["a", "b", "c", "d"]
ROWS = [[0.1, -0.2, 0.3, 0.4], [-1.5, 0.2, 0.0, 2.0], [0.7, 0.7, -0.1, 0.0]]


def save_churn(path: Path) -> Path:
    """A small forest on four columns, saved as a capsule at ``path`` (the model the Ray tests serve)."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    import modelcapsule as mc

    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(200, 4)).round(3), columns=COLUMNS)
    y = np.where(x["a"] - x["d"] > 0, "yes", "no")
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


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGINT) -> None:
    proc.send_signal(sig)
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


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first), or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _processes() -> Iterator[tuple[int, list[str]]]:
    """Every process now running, with its stat fields."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(entry.name)) is not None:
            yield int(entry.name), fields


def descendants(root: int) -> dict[int, str]:
    """Every process below ``root``, with its start time (so a reused pid is not mistaken for it)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for pid, fields in _processes():
        children.setdefault(int(fields[1]), []).append(pid)
        starts[pid] = fields[19]
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = starts[child]
            todo.append(child)
    return found


def still_running(pid: int, start: str) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[19] == start and fields[0] != "Z"


def wait_until_gone(started: dict[int, str], seconds: float = 30) -> list[int]:
    """The processes of ``started`` still running after up to ``seconds`` (none, when all is well)."""
    deadline = time.monotonic() + seconds
    left = [pid for pid, start in started.items() if still_running(pid, start)]
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = [pid for pid, start in started.items() if still_running(pid, start)]
    return left


def session_members(sid: int) -> dict[int, str]:
    """Every process of session ``sid`` (a command started with ``start_new_session``), with its start time:
    unlike :func:`descendants`, it also finds daemons that were re-parented when their parent exited."""
    return {pid: fields[19] for pid, fields in _processes() if int(fields[3]) == sid and fields[0] != "Z"}


def listening_sockets(port: int) -> int:
    """How many TCP sockets listen on ``port`` (IPv4): with SO_REUSEPORT, one per process bound there."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            count += 1
    return count
