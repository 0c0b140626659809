"""Running the server: load once, bind, then serve HTTP (uvicorn) and gRPC from one or more workers.

Models are loaded in the parent before any worker starts, so ``--workers N`` forks processes that share
the loaded model's memory copy-on-write (and the capsule's memory-mapped arrays); each worker then runs
its own event loop with the HTTP server on the shared listening socket and a gRPC server on the same
port (``SO_REUSEPORT``), and polls the repository itself. SIGTERM or SIGINT stops accepting, lets
in-flight requests finish (uvicorn's graceful shutdown, then gRPC's grace period) and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .app import create_app
from .config import ServerOptions
from .dataplane import DataPlane
from .metrics import ServingMetrics
from .repository import Repository

__all__ = ["ServeSettings", "bind_socket", "serve"]

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


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket, bound before workers fork so that they all accept on it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def configure_logging(access_log: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("modelcapsule")
    if not root.handlers:
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("modelcapsule.serving.access").setLevel(logging.INFO if access_log else logging.WARNING)


def limit_numeric_threads(threads: int) -> None:
    """Cap BLAS/OpenMP threads in this process (workers × threads should not exceed the cores)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
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


async def run_worker(dataplane: DataPlane, sock: socket.socket, settings: ServeSettings) -> None:
    """One worker: HTTP on ``sock`` and gRPC on ``settings.grpc_port`` until a stop signal."""
    import uvicorn

    app = create_app(dataplane)
    config = uvicorn.Config(
        app,
        lifespan="on",
        access_log=False,
        log_level="warning",
        http="httptools",
        timeout_graceful_shutdown=int(GRACE_SECONDS),
        timeout_keep_alive=30,
        loop="none",
    )
    server = uvicorn.Server(config)
    grpc_server: Any = None
    if settings.grpc_port is not None:
        from .grpc.service import start_grpc_server

        grpc_server = await start_grpc_server(dataplane, settings.host, settings.grpc_port)
    try:
        await server.serve(sockets=[sock])
    finally:
        if grpc_server is not None:
            await grpc_server.stop(GRACE_SECONDS)


def _run(dataplane: DataPlane, sock: socket.socket, settings: ServeSettings) -> None:
    limit_numeric_threads(dataplane.options.numeric_threads)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(run_worker(dataplane, sock, settings))


def serve(
    sources: list[Path],
    *,
    name: str | None = None,
    settings: ServeSettings | None = None,
    options: ServerOptions | None = None,
    on_ready: Callable[[DataPlane], None] | None = None,
) -> None:
    """Load ``sources``, then serve them until SIGTERM/SIGINT (the body of ``capsule serve``)."""
    settings = settings or ServeSettings()
    options = options or ServerOptions()
    configure_logging(settings.access_log)
    limit_numeric_threads(options.numeric_threads)
    repository = Repository(sources, options, name=name)
    dataplane = DataPlane(repository, options=options, metrics=ServingMetrics())
    asyncio.run(dataplane.reconcile())
    dataplane.reset_loop_state()
    sock = bind_socket(settings.host, settings.port)
    if on_ready is not None:
        on_ready(dataplane)
    if settings.workers <= 1:
        _run(dataplane, sock, settings)
        return
    children: list[int] = []
    for _ in range(settings.workers):
        pid = os.fork()
        if pid == 0:  # a worker
            code = 0
            try:
                _run(dataplane, sock, settings)
            except BaseException:
                log.exception("worker %d failed", os.getpid())
                code = 1
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: Any) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
