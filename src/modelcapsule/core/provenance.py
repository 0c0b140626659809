"""Where a model came from: the training script (hash, git commit, text), a fingerprint of the training
data (never the data itself) and the metrics the user reports, such as cross-validation scores."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SOURCE_MEMBER", "calling_script", "describe_source", "fingerprint_data", "json_metrics"]

SOURCE_MEMBER = "provenance/source.py"
MAX_SOURCE_BYTES = 4 << 20


def _library_dirs() -> list[Path]:
    paths = sysconfig.get_paths()
    dirs = {Path(__file__).resolve().parents[1]}  # the modelcapsule package
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if key in paths:
            dirs.add(Path(paths[key]).resolve())
    return list(dirs)


def calling_script() -> Path | None:
    """The user's training script: the first file on the call stack that is neither modelcapsule nor an
    installed library (so a CLI or notebook call records nothing rather than a library file)."""
    libraries = _library_dirs()
    frame = sys._getframe(1)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_file():
            resolved = path.resolve()
            if not any(lib == resolved.parent or lib in resolved.parents for lib in libraries):
                return resolved
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _git_commit(path: Path) -> tuple[str | None, bool | None]:
    try:
        head = subprocess.run(["git", "-C", str(path.parent), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=False)
        if head.returncode != 0:
            return None, None
        status = subprocess.run(["git", "-C", str(path.parent), "status", "--porcelain", "--", str(path)],
                                capture_output=True, text=True, timeout=5, check=False)
        return head.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def describe_source(source: str | Path | bool | None) -> tuple[dict[str, Any] | None, bytes | None]:
    """``(manifest entry, script text)`` for ``source`` (a path, None for the calling script, False for none).

    The text is kept (as member ``provenance/source.py``) so the model can be re-trained later.
    """
    if source is False:
        return None, None
    path = calling_script() if source is None or source is True else Path(source).resolve()
    if path is None or not path.is_file():
        return None, None
    data = path.read_bytes()
    entry: dict[str, Any] = {"path": str(path), "sha256": hashlib.sha256(data).hexdigest()}
    commit, dirty = _git_commit(path)
    if commit:
        entry["git_commit"] = commit
        entry["git_dirty"] = dirty
    if len(data) <= MAX_SOURCE_BYTES:
        entry["member"] = SOURCE_MEMBER
        return entry, data
    return entry, None


def _hash_array(h: Any, values: Any) -> None:
    array = np.asarray(values)
    if array.dtype.kind in {"O", "U"}:
        for v in array.ravel():
            h.update(repr(v).encode())
    else:
        h.update(str(array.dtype).encode())
        h.update(np.ascontiguousarray(array).tobytes())


def fingerprint_data(training_data: Any) -> dict[str, Any]:
    """Hash, shape, dtypes and column names of ``X`` or ``(X, y)``; the data itself is not stored."""
    x, y = training_data if isinstance(training_data, tuple) and len(training_data) == 2 else (training_data, None)
    h = hashlib.sha256()
    out: dict[str, Any] = {}
    if hasattr(x, "columns") and hasattr(x, "dtypes"):
        out["columns"] = [str(c) for c in x.columns]
        out["dtypes"] = {str(c): str(t) for c, t in x.dtypes.items()}
        for c in x.columns:
            h.update(str(c).encode())
            _hash_array(h, x[c].to_numpy())
        shape = x.shape
    else:
        array = np.asarray(x)
        out["dtypes"] = str(array.dtype)
        _hash_array(h, array)
        shape = array.shape
    out["n_samples"] = int(shape[0])
    out["n_features"] = int(shape[1]) if len(shape) > 1 else 1
    if y is not None:
        y_array = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
        _hash_array(h, y_array)
        out["target_dtype"] = str(y_array.dtype)
    out["fingerprint"] = "sha256:" + h.hexdigest()
    return out


def json_metrics(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """Metrics as JSON: arrays and numpy scalars become lists and floats (CV folds stay a list)."""
    out: dict[str, Any] = {}
    for name, value in (metrics or {}).items():
        if isinstance(value, (list, tuple, np.ndarray)):
            out[str(name)] = [float(v) for v in np.asarray(value, dtype=float).ravel()]
        elif isinstance(value, (int, float, np.generic)):
            out[str(name)] = float(value)
        else:
            out[str(name)] = value
    return out
