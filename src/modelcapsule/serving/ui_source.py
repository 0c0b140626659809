"""The web pages' view of a running server: the models it serves, their cards, and the try-it form.

Implements :class:`modelcapsule.ui.source.UISource` over the data plane, so ``capsule serve``'s ``/``
shows the same pages as the registry server. Cards are read from each version's capsule on disk
(manifest and plain-data members; nothing is loaded twice); environment drift is measured against
this server's own process. A version that failed to load is listed with its error (state ``END``).
"""

from __future__ import annotations

from typing import Any

from ..core.container import open_capsule
from ..errors import CapsuleError
from ..ui.source import HistoryEvent, ModelInfo, NotFound, PredictionError, VersionInfo, headline_metrics
from .dataplane import DataPlane
from .errors import ModelNotFoundError, ModelNotReadyError, ServingError
from .models import LoadedVersion, ModelEntry, VersionStatus
from .rest.common import to_list
from .rest.tabular import from_records, from_rows
from .transport import Call, Decoded, new_request_id

__all__ = ["ServedSource"]


class ServedSource:
    """What ``capsule serve`` shows: one model per served name, versions with their serving state."""

    title = "capsule serve"
    can_predict = True
    links = (("OpenAPI", "/openapi.json"), ("Prometheus metrics", "/metrics"), ("Ready", "/v2/health/ready"))

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    def _entry(self, name: str) -> ModelEntry:
        entry = self.dataplane.models.get(name)
        if entry is None:
            raise NotFound(f"this server serves no model named {name!r}; it serves {sorted(self.dataplane.models)}.")
        return entry

    @staticmethod
    def _version(entry: ModelEntry, number: int, status: VersionStatus) -> VersionInfo:
        labels = [label for label, v in entry.config.labels.items() if v == number]
        manifest: dict[str, Any] = {}
        if status.loaded is not None:
            manifest = status.loaded.manifest.to_dict()
        else:
            try:
                with open_capsule(status.path) as reader:
                    manifest = reader.manifest.to_dict()
            except (CapsuleError, OSError):
                pass  # the state and error say why it is not served
        return VersionInfo(version=number, created_at=str(manifest.get("created_at", "")), aliases=labels,
                           metrics=headline_metrics(manifest), model_class=(manifest.get("model") or {}).get("class"),
                           task=(manifest.get("model") or {}).get("task"), state=status.state.value,
                           error=status.error)

    def model(self, name: str) -> ModelInfo:
        entry = self._entry(name)
        versions = [self._version(entry, n, s) for n, s in sorted(entry.versions.items(), reverse=True)]
        return ModelInfo(name=name, versions=versions, aliases=dict(entry.config.labels))

    def models(self) -> list[ModelInfo]:
        return [self.model(name) for name in sorted(self.dataplane.models)]

    def history(self, name: str) -> list[HistoryEvent]:
        self._entry(name)
        return []  # a server keeps no history of its own; a registry does

    def card(self, name: str, version: int) -> dict[str, Any]:
        # the card (evaluation charts, environment comparison, trust report) is built when first browsed:
        # its modules cost a serving process ~2.7 MiB that a server no one browses never needs
        from ..ui.card import card_from_path

        status = self._entry(name).versions.get(version)
        if status is None:
            raise NotFound(f"model {name!r} has no version {version} on this server.")
        try:
            return card_from_path(status.path)
        except (CapsuleError, OSError) as exc:
            raise NotFound(f"the capsule of {name!r} version {version} cannot be read: {exc}") from None

    async def predict(self, name: str, version: int, rows: Any) -> dict[str, Any]:
        """The try-it form's rows through the one data-plane call, counted like any request (protocol ``ui``)."""

        async def decode(loaded: LoadedVersion) -> Decoded:
            if isinstance(rows, list) and rows and isinstance(rows[0], dict):
                return Decoded(from_records(loaded, rows, "rows"), None, "rows")
            return Decoded(from_rows(loaded, rows, None, "rows"), None, "rows")

        try:
            done = await self.dataplane.infer(Call("ui", new_request_id()), decode, name, str(version))
        except (ModelNotFoundError, ModelNotReadyError) as exc:
            raise NotFound(str(exc)) from None
        except ServingError as exc:  # rows the signature refuses, a model that raised
            raise PredictionError(str(exc)) from None
        return {output: to_list(value) for output, value in done.outputs.items()}
