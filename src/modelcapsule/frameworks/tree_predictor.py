"""A Predictor over stored flat trees: scikit-learn's input checks, the flat walk, the model's finish.

Nothing here imports scikit-learn or SciPy. Each step is the one scikit-learn takes, in the same
arithmetic order, so that the outputs are the same bits (proven at save time by
:mod:`.tree_export`, and again at load on the golden sample):

1. the input is checked as scikit-learn checks it for these models: a 2-D array of numbers with the
   fitted number of columns and at least one row, cast to the dtype the model compares
   (``float32`` for forests and ``GradientBoosting*``, ``float64`` for ``HistGradientBoosting*``), NaN
   and infinity refused unless the model takes them. A refused input raises
   :class:`~modelcapsule.errors.InvalidInputError` (a 4xx when served) naming the problem;
2. every tree is walked at once (:class:`~.tree_runtime.FlatTrees`) and the leaves summed from the
   model's starting value;
3. the sum is finished as the model finishes it: the forest's mean and argmax; the boosting's
   threshold, argmax, logistic function (computed with the C library's ``exp``, as SciPy's ``expit``
   is) or softmax (numpy's, as scikit-learn's).

Outputs the stored trees do not cover go to ``fallback`` (the Python model, loaded lazily).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..core.sample import DEFAULT_INPUT
from ..errors import InvalidInputError
from ..types import Predictor, Signature
from .predictor import MethodPredictor
from .tree_store import StoredTrees

__all__ = ["FlatTreePredictor"]

Array = np.ndarray[Any, Any]


class FlatTreePredictor:
    """The capsule's signature served from its stored flat trees (see the module docstring)."""

    runtime = "flat"

    def __init__(self, stored: StoredTrees, signature: Signature, fallback: Predictor | None = None) -> None:
        self.stored = stored
        self._signature = signature
        self._fallback = fallback
        self._input = signature.inputs[0].name if len(signature.inputs) == 1 else DEFAULT_INPUT
        self._tabular = MethodPredictor(None, signature) if len(signature.inputs) == 1 and \
            signature.inputs[0].columns is not None else None  # rows or columns onto a DataFrame
        finish = {"forest": _forest_outputs, "hist": _boosting_outputs, "gb": _boosting_outputs}[stored.family]
        self._finish: Callable[[StoredTrees, Array, set[str]], dict[str, Array]] = finish

    @property
    def signature(self) -> Signature:
        return self._signature

    @property
    def methods(self) -> tuple[str, ...]:
        """The outputs computed from the stored trees; any other goes to the fallback."""
        return self.stored.methods

    def check_input(self, X: Any) -> Array:
        """``X`` as the values the model compares (float64, C order), or :class:`InvalidInputError`."""
        s = self.stored
        columns = getattr(X, "columns", None)
        if columns is not None and hasattr(X, "dtypes"):  # a DataFrame: its names checked as scikit-learn does
            self._check_columns([c for c in columns])
            try:
                array = np.asarray(X, dtype=s.input_dtype)  # the conversion scikit-learn asks of pandas
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(f"the model takes numbers; these columns hold other values ({exc}).") from None
        else:
            array = np.asarray(X)
        if array.dtype.kind == "O":
            try:
                array = array.astype(s.input_dtype)
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(f"the model takes numbers; this input holds other values ({exc}).") from None
        if array.dtype.kind not in "biuf":
            raise InvalidInputError(f"the model takes numbers; this input has dtype {array.dtype}.")
        if array.ndim != 2:
            raise InvalidInputError(f"the model takes a 2-D array (rows × {s.n_features} columns); this input has "
                                    f"shape {array.shape}. Reshape a single row with X.reshape(1, -1).")
        if array.shape[0] == 0:
            raise InvalidInputError(f"the input has 0 rows (shape {array.shape}); at least 1 is required.")
        if array.shape[1] != s.n_features:
            raise InvalidInputError(f"the input has {array.shape[1]} columns, but the model was fitted on "
                                    f"{s.n_features}.")
        with np.errstate(over="ignore"):  # a value beyond float32 becomes infinity, refused below as scikit-learn does
            cast = np.ascontiguousarray(array, dtype=s.input_dtype)
        if cast.dtype.kind == "f" and not (s.allow_nan and s.allow_inf):
            if not s.allow_nan and bool(np.isnan(cast).any()):
                raise InvalidInputError("the input contains NaN, which this model does not take; impute the "
                                        "missing values first.")
            if not s.allow_inf and bool(np.isinf(cast).any()):
                raise InvalidInputError(f"the input contains infinity or a value too large for {cast.dtype}.")
        return np.ascontiguousarray(cast, dtype=np.float64)

    def _check_columns(self, columns: list[Any]) -> None:
        names = self.stored.feature_names
        if names is None or not all(isinstance(c, str) for c in columns):
            return  # scikit-learn only warns: names given to a model fitted without, or names that are not text
        if tuple(columns) != names:
            raise InvalidInputError(f"the input's columns {columns[:10]} are not the ones the model was fitted on, "
                                    f"in that order: {list(names[:10])}.")

    def compute(self, X: Any, names: Sequence[str]) -> dict[str, Array]:
        """The covered outputs ``names`` for the model input ``X`` (one walk for all of them)."""
        return self._finish(self.stored, self.check_input(X), set(names))

    def predict(self, inputs: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, Array]:
        names = list(outputs) if outputs else list(self._signature.output_names[:1])
        covered = [n for n in names if n in self.stored.methods]
        missing = [n for n in names if n not in self.stored.methods]
        if missing and self._fallback is None:
            raise KeyError(f"the stored trees compute {sorted(self.stored.methods)}, not {missing}")
        result: dict[str, Array] = {}
        if covered:
            result.update(self.compute(self._model_input(inputs), covered))
        if missing and self._fallback is not None:
            result.update(self._fallback.predict(inputs, missing))
        return {n: result[n] for n in names}

    def _model_input(self, inputs: Mapping[str, Any]) -> Any:
        if self._tabular is not None:
            return self._tabular.model_input(inputs)
        if self._input in inputs:
            return inputs[self._input]
        if DEFAULT_INPUT in inputs:
            return inputs[DEFAULT_INPUT]
        if len(inputs) == 1:
            return next(iter(inputs.values()))
        raise InvalidInputError(f"the model takes one input, {self._input!r}; got {sorted(inputs)}.")


def _forest_outputs(s: StoredTrees, X: Array, names: set[str]) -> dict[str, Array]:
    rows = X.shape[0]
    total = s.flat.running_sum(X, np.zeros((rows, s.flat.n_values)))
    total /= s.flat.n_trees
    if not s.classifier:
        return {"predict": total[:, 0] if s.n_outputs == 1 else total}
    assert s.classes is not None
    proba = np.ascontiguousarray(total)
    out = {"predict_proba": proba, "predict": s.classes.take(np.argmax(proba, axis=1), axis=0)}
    return {n: v for n, v in out.items() if n in names}


def _boosting_outputs(s: StoredTrees, X: Array, names: set[str]) -> dict[str, Array]:
    rows = X.shape[0]
    assert s.baseline is not None
    if s.family == "hist":  # scikit-learn: zeros, += baseline, then the trees; Fortran order
        initial = np.zeros((rows, s.per_stage), dtype=np.float64)
        initial += s.baseline
        raw = np.asfortranarray(s.flat.running_sum(X, initial, per_stage=s.per_stage))
    else:  # GradientBoosting*: the init estimator's constant row, then learning_rate × each tree
        initial = np.tile(s.baseline, (rows, 1))
        raw = s.flat.running_sum(X, initial, scale=s.learning_rate, per_stage=s.per_stage)
    if not s.classifier:
        return {"predict": _inverse(s.link, raw.ravel()) if s.family == "hist" else raw.ravel()}
    assert s.classes is not None
    binary = raw.shape[1] == 1
    decision = raw.ravel() if binary else raw
    out: dict[str, Array] = {"decision_function": decision}
    if "predict" in names:
        if binary:
            encoded = (decision > 0) if s.family == "hist" else (decision >= 0)
            out["predict"] = s.classes[encoded.astype(int)]
        else:
            out["predict"] = s.classes[np.argmax(raw, axis=1)]
    if "predict_proba" in names:
        out["predict_proba"] = _proba(s.link, decision) if binary else _softmax(raw)
    return {n: v for n, v in out.items() if n in names}


def _proba(link: str, raw: Array) -> Array:
    """Two columns: ``1 - p`` and ``p = link⁻¹(raw)``, as scikit-learn's binomial losses compute them."""
    proba = np.empty((raw.shape[0], 2), dtype=raw.dtype)
    proba[:, 1] = _inverse(link, raw)
    proba[:, 0] = 1 - proba[:, 1]
    return proba


def _softmax(raw: Array) -> Array:
    """scikit-learn's ``softmax``: the same numpy operations on a copy in the same memory order."""
    out = np.array(raw, copy=True, order="K")
    out -= np.reshape(np.max(out, axis=1), (-1, 1))
    np.exp(out, out=out)
    out /= np.reshape(np.sum(out, axis=1), (-1, 1))
    return out


def _inverse(link: str, raw: Array) -> Array:
    if link == "identity":
        return raw
    if link == "exp":
        return np.exp(raw)
    if link == "expit":
        return _expit(raw)
    if link == "expit2":
        return _expit(2 * raw)
    raise ValueError(f"unknown link {link!r}")


def _exp(v: float) -> float:
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def _expit(x: Array) -> Array:
    """``1 / (1 + exp(-x))`` with the C library's ``exp``, which is what SciPy's ``expit`` computes
    (numpy's own vectorised ``exp`` may differ from it in the last bit)."""
    flat = np.ravel(x)
    e = np.fromiter((_exp(-v) for v in flat.tolist()), dtype=np.float64, count=flat.size)
    return (1.0 / (1.0 + e)).reshape(np.shape(x))
