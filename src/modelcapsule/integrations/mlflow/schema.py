"""MLflow signatures and input examples, read as JSON and turned into modelcapsule's own shapes.

An MLflow signature is JSON inside ``MLmodel``: a list of column specs (``{"type": "double", "name":
"x"}``) for tabular models, or of tensor specs (``{"type": "tensor", "tensor-spec": {"dtype", "shape"}}``).
It becomes a :class:`modelcapsule.Signature` whose single input is named ``input`` (or after each named
tensor) and whose output is named ``predict``, as :func:`modelcapsule.save` names them. The input example
(``input_example.json``) is parsed as JSON only (never with MLflow's own readers) and cast to the
signature's column names and dtypes, which JSON loses, before it becomes the golden sample.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import CapsuleFormatError
from ...types import ColumnSpec, Signature, TensorSpec

__all__ = ["COLUMN_DTYPES", "MAX_EXAMPLE_BYTES", "capsule_signature", "read_example"]

MAX_EXAMPLE_BYTES = 64 << 20

COLUMN_DTYPES = {
    "boolean": "bool", "integer": "int32", "long": "int64", "float": "float32", "double": "float64",
    "string": "object", "binary": "object", "datetime": "datetime64[ns]",
}
"""MLflow column types and the numpy dtype each becomes; any other type (array, object, map) is ``object``."""

DEFAULT_INPUT = "input"
PRIMARY_OUTPUT = "predict"


def _specs(raw: Any, what: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    try:
        specs = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise CapsuleFormatError(f"the MLflow signature's {what} are not valid JSON: {exc}") from None
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise CapsuleFormatError(f"the MLflow signature's {what} should be a list of specs.")
    return specs


def _tensor_dtype(spec: Mapping[str, Any]) -> tuple[str, tuple[int, ...]]:
    tensor = spec.get("tensor-spec")
    if not isinstance(tensor, dict):
        raise CapsuleFormatError("an MLflow tensor spec has no 'tensor-spec'.")
    try:
        dtype = np.dtype(str(tensor.get("dtype", "object")))
        shape = tuple(int(d) for d in tensor.get("shape", [-1]))
    except (TypeError, ValueError) as exc:
        raise CapsuleFormatError(f"an MLflow tensor spec is malformed: {exc}") from None
    name = "object" if dtype.kind in "OUS" else str(dtype)
    return name, shape


def _column_dtype(spec: Mapping[str, Any]) -> str:
    return COLUMN_DTYPES.get(str(spec.get("type")), "object")


def _tensor_specs(specs: list[dict[str, Any]], default_name: str) -> tuple[TensorSpec, ...]:
    if specs and all(s.get("type") == "tensor" for s in specs):
        out = []
        for i, spec in enumerate(specs):
            dtype, shape = _tensor_dtype(spec)
            name = str(spec.get("name") or (default_name if len(specs) == 1 else f"{default_name}_{i}"))
            out.append(TensorSpec(name, dtype, shape))
        return tuple(out)
    dtypes = [_column_dtype(s) for s in specs]
    common = dtypes[0] if len(set(dtypes)) == 1 else "object"
    if all(s.get("name") for s in specs):
        columns: tuple[ColumnSpec, ...] | None = tuple(ColumnSpec(str(s["name"]), d)
                                                       for s, d in zip(specs, dtypes, strict=True))
    else:
        columns = None
    shape = (-1,) if len(specs) == 1 and default_name == PRIMARY_OUTPUT else (-1, len(specs))
    return (TensorSpec(default_name, common, shape, columns),)


def capsule_signature(mlflow_signature: Mapping[str, Any] | None) -> Signature | None:
    """The capsule signature equivalent to an MLmodel ``signature`` section (None when there is none)."""
    if not mlflow_signature:
        return None
    inputs = _specs(mlflow_signature.get("inputs"), "inputs")
    outputs = _specs(mlflow_signature.get("outputs"), "outputs")
    if not inputs:
        return None
    return Signature(inputs=_tensor_specs(inputs, DEFAULT_INPUT),
                     outputs=_tensor_specs(outputs, PRIMARY_OUTPUT) if outputs else ())


def _cast(values: Any, dtype: str) -> Any:
    if dtype == "object":
        return np.asarray(values, dtype=object)
    try:
        return np.asarray(values).astype(dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CapsuleFormatError(f"the MLflow input example does not fit its signature ({dtype}): {exc}") from None


def _dataframe(data: Mapping[str, Any], signature: Signature | None) -> Any:
    import pandas as pd

    columns, rows = data.get("columns"), data.get("data")
    if not isinstance(rows, list):
        raise CapsuleFormatError("the MLflow input example (a DataFrame) has no 'data' rows.")
    frame = pd.DataFrame(rows, columns=columns if isinstance(columns, list) else None)
    spec = signature.inputs[0] if signature is not None and len(signature.inputs) == 1 else None
    for column in spec.columns if spec is not None and spec.columns else ():
        if column.name in frame.columns:
            frame[column.name] = _cast(frame[column.name].to_numpy(), column.dtype)
    return frame


def _array(values: Any, spec: TensorSpec | None) -> np.ndarray[Any, Any]:
    if spec is not None:
        return np.asarray(_cast(values, spec.dtype))
    try:
        return np.asarray(values)
    except (TypeError, ValueError) as exc:  # ragged rows
        raise CapsuleFormatError(f"the MLflow input example is not a regular array: {exc}") from None


def read_example(directory: Path, info: Mapping[str, Any] | None,
                 signature: Signature | None) -> tuple[Any, str | None]:
    """``(sample, None)`` from the model's input example, or ``(None, why not)`` when there is none or it
    cannot become a golden sample (a JSON object for a language model, a sparse matrix)."""
    if not info or not info.get("artifact_path"):
        return None, "the MLflow model has no input example"
    path = (directory / str(info["artifact_path"])).resolve()
    if directory.resolve() not in path.parents or not path.is_file():
        return None, f"the input example {info['artifact_path']!r} is not a file inside the model directory"
    if path.stat().st_size > MAX_EXAMPLE_BYTES:
        return None, f"the input example is over {MAX_EXAMPLE_BYTES:,} bytes"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CapsuleFormatError(f"the MLflow input example {path.name} is not valid JSON: {exc!r}") from None
    if info.get("params") is not None and isinstance(data, dict) and "inputs" in data:
        data = data["inputs"]
    kind = str(info.get("type", "ndarray"))
    if kind == "dataframe" and isinstance(data, dict):
        return _dataframe(data, signature), None
    if kind == "ndarray":
        if isinstance(data, dict) and "inputs" in data and len(data) == 1:
            data = data["inputs"]
        if isinstance(data, dict):
            specs = {s.name: s for s in signature.inputs} if signature is not None else {}
            return {str(k): _array(v, specs.get(str(k))) for k, v in data.items()}, None
        spec = signature.inputs[0] if signature is not None and len(signature.inputs) == 1 else None
        return _array(data, spec), None
    return None, f"an input example of type {kind!r} cannot be a golden sample"
