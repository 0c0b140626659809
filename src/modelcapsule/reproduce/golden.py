"""The original capsule's golden sample, and the re-trained model's predictions on the same inputs.

The old model is never loaded: its outputs on the sample were recorded at save time, so the comparison
holds even when the old model no longer loads in the current environment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.container import open_capsule
from ..core.manifest import Manifest
from ..core.sample import read_sample, record_outputs
from ..load import framework_of, load_capsule

__all__ = ["predict_with", "saved_sample"]


def _members(section: Any) -> list[str]:
    """Every ``member`` named anywhere in the manifest's ``sample`` section."""
    found: list[str] = []
    if isinstance(section, Mapping):
        for key, value in section.items():
            if key in ("member", "mask") and isinstance(value, str):
                found.append(value)
            else:
                found += _members(value)
    elif isinstance(section, list):
        for item in section:
            found += _members(item)
    return found


Outputs = dict[str, np.ndarray[Any, Any]]


def saved_sample(path: Path, manifest: Manifest) -> tuple[dict[str, Any], Outputs] | None:
    """``(inputs, outputs by method)`` of the golden sample, its members' hashes checked; None if absent."""
    if not manifest.sample:
        return None
    with open_capsule(path) as reader:
        reader.check_hashes([m for m in _members(reader.manifest.sample) if m in reader.manifest.files])
        inputs, outputs = read_sample(reader, reader.manifest.sample or {})
        # Copy out of the capsule's memory map before the reader closes.
        inputs = {k: np.array(v) if isinstance(v, np.ndarray) else v.copy() for k, v in inputs.items()}
        return inputs, {k: np.array(v) for k, v in outputs.items()}


def predict_with(path: Path, inputs: Mapping[str, Any], methods: Iterable[str],
                 trusted: Iterable[str] = ()) -> tuple[Outputs, dict[str, str]]:
    """Load the capsule at ``path`` (checked, its own golden sample verified) and call each of ``methods``
    that its model has on ``inputs``. Returns the outputs, and why each method that failed did (a
    re-trained model may not accept the old inputs at all, e.g. after a change of features)."""
    loaded = load_capsule(path, trusted=tuple(trusted), on_mismatch="ignore", verify=True)
    framework = framework_of(loaded.model, loaded.manifest)
    if framework is None:
        return {}, {m: "no framework can call the re-trained model" for m in methods}
    return record_outputs(framework, loaded.model, inputs, methods)
