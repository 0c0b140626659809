"""``models:/NAME@ALIAS`` and ``models:/NAME/VERSION`` as capsule paths: the version is looked up in the
registry ``$MODELCAPSULE_REGISTRY`` names (else ``./modelcapsule-registry/``) and fetched, hash-checked,
into a local path. Loading it then runs every load check with the loader's own trust policy: names
trusted at registration are never trusted here."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .refs import URI_PREFIX, parse_ref
from .service import Registry

__all__ = ["fetch_uri"]

_open: dict[tuple[str | None, ...], Registry] = {}
_lock = threading.Lock()


def _registry() -> Registry:
    key = tuple(os.environ.get(v) for v in ("MODELCAPSULE_REGISTRY", "MODELCAPSULE_STORE", "MODELCAPSULE_TOKEN"))
    with _lock:
        if key not in _open:
            _open[key] = Registry(create=False)
        return _open[key]


def fetch_uri(uri: str) -> Path:
    """The local, hash-checked capsule a ``models:/`` URI names."""
    if not uri.startswith(URI_PREFIX):
        raise ValueError(f"{uri!r} is not a models:/ URI")
    ref = parse_ref(uri)
    return _registry().fetch(str(ref))
