"""What XGBoost and LightGBM adapters share: a native ``Booster`` with one method, ``predict``, and
scikit-learn wrappers with theirs, recognised by class name so the library is imported only when such a
model is actually handled."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..types import Signature
from ._methods import class_names, json_params
from .predictor import MethodPredictor

__all__ = ["BoostingFramework"]


class BoostingFramework:
    """A gradient-boosting library: ``booster`` and ``wrapper`` are the ``module.qualname`` of its
    native model class and of its scikit-learn wrappers' base class."""

    name: ClassVar[str]
    booster: ClassVar[str]
    wrapper: ClassVar[str]

    def is_booster(self, model: Any) -> bool:
        return self.booster in class_names(model)

    def is_wrapper(self, model: Any) -> bool:
        return self.wrapper in class_names(model)

    def matches(self, model: Any) -> bool:
        return self.is_booster(model) or self.is_wrapper(model)

    def booster_params(self, model: Any) -> dict[str, Any]:
        """What the manifest records of a bare booster (it has no ``get_params``)."""
        raise NotImplementedError

    def booster_predict(self, model: Any, inputs: Any) -> Any:
        return model.predict(inputs)

    def describe(self, model: Any) -> dict[str, Any]:
        cls = type(model)
        if self.is_wrapper(model):
            task = "classification" if hasattr(model, "predict_proba") else "regression"
            params = json_params(model.get_params())
        else:
            task, params = "booster", self.booster_params(model)
        return {"framework": self.name, "class": f"{cls.__module__}.{cls.__qualname__}", "task": task,
                "methods": self.methods(model), "params": params}

    def methods(self, model: Any) -> list[str]:
        if self.is_wrapper(model) and hasattr(model, "predict_proba"):
            return ["predict", "predict_proba"]
        return ["predict"]

    def call(self, model: Any, method: str, inputs: Any) -> np.ndarray[Any, Any]:
        if method not in self.methods(model):
            raise ValueError(f"{type(model).__name__} has no prediction method {method!r}")
        if self.is_booster(model):
            return np.asarray(self.booster_predict(model, inputs))
        return np.asarray(getattr(model, method)(inputs))

    def packages(self, model: Any) -> list[str]:
        return [self.name, "numpy", "scipy"] + (["sklearn"] if self.is_wrapper(model) else [])

    def formats(self, model: Any) -> list[str]:
        return [self.name]

    def predictor(self, model: Any, signature: Signature) -> MethodPredictor:
        return MethodPredictor(model, signature, self.call)
