"""``capsule serve --ray`` on a real local Ray cluster: the same answers as ``capsule serve``, nothing left.

Two commands, run as a user runs them: ``capsule serve --ray`` starts a private local cluster, deploys
two replicas that each load the capsule with every check, and serves every REST protocol on Ray Serve's
HTTP proxy; plain ``capsule serve`` serves the same capsule on its own. Each answer (status and body)
must be the same from both; then Ctrl-C must stop the application and the cluster, leaving none of the
processes the command started.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from .ray_helpers import descendants, free_port, requests_to_compare, save_churn, start, stop, wait_until_gone

pytestmark = pytest.mark.slow
pytest.importorskip("ray.serve", reason="needs the ray extra")


@pytest.fixture(scope="module")
def capsule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_churn(tmp_path_factory.mktemp("ray-serve") / "churn.capsule")


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
    left = wait_until_gone(started)
    assert not left, f"processes left behind: {left}"
