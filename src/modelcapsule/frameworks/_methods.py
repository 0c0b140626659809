"""Helpers the gradient-boosting and Keras adapters share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["class_names", "json_params"]


def class_names(model: Any) -> set[str]:
    """``module.qualname`` of every class in ``model``'s MRO: recognise a model without importing its library."""
    return {f"{c.__module__}.{c.__qualname__}" for c in type(model).__mro__}


def json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-safe part of ``get_params()`` for the manifest (numpy scalars unwrapped, others named)."""
    out: dict[str, Any] = {}
    for key, raw in params.items():
        value = raw.item() if isinstance(raw, np.generic) else raw
        if isinstance(value, float) and not np.isfinite(value):
            value = repr(value)
        if value is None or isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
            out[key] = list(value)
        else:
            out[key] = f"<{type(value).__name__}>"
    return out
