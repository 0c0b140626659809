"""A Predictor for models called through named methods on one input (``predict``, ``predict_proba``...).

XGBoost, LightGBM and Keras models all take one array (or DataFrame) and give one array per method; the
signature's outputs are named after the methods. This adapter maps the server's named inputs to that call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..types import Signature

__all__ = ["MethodPredictor", "json_params"]

Call = Callable[[Any, str, Any], np.ndarray[Any, Any]]


class MethodPredictor:
    """``predict({"input": X}, outputs=["predict_proba"])`` → ``{"predict_proba": model.predict_proba(X)}``."""

    def __init__(self, model: Any, signature: Signature, call: Call, default_outputs: Sequence[str]) -> None:
        self.model = model
        self._signature = signature
        self._call = call
        self._names = tuple(signature.output_names or default_outputs)

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray[Any, Any]]:
        wanted = list(outputs) if outputs is not None else [self._names[0]]
        unknown = [o for o in wanted if o not in self._names]
        if unknown:
            raise KeyError(f"unknown output(s) {unknown}; this model gives {list(self._names)}")
        specs = self._signature.inputs
        name = specs[0].name if specs else "input"
        if name in inputs:
            value = inputs[name]
        elif specs and specs[0].columns is not None and all(c.name in inputs for c in specs[0].columns):
            import pandas as pd

            value = pd.DataFrame({c.name: np.asarray(inputs[c.name]) for c in specs[0].columns})
        else:
            raise KeyError(f"missing input {name!r}")
        return {method: self._call(self.model, method, value) for method in wanted}


def json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-safe part of ``get_params()`` for the manifest (numpy scalars unwrapped, others named)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            value = repr(value)
        if value is None or isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
            out[key] = list(value)
        else:
            out[key] = f"<{type(value).__name__}>"
    return out
