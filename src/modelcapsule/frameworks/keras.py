"""Keras 3: ``keras.Model`` (Sequential, functional and subclassed models), on whichever backend is installed.

The one prediction method is ``predict`` (output ``"predict"``): the model is called on the input
array with ``training=False`` and the result converted to numpy. Keras is imported only when a Keras
model is handled; :func:`import_keras` then picks a backend that is actually installed when neither
``KERAS_BACKEND`` nor ``~/.keras/keras.json`` names one (Keras defaults to TensorFlow otherwise).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..core.sample import to_numpy
from ..errors import UnsupportedModelError
from ..types import Signature
from ._methods import class_names
from .predictor import MethodPredictor

__all__ = ["FRAMEWORKS", "KerasFramework", "import_keras", "is_keras_model"]

_BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy"}


def is_keras_model(model: Any) -> bool:
    return "keras.src.models.model.Model" in class_names(model)


def _configured_backend() -> str | None:
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    try:
        backend = json.loads((home / "keras.json").read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        return None
    return backend if isinstance(backend, str) else None


def import_keras() -> Any:
    """Import keras, first choosing an installed backend if the configured one is missing.

    ``KERAS_BACKEND`` wins when set. Otherwise, if the backend in ``keras.json`` (default TensorFlow)
    is not installed, the first installed of TensorFlow, JAX and PyTorch is used (by setting
    ``KERAS_BACKEND`` for this process, before Keras is first imported).
    """
    if "keras" not in sys.modules and "KERAS_BACKEND" not in os.environ:
        wanted = _configured_backend() or "tensorflow"
        if importlib.util.find_spec(_BACKEND_PACKAGES.get(wanted, wanted)) is None:
            for backend in ("tensorflow", "jax", "torch"):
                if importlib.util.find_spec(_BACKEND_PACKAGES[backend]) is not None:
                    os.environ["KERAS_BACKEND"] = backend
                    break
    try:
        import keras
    except ImportError as exc:
        raise UnsupportedModelError(
            f"Keras could not be imported ({exc}). Install Keras 3 and one backend (pip install "
            "'modelcapsule[keras]' torch), or set KERAS_BACKEND to an installed backend."
        ) from exc
    return keras


class KerasFramework:
    """Keras 3 models."""

    name: ClassVar[str] = "keras"

    def matches(self, model: Any) -> bool:
        return is_keras_model(model)

    def describe(self, model: Any) -> dict[str, Any]:
        cls = type(model)
        return {"framework": self.name, "class": f"{cls.__module__}.{cls.__qualname__}", "task": "tensor",
                "methods": self.methods(model),
                "params": {"n_parameters": int(model.count_params()) if model.built else 0,
                           "backend": import_keras().backend.backend()}}

    def methods(self, model: Any) -> list[str]:
        return ["predict"]

    def call(self, model: Any, method: str, inputs: Any) -> np.ndarray[Any, Any]:
        if method != "predict":
            raise ValueError(f"Keras models have one method, predict, not {method!r}")
        keras = import_keras()
        if isinstance(inputs, dict):
            data: Any = {k: _as_floatx(keras, v) for k, v in inputs.items()}
        else:
            data = _as_floatx(keras, inputs)
        if keras.backend.backend() == "torch":
            import torch

            with torch.no_grad():
                return to_numpy(model(data, training=False))
        return to_numpy(keras.ops.convert_to_numpy(model(data, training=False)))

    def packages(self, model: Any) -> list[str]:
        backend = import_keras().backend.backend()
        return ["keras", "h5py", "numpy", _BACKEND_PACKAGES.get(backend, backend)]

    def formats(self, model: Any) -> list[str]:
        return ["keras"]

    def predictor(self, model: Any, signature: Signature) -> MethodPredictor:
        return MethodPredictor(model, signature, self.call)


def _as_floatx(keras: Any, value: Any) -> Any:
    array = np.asarray(value)
    return array.astype(keras.config.floatx()) if array.dtype.kind == "f" else array


FRAMEWORKS = (KerasFramework(),)
