"""Tensor datatypes of the Open Inference Protocol (V2) and of TF Serving, mapped to numpy.

The V2 names come from the KServe "Open Inference Protocol" specification (tensor data types table);
the TF Serving names from TensorFlow's ``DataType`` enum (``types.proto``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidRequestError

__all__ = ["V2_TO_NUMPY", "numpy_to_tf", "numpy_to_v2", "v2_to_numpy"]

V2_TO_NUMPY: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_NUMPY_TO_V2 = {dt: name for name, dt in V2_TO_NUMPY.items()}

_TF = {
    "bool": "DT_BOOL",
    "uint8": "DT_UINT8",
    "uint16": "DT_UINT16",
    "uint32": "DT_UINT32",
    "uint64": "DT_UINT64",
    "int8": "DT_INT8",
    "int16": "DT_INT16",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "float16": "DT_HALF",
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
}


def v2_to_numpy(datatype: str, field: str = "datatype") -> np.dtype[Any]:
    """The numpy dtype of a V2 datatype name; a request naming an unknown one gets a 400 listing them."""
    try:
        return V2_TO_NUMPY[datatype]
    except (KeyError, TypeError):
        raise InvalidRequestError(
            f"{field} {datatype!r} is not a V2 datatype; expected one of {', '.join(V2_TO_NUMPY)}."
        ) from None


def numpy_to_v2(dtype: np.dtype[Any] | str) -> str:
    """The V2 datatype name of a numpy dtype: strings and objects are ``BYTES``."""
    if isinstance(dtype, np.dtype):  # every answer's outputs: one dict lookup for the usual dtypes
        name = _NUMPY_TO_V2.get(dtype)
        if name is not None and dtype.kind not in "OUS":
            return name
    dt = np.dtype(dtype)
    if dt.kind in "OUS":
        return "BYTES"
    return _NUMPY_TO_V2.get(dt, "BYTES")


def numpy_to_tf(dtype: np.dtype[Any] | str) -> str:
    """The TF Serving ``DT_*`` name of a numpy dtype: strings and objects are ``DT_STRING``."""
    return _TF.get(np.dtype(dtype).name, "DT_STRING")
