"""Constructor parameters of scikit-learn-style wrappers (XGBoost, LightGBM) as exact, plain JSON.

Values are JSON numbers, strings, booleans, ``None``, lists and string-keyed dicts; a tuple is
``{"$tuple": [...]}`` and a non-finite float ``{"$float": "nan"}``. Anything else (a callable objective,
callbacks, an estimator) cannot be stored without code and is refused at save with a clear message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import CapsuleFormatError, UnsupportedModelError

__all__ = ["decode_params", "encode_params"]


def encode_params(params: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """Encode ``get_params()`` of ``owner``; raises :class:`UnsupportedModelError` for non-data values."""
    return {str(k): _encode(v, f"{owner}.{k}") for k, v in params.items()}


def _encode(value: Any, where: str) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, where) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) and not k.startswith("$") for k in value):
        return {k: _encode(v, where) for k, v in value.items()}
    raise UnsupportedModelError(
        f"{where} is a {type(value).__name__}, which cannot be stored as data (no pickle). Use a built-in "
        "value (e.g. an objective or metric name instead of a function), or save with a pickle-based format."
    )


def decode_params(doc: Any) -> dict[str, Any]:
    """Inverse of :func:`encode_params`."""
    if not isinstance(doc, dict):
        raise CapsuleFormatError("the stored parameters are not a JSON object; the capsule is corrupt.")
    return {str(k): _decode(v) for k, v in doc.items()}


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$tuple"} and isinstance(value["$tuple"], list):
            return tuple(_decode(v) for v in value["$tuple"])
        if set(value) == {"$float"} and value["$float"] in ("nan", "inf", "-inf"):
            return float(value["$float"])
        return {str(k): _decode(v) for k, v in value.items()}
    return value
