"""Running the server: load once, bind, then serve HTTP (uvicorn) and gRPC from one or more workers.

Models are loaded in the parent before any worker starts, so ``--workers N`` forks processes that share
the loaded model's memory copy-on-write (and the capsule's memory-mapped arrays), supervised by
:mod:`.workers` (a dead worker is replaced); each worker then runs
its own event loop with the HTTP server on the shared listening socket and a gRPC server on the same
port (``SO_REUSEPORT``), and polls the repository itself. SIGTERM or SIGINT stops accepting, lets
in-flight requests finish (uvicorn's graceful shutdown, then gRPC's grace period) and exits.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.threads import default_numeric_threads, limited_before_load
from .app import create_app
from .config import ServerOptions
from .dataplane import DataPlane
from .metrics import ServingMetrics
from .registry_models import RegistryModels
from .repository import Repository
from .sockets import bind_socket
from .workers import CrashLoopError, RestartPolicy, Supervisor

__all__ = ["ServeSettings", "bind_socket", "http_server", "limit_numeric_threads", "serve"]

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("modelcapsule.serving")
GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class ServeSettings:
    """Where and how to listen (the command line's ``capsule serve`` options)."""

    host: str = "127.0.0.1"
    port: int = 8080
    grpc_port: int | None = 8081
    workers: int = 1
    access_log: bool = True
    max_restarts: int = 5
    """Dead workers replaced within ``restart_window_seconds`` before the server gives up (a crash loop)."""
    restart_window_seconds: float = 60.0
    max_connections: int | None = None
    """Concurrent HTTP connections (and gRPC calls) per worker past which requests get 503 (RESOURCE_EXHAUSTED)."""
    read_timeout: float = 30.0
    """Seconds a request may take to arrive whole (headers and body) before its connection is closed (0: none)."""
    keep_alive_seconds: float = 30.0
    """Idle keep-alive connections are closed after this long."""
    tls_cert: Path | None = None
    """PEM certificate chain: HTTPS and gRPC over TLS (with ``tls_key``)."""
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    """PEM CA bundle: clients must present a certificate it signed (mutual TLS)."""


def configure_logging(access_log: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("modelcapsule")
    if not root.handlers:
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("modelcapsule.serving.access").setLevel(logging.INFO if access_log else logging.WARNING)


def limit_numeric_threads(threads: int) -> None:
    """Cap BLAS/OpenMP threads in this process (workers × threads should not exceed the cores): the
    libraries loaded later through their variables, those already loaded through ``threadpoolctl``."""
    default_numeric_threads(threads)
    if limited_before_load(threads):  # the pools were never larger (core/threads.py)
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return
    threadpool_limits(limits=threads)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def run_worker(dataplane: DataPlane, sock: socket.socket, settings: ServeSettings, *,
                     refresh: bool = False) -> None:
    """One worker: HTTP on ``sock`` and gRPC on ``settings.grpc_port`` until a stop signal.

    ``refresh`` re-scans the repository first: a worker that replaces a dead one is forked from the
    parent's state at start, and must catch up with the versions its siblings have loaded since."""
    if refresh:
        await dataplane.reconcile()

    server = http_server(dataplane, settings)
    _stop.server = server
    if _stop.requested:
        return
    grpc_server: Any = None
    if settings.grpc_port is not None:
        from .grpc.server import TlsFiles, start_grpc_server

        tls = None if settings.tls_cert is None or settings.tls_key is None else TlsFiles(
            settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        grpc_server = await start_grpc_server(dataplane, settings.host, settings.grpc_port, shared=settings.workers > 1,
                                              max_calls=settings.max_connections, tls=tls)
    try:
        if not _stop.requested:
            await server.serve(sockets=[sock])
    finally:
        if grpc_server is not None:
            await grpc_server.stop(GRACE_SECONDS)


def http_server(dataplane: DataPlane, settings: ServeSettings) -> uvicorn.Server:
    """The HTTP server of one ``capsule serve`` worker, not started: uvicorn with httptools (guarded
    against slow clients by ``settings.read_timeout``), keep-alive, connection limit and TLS from
    ``settings``, over :func:`create_app` (whose lifespan polls the repository and drains on shutdown).

    Run it with ``await server.serve(sockets=[sock])`` on any event loop; set ``server.should_exit`` to
    stop it gracefully. Signal handlers are installed only when it runs in the main thread."""
    import uvicorn

    from .http_direct import DirectHttpTools
    from .http_limits import guarded_protocol

    config = uvicorn.Config(
        create_app(dataplane),
        lifespan="on",
        access_log=False,
        log_level="warning",
        http=guarded_protocol(settings.read_timeout) if settings.read_timeout > 0 else DirectHttpTools,
        timeout_graceful_shutdown=int(GRACE_SECONDS),
        timeout_keep_alive=int(max(1, settings.keep_alive_seconds)),
        limit_concurrency=settings.max_connections,
        loop="none",
        ws="none",  # no WebSocket endpoint: the websockets stack (~2 MiB resident) is never imported
        **_uvicorn_tls(settings),
    )
    return uvicorn.Server(config)


def _uvicorn_tls(settings: ServeSettings) -> dict[str, Any]:
    """uvicorn's TLS settings (none without a certificate; client certificates required with a client CA)."""
    if settings.tls_cert is None or settings.tls_key is None:
        return {}
    import ssl

    options: dict[str, Any] = {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}
    if settings.tls_client_ca is not None:
        options.update(ssl_ca_certs=str(settings.tls_client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


class _StopSignal:
    """The worker's SIGTERM/SIGINT handler outside uvicorn's own (before it serves, and after).

    A stop that arrives while the worker is still starting (before uvicorn installs its handlers) is
    remembered and ends the server as soon as it exists; one that arrives after the graceful shutdown
    (uvicorn re-raises the signal it caught) does nothing more, so the worker exits with 0."""

    def __init__(self) -> None:
        self.requested = False
        self.server: Any = None

    def __call__(self, signum: int, _frame: Any) -> None:
        self.requested = True
        if self.server is not None:
            self.server.should_exit = True


_stop = _StopSignal()


def _run(dataplane: DataPlane, sock: socket.socket, settings: ServeSettings, replacement: bool = False) -> None:
    limit_numeric_threads(dataplane.options.numeric_threads)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID` prints every thread's stack
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(run_worker(dataplane, sock, settings, refresh=replacement))


def serve(
    sources: list[Path],
    *,
    name: str | None = None,
    settings: ServeSettings | None = None,
    options: ServerOptions | None = None,
    on_ready: Callable[[DataPlane], None] | None = None,
    registry: RegistryModels | None = None,
) -> None:
    """Load ``sources`` (and ``registry`` models), then serve them until SIGTERM/SIGINT (``capsule serve``)."""
    settings = settings or ServeSettings()
    options = options or ServerOptions()
    configure_logging(settings.access_log)
    limit_numeric_threads(options.numeric_threads)
    if registry is not None:
        registry.check()
    repository = Repository(sources, options, name=name, registry=registry)
    dataplane = DataPlane(repository, options=options, metrics=ServingMetrics())
    asyncio.run(dataplane.reconcile())
    dataplane.reset_loop_state()
    sock = bind_socket(settings.host, settings.port)
    if on_ready is not None:
        on_ready(dataplane)
    if settings.workers <= 1:
        _run(dataplane, sock, settings)
        return
    supervisor = Supervisor(
        partial(_run, dataplane, sock, settings),
        settings.workers,
        policy=RestartPolicy(settings.max_restarts, settings.restart_window_seconds),
        grace_seconds=GRACE_SECONDS + 10,
    )
    try:
        code = supervisor.run()
    except CrashLoopError as exc:
        raise SystemExit(f"capsule serve: {exc}") from None
    if code:
        raise SystemExit(code)
