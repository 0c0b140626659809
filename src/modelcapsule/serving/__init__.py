"""Serving capsules over HTTP and gRPC: one data plane behind every protocol's adapter (DESIGN §6).

Use ``capsule serve`` from the command line, or in Python::

    from modelcapsule.serving import DataPlane, Repository, ServerOptions, create_app
    options = ServerOptions(batch_size=32)
    app = create_app(DataPlane(Repository([Path("iris.capsule")], options)))   # any ASGI server runs it
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ModelConfig, ServerOptions
from .dataplane import DataPlane
from .metrics import MetricsRegistry, ServingMetrics
from .repository import Repository

if TYPE_CHECKING:
    from .app import create_app
    from .server import ServeSettings, bind_socket, http_server, limit_numeric_threads, serve

__all__ = [
    "DataPlane",
    "MetricsRegistry",
    "ModelConfig",
    "Repository",
    "ServeSettings",
    "ServerOptions",
    "ServingMetrics",
    "bind_socket",
    "create_app",
    "http_server",
    "limit_numeric_threads",
    "serve",
]


def __getattr__(name: str) -> Any:
    """The HTTP side (Starlette, uvicorn) is imported on first use, so that the data plane and the gRPC
    servicer import no HTTP framework."""
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "serve":
        from .server import serve

        return serve
    if name in ("ServeSettings", "bind_socket", "http_server", "limit_numeric_threads"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
