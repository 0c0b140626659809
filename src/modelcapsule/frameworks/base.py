"""The shape every framework adapter implements: how to recognise, describe and call a model."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..types import Predictor, Signature

__all__ = ["Framework"]


@runtime_checkable
class Framework(Protocol):
    """How to call one family of models (scikit-learn, PyTorch, Keras, XGBoost, ...).

    ``formats`` lists the formats that can store the model, safest first: ``format="auto"`` tries
    them in that order. ``packages`` names the distributions whose versions matter for the model (the
    environment section of the manifest records them and load compares them).
    """

    name: ClassVar[str]

    def matches(self, model: Any) -> bool:
        """Whether ``model`` belongs to this framework (without importing the framework if absent)."""
        ...

    def describe(self, model: Any) -> dict[str, Any]:
        """``{"class", "task", "methods", "params"}`` for the manifest (JSON-safe)."""
        ...

    def methods(self, model: Any) -> list[str]:
        """Prediction methods the model has, primary first (``predict``, ``predict_proba``, ...)."""
        ...

    def call(self, model: Any, method: str, inputs: Any) -> np.ndarray[Any, Any]:
        """Run one prediction method on the sample inputs, returning a numpy array."""
        ...

    def packages(self, model: Any) -> list[str]:
        """Top-level module names the model's types come from (mapped to distributions by the caller)."""
        ...

    def formats(self, model: Any) -> list[str]:
        """Formats that can store ``model``, safest first."""
        ...

    def predictor(self, model: Any, signature: Signature) -> Predictor:
        """Wrap the loaded model in the :class:`~modelcapsule.types.Predictor` the server calls."""
        ...
