"""What the driver hands to Ray workers: capsules resolved once, as absolute local paths.

A Ray replica or actor may run in another process or on another node, so the driver resolves each source
the user named exactly once, before anything is deployed, and every worker receives the same resolved
:class:`CapsuleSource`. Today a source is a capsule file, an unpacked capsule or a repository folder; the
path must be readable where the workers run (always true on a local cluster; on a remote one, a shared
file system).

Registry models: a ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``models:/NAME`` URI is resolved
here, once, to one version: its digest (``sha256:…``) and its capsule fetched from the registry and
hash-checked. The fetched capsules are laid out as a repository folder ``NAME/VERSION/model.capsule``
(links to the fetched files) so that every replica serves them under the registry's names and numbers,
and the same bytes even if the alias moves while the application starts. Replicas load them with their
own checks, like any capsule; a replica does not follow later alias moves (redeploy to move).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelcapsule.registry import Registry

__all__ = ["REGISTRY_SCHEME", "CapsuleSource", "resolve_sources"]

REGISTRY_SCHEME = "models:/"


@dataclass(frozen=True)
class CapsuleSource:
    """One source as workers receive it: an absolute path, and the digest it was resolved to (for registry
    URIs; ``None`` for paths, which replicas check against their own manifest hashes on load)."""

    path: str
    digest: str | None = None
    uri: str | None = None


def resolve_sources(
    sources: Iterable[str | os.PathLike[str]], registry: Registry | None = None
) -> tuple[CapsuleSource, ...]:
    """Resolve the user's sources once, in the driver; raise ``FileNotFoundError`` for a missing path and
    ``ValueError`` for a source that cannot be resolved here. ``registry`` resolves ``models:/`` URIs
    (default: the one ``$MODELCAPSULE_REGISTRY`` names)."""
    resolved: list[CapsuleSource] = []
    staged: Path | None = None
    uris: list[str] = []
    for source in sources:
        text = os.fspath(source)
        if text.startswith(REGISTRY_SCHEME):
            if registry is None:
                from modelcapsule.registry import Registry as OpenRegistry

                registry = OpenRegistry(create=False)
            if staged is None:
                staged = Path(tempfile.mkdtemp(prefix="modelcapsule-ray-"))
            version = registry.get(text)
            target = staged / version.name / str(version.version)
            if target.exists():
                raise ValueError(f"{text}: model {version.name!r} is named twice; serve each registry model once")
            target.mkdir(parents=True)
            (target / "model.capsule").symlink_to(registry.fetch(f"{version.name}/{version.version}"))
            uris.append(f"{text} = {version.uri} ({version.digest})")
            continue
        path = Path(text).expanduser().resolve()
        if not path.exists():
            raise FileNotFoundError(f"no such capsule or repository: {text}")
        resolved.append(CapsuleSource(str(path)))
    if staged is not None:  # one repository folder holds every registry model, under its registry name
        resolved.append(CapsuleSource(str(staged), None, "; ".join(uris)))
    if not resolved:
        raise ValueError("name at least one capsule or repository to serve")
    return tuple(resolved)
