"""``capsule serve --ray`` live: direct ingress, ``--replicas auto`` and ``--ray-address``, on real clusters.

- With ``--ray-ingress direct`` every replica serves the application on the node's port itself: two
  replicas listen on the same port (``SO_REUSEPORT``), every answer equals plain ``capsule serve``'s,
  malformed requests get the protocol's 4xx and the replicas keep serving, Ray's proxy still routes to
  them, and Ctrl-C leaves no process.
- With ``--ray-address`` the command joins a cluster the test started (``ray start --head``), deploys with
  ``--replicas auto`` (the deployment carries Ray's autoscaling settings), and on Ctrl-C deletes its
  application and leaves the cluster running.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .ray_helpers import (
    descendants,
    free_port,
    listening_sockets,
    requests_to_compare,
    save_churn,
    session_members,
    start,
    stop,
    wait_until_gone,
)

pytestmark = pytest.mark.slow
pytest.importorskip("ray.serve", reason="needs the ray extra")


@pytest.fixture(scope="module")
def capsule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_churn(tmp_path_factory.mktemp("ray-direct") / "churn.capsule")


@pytest.fixture
def env(subprocess_env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in subprocess_env.items() if k != "RAY_ADDRESS"}


def raw_exchange(port: int, payload: bytes) -> bytes:
    """Send raw bytes on a fresh connection; what the server answers before closing (or 5 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    return answer


@pytest.mark.timeout(400)
def test_direct_ingress_replicas_serve_the_port_themselves_like_the_local_server(
    capsule: Path, capsule_cmd: list[str], env: dict[str, str]
) -> None:
    port, proxy_port, local_port = free_port(), free_port(), free_port()
    serve = [*capsule_cmd, "serve", str(capsule), "--batch-size", "8"]
    proc, lines, ready = start([*serve, "--ray", "--ray-ingress", "direct", "--replicas", "2", "--port", str(port),
                                "--ray-proxy-port", str(proxy_port)], env)
    local, local_lines, local_ready = start([*serve, "--port", str(local_port), "--no-grpc", "--no-access-log"], env)
    try:
        assert local_ready.wait(120), "".join(local_lines)
        assert ready.wait(240), "".join(lines)
        assert any("2 replica(s), ready" in line for line in lines), "".join(lines)
        assert listening_sockets(port) == 2  # each replica bound the port itself; the kernel spreads connections

        for method, path, body in requests_to_compare():
            expected = requests.request(method, f"http://127.0.0.1:{local_port}{path}", json=body, timeout=30)
            for where in (port, proxy_port):  # the replicas' own port, and Ray's proxy route to the same app
                answer = requests.request(method, f"http://127.0.0.1:{where}{path}", json=body, timeout=30)
                assert (answer.status_code, answer.json()) == (expected.status_code, expected.json()), (where, path)

        broken = requests.post(f"http://127.0.0.1:{port}/v2/models/churn/infer", data=b'{"inputs": [', timeout=30,
                               headers={"Content-Type": "application/json"})
        expected = requests.post(f"http://127.0.0.1:{local_port}/v2/models/churn/infer", data=b'{"inputs": [',
                                 timeout=30, headers={"Content-Type": "application/json"})
        assert broken.status_code == 400 and broken.json() == expected.json() and "error" in broken.json()
        assert raw_exchange(port, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")

        body = {"inputs": [[0.1, -0.2, 0.3, 0.4]]}
        want = requests.post(f"http://127.0.0.1:{local_port}/predict", json=body, timeout=30).json()
        for _ in range(12):  # fresh connections, spread across both replicas: every one still serves
            with requests.Session() as session:
                answer = session.post(f"http://127.0.0.1:{port}/predict", json=body, timeout=30)
            assert (answer.status_code, answer.json()) == (200, want)
        started = descendants(proc.pid)
    finally:
        stop(local)
        stop(proc)
    assert proc.returncode == 0, "".join(lines)
    assert not wait_until_gone(started), "processes left behind"
    assert listening_sockets(port) == 0


def ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


@pytest.fixture
def cluster_env(env: dict[str, str]) -> dict[str, str]:
    """The environment of the head node and of every driver that joins it: Ray's token authentication off,
    so that the test depends on no token file of this user's (a cluster with tokens needs Ray's
    ``RAY_AUTH_MODE=token`` and the token in the environment of ``capsule serve``, as of any driver)."""
    return {**env, "RAY_AUTH_MODE": "disabled"}


@pytest.fixture
def head_node(cluster_env: dict[str, str]) -> Iterator[str]:
    """A Ray cluster of its own (``ray start --head --block`` in a new session, 2 CPUs, on 127.0.0.1):
    its address; afterwards every process of that session is stopped (only those: not ``ray stop``, which
    would stop every Ray cluster of this user on the machine, other programs' too)."""
    env = cluster_env
    gcs_port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="rayt", dir="/tmp")  # short: Ray's socket paths live under it
    argv = [ray_cli(), "start", "--head", "--block", "--port", str(gcs_port), "--num-cpus", "2",
            "--node-ip-address", "127.0.0.1", "--include-dashboard=false", "--disable-usage-stats",
            "--temp-dir", temp_dir]
    head = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{gcs_port}"
    try:
        deadline = time.monotonic() + 120
        while probe(address, env, "ray.cluster_resources().get('CPU')") != 2.0:
            assert head.poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
            time.sleep(1)
        yield address
    finally:
        members = session_members(head.pid)
        signal_group(head.pid, signal.SIGTERM)
        if wait_until_gone(members, 10):  # the GCS and `ray start` itself may linger on SIGTERM
            signal_group(head.pid, signal.SIGKILL)
        head.wait(30)
        assert not wait_until_gone(members, 10), "Ray processes left behind"


def signal_group(pgid: int, sig: int) -> None:
    """Signal the process group the fixture started (its leader's pid), if any of it is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def probe(address: str, env: dict[str, str], expression: str) -> object:
    """Evaluate ``expression`` in a fresh driver connected to ``address`` (``ray`` and ``serve`` in scope);
    its value as JSON, or None when the driver could not connect."""
    code = (
        "import json, logging, ray\nfrom ray import serve\n"
        f"ray.init(address={address!r}, logging_level=logging.ERROR, log_to_driver=False)\n"
        f"print('PROBE', json.dumps({expression}, default=str))\nray.shutdown()\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                              check=False)
    except subprocess.TimeoutExpired:
        return None
    line = next((x for x in done.stdout.splitlines() if x.startswith("PROBE ")), None)
    return None if line is None else json.loads(line[len("PROBE "):])


DEPLOYMENT_CONFIG = (
    "ray.get(ray.get_actor('SERVE_CONTROLLER_ACTOR', namespace='serve').get_serve_instance_details.remote())"
    "['applications']['modelcapsule']['deployments']['ModelCapsule']['deployment_config']"
)


@pytest.mark.timeout(500)
def test_an_existing_cluster_runs_the_autoscaled_application_and_outlives_the_command(
    capsule: Path, capsule_cmd: list[str], cluster_env: dict[str, str], head_node: str
) -> None:
    env = cluster_env
    port = free_port()
    proc, lines, ready = start([*capsule_cmd, "serve", str(capsule), "--batch-size", "8", "--ray",
                                "--ray-address", head_node, "--replicas", "auto", "--port", str(port)], env)
    try:
        assert ready.wait(240), "".join(lines)
        assert any(f"on the Ray cluster at {head_node}" in line and "ready" in line for line in lines), "".join(lines)
        answer = requests.post(f"http://127.0.0.1:{port}/predict", json={"inputs": [[0.1, -0.2, 0.3, 0.4]]}, timeout=30)
        assert answer.status_code == 200 and answer.json()["prediction"] in (["yes"], ["no"])
        config = probe(head_node, env, DEPLOYMENT_CONFIG)
        assert isinstance(config, dict), config
        autoscaling = config["autoscaling_config"]
        assert autoscaling["target_ongoing_requests"] == 8  # a replica is busy, not overloaded, with a full batch
        assert autoscaling["min_replicas"] >= 1 and autoscaling["max_replicas"] >= autoscaling["min_replicas"]
        assert config["max_ongoing_requests"] == 64
    finally:
        stop(proc)
    assert proc.returncode == 0, "".join(lines)
    assert probe(head_node, env, "ray.cluster_resources().get('CPU')") == 2.0  # the cluster still runs
    assert probe(head_node, env, "sorted(serve.status().applications)") == []  # no application left


AUTOSCALING_DRIVER = """
import concurrent.futures, json, logging, sys, time, urllib.request
import ray
from ray import serve
from modelcapsule.integrations.ray import capsule_app
from modelcapsule.serving import ServerOptions, ServeSettings

capsule, port, proxy_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
try:
    serve.start(http_options={"host": "127.0.0.1", "port": proxy_port})
    serve.run(capsule_app([capsule], replicas="auto", ingress="direct", direct=ServeSettings(port=port),
                          options=ServerOptions(batch_size=4),
                          autoscaling_config={"min_replicas": 1, "max_replicas": 2, "upscale_delay_s": 1,
                                              "look_back_period_s": 2, "metrics_interval_s": 0.5}),
              name="auto", route_prefix="/")
    states = lambda: dict(serve.status().applications["auto"].deployments["ModelCapsule"].replica_states)
    print("BEFORE", json.dumps(states()), flush=True)
    body = json.dumps({"inputs": [[0.1, -0.2, 0.3, 0.4]]}).encode()
    deadline = time.monotonic() + 90

    def client() -> None:  # only the replicas' own port: Ray's proxy sees none of these requests
        while time.monotonic() < deadline:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body,
                                             headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=30).read()

    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        for _ in range(24):
            pool.submit(client)
        while time.monotonic() < deadline and states().get("RUNNING", 0) < 2:
            time.sleep(1)
        print("UNDER LOAD", json.dumps(states()), flush=True)
        deadline = 0
finally:
    serve.shutdown()
    ray.shutdown()
"""


@pytest.mark.timeout(300)
def test_direct_ingress_scales_on_the_requests_the_replicas_serve_themselves(
    capsule: Path, env: dict[str, str], tmp_path: Path
) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(AUTOSCALING_DRIVER)
    proc = subprocess.Popen([sys.executable, str(driver), str(capsule), str(free_port()), str(free_port())], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        started = session_members(proc.pid)
        if proc.poll() is None:
            signal_group(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert 'BEFORE {"RUNNING": 1}' in out, out
    assert 'UNDER LOAD {"RUNNING": 2}' in out, out  # Ray alone would have seen an idle deployment
    assert not wait_until_gone(started), "processes left behind"
