"""``import_registry`` (``capsule registry import-mlflow``): MLflow's registered models into modelcapsule's.

Every version of every chosen MLflow model is converted by :func:`~.importer.import_mlflow` (so through
modelcapsule's restricted readers only) and registered with ``Registry.register``, which runs every load
check again. A version that cannot be converted safely is reported and skipped, never imported unsafely.
Tags and descriptions come along; aliases are set on the versions they point to once those are imported.

Re-running imports only what is new: each imported version carries the tags ``mlflow.version`` and
``mlflow.source``, and a version already carrying them is not converted again. MLflow version numbers
may have gaps (deleted versions); modelcapsule numbers versions 1, 2, 3… as they arrive, and the tag
keeps the mapping.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import CapsuleError
from .importer import import_mlflow
from .tracking import client

__all__ = ["RegistryImportReport", "import_registry"]

VERSION_TAG = "mlflow.version"
SOURCE_TAG = "mlflow.source"


@dataclass
class RegistryImportReport:
    """What was imported (``name: {mlflow version: modelcapsule version}``), what was already there,
    what was skipped and why, and which aliases were set."""

    imported: dict[str, dict[int, int]] = field(default_factory=dict)
    already: dict[str, dict[int, int]] = field(default_factory=dict)
    skipped: dict[str, dict[int, str]] = field(default_factory=dict)
    aliases: dict[str, dict[str, int]] = field(default_factory=dict)
    alias_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.skipped and not self.alias_problems

    def to_dict(self) -> dict[str, Any]:
        return {"imported": self.imported, "already": self.already, "skipped": self.skipped,
                "aliases": self.aliases, "alias_problems": self.alias_problems, "ok": self.ok}


def _existing(registry: Any, name: str, source: str) -> dict[int, int]:
    """``{mlflow version: modelcapsule version}`` already imported from ``source`` under ``name``."""
    try:
        versions = registry.versions(name)
    except LookupError:  # the model is not in the registry yet
        return {}
    found: dict[int, int] = {}
    for mv in versions:
        tags = mv.tags or {}
        if tags.get(SOURCE_TAG) == source and str(tags.get(VERSION_TAG, "")).isdigit():
            found[int(tags[VERSION_TAG])] = int(mv.version)
    return found


def _import_version(registry: Any, mlflow_client: Any, tracking_uri: str, name: str, mv: Any,
                    trusted: list[str], workdir: Path) -> int:
    version = int(mv.version)
    out = workdir / f"{version}.capsule"
    import_mlflow(f"models:/{name}/{version}", out, trusted=trusted, tracking_uri=tracking_uri, name=name)
    tags = {str(k): str(v) for k, v in (mv.tags or {}).items()}
    tags.update({VERSION_TAG: str(version), SOURCE_TAG: tracking_uri})
    if mv.run_id:
        tags["mlflow.run_id"] = str(mv.run_id)
    model = mlflow_client.get_registered_model(name)
    registered = registry.register(name, out, tags=tags, description=mv.description or "", trusted=trusted,
                                   model_tags={str(k): str(v) for k, v in (model.tags or {}).items()})
    return int(registered.version)


def _set_aliases(registry: Any, name: str, aliases: dict[str, Any], mapping: dict[int, int],
                 report: RegistryImportReport) -> None:
    current = dict(registry.model(name).aliases) if mapping else {}
    for alias, mlflow_version in sorted(aliases.items()):
        target = mapping.get(int(mlflow_version))
        if target is None:
            report.alias_problems.append(f"{name}@{alias} points to MLflow version {mlflow_version}, which was not "
                                         "imported; the alias was left unset")
            continue
        if current.get(alias) != target:
            registry.set_alias(name, alias, target, reason=f"imported from MLflow ({name}@{alias} → v{mlflow_version})")
        report.aliases.setdefault(name, {})[alias] = target


def import_registry(tracking_uri: str, registry: Any = None, *, models: Iterable[str] = (),
                    trusted: Iterable[str] = ()) -> RegistryImportReport:
    """Copy MLflow's registered models (all, or those named in ``models``) into ``registry`` (a
    :class:`modelcapsule.Registry`, or a location for one; default ``$MODELCAPSULE_REGISTRY``)."""
    if registry is None or isinstance(registry, (str, Path)):
        from modelcapsule.registry import Registry  # the registry extra

        reg = Registry(registry)
    else:
        reg = registry
    mlflow_client = client(tracking_uri)
    wanted = list(models)
    names = wanted or sorted(m.name for m in mlflow_client.search_registered_models())
    trusted = list(trusted)
    report = RegistryImportReport()
    with tempfile.TemporaryDirectory(prefix="capsule-mlflow-registry-") as tmp:
        for name in names:
            registered_model = mlflow_client.get_registered_model(name)
            mapping = _existing(reg, name, tracking_uri)
            if mapping:
                report.already[name] = dict(mapping)
            versions = sorted(mlflow_client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
            for mv in versions:
                version = int(mv.version)
                if version in mapping:
                    continue
                try:
                    mapping[version] = _import_version(reg, mlflow_client, tracking_uri, name, mv, trusted, Path(tmp))
                except (CapsuleError, TypeError, ValueError, FileNotFoundError) as exc:
                    report.skipped.setdefault(name, {})[version] = f"{type(exc).__name__}: {exc}"
                    continue
                report.imported.setdefault(name, {})[version] = mapping[version]
            _set_aliases(reg, name, dict(registered_model.aliases or {}), mapping, report)
    return report
