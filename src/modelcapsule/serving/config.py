"""Serving options: the server-wide ones (command line) and the per-model ones (``serving.toml``).

A repository may hold a ``serving.toml`` at its root::

    [defaults]              # applies to every model of the repository
    batch_size = 32         # adaptive batching is on when batch_size > 1
    batch_wait_ms = 2

    [models.iris]
    version_policy = "latest"   # "latest" (the newest `latest` versions), "all", or "specific"
    latest = 1
    versions = [1, 3]           # for "specific"
    labels = { stable = 1, canary = 2 }
    batch_size = 64
    max_queue = 64              # waiting requests per worker past which new ones get 503 (0: no limit)

Unknown keys and wrong types are refused with a message naming the key, so a typo never silently
leaves a default in force.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import CapsuleFormatError

__all__ = ["CONFIG_NAME", "ModelConfig", "ServerOptions", "load_repository_config"]

CONFIG_NAME = "serving.toml"
POLICIES = ("latest", "all", "specific")


@dataclass(frozen=True)
class ModelConfig:
    """How one model is served: which versions, which labels, and its batching."""

    version_policy: str = "latest"
    latest: int = 1
    versions: tuple[int, ...] = ()
    labels: Mapping[str, int] = field(default_factory=dict)
    follow: str | None = None
    """The label the unversioned routes serve (a registry alias given as ``models:/NAME@ALIAS``); None: the newest."""
    batch_size: int = 1
    batch_wait_ms: float = 2.0
    max_queue: int = 0
    """Requests of this model waiting for or in a model call, per worker, past which new ones get 503
    (0: no limit)."""

    @property
    def batching(self) -> bool:
        return self.batch_size > 1

    def select(self, candidates: list[int]) -> list[int]:
        """Versions to try, in preference order (newest first); ``latest`` stops after N successes."""
        newest_first = sorted(candidates, reverse=True)
        if self.version_policy == "specific":
            return [v for v in newest_first if v in self.versions]
        return newest_first


@dataclass(frozen=True)
class ServerOptions:
    """Server-wide settings, from the command line or :func:`~modelcapsule.serving.create_app`."""

    batch_size: int = 1
    batch_wait_ms: float = 2.0
    poll_seconds: float = 2.0
    max_body_bytes: int = 64 << 20
    predict_threads: int = 1
    """Threads calling models (and the BLAS/OpenMP threads each may use): a small fixed number."""
    numeric_threads: int = 1
    """Threads numpy/BLAS/OpenMP may use inside one model call (avoids oversubscription between workers)."""
    verify: bool = True
    trusted: tuple[str, ...] = ()
    runtime: str = "flat"
    """How models are run: ``flat`` (the default: a tree ensemble's stored flat trees, proven bit-identical
    to scikit-learn at save and on the golden sample at load, served without importing scikit-learn; any
    other capsule through its saved object), ``python`` (always the saved object), ``onnx`` (the capsule's
    ONNX export through onnxruntime) or ``auto`` (the faster of the two on the golden sample)."""
    watch_calls: int = 100
    """After a label moves to a new version, how many model calls are watched for errors."""
    max_error_rate: float = 0.1
    """Share of failed calls among the watched ones above which the new version is swapped out again."""
    max_queue: int = 0
    """Default per-model queue limit (``--max-queue``; ``serving.toml`` ``max_queue`` per model); 0: none."""
    retry_after_seconds: int = 1
    """What an overloaded answer's ``Retry-After`` says."""
    tokens: Any = None
    """The bearer tokens inference and admin routes need (a :class:`~.auth.Tokens`; None: no check)."""

    def model_defaults(self) -> ModelConfig:
        return ModelConfig(batch_size=self.batch_size, batch_wait_ms=self.batch_wait_ms, max_queue=self.max_queue)


_INT_KEYS = ("latest", "batch_size")
_ALLOWED = {"version_policy", "latest", "versions", "labels", "batch_size", "batch_wait_ms", "max_queue"}


def _model_config(raw: Mapping[str, Any], base: ModelConfig, where: str) -> ModelConfig:
    unknown = sorted(set(raw) - _ALLOWED)
    if unknown:
        raise CapsuleFormatError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(_ALLOWED)}.")
    changes: dict[str, Any] = {}
    for key in _INT_KEYS:
        if key in raw:
            value = raw[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise CapsuleFormatError(f"{where}.{key} must be a positive integer, not {value!r}.")
            changes[key] = value
    if "max_queue" in raw:
        value = raw["max_queue"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CapsuleFormatError(f"{where}.max_queue must be an integer >= 0 (0: no limit), not {value!r}.")
        changes["max_queue"] = value
    if "batch_wait_ms" in raw:
        wait = raw["batch_wait_ms"]
        if not isinstance(wait, int | float) or isinstance(wait, bool) or wait < 0:
            raise CapsuleFormatError(f"{where}.batch_wait_ms must be a number of milliseconds >= 0, not {wait!r}.")
        changes["batch_wait_ms"] = float(wait)
    if "version_policy" in raw:
        if raw["version_policy"] not in POLICIES:
            raise CapsuleFormatError(
                f"{where}.version_policy must be one of {POLICIES}, not {raw['version_policy']!r}."
            )
        changes["version_policy"] = raw["version_policy"]
    if "versions" in raw:
        versions = raw["versions"]
        if not isinstance(versions, list) or not all(isinstance(v, int) and v > 0 for v in versions):
            raise CapsuleFormatError(f"{where}.versions must be a list of positive integers, not {versions!r}.")
        changes["versions"] = tuple(versions)
    if "labels" in raw:
        labels = raw["labels"]
        if not isinstance(labels, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in labels.values()
        ):
            raise CapsuleFormatError(f"{where}.labels must map label names to version numbers, not {labels!r}.")
        changes["labels"] = dict(labels)
    config = replace(base, **changes)
    if config.version_policy == "specific" and not config.versions:
        raise CapsuleFormatError(f"{where}: version_policy 'specific' needs a 'versions' list.")
    return config


@dataclass(frozen=True)
class RepositoryConfig:
    """The parsed ``serving.toml`` of one repository."""

    defaults: ModelConfig
    models: Mapping[str, ModelConfig]

    def for_model(self, name: str) -> ModelConfig:
        return self.models.get(name, self.defaults)


def load_repository_config(root: Path, options: ServerOptions) -> RepositoryConfig:
    """Read ``root/serving.toml`` (absent: every model gets the server's defaults)."""
    base = options.model_defaults()
    path = root / CONFIG_NAME
    if not path.is_file():
        return RepositoryConfig(base, {})
    import tomllib  # only for a repository that has the file: its parser is ~2 ms of a server's start

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CapsuleFormatError(f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"defaults", "models"})
    if unknown:
        raise CapsuleFormatError(f"{path}: unknown table(s) {unknown}; use [defaults] and [models.NAME].")
    defaults = _model_config(data.get("defaults", {}), base, f"{path.name} [defaults]")
    models_raw = data.get("models", {})
    if not isinstance(models_raw, dict):
        raise CapsuleFormatError(f"{path}: 'models' must be a table of [models.NAME] tables.")
    models = {name: _model_config(raw, defaults, f"{path.name} [models.{name}]") for name, raw in models_raw.items()}
    return RepositoryConfig(defaults, models)
