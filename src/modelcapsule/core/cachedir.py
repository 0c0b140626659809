"""Where modelcapsule keeps per-user caches: ``$MODELCAPSULE_CACHE_DIR``, else ``$XDG_CACHE_HOME/modelcapsule``
(``~/.cache/modelcapsule``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["user_cache_dir"]


def user_cache_dir(*parts: str) -> Path:
    """The cache folder ``parts`` below modelcapsule's per-user cache root (not created here)."""
    configured = os.environ.get("MODELCAPSULE_CACHE_DIR")
    if configured:
        return Path(configured, *parts)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "modelcapsule", *parts)
