"""Fixtures of the registry tests: small capsules, a real PostgreSQL server, and a running
``capsule registry serve`` app, so the conformance suite runs the same tests against all three backends."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import modelcapsule as mc
from modelcapsule.registry import Registry
from modelcapsule.registry.actors import Actor

from .postgres import PostgresServer, find_bindir
from .registry_models import doubled
from helpers import rewrite_capsule

UNTRUSTED = "registry.registry_models.doubled"
BACKENDS = ["sqlite", "postgresql", "http"]


@dataclass(frozen=True)
class Capsules:
    """Capsules the tests register: three good ones, one needing a trust name, one with an altered member."""

    a: Path
    b: Path
    c: Path
    needs_trust: Path
    tampered: Path


@pytest.fixture(scope="session")
def capsules(tmp_path_factory: pytest.TempPathFactory) -> Capsules:
    root = tmp_path_factory.mktemp("registry-capsules")
    x, y = load_iris(return_X_y=True)
    paths = []
    for name, c in (("a", 1.0), ("b", 0.5), ("c", 0.25)):
        path = root / f"{name}.capsule"
        mc.save(LogisticRegression(C=c, max_iter=500).fit(x, y), path, sample=x[:5])
        paths.append(path)
    needs_trust = root / "needs-trust.capsule"
    pipeline = make_pipeline(FunctionTransformer(doubled), LogisticRegression(max_iter=500)).fit(x, y)
    mc.save(pipeline, needs_trust, sample=x[:5], trusted=[UNTRUSTED])
    tampered = root / "tampered.capsule"

    def flip(name: str, data: bytes) -> bytes:
        if name.startswith("sample/outputs/predict.npy"):
            values = np.load(__import__("io").BytesIO(data))
            buffer = __import__("io").BytesIO()
            np.save(buffer, (values + 1) % 3)
            return buffer.getvalue()
        return data

    rewrite_capsule(paths[0], tampered, flip)  # hashes match, but the golden sample no longer does
    return Capsules(*paths, needs_trust, tampered)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    bindir, why = find_bindir()
    if bindir is None:
        pytest.skip(why)
    server = PostgresServer(bindir).start()
    try:
        yield server
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningServer:
    """``capsule registry serve``'s app under uvicorn on 127.0.0.1, in a thread of this process."""

    def __init__(self, app: object) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the registry server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass
class Served:
    """A local registry behind a running REST server, with an admin token for it."""

    local: Registry
    server: RunningServer
    admin_token: str

    def client(self, token: str | None = None) -> Registry:
        return Registry(self.server.url, token=token)


def serve(tmp_path: Path, *, public_read: bool = False, max_body: int = 1 << 30) -> Served:
    from modelcapsule.registry.api import create_app
    from modelcapsule.registry.local import LocalRegistry

    local = Registry(tmp_path / "served-registry")
    backend = local.backend
    assert isinstance(backend, LocalRegistry)
    token = local.create_token("ci-admin", "admin")
    return Served(local, RunningServer(create_app(backend, public_read=public_read, max_body=max_body)), token)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    running = serve(tmp_path)
    try:
        yield running
    finally:
        running.server.stop()
        running.local.close()


@pytest.fixture(params=BACKENDS)
def registry(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """A fresh, empty registry on each backend; the caller is an admin named ``tester``."""
    monkeypatch.setenv("MODELCAPSULE_USER", "tester")
    if request.param == "sqlite":
        reg = Registry(tmp_path / "registry")
        yield reg
        reg.close()
    elif request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        reg = Registry(server.create_database(), store=tmp_path / "blobs", actor=Actor("tester", "admin"))
        yield reg
        reg.close()
    else:
        from modelcapsule.registry.api import create_app
        from modelcapsule.registry.local import LocalRegistry

        local = Registry(tmp_path / "served-registry")
        backend = local.backend
        assert isinstance(backend, LocalRegistry)
        token = local.create_token("tester", "admin")
        running = RunningServer(create_app(backend))
        client = Registry(running.url, token=token)
        try:
            yield client
        finally:
            running.server.should_exit = True
            running.stop()
            local.close()


def with_role(registry: Registry, role: str, name: str) -> Registry:
    """The same registry as another caller: a token of ``role`` over HTTP, an actor of ``role`` in process."""
    from modelcapsule.registry.local import LocalRegistry

    backend = registry.backend
    if isinstance(backend, LocalRegistry):
        return Registry(backend.url, store=backend.blobs.root, actor=Actor(name, role))
    return Registry(registry.location, token=registry.create_token(name, role))


def use_registry(monkeypatch: pytest.MonkeyPatch, registry: Registry) -> None:
    """Point ``models:/`` URIs (``$MODELCAPSULE_REGISTRY``) at ``registry``."""
    from modelcapsule.registry.local import LocalRegistry

    backend = registry.backend
    if isinstance(backend, LocalRegistry):
        monkeypatch.setenv("MODELCAPSULE_REGISTRY", backend.url)
        monkeypatch.setenv("MODELCAPSULE_STORE", str(backend.blobs.root))
    else:
        monkeypatch.setenv("MODELCAPSULE_REGISTRY", registry.location)
        monkeypatch.setenv("MODELCAPSULE_TOKEN", backend.token or "")  # type: ignore[attr-defined]
