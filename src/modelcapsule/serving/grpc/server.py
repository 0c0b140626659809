"""The V2 gRPC listener of a ``capsule serve`` worker: a socket, TLS, connections, a graceful stop.

:func:`start_grpc_server` listens in the running event loop; each accepted connection is an
:class:`~.http2.Connection` whose streams :class:`~.calls.GrpcCalls` turns into calls of
:class:`~.service.InferenceServicer`. With TLS, ALPN offers ``h2`` (gRPC clients require it), and a
client CA makes it mutual: a client without a certificate that chains to it is refused in the handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from ..dataplane import DataPlane
from ..sockets import bind_socket
from .calls import GrpcCalls
from .http2 import Connection, Limits
from .service import InferenceServicer, methods

__all__ = ["GrpcServer", "TlsFiles", "start_grpc_server"]

log = logging.getLogger("modelcapsule.serving")

_HANDSHAKE_SECONDS = 10.0


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of the server's certificate chain and key, and (mutual TLS) the CA its clients' certificates
    must chain to."""

    cert: Path
    key: Path
    client_ca: Path | None = None


class GrpcServer:
    """A listening gRPC server: :attr:`port` it is bound to, and :meth:`stop`."""

    def __init__(self, server: asyncio.Server, connections: set[Connection], port: int) -> None:
        self._server = server
        self._connections = connections
        self.port = port

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting; send every connection GOAWAY so its calls in flight finish (for up to ``grace``
        seconds; None waits for them), then close whatever is left."""
        self._server.close()
        for conn in list(self._connections):
            conn.shutdown()
        loop = asyncio.get_running_loop()
        until = None if grace is None else loop.time() + grace
        while self._connections and (until is None or loop.time() < until):
            await asyncio.sleep(0.02)
        for conn in list(self._connections):
            conn.abort(0, "the server is stopping")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 1.0)


def tls_context(tls: TlsFiles) -> ssl.SSLContext:
    """A server context with ALPN ``h2``, TLS 1.2 or later, and client certificates required with a CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert, tls.key)
    context.set_alpn_protocols(["h2"])
    if tls.client_ca is not None:
        context.load_verify_locations(cafile=str(tls.client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _listening_socket(host: str, port: int, shared: bool) -> socket.socket:
    try:
        sock = bind_socket(host, port, reuse_port=shared, backlog=1024)
    except OSError as exc:
        raise OSError(f"cannot listen for gRPC on {host}:{port} ({exc.strerror}); choose another --grpc-port or "
                      "--no-grpc") from None
    sock.setblocking(False)
    return sock


async def start_grpc_server(dataplane: DataPlane, host: str, port: int, *, shared: bool = False,
                            max_calls: int | None = None, tls: TlsFiles | None = None) -> GrpcServer:
    """Start serving V2 gRPC on ``host:port`` (in the running event loop); returns the server.

    ``shared``: several workers listen on the port (``SO_REUSEPORT``); otherwise a port already in use
    is an error rather than silently shared with whatever holds it. ``max_calls`` bounds the calls in
    flight (past it: ``RESOURCE_EXHAUSTED``). Requests are limited to the data plane's body limit."""
    limit = dataplane.options.max_body_bytes
    calls = GrpcCalls(methods(InferenceServicer(dataplane)), tokens=dataplane.options.tokens, max_message=limit,
                      max_calls=max_calls)  # fmt: skip
    limits = Limits(max_body=limit + 5)  # the message and its 5-byte prefix
    connections: set[Connection] = set()

    def connection() -> Connection:
        conn = Connection(calls, limits, on_close=connections.discard)
        connections.add(conn)
        return conn

    sock = _listening_socket(host, port, shared)
    context = None if tls is None else tls_context(tls)
    server = await asyncio.get_running_loop().create_server(
        connection, sock=sock, ssl=context, ssl_handshake_timeout=_HANDSHAKE_SECONDS if context else None)
    bound = sock.getsockname()[1]
    log.info("V2 gRPC listening on %s:%d", host, bound)
    return GrpcServer(server, connections, bound)
