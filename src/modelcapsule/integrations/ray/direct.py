"""Direct ingress: a Ray Serve replica that serves the ``capsule serve`` application on the node's port itself.

Why: through Ray Serve's HTTP proxy every request crosses a Python proxy process, an actor call and
Ray's ASGI wrapping inside the replica; on a small machine that path, not the model, caps throughput
(see docs/benchmarks-ray.md). In direct mode each replica runs modelcapsule's own HTTP server (uvicorn
with httptools, the slow-client guard, keep-alive and connection limits of ``capsule serve``) on its
own event loop, in a thread of the replica process, on ``host:port`` bound with ``SO_REUSEPORT``: every
replica on a node shares the port and the kernel spreads connections across them. A load balancer in
front of each node's port plays the part of Ray's proxy.

The replica stays a Ray Serve deployment (placement, autoscaling, replacement by Ray): its constructor
loads every capsule with every check on that loop before the server binds, its ``check_health`` fails
when the server has died (so Ray replaces the replica), and its shutdown stops the server gracefully.
Requests that still come through Ray's proxy are handed to the same application on the server's loop
(:func:`bridge_app`), so one data plane, one set of batches and one set of metrics serve both routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ...serving import (
    DataPlane,
    Repository,
    ServerOptions,
    ServeSettings,
    ServingMetrics,
    bind_socket,
    http_server,
    limit_numeric_threads,
)
from .autoscaling import IN_FLIGHT_METRIC
from .port_claim import PortClaim
from .sources import CapsuleSource

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DirectServer", "bridge_app", "direct_replica_class"]

log = logging.getLogger("modelcapsule.integrations.ray")
START_SECONDS = 600.0
"""How long a replica may take to load its capsules and bind before its constructor gives up."""
STOP_SECONDS = 20.0
"""How long stopping waits for in-flight requests (uvicorn's graceful shutdown) before giving up."""


class DirectServer:
    """``capsule serve``'s HTTP server over ``sources``, on its own event loop in a daemon thread."""

    def __init__(self, sources: Sequence[CapsuleSource], name: str | None, options: ServerOptions,
                 settings: ServeSettings, identity: str = "modelcapsule") -> None:
        self.identity = identity
        """The application the port is claimed for: replicas of another one may not share it (:mod:`.port_claim`)."""
        self.sources = tuple(sources)
        self.name = name
        self.options = options
        self.settings = settings
        self.dataplane: DataPlane | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.app: ASGIApp | None = None
        """The application the server runs (set once it is built, on the server's loop)."""
        self.http: Any = None
        """The uvicorn server (set once it is built); ``should_exit`` stops it."""
        self._started: Future[None] = Future()
        self._stopping = False
        self._ended = False
        self._thread = threading.Thread(target=self._run, name="modelcapsule-direct-ingress", daemon=True)

    def start(self) -> Future[None]:
        """Start the thread; the future is done once the capsules are loaded and the port listens (or
        holds the error that stopped it: a port another user holds, a server that failed to start)."""
        self._thread.start()
        return self._started

    def check(self) -> None:
        """Raise ``RuntimeError`` unless the server is serving (Ray's health check calls this)."""
        if self._stopping:
            return
        if self._ended or not self._thread.is_alive() or self.http is None or not self.http.started:
            raise RuntimeError(
                f"the replica's HTTP server on {self.settings.host}:{self.settings.port} is not running"
            )
        if self.http.should_exit:
            raise RuntimeError("the replica's HTTP server is shutting down")

    def in_flight(self) -> int:
        """Requests the server is handling now (read from another thread: a snapshot)."""
        http = self.http
        return 0 if http is None else len(http.server_state.tasks)

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Stop accepting, let in-flight requests finish, stop the loop; idempotent."""
        self._stopping = True
        server, loop = self.http, self.loop
        if server is not None and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(setattr, server, "should_exit", True)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            factory = _loop_factory()
            with asyncio.Runner(loop_factory=factory) as runner:
                self.loop = runner.get_loop()
                try:
                    runner.run(self._serve())
                finally:
                    self._ended = True  # before the runner cancels what is left, which may take a while
        except BaseException as exc:  # whatever ended the thread goes to the constructor
            if not self._started.done():
                self._started.set_exception(exc)
            elif not self._stopping:
                log.error("the replica's HTTP server stopped: %s", exc)
        finally:
            if not self._started.done():
                self._started.set_exception(RuntimeError("the replica's HTTP server ended before it started"))

    async def _serve(self) -> None:
        limit_numeric_threads(self.options.numeric_threads)
        repository = Repository([Path(s.path) for s in self.sources], self.options, name=self.name)
        dataplane = DataPlane(repository, options=self.options, metrics=ServingMetrics())
        await dataplane.reconcile()  # every capsule loaded with every check, before the port opens
        self.dataplane = dataplane
        claim = PortClaim(self.settings.host, self.settings.port, self.identity)
        try:
            sock = bind_socket(self.settings.host, self.settings.port, reuse_port=True)
        except BaseException:
            claim.release()
            raise
        server = self.http = http_server(dataplane, self.settings)
        self.app = cast("ASGIApp", server.config.app)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                    raise RuntimeError("the replica's HTTP server did not start (its start-up failed; see the log)")
                await asyncio.sleep(0.01)
            self._started.set_result(None)
            await task
        finally:
            sock.close()
            claim.release()


def direct_replica_class(sources: Sequence[CapsuleSource], name: str | None, options: ServerOptions,
                         settings: ServeSettings) -> type:
    """The replica class of a direct-ingress deployment (for ``serve.ingress()`` and ``serve.deployment``)."""

    class ModelCapsuleDirectReplica:
        """One replica: ``capsule serve``'s HTTP server on the node's port, and Ray's proxy route to it."""

        def __init__(self) -> None:
            from ray import serve

            context = serve.get_replica_context()
            identity = f"Ray Serve application {context.app_name!r}, deployment {context.deployment!r}"
            self._direct = DirectServer(sources, name, options, settings, identity)
            try:  # the capsules load and the port opens before Ray counts the replica as started
                self._direct.start().result(START_SECONDS)
            except BaseException:
                self._direct.stop()
                raise

        def __serve_build_asgi_app__(self) -> ASGIApp:
            return bridge_app(self._direct)

        def record_autoscaling_stats(self) -> dict[str, float]:
            """Ray's custom autoscaling metrics: the requests this replica's own server is handling."""
            return {IN_FLIGHT_METRIC: float(self._direct.in_flight())}

        def check_health(self) -> None:
            """Ray calls this periodically: a replica whose HTTP server died is replaced."""
            self._direct.check()

        def __del__(self) -> None:
            direct = self.__dict__.get("_direct")
            if direct is not None:
                direct.stop()

    return ModelCapsuleDirectReplica


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def bridge_app(server: DirectServer) -> ASGIApp:
    """An ASGI app for Ray's proxy route that runs each request through ``server``'s application on the
    server's own loop (the data plane, its batches and metrics live there) and relays the answer.

    The request body is read whole first and the answer is relayed once complete: the REST protocols
    answer in one piece. The lifespan is the server's own; here it only acknowledges Ray's."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif kind == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            raise RuntimeError(f"the capsule application answers HTTP, not {scope['type']}")
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        target, loop = server.app, server.loop
        if target is None or loop is None or loop.is_closed():
            raise RuntimeError("the replica's HTTP server is not running")
        inner_scope = {k: v for k, v in scope.items() if k not in ("app", "router", "route", "endpoint", "state")}
        call = asyncio.run_coroutine_threadsafe(_answer(target, inner_scope, bytes(body)), loop)
        for message in await asyncio.wrap_future(call):
            await send(message)

    return app


async def _answer(app: ASGIApp, scope: Scope, body: bytes) -> list[Message]:
    """Run ``app`` on one whole request; every message it sends, in order."""
    sent: list[Message] = []
    done = asyncio.Event()
    given = False

    async def receive() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # asked again (a streamed answer listening for a disconnect): only after the end
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    try:
        await app(scope, receive, send)
    finally:
        done.set()
    return sent
