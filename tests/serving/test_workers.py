"""``capsule serve --workers N`` keeps N workers alive: a dead one is logged and replaced, a crash loop stops.

Workers are killed for real (SIGKILL as the OOM killer does, SIGSEGV as a crashing native library
does) and the server is watched from outside, through its process tree and its HTTP port.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import requests
import tritonclient.grpc as triton

from .conftest import Models, Server, start_server

REPLACED_WITHIN = 10.0  # seconds; typically well under one (the supervisor looks every 50 ms); loose for busy CI


def worker_pids(server: Server) -> set[int]:
    """The server's worker processes: its direct children (from /proc, as `ps --ppid` shows them)."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(c) for c in children}


def wait_for_workers(server: Server, count: int, *, other_than: frozenset[int] | set[int] = frozenset()) -> set[int]:
    deadline = time.monotonic() + REPLACED_WITHIN
    while time.monotonic() < deadline:
        pids = worker_pids(server)
        if len(pids) == count and not pids & other_than:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"expected {count} workers other than {other_than}, found {worker_pids(server)}")


def predict_ok(server: Server, models: Models, times: int) -> None:
    for _ in range(times):
        r = requests.post(f"{server.url}/predict", json={"inputs": models.X[:2].tolist()}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json() == {"prediction": models.iris.predict(models.X[:2]).tolist()}


def grpc_listeners(port: int) -> int:
    """Listening TCP sockets on ``port`` (IPv4, from /proc/net/tcp): one per worker with SO_REUSEPORT."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "0A")


def grpc_predict_ok(server: Server, models: Models, times: int) -> None:
    for _ in range(times):  # a new connection each time: the kernel spreads them over the workers
        client = triton.InferenceServerClient(server.grpc_address)
        tensor = triton.InferInput("input", [2, 4], "FP64")
        tensor.set_data_from_numpy(models.X[:2])
        answer = client.infer("iris", [tensor], outputs=[triton.InferRequestedOutput("predict")])
        np.testing.assert_array_equal(answer.as_numpy("predict"), models.iris.predict(models.X[:2]))
        client.close()


def test_a_killed_worker_is_logged_and_replaced(
    models: Models, tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    server = start_server(capsule_cmd, subprocess_env, tmp_path, str(models.iris_path), "--workers", "2")
    try:
        first = wait_for_workers(server, 2)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        now = wait_for_workers(server, 2, other_than={victim})
        assert first - {victim} <= now, "the surviving worker keeps running"
        predict_ok(server, models, 20)  # capacity is back: both workers answer
        deadline = time.monotonic() + REPLACED_WITHIN  # the replacement listens for gRPC next to the survivor
        while grpc_listeners(server.grpc_port) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert grpc_listeners(server.grpc_port) == 2
        grpc_predict_ok(server, models, 10)
        assert f"worker {victim} died (killed by signal 9 (SIGKILL)); starting a replacement" in server.stderr()
    finally:
        assert server.stop() == 0


def test_a_segfaulting_worker_is_replaced_and_every_worker_can_die(
    models: Models, tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    server = start_server(capsule_cmd, subprocess_env, tmp_path, str(models.iris_path), "--workers", "2")
    try:
        first = wait_for_workers(server, 2)
        for pid in first:  # before, losing both workers ended the server
            os.kill(pid, signal.SIGSEGV)
        wait_for_workers(server, 2, other_than=first)
        assert "killed by signal 11 (SIGSEGV)" in server.stderr()
        predict_ok(server, models, 5)
    finally:
        assert server.stop() == 0


def test_a_crash_loop_stops_the_server_with_a_clear_error(
    models: Models, tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    server = start_server(
        capsule_cmd, subprocess_env, tmp_path, str(models.iris_path), "--workers", "2", "--max-restarts", "2"
    )
    try:
        killed: set[int] = set()
        seen: set[int] = set()
        for _ in range(3):  # two replacements are allowed; the third death is one too many
            pids = wait_for_workers(server, 2, other_than=killed)
            seen |= pids
            victim = min(pids)
            os.kill(victim, signal.SIGKILL)
            killed.add(victim)
        assert server.process.wait(timeout=60) == 1
        err = server.stderr()
        assert "workers died 3 times within 60 s" in err
        assert "stopping the server instead of restarting them in a loop" in err
        assert not worker_pids_alive(seen), "no worker outlives the server"
    finally:
        if server.process.poll() is None:
            server.stop()


def worker_pids_alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.add(pid)
    return alive
