"""URIs that stand for a capsule path, such as ``models:/fraud@champion`` (a registry version).

Every verb that takes a capsule path calls :func:`resolve_capsule_path` first. The handler of each scheme
is named by dotted path and imported only when such a URI is used, so the core never imports the layer
that serves it (the registry, and through it SQLAlchemy)."""

from __future__ import annotations

import os
from typing import Any

from .extensions import load_attribute

__all__ = ["SCHEMES", "resolve_capsule_path"]

SCHEMES: dict[str, str] = {
    "models:/": "modelcapsule.registry.uri:fetch_uri",
}
"""URI prefix → ``module:function`` taking the URI and returning a local, hash-checked capsule path."""


def resolve_capsule_path(path: Any) -> Any:
    """``path`` unchanged, unless it is a URI of a known scheme: then the local path it was fetched to."""
    if isinstance(path, str | os.PathLike):
        text = os.fspath(path)
        if isinstance(text, str):
            for prefix, target in SCHEMES.items():
                if text.startswith(prefix):
                    return load_attribute(target)(text)
    return path
