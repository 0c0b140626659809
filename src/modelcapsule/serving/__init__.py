"""Serving capsules over HTTP and gRPC: one data plane behind every protocol's adapter (DESIGN §6).

Use ``capsule serve`` from the command line, or in Python::

    from modelcapsule.serving import DataPlane, Repository, ServerOptions, create_app
    options = ServerOptions(batch_size=32)
    app = create_app(DataPlane(Repository([Path("iris.capsule")], options)))   # any ASGI server runs it
"""

from __future__ import annotations

from .app import create_app
from .config import ModelConfig, ServerOptions
from .dataplane import DataPlane
from .metrics import ServingMetrics
from .repository import Repository
from .server import ServeSettings, serve

__all__ = [
    "DataPlane",
    "ModelConfig",
    "Repository",
    "ServeSettings",
    "ServerOptions",
    "ServingMetrics",
    "create_app",
    "serve",
]
