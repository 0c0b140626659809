"""``convert``: turn a legacy model file (``.joblib``, ``.pkl``, ``.skops``) or a capsule into a capsule.

The source is loaded like any other file (restricted unpickler, exact trust policy: run ``audit`` first
and pass what you trust as ``trusted``), then saved with :func:`modelcapsule.save`, which records the
environment, the chosen format and why, and the golden sample. The sample is the one given (an array, a
DataFrame, or a ``.npy``/``.csv``/``.parquet``/``.json`` file); for a capsule source its stored golden
sample is reused when none is given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .core.container import Limits, open_capsule, sha256_of
from .core.manifest import Manifest
from .core.sample import read_sample
from .errors import UnsupportedModelError
from .load import load_capsule
from .save import save

__all__ = ["SAMPLE_SUFFIXES", "convert", "read_sample_file"]

SAMPLE_SUFFIXES = (".npy", ".csv", ".parquet", ".json")


def read_sample_file(path: str | os.PathLike[str]) -> Any:
    """Rows of input from a ``.npy`` (no pickles), ``.csv``, ``.parquet`` or ``.json`` file."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        return np.load(p, allow_pickle=False)
    if suffix in (".csv", ".parquet"):
        import pandas as pd

        return pd.read_csv(p) if suffix == ".csv" else pd.read_parquet(p)
    if suffix == ".json":
        data = json.loads(p.read_text())
        if isinstance(data, Mapping) or (isinstance(data, list) and data and isinstance(data[0], Mapping)):
            import pandas as pd

            return pd.DataFrame(data)
        return np.asarray(data)
    raise UnsupportedModelError(
        f"cannot read a sample from {p.name}: use one of {', '.join(SAMPLE_SUFFIXES)}."
    )


def _stored_sample(path: Path) -> Any:
    with open_capsule(path) as reader:
        if not reader.manifest.sample:
            return None
        inputs, _outputs = read_sample(reader, reader.manifest.sample)
        return inputs


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    format: str = "auto",
    trusted: Iterable[str] = (),
    sample: Any = None,
    name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    layout: str = "zip",
    limits: Limits | None = None,
) -> Manifest:
    """Load ``src`` safely (only what the defaults and ``trusted`` admit) and save it as a capsule at ``dst``.

    ``sample`` is an array/DataFrame or the path of a ``.npy``/``.csv``/``.parquet``/``.json`` file; it
    becomes the golden sample. The manifest's metadata records where the model came from.
    """
    source = Path(src)
    trusted = list(trusted)
    loaded = load_capsule(source, trusted=trusted, limits=limits)
    if isinstance(sample, (str, os.PathLike)):
        sample = read_sample_file(sample)
    if sample is None and loaded.manifest.files:
        sample = _stored_sample(source)
    origin: dict[str, Any] = {"path": source.name, "format": loaded.manifest.format_name}
    if source.is_file():
        with open(source, "rb") as fh:
            origin["sha256"] = sha256_of(fh.read())
    meta = {"converted_from": origin, **dict(metadata or {})}
    return save(loaded.model, dst, format=format, sample=sample, trusted=trusted, source=False, metadata=meta,
                name=name or source.name.split(".")[0], overwrite=overwrite,
                layout="dir" if layout == "dir" else "zip")
