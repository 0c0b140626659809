"""The direct-ingress server a Ray replica runs, on its own (no cluster): load, share the port, health, stop.

:class:`DirectServer` is what each replica's constructor starts and its health check and shutdown look
at; these tests run it in this process as a replica would, and :func:`bridge_app` as Ray's proxy route
would call it (from another event loop).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import requests
from sklearn.linear_model import LinearRegression

import modelcapsule as mc
from modelcapsule.integrations.ray import resolve_sources
from modelcapsule.integrations.ray.direct import DirectServer, bridge_app
from modelcapsule.integrations.ray.port_claim import PortTakenError
from modelcapsule.serving import ServerOptions, ServeSettings

from .ray_helpers import free_port, listening_sockets


@pytest.fixture(scope="module")
def capsule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x = np.arange(30.0).reshape(15, 2)
    path = tmp_path_factory.mktemp("direct") / "line.capsule"
    mc.save(LinearRegression().fit(x, x.sum(axis=1)), path, sample=x[:3])
    return path


@pytest.fixture
def port() -> int:
    return free_port()


def replica_server(capsule: Path, port: int) -> DirectServer:
    server = DirectServer(resolve_sources([capsule]), None, ServerOptions(batch_size=4), ServeSettings(port=port))
    server.start().result(60)
    return server


@pytest.fixture
def servers(capsule: Path, port: int) -> Iterator[list[DirectServer]]:
    started = [replica_server(capsule, port), replica_server(capsule, port)]
    yield started
    for server in started:
        server.stop()


def test_replicas_on_one_node_share_the_port_and_answer_after_loading(servers: list[DirectServer], port: int) -> None:
    assert listening_sockets(port) == 2  # both bound it (SO_REUSEPORT); the kernel spreads connections
    for server in servers:
        assert server.dataplane is not None and server.dataplane.ready()  # loaded, with every check, before binding
        server.check()
    for _ in range(6):
        answer = requests.post(f"http://127.0.0.1:{port}/predict", json={"inputs": [[1.0, 2.0]]}, timeout=10)
        assert answer.status_code == 200 and answer.json() == {"prediction": [pytest.approx(3.0)]}
    refused = requests.post(f"http://127.0.0.1:{port}/predict", data=b"{", timeout=10,
                            headers={"Content-Type": "application/json"})
    assert refused.status_code == 400 and "error" in refused.json()


def test_rays_proxy_route_reaches_the_same_application_from_another_loop(servers: list[DirectServer],
                                                                         port: int) -> None:
    direct = requests.post(f"http://127.0.0.1:{port}/v1/models/line:predict", json={"instances": [[1, 2], [3, 4]]},
                           timeout=10)

    async def through_the_bridge() -> list[httpx.Response]:  # on this thread's loop, as in Ray's replica
        transport = httpx.ASGITransport(app=bridge_app(servers[0]))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return [
                await client.post("/v1/models/line:predict", json={"instances": [[1, 2], [3, 4]]}),
                await client.get("/v2/health/ready"),
                await client.post("/v1/models/nosuch:predict", json={"instances": [[1, 2]]}),
            ]

    bridged, ready, missing = asyncio.run(through_the_bridge())
    assert (bridged.status_code, bridged.json()) == (200, direct.json())
    assert ready.status_code == 200
    assert missing.status_code == 404 and "error" in missing.json()


def test_a_server_that_died_fails_the_health_check_and_a_stopped_one_frees_the_port(capsule: Path,
                                                                                   port: int) -> None:
    server = replica_server(capsule, port)
    assert server.loop is not None
    server.loop.call_soon_threadsafe(setattr, server.http, "should_exit", True)  # it ends, nobody asked it to
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            server.check()
        except RuntimeError as exc:
            assert "not running" in str(exc) or "shutting down" in str(exc)
            break
        time.sleep(0.05)
    else:
        pytest.fail("the health check still passes for a dead server")
    server.stop()

    healthy = replica_server(capsule, port)
    healthy.stop()
    healthy.check()  # a replica being stopped is not unhealthy
    assert listening_sockets(port) == 0


def test_a_port_held_by_another_program_stops_the_replica_from_starting(capsule: Path, port: int) -> None:
    with socket.socket() as holder:  # bound without SO_REUSEPORT: nobody else may share it
        holder.bind(("127.0.0.1", port))
        holder.listen()
        server = DirectServer(resolve_sources([capsule]), None, ServerOptions(), ServeSettings(port=port))
        with pytest.raises(OSError, match="in use"):
            server.start().result(60)
        with pytest.raises(RuntimeError, match="not running"):
            server.check()


def test_another_application_may_not_share_the_port_until_its_replicas_are_gone(capsule: Path, port: int) -> None:
    def server_of(app: str) -> DirectServer:
        return DirectServer(resolve_sources([capsule]), None, ServerOptions(), ServeSettings(port=port), app)

    first = server_of("fraud")
    first.start().result(60)
    try:
        intruder = server_of("churn")
        with pytest.raises(PortTakenError, match="served by the replicas of 'fraud'; 'churn' cannot share it"):
            intruder.start().result(60)
        assert listening_sockets(port) == 1  # the kernel was never asked to split connections between them
    finally:
        first.stop()
    successor = server_of("churn")  # the port is free again once the last replica of "fraud" is gone
    successor.start().result(60)
    successor.stop()
