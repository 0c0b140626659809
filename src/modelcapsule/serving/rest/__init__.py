"""The protocol adapters: one table, one entry per protocol, each giving its routes for a data plane.

Other packages add a protocol with :func:`register_protocol`; a duplicate name is refused so that two
adapters never silently shadow each other.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.routing import BaseRoute

from ..dataplane import DataPlane
from . import mlflow, plain, seldon, tfserving, v2

__all__ = ["PROTOCOLS", "RouteFactory", "register_protocol"]

RouteFactory = Callable[[DataPlane], list[BaseRoute]]

PROTOCOLS: dict[str, RouteFactory] = {}
"""Protocol name → the function that builds its routes for a data plane."""


def register_protocol(name: str, factory: RouteFactory) -> None:
    """Add a protocol adapter; refuses a name already taken."""
    if name in PROTOCOLS:
        raise ValueError(f"a protocol named {name!r} is already registered")
    PROTOCOLS[name] = factory


for _name, _factory in (
    ("v2", v2.routes),
    ("tfserving", tfserving.routes),
    ("seldon", seldon.routes),
    ("plain", plain.routes),
    ("mlflow", mlflow.routes),
):
    register_protocol(_name, _factory)
