"""What the pages show, whoever serves them: the :class:`UISource` protocol and its plain records.

``capsule serve`` (the models it serves) and ``capsule registry serve`` (every registered model) each
implement :class:`UISource`; the pages and their JSON twins render only these records and cards, so
the two servers show the same pages and the UI never knows something its source does not say.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["HistoryEvent", "ModelInfo", "NotFound", "PredictionError", "UISource", "VersionInfo",
           "headline_metrics", "matches"]


class NotFound(LookupError):
    """No such model or version (the pages answer 404 with this message)."""


class PredictionError(ValueError):
    """The try-it form's rows were not accepted (the pages answer 400 with this message)."""


@dataclass(frozen=True)
class VersionInfo:
    """One version as the model page lists it."""

    version: int
    created_at: str
    created_by: str | None = None
    digest: str | None = None
    aliases: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    model_class: str | None = None
    task: str | None = None
    state: str | None = None
    """Serving state (``AVAILABLE``, ``END``...) when a server reports it; None in a registry."""
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HistoryEvent:
    """Something that happened to a model: an alias move, a registration, a serving failure..."""

    at: str
    by: str
    kind: str
    alias: str | None = None
    from_version: int | None = None
    to_version: int | None = None
    reason: str = ""

    @property
    def failure(self) -> bool:
        """A server refused the version (``serving_failure``, ``serving_error_rate``) or anything that failed."""
        return self.kind.startswith("serving_") or "fail" in self.kind

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failure": self.failure}


@dataclass(frozen=True)
class ModelInfo:
    """A model with its versions (newest first), aliases (alias → version) and tags."""

    name: str
    versions: list[VersionInfo]
    aliases: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    protected: list[str] = field(default_factory=list)

    @property
    def latest(self) -> VersionInfo | None:
        return self.versions[0] if self.versions else None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "tags": self.tags, "aliases": self.aliases,
                "protected": self.protected, "versions": [v.to_dict() for v in self.versions]}


@runtime_checkable
class UISource(Protocol):
    """Where the pages get their data. Methods may block (they run on a worker thread), except
    :meth:`predict`, which is awaited on the server's event loop."""

    title: str
    """Shown in the page header (e.g. ``capsule serve`` or ``model registry``)."""
    can_predict: bool
    """Whether version pages offer the try-it form."""
    @property
    def links(self) -> Sequence[tuple[str, str]]:
        """(text, path) pairs shown in every page's footer: the server's own API documents."""
        ...

    def models(self) -> Sequence[ModelInfo]:
        """Every model, sorted by name."""
        ...

    def model(self, name: str) -> ModelInfo:
        """One model; raises :class:`NotFound`."""
        ...

    def history(self, name: str) -> Sequence[HistoryEvent]:
        """The model's events, newest first (alias moves, registrations, serving failures)."""
        ...

    def card(self, name: str, version: int) -> dict[str, Any]:
        """The model card of one version (:func:`modelcapsule.ui.card.build_card`); raises :class:`NotFound`."""
        ...

    async def predict(self, name: str, version: int, rows: Any) -> dict[str, Any]:
        """Outputs (name → list) for ``rows``; raises :class:`PredictionError` for rows the model refuses."""
        ...


def headline_metrics(manifest: Mapping[str, Any]) -> dict[str, float]:
    """The few numbers a version is compared by: evaluation metrics, then the mean of each CV metric."""
    out: dict[str, float] = {}
    evaluation = manifest.get("evaluation") or {}
    for key, value in (evaluation.get("metrics") or {}).items():
        if isinstance(value, (int, float)):
            out[str(key)] = float(value)
    for key, value in ((manifest.get("provenance") or {}).get("metrics") or {}).items():
        if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
            out.setdefault(str(key), sum(value) / len(value))
        elif isinstance(value, (int, float)) and math.isfinite(value):
            out.setdefault(str(key), float(value))
    return out


def matches(model: ModelInfo, query: str, tags: Mapping[str, str]) -> bool:
    """Search as the models page does it: ``query`` is a substring or a glob over the name, description
    and tag values; every ``tags`` key must be present with that value."""
    if any(model.tags.get(k) != v for k, v in tags.items()):
        return False
    q = query.strip().lower()
    if not q:
        return True
    haystack = [model.name.lower(), model.description.lower(), *(f"{k}={v}".lower() for k, v in model.tags.items())]
    if any(ch in q for ch in "*?["):
        return any(fnmatch.fnmatchcase(text, q) for text in haystack)
    return any(q in text for text in haystack)
