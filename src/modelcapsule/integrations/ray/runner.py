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
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any

from ...serving import ServerOptions, ServeSettings
from .cluster import ray_session
from .serve import Ingress, Replicas, capsule_app

__all__ = ["APP_NAME", "RAY_PROXY_PORT", "RayServeInfo", "serve_on_ray"]

APP_NAME = "modelcapsule"
RAY_PROXY_PORT = 8000
"""Ray Serve's own default HTTP port: its proxy's port when the replicas take ``port`` (direct ingress)."""


@dataclass(frozen=True)
class RayServeInfo:
    """What :func:`serve_on_ray` reports once the application runs."""

    url: str
    """Where the application answers: the replicas' own port (direct ingress) or Ray's proxy."""
    replicas: Replicas
    local_cluster: bool
    ready: bool
    ingress: Ingress = "proxy"
    proxy_url: str | None = None
    """Ray Serve's HTTP proxy, which also routes to the application (with direct ingress: another port)."""


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
    ingress: Ingress = "proxy",
    direct: ServeSettings | None = None,
    proxy_port: int | None = None,
) -> None:
    """Serve ``sources`` on Ray Serve until SIGINT/SIGTERM (or ``stop`` is set).

    ``ingress="direct"``: the replicas serve on ``host:port`` themselves (``direct`` carries their
    server's other settings: read timeout, keep-alive, connection limit, TLS) and Ray's proxy listens on
    ``proxy_port`` (default 8000). Raises ``OSError`` when a port is taken (checked before a local cluster
    starts), ``ValueError`` or ``FileNotFoundError`` for bad sources or settings (before anything is deployed).
    """
    from ray import serve

    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # the command prints its own status lines
    stop = stop or threading.Event()
    if ingress == "direct":
        direct = replace(direct or ServeSettings(), host=host, port=port)
        proxy_port = RAY_PROXY_PORT if proxy_port is None else proxy_port
        if proxy_port == port:
            raise ValueError(f"Ray's proxy and the replicas cannot share port {port}; choose another proxy port")
    elif proxy_port is not None and proxy_port != port:
        raise ValueError("a separate proxy port applies with direct ingress only (the proxy listens on port)")
    proxy_port = port if proxy_port is None else proxy_port
    app = capsule_app(sources, name=name, options=options, replicas=replicas, ingress=ingress,
                      direct=direct)  # resolves sources and checks the settings first
    if address is None:
        if ingress == "direct":
            _check_port_free(host, port)
            try:
                _check_port_free(host, proxy_port)
            except OSError as exc:
                raise OSError(f"{exc} (Ray Serve's proxy; choose its port with --ray-proxy-port)") from None
        else:
            _check_port_free(host, port)
    previous = _install_stop_handlers(stop)
    try:
        with ray_session(address, num_cpus=num_cpus) as local:
            if local:
                _check_room(replicas)
            try:
                serve.start(http_options={"host": host, "port": proxy_port}, logging_config={"log_level": "WARNING"})
                serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
                if on_ready is not None:
                    scheme = "https" if direct is not None and direct.tls_cert is not None else "http"
                    url = f"{scheme}://{_url_host(host)}:{port}"
                    proxy_url = f"http://{_url_host(host)}:{proxy_port}"
                    on_ready(RayServeInfo(url, replicas, local, _ready(proxy_url), ingress, proxy_url))
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


def _ready(base: str) -> bool:
    """Whether the application answers ``/v2/health/ready`` through Ray's proxy (models loaded)."""
    url = f"{base}/v2/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - an http:// URL built here
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
