"""Finding model versions on disk: single capsules and repository folders ``<name>/<version>/``.

A source is either a capsule (a ``*.capsule`` file or an unpacked capsule directory, served as version
1 under its manifest name or ``--name``) or a repository folder whose children are models and whose
grandchildren are integer versions, each holding one ``*.capsule`` file or an unpacked capsule. Names
starting with a dot are ignored, so a version copied in as ``.tmp-3`` and renamed to ``3`` is only seen
once complete. Each version carries a fingerprint (sizes and modification times) so that a version whose
files change is looked at again. Registry models (``models:/NAME[@ALIAS]``) are scanned by
:class:`~.registry_models.RegistryModels`; their fingerprint is the version's digest, and their capsule
is fetched only when the version is loaded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.container import open_capsule
from ..core.manifest import MANIFEST_NAME
from ..errors import CapsuleError
from .config import ModelConfig, RepositoryConfig, ServerOptions, load_repository_config

if TYPE_CHECKING:
    from .registry_models import RegistryModels

__all__ = ["FoundVersion", "Repository", "fingerprint"]

log = logging.getLogger("modelcapsule.serving")


@dataclass(frozen=True)
class FoundVersion:
    """One version of one model as found on disk."""

    model: str
    version: int
    path: Path
    fingerprint: tuple[Any, ...]
    fetch: Callable[[], Path] | None = None
    """Where the capsule comes from when it is not on disk yet (a registry version): called on load."""


def fingerprint(path: Path) -> tuple[Any, ...]:
    """Sizes and modification times of a capsule file or every file of a capsule directory."""
    if path.is_file():
        st = path.stat()
        return ((path.name, st.st_size, st.st_mtime_ns),)
    items: list[tuple[str, int, int]] = []
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(dirpath, name)
            st = os.stat(full)
            items.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns))
    return tuple(sorted(items))


def is_capsule(path: Path) -> bool:
    return path.is_file() or (path / MANIFEST_NAME).is_file()


def _version_capsule(vdir: Path) -> Path | None:
    if (vdir / MANIFEST_NAME).is_file():
        return vdir
    files = sorted(p for p in vdir.glob("*.capsule") if not p.name.startswith("."))
    if len(files) > 1:
        log.warning("%s holds %d capsules; a version folder must hold exactly one", vdir, len(files))
        return None
    return files[0] if files else None


class Repository:
    """The set of sources ``capsule serve`` was given, scanned on every poll."""

    def __init__(self, sources: list[Path], options: ServerOptions, *, name: str | None = None,
                 registry: RegistryModels | None = None) -> None:
        if name is not None and (len(sources) != 1 or not is_capsule(sources[0]) or registry is not None):
            raise ValueError("--name applies to a single capsule, not to a repository or several sources")
        missing = [str(s) for s in sources if not s.exists()]
        if missing:
            raise FileNotFoundError(f"no such capsule or repository: {', '.join(missing)}")
        self.sources = sources
        self.options = options
        self.name = name
        self.registry = registry
        self._names: dict[tuple[Path, tuple[Any, ...]], str] = {}

    def scan(self) -> tuple[dict[str, dict[int, FoundVersion]], dict[str, ModelConfig]]:
        """Every version on disk per model, and each model's configuration."""
        found: dict[str, dict[int, FoundVersion]] = {}
        configs: dict[str, ModelConfig] = {}
        for source in self.sources:
            if is_capsule(source):
                fp = fingerprint(source)
                model = self.name or self._capsule_name(source, fp)
                found.setdefault(model, {})[1] = FoundVersion(model, 1, source, fp)
                configs.setdefault(model, self.options.model_defaults())
                continue
            repo_config = self._config(source)
            for mdir in sorted(source.iterdir()):
                if mdir.name.startswith(".") or not mdir.is_dir():
                    continue
                versions = found.setdefault(mdir.name, {})
                configs[mdir.name] = repo_config.for_model(mdir.name)
                for vdir in mdir.iterdir():
                    if vdir.name.startswith(".") or not vdir.is_dir() or not vdir.name.isdigit():
                        continue
                    version = int(vdir.name)
                    capsule = _version_capsule(vdir) if version > 0 else None
                    if capsule is not None:
                        versions[version] = FoundVersion(mdir.name, version, capsule, fingerprint(capsule))
        if self.registry is not None:
            from_registry, registry_configs = self.registry.scan(self.options.model_defaults())
            for model in from_registry:
                if model in found:
                    raise ValueError(f"model {model!r} is served both from the registry and from a path; "
                                     "serve one of them under another name (--name, or a repository folder name)")
            found.update(from_registry)
            configs.update(registry_configs)
        return found, configs

    def watch(self, on_change: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``on_change`` when a followed registry model changes (PostgreSQL registries announce every
        commit); the function that stops watching, or None when only polling applies."""
        return None if self.registry is None else self.registry.watch(on_change)

    def report_failure(self, name: str, version: int, labels: dict[str, int], serving: dict[str, int | None],
                       reason: str, *, kind: str = "serving_failure") -> None:
        """Tell the registry (for registry models) that this server refused ``version``; see
        :meth:`~.registry_models.RegistryModels.report_failure`."""
        if self.registry is not None:
            self.registry.report_failure(name, version, labels, serving, reason, kind=kind)

    def _config(self, root: Path) -> RepositoryConfig:
        try:
            return load_repository_config(root, self.options)
        except CapsuleError as exc:
            log.error("%s; using the server defaults until it is fixed", exc)
            return RepositoryConfig(self.options.model_defaults(), {})

    def _capsule_name(self, path: Path, fp: tuple[Any, ...]) -> str:
        key = (path, fp)
        if key not in self._names:
            try:
                with open_capsule(path) as reader:
                    self._names[key] = reader.manifest.name
            except (CapsuleError, OSError) as exc:
                log.error("cannot read the manifest of %s (%s); serving it as %r", path, exc, path.stem)
                self._names[key] = path.stem
        return self._names[key]
