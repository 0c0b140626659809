"""The serving process fetches models from an http(s) registry that needs a token: ``--registry-token``
or ``$MODELCAPSULE_TOKEN``; without one it refuses to start with the registry's reason."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from sklearn.linear_model import LinearRegression

import modelcapsule as mc
from modelcapsule.registry import Registry

from .conftest import free_port, start_server


@dataclass
class HttpRegistry:
    url: str
    read_token: str


@pytest.fixture
def http_registry(tmp_path: Path) -> Iterator[HttpRegistry]:
    """A registry REST server on 127.0.0.1 (uvicorn in a thread) holding model `line`, and a read token."""
    import uvicorn

    from modelcapsule.registry.api import create_app
    from modelcapsule.registry.local import LocalRegistry

    local = Registry(tmp_path / "registry")
    X = np.arange(8.0).reshape(-1, 1)
    capsule = tmp_path / "line.capsule"
    mc.save(LinearRegression().fit(X, 2 * X[:, 0]), capsule, sample=X, name="line", source=False)
    local.register("line", capsule)
    token = local.create_token("serving", "read")
    backend = local.backend
    assert isinstance(backend, LocalRegistry)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(backend), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield HttpRegistry(f"http://127.0.0.1:{port}", token)
    server.should_exit = True
    thread.join(30)


@pytest.mark.parametrize("how", ["--registry-token", "MODELCAPSULE_TOKEN"])
def test_a_token_lets_the_server_fetch_models(http_registry: HttpRegistry, capsule_cmd: list[str],
                                              subprocess_env: dict[str, str], tmp_path: Path, how: str) -> None:
    env = dict(subprocess_env)
    args = ["models:/line", "--registry", http_registry.url, "--no-access-log"]
    if how == "--registry-token":
        args += ["--registry-token", http_registry.read_token]
    else:
        env["MODELCAPSULE_TOKEN"] = http_registry.read_token
    srv = start_server(capsule_cmd, env, tmp_path / "server", *args)
    try:
        answer = requests.post(f"{srv.url}/v1/models/line:predict", json={"instances": [[3.0]]}, timeout=10)
    finally:
        srv.stop()
    assert answer.json()["predictions"] == pytest.approx([6.0])


def test_without_a_token_the_server_says_why_it_cannot_start(http_registry: HttpRegistry, capsule_cmd: list[str],
                                                             subprocess_env: dict[str, str]) -> None:
    env = {k: v for k, v in subprocess_env.items() if k != "MODELCAPSULE_TOKEN"}
    done = subprocess.run([*capsule_cmd, "serve", "models:/line", "--registry", http_registry.url],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "token" in done.stderr.lower(), done.stderr
