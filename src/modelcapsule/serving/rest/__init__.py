"""The REST protocol adapters, in the one registry shape of every extension point.

Each adapter module (``v2``, ``tfserving``, ``seldon``, ``plain``, ``mlflow``) ends with a ``PROTOCOLS``
table of :class:`RestProtocol` entries; one loop registers them, and a duplicate name is refused so
that two adapters never silently shadow each other. Other packages add a protocol with
:func:`register_protocol`, or through the ``modelcapsule.protocols`` entry-point group (each entry point
names a module with a ``PROTOCOLS`` table). Adapters never import each other: what two of them share
lives in ``common``, ``tabular`` and ``seldon_message`` (and ``..v2_codec``, shared with gRPC).
"""

from __future__ import annotations

from ...core.extensions import Registry
from .common import RestProtocol, RouteFactory

__all__ = ["BUILTIN_MODULES", "RestProtocol", "RouteFactory", "all_protocols", "get_protocol", "register_protocol"]

BUILTIN_MODULES = (
    "modelcapsule.serving.rest.v2",
    "modelcapsule.serving.rest.tfserving",
    "modelcapsule.serving.rest.seldon",
    "modelcapsule.serving.rest.plain",
    "modelcapsule.serving.rest.mlflow",
)
"""Modules whose ``PROTOCOLS`` tables are registered on first use."""

_REGISTRY: Registry[RestProtocol] = Registry(
    "protocol", lambda p: isinstance(p, RestProtocol), "PROTOCOLS", BUILTIN_MODULES, "modelcapsule.protocols"
)


def register_protocol(name: str, routes: RouteFactory, *, replace: bool = False) -> None:
    """Add a protocol adapter: ``routes(dataplane)`` gives its routes. A name already taken (built-in
    ones included) is refused unless ``replace``."""
    _REGISTRY.get(name)  # a built-in of that name is registered first, so that it is refused, not shadowed
    _REGISTRY.register(RestProtocol(name, routes), replace=replace)


def get_protocol(name: str) -> RestProtocol:
    """The registered protocol called ``name``."""
    protocol = _REGISTRY.get(name)
    if protocol is None:
        raise LookupError(f"unknown protocol {name!r}; known protocols: {', '.join(_REGISTRY.names())}")
    return protocol


def all_protocols() -> list[RestProtocol]:
    """Every registered protocol, built-in ones first in the order above."""
    return _REGISTRY.all()
