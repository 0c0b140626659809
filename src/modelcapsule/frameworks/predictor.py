"""A Predictor for models called through named methods (``predict``, ``predict_proba``, ...)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..core.sample import DEFAULT_INPUT, to_numpy
from ..types import Predictor, Signature, TensorSpec

__all__ = ["LazyPredictor", "MethodPredictor", "assemble_table"]

log = logging.getLogger("modelcapsule.runtime")


def assemble_table(spec: TensorSpec, value: Any, inputs: Mapping[str, Any]) -> Any:
    """A DataFrame for a tabular input: passed through, built from a 2-D array in signature column
    order (each column cast to its saved dtype), or from one 1-D array per column name."""
    import pandas as pd

    assert spec.columns is not None
    names = [c.name for c in spec.columns]
    if isinstance(value, pd.DataFrame):
        return value
    if value is None:
        data = {c.name: np.asarray(inputs[c.name]) for c in spec.columns}
    else:
        array = np.asarray(value)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        data = {name: array[:, i] for i, name in enumerate(names)}
    frame = pd.DataFrame(data, columns=names)
    for col in spec.columns:
        if str(frame[col.name].dtype) != col.dtype:
            with contextlib.suppress(TypeError, ValueError):  # left as is; the model reports what it cannot use
                frame[col.name] = frame[col.name].astype(col.dtype)
    return frame


class MethodPredictor:
    """Calls ``call(model, output_name, X)`` for each requested output; outputs are named after methods."""

    def __init__(self, model: Any, signature: Signature,
                 call: Callable[[Any, str, Any], Any] | None = None) -> None:
        self.model = model
        self._signature = signature
        self._call = call or (lambda m, method, x: getattr(m, method)(x))
        self._single = len(signature.inputs) == 1
        self._spec = signature.inputs[0] if self._single else None

    @property
    def signature(self) -> Signature:
        return self._signature

    def model_input(self, inputs: Mapping[str, Any]) -> Any:
        """What the model is called with, from the named inputs."""
        if self._spec is None:
            return dict(inputs)
        value = inputs.get(self._spec.name, inputs.get(DEFAULT_INPUT))
        if self._spec.columns is not None:
            return assemble_table(self._spec, value, inputs)
        if value is None and len(inputs) == 1:
            value = next(iter(inputs.values()))
        return value

    def predict(
        self, inputs: Mapping[str, Any], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray[Any, Any]]:
        names = list(outputs) if outputs else list(self._signature.output_names[:1])
        x = self.model_input(inputs)
        return {name: to_numpy(self._call(self.model, name, x)) for name in names}


class LazyPredictor:
    """A predictor built by ``load()`` on first use (once, under a lock): the Python model behind a
    capsule served by another runtime (its ONNX export, its stored trees), needed only for outputs
    that runtime lacks (``why`` says which, for the log)."""

    def __init__(self, signature: Signature, load: Callable[[], Predictor], why: str = "outputs it lacks") -> None:
        self._signature = signature
        self._load = load
        self._why = why
        self._loaded: Predictor | None = None
        self._lock = threading.Lock()

    @property
    def signature(self) -> Signature:
        return self._signature

    @property
    def loaded(self) -> bool:
        """Whether the Python model was loaded (a request asked for an output only it has)."""
        return self._loaded is not None

    def predict(self, inputs: Mapping[str, Any],
                outputs: Sequence[str] | None = None) -> dict[str, np.ndarray[Any, Any]]:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    log.info("loading the Python model for %s: %s", self._why, outputs)
                    self._loaded = self._load()
        return self._loaded.predict(inputs, outputs)
