"""Forest predictions without joblib's per-tree dispatch, bit-identical to scikit-learn's own.

scikit-learn's random forests and extra-trees sum their trees' outputs through ``joblib.Parallel``
even when they run on one thread, and each tree's call is wrapped in a copy of the configuration and
of the warning filters. On the small batches a server answers, that wrapping is almost the whole cost:
a 100-tree forest spends ~4 ms per call on it against ~0.3 ms of tree traversal (measured here with
scikit-learn 1.9.1; ``python -m benchmarks.serving`` shows the effect end to end).

:class:`ForestShortcut` computes the same thing directly: the forest checks the input once, as in
scikit-learn, then each tree's raw output is added in estimator order into float64 zeros and divided
by the number of trees; classes are the argmax of the mean probabilities. That is the order
scikit-learn itself uses when it runs sequentially, so the results are equal bit for bit. The first
call proves it on probe rows built from the forest's own split thresholds: if the outputs differ in
any bit (a scikit-learn release that changed how forests aggregate, say) the shortcut switches itself
off for good and every call goes to the model's own method.

Large batches of a forest fitted with ``n_jobs`` other than 1 keep scikit-learn's threads, which pay
off there; below :data:`PARALLEL_ROWS` rows the threads cost more than they save.
"""

from __future__ import annotations

import copy
import logging
import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["PARALLEL_ROWS", "ForestShortcut", "forest_shortcut"]

log = logging.getLogger(__name__)

PARALLEL_ROWS = 512
"""From this many rows on, a forest fitted with ``n_jobs != 1`` runs through scikit-learn's threads."""

_PROBE_ROWS = 32

_CLASSES = {
    "sklearn.ensemble._forest.RandomForestClassifier": True,
    "sklearn.ensemble._forest.ExtraTreesClassifier": True,
    "sklearn.ensemble._forest.RandomForestRegressor": False,
    "sklearn.ensemble._forest.ExtraTreesRegressor": False,
}
"""Exact classes served by the shortcut (subclasses may change how they predict): is it a classifier."""

Method = Callable[[Any], Any]


def forest_shortcut(model: Any) -> ForestShortcut | None:
    """The shortcut for a fitted forest of one of the exact classes above, else None."""
    cls = type(model)
    classifier = _CLASSES.get(f"{cls.__module__}.{cls.__qualname__}")
    if classifier is None or not getattr(model, "estimators_", None):
        return None
    if not callable(getattr(model, "_validate_X_predict", None)):
        return None  # a scikit-learn release without the forest's own input check
    return ForestShortcut(model, classifier)


class ForestShortcut:
    """``predict`` / ``predict_proba`` of one forest, summed directly (see the module docstring)."""

    def __init__(self, model: Any, classifier: bool) -> None:
        self.model = model
        self.classifier = classifier
        self._parallel = _effective_jobs(model) > 1
        self._proven: bool | None = None
        self._lock = threading.Lock()

    def method(self, name: str) -> Method | None:
        """A replacement for the model's method ``name``, or None where the shortcut does not apply."""
        if name == "predict":
            compute = self._predict_classes if self.classifier else self._mean
        elif name == "predict_proba" and self.classifier:
            compute = self._mean
        else:
            return None
        original: Method = getattr(self.model, name)

        def call(X: Any) -> Any:
            if not self._usable(X):
                return original(X)
            return compute(self.model._validate_X_predict(X))

        return call

    @property
    def proven(self) -> bool | None:
        """Whether the probe found the shortcut identical to scikit-learn (None before the first call)."""
        return self._proven

    def _usable(self, X: Any) -> bool:
        if self._proven is None:
            with self._lock:
                if self._proven is None:
                    self._proven = self._prove()
        if not self._proven:
            return False
        return not (self._parallel and getattr(X, "shape", (0,))[0] >= PARALLEL_ROWS)

    def _mean(self, X: Any) -> Any:
        model = self.model
        if self.classifier:
            sums = [np.zeros((X.shape[0], j), dtype=np.float64) for j in np.atleast_1d(model.n_classes_)]
        else:
            shape = (X.shape[0], model.n_outputs_) if model.n_outputs_ > 1 else (X.shape[0],)
            sums = [np.zeros(shape, dtype=np.float64)]
        for tree in model.estimators_:
            raw = tree.tree_.predict(X)
            if self.classifier:
                if len(sums) == 1:
                    sums[0] += raw[:, : tree.n_classes_]
                else:
                    for k in range(len(sums)):
                        sums[k] += raw[:, k, : tree.n_classes_[k]]
            else:
                sums[0] += raw[:, 0] if model.n_outputs_ == 1 else raw[:, :, 0]
        for k in range(len(sums)):
            sums[k] /= len(model.estimators_)
        return sums[0] if len(sums) == 1 else sums

    def _predict_classes(self, X: Any) -> Any:
        model = self.model
        proba = self._mean(X)
        if model.n_outputs_ == 1:
            return model.classes_.take(np.argmax(proba, axis=1), axis=0)
        predictions = np.empty((X.shape[0], model.n_outputs_), dtype=model.classes_[0].dtype)
        for k in range(model.n_outputs_):
            predictions[:, k] = model.classes_[k].take(np.argmax(proba[k], axis=1), axis=0)
        return predictions

    def _prove(self) -> bool:
        """Both methods on probe rows, against scikit-learn run sequentially: equal in every bit?"""
        model = self.model
        reference = copy.copy(model)  # shares the trees; only n_jobs differs
        reference.n_jobs = 1
        try:
            X = _probe_rows(model)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # feature-name warnings: the probe is a bare array
                checked = model._validate_X_predict(X)
                pairs = [(self._mean(checked), reference.predict_proba(X) if self.classifier
                          else reference.predict(X))]
                if self.classifier:
                    pairs.append((self._predict_classes(checked), reference.predict(X)))
        except Exception as exc:  # any failure means: use the model's own methods
            log.info("forest shortcut off for %s: the probe raised %s", type(model).__name__, exc)
            return False
        same = all(_identical(ours, theirs) for ours, theirs in pairs)
        if not same:
            log.warning("forest shortcut off for %s: its outputs differ from scikit-learn's on probe rows",
                        type(model).__name__)
        return same


def _identical(ours: Any, theirs: Any) -> bool:
    if isinstance(theirs, list):
        return isinstance(ours, list) and len(ours) == len(theirs) and all(
            _identical(a, b) for a, b in zip(ours, theirs, strict=True))
    a, b = np.asarray(ours), np.asarray(theirs)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8)))
    return bool(np.array_equal(a, b))


def _probe_rows(model: Any) -> np.ndarray[Any, Any]:
    """Rows just either side of the forest's split thresholds, so the probe reaches many leaves."""
    n_features = int(model.n_features_in_)
    rng = np.random.default_rng(0)
    X = np.zeros((_PROBE_ROWS, n_features), dtype=np.float32)
    thresholds: list[list[float]] = [[] for _ in range(n_features)]
    for tree in model.estimators_[:8]:
        inner = tree.tree_.feature >= 0
        for feature, threshold in zip(tree.tree_.feature[inner], tree.tree_.threshold[inner], strict=True):
            thresholds[int(feature)].append(float(threshold))
    for f, values in enumerate(thresholds):
        if values:
            picks = rng.choice(np.asarray(values), size=_PROBE_ROWS)
            X[:, f] = picks + rng.choice([-1.0, 1.0], size=_PROBE_ROWS) * (1e-3 * (1.0 + np.abs(picks)))
    return X


def _effective_jobs(model: Any) -> int:
    try:
        from joblib import effective_n_jobs

        return int(effective_n_jobs(getattr(model, "n_jobs", None)))
    except (ImportError, ValueError, TypeError):
        return 1
