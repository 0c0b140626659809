"""The golden sample's members: written without pickle, read back under a schema and a size budget.

Arrays are written as ``.npy`` with ``allow_pickle=False``; text and categorical columns as fixed-width
unicode plus a null mask, with the original dtype recorded so they come back as they were. A pandas
DataFrame is stored column by column; records (dicts) and label sets as JSON.

Reading trusts nothing in the manifest's ``sample`` section: its shape is checked entry by entry, every
member it names must be a ``sample/`` member of the capsule, every array must be plain data (numbers,
booleans, fixed-width text) whose header agrees with its bytes, JSON values are plain and shallow, and
the whole sample stays under :attr:`~modelcapsule.core.container.Limits.max_sample_bytes`. Anything else
is a :class:`~modelcapsule.errors.CapsuleFormatError`, never a builtin exception.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import CapsuleFormatError, LimitExceededError
from .npy import NpyError, array_from_npy

__all__ = ["check_sample_section", "plain", "read_sample", "write_sample"]

MAX_ENTRIES = 10_000
"""Inputs, outputs or columns one sample section may list."""

MAX_JSON_DEPTH = 4
"""Nesting of a JSON-stored sample value: a list of records whose values may be lists."""

_DTYPE_TEXT = re.compile(r"[A-Za-z0-9_\[\], :<>|=]{1,64}")
_STORED_AS = (None, "json", "text")


def _is_dataframe(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "columns") and hasattr(obj, "dtypes")


def _excerpt(value: Any) -> str:
    text = repr(value)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= 60 else text[:60] + "…"


def _bad(where: str, what: str) -> CapsuleFormatError:
    return CapsuleFormatError(f"capsule.json 'sample' {where}: {what}; the manifest is corrupt or hostile.")


# ------------------------------------------------------------------------------------------ schema


def _check_array_entry(entry: Any, where: str, *, column: bool = False) -> None:
    if not isinstance(entry, dict):
        raise _bad(where, f"should be an object, not {type(entry).__name__}")
    member = entry.get("member")
    if not isinstance(member, str) or not member.startswith("sample/") or len(member) > 1024:
        raise _bad(where, f"names member {_excerpt(member)}, which is not a sample/ member")
    dtype = entry.get("dtype", "")
    if not isinstance(dtype, str) or (dtype and not _DTYPE_TEXT.fullmatch(dtype)):
        raise _bad(where, f"has a malformed dtype {_excerpt(dtype)}")
    if entry.get("stored_as") not in _STORED_AS:
        raise _bad(where, f"has an unknown stored_as {_excerpt(entry.get('stored_as'))}")
    mask = entry.get("mask")
    if mask is not None and (not isinstance(mask, str) or not mask.startswith("sample/")):
        raise _bad(where, f"names mask {_excerpt(mask)}, which is not a sample/ member")
    if column and not isinstance(entry.get("name"), (str, int)):
        raise _bad(where, "has a column without a name")
    known = {"member", "dtype", "stored_as", "mask", "kind", "name"}
    if extra := sorted(set(entry) - known):
        raise _bad(where, f"has unknown field(s) {_excerpt(extra)}")


def check_sample_section(section: Any) -> None:
    """Raise :class:`CapsuleFormatError` unless ``section`` has the shape :func:`write_sample` writes."""
    if not isinstance(section, dict):
        raise _bad("section", "should be an object")
    if extra := sorted(set(section) - {"inputs", "outputs"}):
        raise _bad("section", f"has unknown field(s) {_excerpt(extra)}")
    inputs, outputs = section.get("inputs", {}), section.get("outputs", {})
    if not isinstance(inputs, dict) or not isinstance(outputs, dict):
        raise _bad("section", "'inputs' and 'outputs' should be objects")
    if len(inputs) > MAX_ENTRIES or len(outputs) > MAX_ENTRIES:
        raise _bad("section", f"lists more than {MAX_ENTRIES} inputs or outputs")
    for name, entry in inputs.items():
        where = f"input {_excerpt(name)}"
        if not isinstance(entry, dict) or entry.get("kind") not in ("array", "dataframe"):
            raise _bad(where, "should be an object of kind 'array' or 'dataframe'")
        if entry["kind"] == "array":
            _check_array_entry(entry, where)
            continue
        columns = entry.get("columns")
        if not isinstance(columns, list) or not columns or len(columns) > MAX_ENTRIES:
            raise _bad(where, "should list its columns")
        if extra := sorted(set(entry) - {"kind", "columns"}):
            raise _bad(where, f"has unknown field(s) {_excerpt(extra)}")
        for j, column in enumerate(columns):
            _check_array_entry(column, f"{where} column {j}", column=True)
    for method, entry in outputs.items():
        _check_array_entry(entry, f"output {_excerpt(method)}")


# ------------------------------------------------------------------------------------------ writing


def _npy_bytes(array: np.ndarray[Any, Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _json_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(_json_value(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def plain(value: Any) -> Any:
    """Nested lists of Python scalars from arrays, lists of arrays and numpy scalars (for JSON)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _is_na(value: Any) -> bool:
    try:
        import pandas as pd
    except ImportError:
        return False
    try:
        return bool(pd.isna(value)) if np.ndim(value) == 0 else False
    except (TypeError, ValueError):
        return False


def _write_array(sink: Any, member: str, array: Any) -> dict[str, Any]:
    """Write one array (or Series-like column); returns how to read it back."""
    original = str(getattr(array, "dtype", np.asarray(array).dtype))
    values = np.asarray(array)
    entry: dict[str, Any] = {"member": member, "dtype": original}
    if values.dtype.kind in "biufcmMS" or (values.dtype.kind == "U"):
        sink.add(member, _npy_bytes(values))
        return entry
    if values.ndim == 1 and any(isinstance(v, (dict, list, set, tuple)) for v in values):
        # records (dicts) or label sets: JSON, never pickle
        entry["member"] = member = member.removesuffix(".npy") + ".json"
        sink.add(member, json.dumps([_json_value(v) for v in values]).encode())
        entry["stored_as"] = "json"
        return entry
    # object, categorical, pandas string: store text plus a null mask
    mask = np.array([v is None or (isinstance(v, float) and np.isnan(v)) or _is_na(v) for v in values.ravel()],
                    dtype=bool).reshape(values.shape)
    text = np.array(["" if m else str(v) for v, m in zip(values.ravel(), mask.ravel(), strict=True)],
                    dtype=str).reshape(values.shape)
    sink.add(member, _npy_bytes(text))
    if mask.any():
        sink.add(member + ".mask", _npy_bytes(mask))
        entry["mask"] = member + ".mask"
    entry["stored_as"] = "text"
    return entry


def write_sample(sink: Any, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Store inputs and outputs under ``sample/``; returns the manifest's ``sample`` section."""
    from .sample import to_numpy

    section: dict[str, Any] = {"inputs": {}, "outputs": {}}
    for i, (name, value) in enumerate(inputs.items()):
        if _is_dataframe(value):
            cols = []
            for j, col in enumerate(value.columns):
                entry = _write_array(sink, f"sample/inputs/{i}/{j}.npy", value[col])
                entry["name"] = col if isinstance(col, (int, str)) else str(col)
                cols.append(entry)
            section["inputs"][name] = {"kind": "dataframe", "columns": cols}
        else:
            section["inputs"][name] = {"kind": "array", **_write_array(sink, f"sample/inputs/{i}.npy", value)}
    for method, value in outputs.items():
        section["outputs"][method] = _write_array(sink, f"sample/outputs/{method}.npy", to_numpy(value))
    return section


# ------------------------------------------------------------------------------------------ reading


class _Budget:
    """Bytes of sample members read so far, against ``Limits.max_sample_bytes``."""

    def __init__(self, source: Any) -> None:
        limits = getattr(source, "limits", None)
        self.limit = int(getattr(limits, "max_sample_bytes", 256 << 20))
        self.used = 0

    def take(self, source: Any, member: str) -> bytes:
        if member not in source:
            raise CapsuleFormatError(f"the golden sample names member {member!r}, which the capsule does not hold.")
        self.used += int(source.size(member))
        if self.used > self.limit:
            raise LimitExceededError("the golden sample's size", self.used, self.limit, "max_sample_bytes")
        data: bytes = source.read(member)
        return data


def _read_npy(source: Any, member: str, budget: _Budget) -> np.ndarray[Any, Any]:
    try:
        return array_from_npy(budget.take(source, member))
    except NpyError as exc:
        raise CapsuleFormatError(f"golden-sample member {member!r} is not a plain .npy array: {exc}") from exc


def _plain_json(value: Any, depth: int = 0) -> bool:
    if depth > MAX_JSON_DEPTH:
        return False
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(_plain_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_json(v, depth + 1) for k, v in value.items())
    return False


def _read_json(source: Any, member: str, budget: _Budget) -> list[Any]:
    raw = budget.take(source, member)
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CapsuleFormatError(f"golden-sample member {member!r} is not valid JSON") from exc
    if not isinstance(value, list) or not _plain_json(value):
        raise CapsuleFormatError(
            f"golden-sample member {member!r} should be a list of plain, shallow JSON values (nested at most "
            f"{MAX_JSON_DEPTH} deep)."
        )
    return value


def _read_array(source: Any, entry: Mapping[str, Any], budget: _Budget) -> Any:
    member = str(entry["member"])
    if entry.get("stored_as") == "json":
        return _read_json(source, member, budget)
    values = _read_npy(source, member, budget)
    dtype = str(entry.get("dtype", values.dtype))
    if entry.get("stored_as") != "text":
        return values
    if values.dtype.kind != "U":
        raise CapsuleFormatError(f"golden-sample member {member!r} should hold text, not {values.dtype}.")
    out = values.astype(object)
    if "mask" in entry:
        mask = _read_npy(source, str(entry["mask"]), budget)
        if mask.dtype != np.bool_ or mask.shape != out.shape:
            raise CapsuleFormatError(f"the null mask of golden-sample member {member!r} does not fit its values.")
        out[mask] = None
    if dtype == "object" or out.ndim != 1:
        return out
    try:
        import pandas as pd

        return pd.Series(out).astype(dtype)  # "category", "string", "str", ... as saved
    except (ImportError, TypeError, ValueError):
        return out


def read_sample(source: Any, section: Any) -> tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]]]:
    """``(inputs, outputs)`` as written by :func:`write_sample`, after checking the section's shape and
    every member it names (see the module docstring)."""
    check_sample_section(section)
    budget = _Budget(source)
    inputs: dict[str, Any] = {}
    for name, entry in section.get("inputs", {}).items():
        if entry["kind"] == "dataframe":
            try:
                import pandas as pd
            except ImportError as exc:
                raise CapsuleFormatError("this golden sample is a DataFrame; reading it needs pandas.") from exc
            columns = {c["name"]: _read_array(source, c, budget) for c in entry["columns"]}
            if len(columns) != len(entry["columns"]):
                raise CapsuleFormatError(f"golden-sample input {_excerpt(name)} names a column twice.")
            try:
                inputs[name] = pd.DataFrame(columns)
            except (ValueError, TypeError) as exc:
                raise CapsuleFormatError(f"golden-sample input {_excerpt(name)} has columns of different "
                                         "lengths or shapes.") from exc
        else:
            value = _read_array(source, entry, budget)
            inputs[name] = value.to_numpy() if hasattr(value, "to_numpy") else value
    outputs: dict[str, np.ndarray[Any, Any]] = {}
    for method, entry in section.get("outputs", {}).items():
        value = _read_array(source, entry, budget)
        try:
            outputs[method] = np.asarray(value)
        except (ValueError, TypeError) as exc:  # ragged JSON
            raise CapsuleFormatError(f"golden-sample output {_excerpt(method)} is not an array.") from exc
    return inputs, outputs
