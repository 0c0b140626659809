"""The web pages' view of a model registry (``capsule registry serve``): every registered model.

Implements :class:`~modelcapsule.ui.source.UISource` over ``mc.Registry``'s Python API (any backend:
embedded, database, or a remote registry over HTTP). Version rows come from the registry's records
(the manifest each version was registered with); a version page fetches the hash-checked capsule and
builds its card, adding what the registry knows (digest, who registered it, aliases, tags, the audit
recorded at registration). The registry runs no model, so the pages offer no try-it form here.

The registry is typed by the few methods used, so this module imports nothing from the registry
package (and type-checks without its optional dependencies).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from ..errors import CapsuleError
from .card import card_from_path
from .source import HistoryEvent, ModelInfo, NotFound, PredictionError, VersionInfo, headline_metrics

__all__ = ["RegistrySource"]


class _Record(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class _Registry(Protocol):
    def models(self, pattern: str | None = None) -> list[Any]: ...
    def model(self, name: str) -> Any: ...
    def versions(self, name: str) -> list[Any]: ...
    def history(self, name: str, alias: str | None = None) -> list[Any]: ...
    def get(self, ref: str) -> Any: ...
    def fetch(self, ref: str) -> Path: ...


def _version_info(record: Mapping[str, Any]) -> VersionInfo:
    manifest = record.get("manifest") or {}
    model = manifest.get("model") or {}
    return VersionInfo(version=int(record["version"]), created_at=str(record.get("created_at", "")),
                       created_by=record.get("created_by"), digest=record.get("digest"),
                       aliases=sorted(record.get("aliases") or []), metrics=headline_metrics(manifest),
                       model_class=model.get("class"), task=model.get("task"))


class RegistrySource:
    """What ``capsule registry serve`` shows, read through ``registry`` (an ``mc.Registry``)."""

    title = "model registry"
    can_predict = False
    links = (("REST API (OpenAPI)", "/api/v1/openapi.json"),)

    def __init__(self, registry: _Registry) -> None:
        self.registry = registry

    def _model(self, record: Mapping[str, Any], versions: list[Mapping[str, Any]]) -> ModelInfo:
        newest = max(versions, key=lambda v: int(v["version"]), default={})
        tags = {**(newest.get("tags") or {}), **(record.get("tags") or {})}  # the model's own tags win
        return ModelInfo(name=str(record["name"]), description=str(record.get("description") or ""),
                         tags=tags, aliases=dict(record.get("aliases") or {}),
                         protected=list(record.get("protected") or []),
                         versions=sorted((_version_info(v) for v in versions), key=lambda v: -v.version))

    def model(self, name: str) -> ModelInfo:
        try:
            record = self.registry.model(name).to_dict()
            versions = [v.to_dict() for v in self.registry.versions(name)]
        except LookupError as exc:
            raise NotFound(str(exc)) from None
        return self._model(record, versions)

    def models(self) -> list[ModelInfo]:
        out = []
        for model in self.registry.models():
            record = model.to_dict()
            try:
                versions = [v.to_dict() for v in self.registry.versions(str(record["name"]))]
            except LookupError:
                continue  # deleted between the two reads
            out.append(self._model(record, versions))
        return sorted(out, key=lambda m: m.name)

    def history(self, name: str) -> list[HistoryEvent]:
        try:
            events = [e.to_dict() for e in self.registry.history(name)]
        except LookupError as exc:
            raise NotFound(str(exc)) from None
        out = [HistoryEvent(at=str(e.get("at", "")), by=str(e.get("by", "")), kind=str(e.get("kind", "")),
                            alias=e.get("alias"), from_version=e.get("from_version"),
                            to_version=e.get("to_version"), reason=str(e.get("reason") or "")) for e in events]
        out.sort(key=lambda e: e.at)  # stable: events of the same instant keep the registry's order
        out.reverse()
        return out

    def card(self, name: str, version: int) -> dict[str, Any]:
        ref = f"{name}/{version}"
        try:
            record = self.registry.get(ref).to_dict()
            path = self.registry.fetch(ref)
        except LookupError as exc:
            raise NotFound(str(exc)) from None
        shown = {k: v for k, v in record.items() if k != "manifest"}
        try:
            return card_from_path(path, registry=shown)
        except (CapsuleError, OSError) as exc:
            raise NotFound(f"the capsule of {ref} cannot be read: {exc}") from None

    async def predict(self, name: str, version: int, rows: Any) -> dict[str, Any]:
        raise PredictionError("the registry runs no model; try a prediction on a server: capsule serve "
                              f"models:/{name}/{version}")
