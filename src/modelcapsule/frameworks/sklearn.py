"""scikit-learn (and estimators that follow its API): methods, description, formats, predictor."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np

from ..core.sample import to_numpy
from ..errors import UnsupportedModelError
from ..types import Predictor, Signature
from .predictor import MethodPredictor
from .tree_shortcut import tree_shortcut

__all__ = ["SklearnFramework"]

PREDICTION_METHODS = ("predict", "predict_proba", "decision_function", "transform")


def _json_safe(value: Any) -> Any:
    """A JSON-representable version of a hyper-parameter (estimators and callables become their repr)."""
    if isinstance(value, float) and not np.isfinite(value):
        return repr(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


class SklearnFramework:
    """Estimators with the scikit-learn API: anything with ``fit`` and ``get_params``."""

    name: ClassVar[str] = "sklearn"

    def matches(self, model: Any) -> bool:
        return hasattr(model, "get_params") and hasattr(model, "fit")

    def methods(self, model: Any) -> list[str]:
        return [m for m in PREDICTION_METHODS if hasattr(model, m)]

    def describe(self, model: Any) -> dict[str, Any]:
        cls = type(model)
        try:
            params = _json_safe(model.get_params(deep=False))
        except (AttributeError, TypeError):
            params = {}
        return {
            "framework": self.name,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "task": _task(model),
            "methods": self.methods(model),
            "params": params,
        }

    def call(self, model: Any, method: str, inputs: Any) -> np.ndarray[Any, Any]:
        """The golden sample's call: scikit-learn's parallelism off, so the outputs are reproducible bit
        for bit. An ensemble fitted with ``n_jobs`` sums its members' outputs in the order its threads
        finish, which changes the last bits from call to call (8 calls in 10 on a 100-tree forest with
        ``n_jobs=2``); in order, the sum is the one ``n_jobs=None`` computes. Serving keeps the threads."""
        from joblib import parallel_config

        if method not in PREDICTION_METHODS or not hasattr(model, method):
            raise ValueError(f"{type(model).__name__} has no prediction method {method!r}")
        if (param := reads_named_files(model)) is not None:
            raise UnsupportedModelError(
                f"{type(model).__name__} opens the files its inputs name ({param}='filename' or 'file'); "
                "modelcapsule never runs such a model on stored or served inputs. Use input='content'."
            )
        with parallel_config(backend="sequential"):
            return to_numpy(getattr(model, method)(inputs))

    def packages(self, model: Any) -> list[str]:
        return ["sklearn", type(model).__module__.split(".")[0]]

    def formats(self, model: Any) -> list[str]:
        return ["safepickle", "skops"]

    def predictor(self, model: Any, signature: Signature) -> Predictor:
        """Calls the model's own methods, except where a shortcut gives the same bits faster.

        The shortcut is chosen (proved bit-identical, then timed) on the predictor's first call, not here:
        every load builds a predictor, and for a 300-tree forest the choice takes most of a second that
        ``mc.load``, which hands back the model itself, would pay for nothing."""
        fast: dict[str, Any] | None = None

        def shortcuts() -> dict[str, Any]:
            nonlocal fast
            if fast is None:  # two threads may both build it: the same answer, the last one kept
                shortcut = tree_shortcut(model)
                fast = {} if shortcut is None else {
                    name: f for name in PREDICTION_METHODS if (f := shortcut.method(name)) is not None}
            return fast

        def call(m: Any, method: str, x: Any) -> Any:
            if method not in PREDICTION_METHODS:  # outputs are named by the manifest: only prediction methods
                raise KeyError(f"{method!r} is not a prediction method")
            method_fast = shortcuts().get(method)
            return method_fast(x) if method_fast is not None else getattr(m, method)(x)

        return MethodPredictor(model, signature, call)


def reads_named_files(model: Any) -> str | None:
    """The parameter through which ``model`` (or a step nested in it) opens files named by its inputs
    (scikit-learn's text vectorizers with ``input='filename'`` or ``'file'``), or None."""
    try:
        params = model.get_params(deep=True)
    except (AttributeError, TypeError, ValueError, RecursionError):
        params = {}
    own = getattr(model, "input", None)
    if isinstance(own, str) and own in ("filename", "file"):
        return "input"
    for key, value in params.items():
        if (key == "input" or key.endswith("__input")) and isinstance(value, str) and value in ("filename", "file"):
            return str(key)
    return None


def _task(model: Any) -> str:
    kind = getattr(model, "_estimator_type", None)
    try:
        from sklearn.base import is_classifier, is_clusterer, is_outlier_detector, is_regressor

        if is_classifier(model):
            return "classification"
        if is_regressor(model):
            return "regression"
        if is_clusterer(model):
            return "clustering"
        if is_outlier_detector(model):
            return "outlier_detection"
    except (ImportError, AttributeError, TypeError):
        pass  # duck-typed estimators without scikit-learn tags
    if kind:
        return str(kind)
    return "transformation" if hasattr(model, "transform") else "other"


FRAMEWORKS = (SklearnFramework(),)
