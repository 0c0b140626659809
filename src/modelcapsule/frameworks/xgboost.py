"""XGBoost: the ``Booster`` and its scikit-learn wrappers (``XGBClassifier``, ``XGBRegressor``, ...).

A ``Booster`` has one method, ``predict`` (called with ``inplace_predict`` on the array, no DMatrix);
the wrappers have their scikit-learn methods. Recognised by class names only: xgboost is imported
only when such a model is actually handled.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..types import Signature
from ._methods import class_names, json_params
from .predictor import MethodPredictor

__all__ = ["FRAMEWORKS", "XGBoostFramework"]

BOOSTER = "xgboost.core.Booster"
WRAPPER = "xgboost.sklearn.XGBModel"


def is_booster(model: Any) -> bool:
    return BOOSTER in class_names(model)


def is_wrapper(model: Any) -> bool:
    return WRAPPER in class_names(model)


class XGBoostFramework:
    """XGBoost boosters and scikit-learn wrappers."""

    name: ClassVar[str] = "xgboost"

    def matches(self, model: Any) -> bool:
        return is_booster(model) or is_wrapper(model)

    def describe(self, model: Any) -> dict[str, Any]:
        cls = type(model)
        if is_wrapper(model):
            task = "classification" if hasattr(model, "predict_proba") else "regression"
            params = json_params(model.get_params())
        else:
            task, params = "booster", {"num_boosted_rounds": int(model.num_boosted_rounds())}
        return {"framework": self.name, "class": f"{cls.__module__}.{cls.__qualname__}", "task": task,
                "methods": self.methods(model), "params": params}

    def methods(self, model: Any) -> list[str]:
        if is_wrapper(model) and hasattr(model, "predict_proba"):
            return ["predict", "predict_proba"]
        return ["predict"]

    def call(self, model: Any, method: str, inputs: Any) -> np.ndarray[Any, Any]:
        if method not in self.methods(model):
            raise ValueError(f"{type(model).__name__} has no prediction method {method!r}")
        if is_booster(model):
            return np.asarray(model.inplace_predict(inputs))
        return np.asarray(getattr(model, method)(inputs))

    def packages(self, model: Any) -> list[str]:
        return ["xgboost", "numpy", "scipy"] + (["sklearn"] if is_wrapper(model) else [])

    def formats(self, model: Any) -> list[str]:
        return ["xgboost"]

    def predictor(self, model: Any, signature: Signature) -> MethodPredictor:
        return MethodPredictor(model, signature, self.call)


FRAMEWORKS = (XGBoostFramework(),)
