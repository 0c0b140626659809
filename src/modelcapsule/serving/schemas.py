"""JSON Schemas of one served model version's requests and answers, built from its signature.

The OpenAPI document (:mod:`.openapi`) describes each served model with these, so that a request the
document calls valid is one the server accepts, and one it calls invalid is refused with a 4xx. JSON
Schema cannot tie one field's value to another's length, so a V2 tensor is documented one row at a
time (``shape`` ``[1, ...]``); the server also takes any number of rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..types import TensorSpec
from .dtypes import numpy_to_v2
from .models import LoadedVersion

__all__ = [
    "ANY",
    "batch",
    "column_element",
    "element",
    "record_schema",
    "records",
    "row",
    "single_input",
    "tensor_row",
    "v2_infer_request",
    "v2_infer_response",
]

Schema = dict[str, Any]
ANY: Schema = {}
"""Any JSON value (the answer of a model without a signature)."""


def element(dtype: str | np.dtype[Any]) -> Schema:
    """One value of ``dtype`` as JSON: numbers in the dtype's range, booleans, or strings."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return {"type": "string"}
    if dt.kind == "b":
        return {"type": "boolean"}
    if dt.kind in "iu":  # JSON true and false are read as 1 and 0, as numpy reads them
        info = np.iinfo(dt)
        return {"anyOf": [{"type": "integer", "minimum": int(info.min), "maximum": int(info.max)},
                          {"type": "boolean"}]}
    if dt.kind == "f":
        return {"type": ["number", "boolean"]}
    return {"type": "string"}


def column_element(dtype: str) -> Schema:
    """One value of a table column of ``dtype`` (strings for string and unknown dtypes)."""
    return element(dtype) if dtype not in ("str", "string", "unicode", "object", "category") else {"type": "string"}


def _array(items: Schema, size: int) -> Schema:
    if size >= 0:
        return {"type": "array", "items": items, "minItems": size, "maxItems": size}
    return {"type": "array", "items": items, "minItems": 1}


def tensor_row(spec: TensorSpec) -> Schema:
    """One row (the tensor without its batch dimension) as nested lists."""
    if spec.columns is not None:
        return {
            "type": "array",
            "prefixItems": [column_element(c.dtype) for c in spec.columns],
            "items": False,
            "minItems": len(spec.columns),
        }
    schema = element(spec.dtype)
    for size in reversed(spec.shape[1:]):
        schema = _array(schema, size)
    return schema


def row(spec: TensorSpec) -> Schema:
    """One row as a request may send it: a one-value row may also be the bare value."""
    schema = tensor_row(spec)
    if spec.columns is None and tuple(spec.shape[1:]) == (1,):
        return {"anyOf": [schema, element(spec.dtype)]}
    return schema


def batch(spec: TensorSpec) -> Schema:
    """A non-empty list of rows (of a one-value row: the rows, or the bare values, not mixed)."""
    if spec.columns is None and tuple(spec.shape[1:]) == (1,):
        return {"anyOf": [{"type": "array", "items": tensor_row(spec), "minItems": 1},
                          {"type": "array", "items": element(spec.dtype), "minItems": 1}]}
    return {"type": "array", "items": tensor_row(spec), "minItems": 1}


def record_schema(spec: TensorSpec) -> Schema:
    """One row of a table as an object of column values."""
    columns = spec.columns or ()
    return {
        "type": "object",
        "properties": {c.name: column_element(c.dtype) for c in columns},
        "required": [c.name for c in columns],
    }


def records(spec: TensorSpec) -> Schema:
    """A non-empty list of records."""
    return {"type": "array", "items": record_schema(spec), "minItems": 1}


def single_input(loaded: LoadedVersion) -> TensorSpec | None:
    """The model's only input (None when it takes several, or has no signature)."""
    sig = loaded.signature
    return sig.inputs[0] if sig is not None and len(sig.inputs) == 1 else None


def output_values(loaded: LoadedVersion, name: str | None = None) -> Schema:
    """The JSON answer of one output over a batch (its first output when ``name`` is None)."""
    sig = loaded.signature
    if sig is None or not sig.outputs:
        return ANY
    spec = next((o for o in sig.outputs if o.name == name), sig.outputs[0])
    value = _OUTPUT_VALUES.get(_kind(spec.dtype), {})
    for size in reversed(spec.shape[1:]):
        value = {"type": "array", "items": value} if size < 0 else _array(value, size)
    return {"type": "array", "items": value}


_OUTPUT_VALUES: dict[str, Schema] = {
    "f": {"type": ["number", "null"]},  # a non-finite output is written as null
    "i": {"type": "integer"},
    "u": {"type": "integer"},
    "b": {"type": "boolean"},
    "U": {"type": "string"},
    "S": {"type": "string"},
}


def _kind(dtype: str) -> str:
    try:
        return np.dtype(dtype).kind
    except TypeError:
        return "O"


def _v2_tensor(spec: TensorSpec) -> Schema:
    """One V2 input tensor of one row: the flat row-major ``data`` of ``shape`` ``[1, ...]``."""
    if spec.columns is not None:
        data = tensor_row(spec)
        shape = [1, len(spec.columns)]
        datatype = numpy_to_v2(spec.dtype)
    else:
        sizes = [max(d, 1) for d in spec.shape[1:]]
        shape = [1, *sizes]
        count = int(np.prod(sizes)) if sizes else 1
        data = _array(element(spec.dtype), count)
        if count == 1:  # a lone value may come bare
            data = {"anyOf": [data, element(spec.dtype)]}
        datatype = numpy_to_v2(spec.dtype)
    return {
        "type": "object",
        "properties": {
            "name": {"const": spec.name},
            "datatype": {"const": datatype},
            "shape": {"const": shape},
            "data": data,
        },
        "required": ["name", "datatype", "shape", "data"],
    }


def v2_infer_request(loaded: LoadedVersion) -> Schema:
    """A V2 inference request for ``loaded``: every input once, in signature order, one row each."""
    sig = loaded.signature
    if sig is None:
        return {"type": "object", "required": ["inputs"]}
    tensors = [_v2_tensor(s) for s in sig.inputs]
    props: Schema = {
        "id": {"type": "string"},
        "inputs": {"type": "array", "prefixItems": tensors, "items": False, "minItems": len(tensors)},
    }
    if sig.outputs:
        props["outputs"] = {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "properties": {"name": {"enum": [o.name for o in sig.outputs]}},
                "required": ["name"],
            },
        }
    return {"type": "object", "properties": props, "required": ["inputs"]}


_V2_OUT_TENSOR: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "data": {"type": "array"},
    },
    "required": ["name", "datatype", "shape", "data"],
}


def v2_infer_response(loaded: LoadedVersion) -> Schema:
    """A V2 inference answer of ``loaded`` (JSON outputs)."""
    names = [o.name for o in loaded.signature.outputs] if loaded.signature else []
    tensor = dict(_V2_OUT_TENSOR)
    if names:
        tensor["properties"] = {**_V2_OUT_TENSOR["properties"], "name": {"enum": names}}
    return {
        "type": "object",
        "properties": {
            "model_name": {"const": loaded.name},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": tensor},
        },
        "required": ["model_name", "model_version", "outputs"],
    }
