"""What the data plane holds per model: its versions, their states, and the loaded predictors.

State names follow TF Serving's ``ModelVersionStatus.State`` (START, LOADING, AVAILABLE, UNLOADING,
END); a version that failed to load or verify is END with its error kept for the status APIs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.manifest import Manifest
from ..errors import InvalidInputError
from ..types import Predictor
from .batching import Batcher, Outputs
from .config import ModelConfig
from .errors import InvalidRequestError
from .requests import Inputs, RequestValidator, Table, rows_of

__all__ = ["LoadedVersion", "ModelEntry", "State", "VersionStatus"]


class State(enum.Enum):
    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"


class LoadedVersion:
    """One loaded, verified model version: predictor, compiled request checks and its batcher."""

    def __init__(self, name: str, version: int, path: Path, manifest: Manifest, predictor: Predictor) -> None:
        self.name = name
        self.version = version
        self.version_text = str(version)
        self.path = path
        self.manifest = manifest
        self.predictor = predictor
        self.signature = predictor.signature if manifest.signature is None else manifest.signature
        self.validator = RequestValidator(self.signature)
        self.batcher: Batcher | None = None
        self.calls = 0
        """Model calls made (a batch counts once), so that a version can be judged after a swap."""
        self.failed_calls = 0
        self._tabular = {s.name for s in self.signature.inputs if s.columns is not None} if self.signature else set()

    @property
    def task(self) -> str:
        return str(self.manifest.model.get("task", ""))

    @property
    def classes(self) -> tuple[Any, ...] | None:
        return None if self.signature is None else self.signature.classes

    def predict(self, inputs: Inputs, outputs: tuple[str, ...]) -> Outputs:
        """Run the predictor (on an executor thread, or on the loop for a short batched call) and check it
        answered one row per input row."""
        self.calls += 1
        try:
            return self._call(inputs, outputs)
        except InvalidRequestError:
            raise  # the caller's mistake, not a failure of the model
        except BaseException:
            self.failed_calls += 1
            raise

    def _call(self, inputs: Inputs, outputs: tuple[str, ...]) -> Outputs:
        args: dict[str, Any] = {}
        for name, value in inputs.items():
            if isinstance(value, Table):
                args[name] = value.to_frame() if name in self._tabular else value.as_array()
            else:
                args[name] = value
        try:
            result = self.predictor.predict(args, list(outputs) if outputs else None)
        except InvalidInputError as exc:  # an input the model refuses (NaN where it takes none...): a 4xx
            raise InvalidRequestError(str(exc)) from exc
        rows = rows_of(inputs)
        out: Outputs = {}
        for name, value in result.items():
            arr = np.asarray(value)
            if arr.ndim == 0 or arr.shape[0] != rows:
                raise RuntimeError(f"output {name!r} has shape {arr.shape} for {rows} input rows")
            out[name] = arr
        return out


@dataclass
class VersionStatus:
    """A version seen in the repository: where it is, its state, and its error if it failed."""

    version: int
    path: Path
    fingerprint: tuple[Any, ...]
    fetch: Callable[[], Path] | None = None
    state: State = State.START
    error: str = ""
    loaded: LoadedVersion | None = None


@dataclass
class ModelEntry:
    """A served model: its configuration and every version the repository shows."""

    name: str
    config: ModelConfig
    versions: dict[int, VersionStatus] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    """The version each label serves now. It moves to the label's configured target only once that version
    is available (loaded and verified); a target that fails leaves the label where it was."""
    watched: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    """Labels that just moved: label → (new version, version it moved from), until the new one is judged."""
    pending: int = 0
    """Requests waiting for or in a model call now (counted only when ``config.max_queue`` is set)."""

    def available(self) -> list[LoadedVersion]:
        """Loaded versions, newest first."""
        return [
            s.loaded
            for _, s in sorted(self.versions.items(), reverse=True)
            if s.state is State.AVAILABLE and s.loaded is not None
        ]

    def newest(self) -> LoadedVersion | None:
        """The newest loaded version (``available()[0]``, found without sorting: every request without a
        version asks for it)."""
        best: LoadedVersion | None = None
        number = 0
        for version, status in self.versions.items():
            if status.state is State.AVAILABLE and status.loaded is not None and (best is None or version > number):
                best, number = status.loaded, version
        return best

    def get(self, version: int | None = None, label: str | None = None) -> LoadedVersion | None:
        if label is not None:
            if label not in self.config.labels:
                raise InvalidRequestError(
                    f"model {self.name!r} has no label {label!r}; its labels are {sorted(self.config.labels)}."
                )
            version = self.labels.get(label, self.config.labels[label])
        if version is None and self.config.follow is not None:
            version = self.labels.get(self.config.follow)
            if version is None:
                return None  # the followed alias has no available target: never serve another version instead
        if version is None:
            return self.newest()
        status = self.versions.get(version)
        if status is None or status.state is not State.AVAILABLE:
            return None
        return status.loaded
