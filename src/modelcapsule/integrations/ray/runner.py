"""``capsule serve --ray``: deploy the application, wait for a stop signal, take everything down.

With no address a private local cluster is started and stopped with the command; with an address the
application is deployed on that cluster and deleted again on Ctrl-C/SIGTERM (the cluster and its
Serve instance keep running). Serve's HTTP proxy options are cluster-wide: on a cluster whose Serve
already runs, its proxy keeps its own host and port.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from ...serving import ServerOptions
from .cluster import ray_session
from .serve import Replicas, capsule_app

__all__ = ["APP_NAME", "RayServeInfo", "serve_on_ray"]

APP_NAME = "modelcapsule"


@dataclass(frozen=True)
class RayServeInfo:
    """What :func:`serve_on_ray` reports once the application runs."""

    url: str
    replicas: Replicas
    local_cluster: bool
    ready: bool


def serve_on_ray(
    sources: Sequence[str | os.PathLike[str]],
    *,
    name: str | None = None,
    options: ServerOptions | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    address: str | None = None,
    replicas: Replicas = 1,
    num_cpus: int | None = None,
    on_ready: Callable[[RayServeInfo], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve ``sources`` on Ray Serve until SIGINT/SIGTERM (or ``stop`` is set).

    Raises ``OSError`` when the port is taken (checked before a local cluster starts), ``ValueError`` or
    ``FileNotFoundError`` for bad sources (before anything is deployed).
    """
    from ray import serve

    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # the command prints its own status lines
    stop = stop or threading.Event()
    app = capsule_app(sources, name=name, options=options, replicas=replicas)  # resolves sources first
    if address is None:
        _check_port_free(host, port)
    previous = _install_stop_handlers(stop)
    try:
        with ray_session(address, num_cpus=num_cpus) as local:
            if local:
                _check_room(replicas)
            try:
                serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})
                serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
                if on_ready is not None:
                    url = f"http://{_url_host(host)}:{port}"
                    on_ready(RayServeInfo(url, replicas, local, _ready(host, port)))
                while not stop.wait(0.5):
                    pass
            finally:
                with contextlib.suppress(Exception):  # best effort: the session's end stops a local cluster anyway
                    if local:
                        serve.shutdown()  # type: ignore[no-untyped-call]
                    else:
                        serve.delete(APP_NAME)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _install_stop_handlers(stop: threading.Event) -> dict[int, Any]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
    return previous


def _check_room(replicas: Replicas) -> None:
    """A fixed replica count must fit the local cluster (one CPU each), else Ray would wait forever."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 0))  # type: ignore[no-untyped-call]
    if isinstance(replicas, int) and replicas > cpus:
        raise ValueError(
            f"{replicas} replicas need {replicas} CPUs (one each) but this machine offers {cpus}; "
            "use fewer replicas, or --replicas auto"
        )


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _url_host(host: str) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - a wildcard is not a URL host
    return f"[{shown}]" if ":" in shown else shown


def _ready(host: str, port: int) -> bool:
    """Whether the application answers ``/v2/health/ready`` through the proxy (models loaded)."""
    url = f"http://{_url_host(host)}:{port}/v2/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
