"""Tensors and metadata of the Open Inference Protocol (V2), shared by the REST and gRPC adapters.

Facts from the KServe Open Inference Protocol specification and Triton's binary tensor data extension:
a tensor is ``{name, datatype, shape, data}`` with ``data`` in row-major order (flat or nested); in
binary form a tensor's bytes follow the JSON header (REST) or sit in ``raw_input_contents`` (gRPC),
numeric types as little-endian row-major values and ``BYTES`` elements each prefixed by a 4-byte
little-endian length. Binary tensors are decoded as numpy views on the request body (no copy).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..types import TensorSpec
from .dtypes import V2_TO_NUMPY, numpy_to_v2, v2_to_numpy
from .errors import InvalidRequestError
from .models import LoadedVersion
from .requests import exact_cast, shape_text
from .transport import server_version

__all__ = [
    "EXTENSIONS",
    "decode_binary",
    "decode_data",
    "encode_binary",
    "flat_list",
    "model_metadata",
    "output_datatype",
    "requested",
    "server_metadata",
    "v2_shape",
]

EXTENSIONS = ["binary_tensor_data"]

_LEN = struct.Struct("<I")


def v2_shape(value: Any, field: str) -> tuple[int, ...]:
    """A V2 ``shape``: a list of non-negative integers."""
    if isinstance(value, list | tuple):
        for d in value:  # a loop, not all(generator): this runs for every tensor of every request
            if not isinstance(d, int) or isinstance(d, bool) or d < 0:
                break
        else:
            return tuple(value)
    raise InvalidRequestError(f"{field} must be a list of non-negative integers, not {value!r}.")


def _check_count(count: int, shape: tuple[int, ...], field: str) -> None:
    if count != math.prod(shape):
        raise InvalidRequestError(
            f"{field} holds {count} element(s) but its shape {shape_text(shape)} needs {math.prod(shape)}."
        )


def decode_data(data: Any, datatype: str, shape: tuple[int, ...], field: str) -> np.ndarray[Any, Any]:
    """A JSON ``data`` field (flat or nested) as an array of ``shape``."""
    try:
        dtype = V2_TO_NUMPY[datatype]
    except (KeyError, TypeError):
        dtype = v2_to_numpy(datatype, f"{field} datatype")  # raises, naming the field
    if not isinstance(data, list):
        data = [data]
    try:
        if dtype.kind == "O":
            arr = np.asarray(data, dtype=object)
        else:
            arr = np.asarray(data)
            if arr.dtype.kind not in "biuf":
                raise InvalidRequestError(f"{field} data holds non-numeric values; datatype {datatype} needs numbers.")
            if arr.dtype != dtype:
                arr = exact_cast(arr, dtype, field, data)
    except InvalidRequestError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidRequestError(f"{field} data is not a rectangular array of {datatype} values ({exc}).") from None
    if arr.shape == shape:  # nested data in the tensor's own shape: nothing to count or reshape
        return arr
    _check_count(arr.size, shape, field)
    return arr.reshape(shape)


def decode_binary(buf: memoryview | bytes, datatype: str, shape: tuple[int, ...], field: str) -> np.ndarray[Any, Any]:
    """A binary tensor as an array of ``shape`` (a zero-copy view for numeric types)."""
    dtype = v2_to_numpy(datatype, f"{field} datatype")
    if dtype.kind != "O":
        if len(buf) % dtype.itemsize:
            raise InvalidRequestError(f"{field} has {len(buf)} bytes, not a multiple of {datatype}'s {dtype.itemsize}.")
        arr = np.frombuffer(buf, dtype=dtype.newbyteorder("<"))
        _check_count(arr.size, shape, field)
        return arr.reshape(shape)
    items: list[Any] = []
    view = memoryview(buf)
    pos = 0
    while pos < len(view):
        if pos + 4 > len(view):
            raise InvalidRequestError(f"{field} BYTES data is truncated (a length prefix is cut short).")
        (n,) = _LEN.unpack_from(view, pos)
        pos += 4
        if pos + n > len(view):
            raise InvalidRequestError(f"{field} BYTES data is truncated (an element claims {n} bytes).")
        items.append(bytes(view[pos : pos + n]).decode("utf-8", "surrogateescape"))
        pos += n
    _check_count(len(items), shape, field)
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr.reshape(shape)


def encode_binary(arr: np.ndarray[Any, Any]) -> bytes:
    """An output array in binary form: little-endian row-major values, or length-prefixed BYTES."""
    if numpy_to_v2(arr.dtype) != "BYTES":
        return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    parts: list[bytes] = []
    for item in arr.ravel():
        raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
        parts.append(_LEN.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def output_datatype(arr: np.ndarray[Any, Any]) -> str:
    return numpy_to_v2(arr.dtype)


def flat_list(arr: np.ndarray[Any, Any]) -> list[Any]:
    """An output array as the flat, row-major JSON list V2 sends."""
    flat = arr.ravel()
    if flat.dtype.kind in "OSU":
        return [
            x.decode("utf-8", "replace") if isinstance(x, bytes) else (x.item() if isinstance(x, np.generic) else x)
            for x in flat.tolist()
        ]
    return list(flat.tolist())


def requested(outputs: Any, field: str = "outputs") -> Sequence[dict[str, Any]]:
    """The ``outputs`` list of a request (absent: all outputs)."""
    if outputs is None:
        return []
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise InvalidRequestError(f"{field} must be a list of objects with a 'name', not {outputs!r}.")
    return outputs


def server_metadata() -> dict[str, Any]:
    """The server metadata answer: name, version and the protocol extensions served."""
    return {"name": "modelcapsule", "version": server_version(), "extensions": list(EXTENSIONS)}


def tensor_metadata(specs: Sequence[TensorSpec]) -> list[dict[str, Any]]:
    return [{"name": s.name, "datatype": numpy_to_v2(s.dtype), "shape": list(s.shape)} for s in specs]


def model_metadata(loaded: LoadedVersion, versions: Sequence[int]) -> dict[str, Any]:
    """The model metadata answer for ``loaded``; ``versions``: every available version of the model."""
    sig = loaded.signature
    return {
        "name": loaded.name,
        "versions": [str(v) for v in versions],
        "platform": f"modelcapsule_{loaded.manifest.framework}",
        "inputs": tensor_metadata(sig.inputs if sig else ()),
        "outputs": tensor_metadata(sig.outputs if sig else ()),
    }
