"""What the driver hands to Ray workers: capsules resolved once, as absolute local paths.

A Ray replica or actor may run in another process or on another node, so the driver resolves each source
the user named exactly once, before anything is deployed, and every worker receives the same resolved
:class:`CapsuleSource`. Today a source is a capsule file, an unpacked capsule or a repository folder; the
path must be readable where the workers run (always true on a local cluster; on a remote one, a shared
file system).

Seam for the registry: a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI is meant to be resolved
here, once, to a version digest (``sha256:…``) plus a local, hash-checked path, so that every replica
serves the same bytes even if the alias moves while the application starts. :func:`resolve_sources`
refuses such URIs with a clear message until the registry lands; the digest field is already carried.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REGISTRY_SCHEME", "CapsuleSource", "resolve_sources"]

REGISTRY_SCHEME = "models:/"


@dataclass(frozen=True)
class CapsuleSource:
    """One source as workers receive it: an absolute path, and the digest it was resolved to (for registry
    URIs; ``None`` for paths, which replicas check against their own manifest hashes on load)."""

    path: str
    digest: str | None = None
    uri: str | None = None


def resolve_sources(sources: Iterable[str | os.PathLike[str]]) -> tuple[CapsuleSource, ...]:
    """Resolve the user's sources once, in the driver; raise ``FileNotFoundError`` for a missing path and
    ``ValueError`` for a source that cannot be resolved here."""
    resolved: list[CapsuleSource] = []
    for source in sources:
        text = os.fspath(source)
        if text.startswith(REGISTRY_SCHEME):
            raise ValueError(
                f"{text}: registry URIs are not resolved by this build of modelcapsule; fetch the capsule "
                "first (it is a local path then) or install a build with the registry."
            )
        path = Path(text).expanduser().resolve()
        if not path.exists():
            raise FileNotFoundError(f"no such capsule or repository: {text}")
        resolved.append(CapsuleSource(str(path)))
    if not resolved:
        raise ValueError("name at least one capsule or repository to serve")
    return tuple(resolved)
