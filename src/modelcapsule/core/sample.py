"""The golden sample: inputs and the outputs they gave at save time, stored without pickle.

Arrays are written as ``.npy`` with ``allow_pickle=False``; text and categorical columns as fixed-width
unicode plus a null mask, with the original dtype recorded so they come back as they were. A pandas
DataFrame is stored column by column. The same module infers the signature from the sample and
compares outputs after a reload.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import CapsuleFormatError
from ..types import ColumnSpec, Signature, TensorSpec
from .members import MemberSink, MemberSource

__all__ = ["compare_outputs", "infer_signature", "normalize_inputs", "read_sample", "to_numpy", "write_sample"]

DEFAULT_INPUT = "input"


def _is_dataframe(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "columns") and hasattr(obj, "dtypes")


def normalize_inputs(sample: Any) -> dict[str, Any]:
    """``{name: array or DataFrame}`` from what the user passed (one array, a DataFrame, a list, a dict)."""
    if isinstance(sample, Mapping):
        return {str(k): v if _is_dataframe(v) else np.asarray(v) for k, v in sample.items()}
    if _is_dataframe(sample):
        return {DEFAULT_INPUT: sample}
    return {DEFAULT_INPUT: np.asarray(sample)}


def model_inputs(inputs: Mapping[str, Any]) -> Any:
    """What to hand the model: the single input itself, or the mapping for multi-input models."""
    if list(inputs) == [DEFAULT_INPUT]:
        return inputs[DEFAULT_INPUT]
    return dict(inputs)


def to_numpy(value: Any) -> np.ndarray[Any, Any]:
    """A dense numpy array from a model output (sparse matrices, pandas objects, lists, tensors)."""
    if hasattr(value, "toarray") and callable(value.toarray):
        value = value.toarray()
    elif hasattr(value, "to_numpy") and callable(value.to_numpy):
        value = value.to_numpy()
    elif type(value).__module__.startswith("torch"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


# ------------------------------------------------------------------------------------------ writing


def _npy_bytes(array: np.ndarray[Any, Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _write_array(sink: MemberSink, member: str, array: Any) -> dict[str, Any]:
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


def write_sample(sink: MemberSink, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Store inputs and outputs under ``sample/``; returns the manifest's ``sample`` section."""
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


def _read_npy(source: MemberSource, member: str) -> np.ndarray[Any, Any]:
    try:
        return np.asarray(np.load(io.BytesIO(source.read(member)), allow_pickle=False))
    except (ValueError, OSError, EOFError) as exc:
        raise CapsuleFormatError(f"golden-sample member {member!r} is not a valid .npy array: {exc}") from None


def _read_array(source: MemberSource, entry: Mapping[str, Any]) -> Any:
    if entry.get("stored_as") == "json":
        try:
            return json.loads(source.read(str(entry["member"])))
        except (ValueError, UnicodeDecodeError) as exc:
            raise CapsuleFormatError(f"golden-sample member {entry['member']!r} is not valid JSON: {exc}") from None
    values = _read_npy(source, str(entry["member"]))
    dtype = str(entry.get("dtype", values.dtype))
    if entry.get("stored_as") != "text":
        return values
    out = values.astype(object)
    if "mask" in entry:
        out[_read_npy(source, str(entry["mask"]))] = None
    if dtype == "object" or out.ndim != 1:
        return out
    try:
        import pandas as pd

        return pd.Series(out).astype(dtype)  # "category", "string", "str", ... as saved
    except (ImportError, TypeError, ValueError):
        return out


def read_sample(source: MemberSource, section: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(inputs, outputs)`` as written by :func:`write_sample`."""
    inputs: dict[str, Any] = {}
    for name, entry in section.get("inputs", {}).items():
        if entry.get("kind") == "dataframe":
            import pandas as pd

            inputs[name] = pd.DataFrame({c["name"]: _read_array(source, c) for c in entry["columns"]})
        else:
            value = _read_array(source, entry)
            inputs[name] = value.to_numpy() if hasattr(value, "to_numpy") else value
    outputs = {m: np.asarray(_read_array(source, e)) for m, e in section.get("outputs", {}).items()}
    return inputs, outputs


# ------------------------------------------------------------------------------------------ signature


def _tensor_spec(name: str, value: Any) -> TensorSpec:
    if _is_dataframe(value):
        columns = tuple(ColumnSpec(str(c), str(value[c].dtype)) for c in value.columns)
        kinds = {c.dtype for c in columns}
        common = kinds.pop() if len(kinds) == 1 else "object"
        try:
            np.dtype(common)
        except TypeError:
            common = "object"
        return TensorSpec(name, common, (-1, len(columns)), columns)
    array = to_numpy(value)
    dtype = "object" if array.dtype.kind in "OU" else str(array.dtype)
    return TensorSpec(name, dtype, (-1, *array.shape[1:]))


def infer_signature(inputs: Mapping[str, Any], outputs: Mapping[str, Any], classes: Any = None) -> Signature:
    """The signature implied by the sample: first dimension free, the rest as seen."""
    return Signature(
        inputs=tuple(_tensor_spec(n, v) for n, v in inputs.items()),
        outputs=tuple(_tensor_spec(m, v) for m, v in outputs.items()),
        classes=None if classes is None else tuple(plain(classes)),
    )


# ------------------------------------------------------------------------------------------ comparison


def compare_outputs(expected: np.ndarray[Any, Any], actual: Any, *, exact: bool = False,
                    rtol: float = 1e-7, atol: float = 1e-10) -> str | None:
    """None when ``actual`` reproduces ``expected``; otherwise a description of the first differing rows."""
    got = to_numpy(actual)
    if got.shape != expected.shape:
        return f"shape {got.shape} instead of {expected.shape}"
    if expected.dtype.kind in "fc" and got.dtype.kind in "fc" and not exact:
        same = np.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    elif expected.dtype.kind in "fc" and got.dtype.kind in "fc":
        same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    else:
        same = np.asarray(got.astype(object) == expected.astype(object), dtype=bool)
        if same.shape != expected.shape:
            same = np.broadcast_to(same, expected.shape)
    if same.all():
        return None
    rows = np.flatnonzero(~same.reshape(same.shape[0], -1).all(axis=1)) if same.ndim else np.array([0])
    lines = [f"{len(rows)} of {len(expected)} row(s) differ; first ones:"]
    for r in rows[:5]:
        lines.append(f"  row {r}: expected {expected[r]!r}, got {got[r]!r}")
    return "\n".join(lines)
