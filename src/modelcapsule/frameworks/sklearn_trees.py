"""scikit-learn's tree ensembles as :class:`~.tree_runtime.FlatTrees`, with each model's own finish.

For each supported class, :func:`flat_methods` returns replacements for the model's prediction
methods that (1) check the input with the model's own code, (2) sum the leaves with the flat walk, in
scikit-learn's order and from scikit-learn's starting value, and (3) finish with the same operation
as scikit-learn (the forest's mean and argmax, the boosting's loss and link). Only steps (2) differ
from calling the model, and :mod:`.sklearn_forest` proves them identical before they serve.

Supported: ``RandomForest*``, ``ExtraTrees*`` (single and multi-output), ``HistGradientBoosting*``
without categorical splits, ``GradientBoosting*``. Sparse inputs go to the model's own methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .tree_runtime import FlatTrees, TreeArrays

__all__ = ["MAX_FLAT_NODES", "Compute", "family", "flat_methods", "hist_tree_arrays"]

MAX_FLAT_NODES = 4_000_000
"""Larger ensembles are not flattened: the flat arrays take ~60 bytes a node (240 MB here), as much again
as scikit-learn's own, and at that size the per-tree overhead the walk saves is a small share of a call."""

Compute = Callable[[Any], Any]

_FAMILIES = {
    "sklearn.ensemble._forest.RandomForestClassifier": ("forest", True),
    "sklearn.ensemble._forest.ExtraTreesClassifier": ("forest", True),
    "sklearn.ensemble._forest.RandomForestRegressor": ("forest", False),
    "sklearn.ensemble._forest.ExtraTreesRegressor": ("forest", False),
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier": ("hist", True),
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor": ("hist", False),
    "sklearn.ensemble._gb.GradientBoostingClassifier": ("gb", True),
    "sklearn.ensemble._gb.GradientBoostingRegressor": ("gb", False),
}
"""Exact classes (subclasses may change how they predict): family and whether it is a classifier."""


class Unsupported(Exception):
    """This fitted model cannot be walked as flat trees (categorical splits, a missing attribute...)."""


def family(model: Any) -> tuple[str, bool] | None:
    """``(family, is_classifier)`` for a model of one of the exact supported classes, else None."""
    cls = type(model)
    return _FAMILIES.get(f"{cls.__module__}.{cls.__qualname__}")


def flat_methods(model: Any) -> tuple[FlatTrees, dict[str, Compute]]:
    """The flat trees of ``model`` and its methods computed through them; raises :class:`Unsupported`."""
    found = family(model)
    if found is None:
        raise Unsupported(f"{type(model).__name__} is not a supported tree ensemble")
    kind, classifier = found
    try:
        if kind == "forest":
            return _forest(model, classifier)
        if kind == "hist":
            return _hist(model, classifier)
        return _gb(model, classifier)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise Unsupported(f"{type(model).__name__}: {exc}") from exc


def _sparse(X: Any) -> bool:
    return hasattr(X, "toarray")


def _check_size(node_counts: Any) -> None:
    total = int(sum(node_counts))
    if total > MAX_FLAT_NODES:
        raise Unsupported(f"{total:,} nodes, more than the {MAX_FLAT_NODES:,} flattened")


def _tree(tree: Any, values: np.ndarray[Any, Any]) -> TreeArrays:
    return TreeArrays(tree.children_left, tree.children_right, tree.feature, tree.threshold,
                      tree.missing_go_to_left, values)


def _forest(model: Any, classifier: bool) -> tuple[FlatTrees, dict[str, Compute]]:
    if not model.estimators_ or not callable(getattr(model, "_validate_X_predict", None)):
        raise Unsupported("an unfitted forest, or a scikit-learn release without its input check")
    trees = [est.tree_ for est in model.estimators_]
    _check_size(t.node_count for t in trees)
    flat = FlatTrees([_tree(t, t.value.reshape(t.node_count, -1)) for t in trees])
    n_trees, n_outputs = len(trees), int(model.n_outputs_)
    original = {"predict": model.predict}
    if classifier:
        original["predict_proba"] = model.predict_proba

    def mean(X: Any) -> Any:
        checked = _plain(model, X, np.float32, finite=True)
        if checked is None:
            checked = model._validate_X_predict(X)
        if _sparse(checked):
            return None
        rows = checked.shape[0]
        total = flat.running_sum(_as_f64(checked), np.zeros((rows, flat.n_values)))
        total /= n_trees
        if not classifier:
            return total[:, 0] if n_outputs == 1 else total
        per_output = total.reshape(rows, n_outputs, -1)
        classes = np.atleast_1d(model.n_classes_)
        probas = [np.ascontiguousarray(per_output[:, k, : classes[k]]) for k in range(n_outputs)]
        return probas[0] if n_outputs == 1 else probas

    def predict_proba(X: Any) -> Any:
        proba = mean(X)
        return original["predict_proba"](X) if proba is None else proba

    def predict(X: Any) -> Any:
        result = mean(X)
        if result is None:
            return original["predict"](X)
        if not classifier:
            return result
        if n_outputs == 1:
            return model.classes_.take(np.argmax(result, axis=1), axis=0)
        predictions = np.empty((result[0].shape[0], n_outputs), dtype=model.classes_[0].dtype)
        for k in range(n_outputs):
            predictions[:, k] = model.classes_[k].take(np.argmax(result[k], axis=1), axis=0)
        return predictions

    methods: dict[str, Compute] = {"predict": predict}
    if classifier:
        methods["predict_proba"] = predict_proba
    return flat, methods


def hist_tree_arrays(model: Any) -> list[TreeArrays]:
    """Every tree of a fitted ``HistGradientBoosting*``, stage after stage, as :class:`TreeArrays`
    (children -1 at leaves); a categorical split anywhere is :class:`Unsupported`."""
    trees = []
    for stage in model._predictors:
        for predictor in stage:
            nodes = predictor.nodes
            if bool(np.any(nodes["is_categorical"])):
                raise Unsupported("categorical splits")
            leaf = nodes["is_leaf"].astype(bool)
            left = np.where(leaf, -1, nodes["left"].astype(np.intp))
            right = np.where(leaf, -1, nodes["right"].astype(np.intp))
            trees.append(TreeArrays(left, right, nodes["feature_idx"], nodes["num_threshold"],
                                    nodes["missing_go_to_left"], nodes["value"].reshape(-1, 1)))
    return trees


def _hist(model: Any, classifier: bool) -> tuple[FlatTrees, dict[str, Compute]]:
    if model.is_categorical_ is not None and bool(np.any(model.is_categorical_)):
        raise Unsupported("categorical splits")
    per_stage = int(model.n_trees_per_iteration_)
    _check_size(len(p.nodes) for stage in model._predictors for p in stage)
    flat = FlatTrees(hist_tree_arrays(model))
    baseline = model._baseline_prediction

    def raw(X: Any) -> Any:
        checked = _plain(model, X, np.float64, finite=False) if model._preprocessor is None else None
        if checked is None:
            checked = model._preprocess_X(X, reset=False)
        initial = np.zeros((checked.shape[0], per_stage), dtype=baseline.dtype)
        initial += baseline
        return np.asfortranarray(flat.running_sum(_as_f64(checked), initial, per_stage=per_stage))

    methods: dict[str, Compute] = {}
    if not classifier:
        methods["predict"] = lambda X: model._loss.link.inverse(raw(X).ravel())
        return flat, methods

    def predict(X: Any) -> Any:
        values = raw(X)
        if values.shape[1] == 1:
            return model.classes_[(values.ravel() > 0).astype(int)]
        return model.classes_[np.argmax(values, axis=1)]

    def decision_function(X: Any) -> Any:
        values = raw(X)
        return values.ravel() if values.shape[1] == 1 else values

    methods["predict"] = predict
    methods["predict_proba"] = lambda X: model._loss.predict_proba(raw(X))
    methods["decision_function"] = decision_function
    return flat, methods


def _gb(model: Any, classifier: bool) -> tuple[FlatTrees, dict[str, Compute]]:
    from sklearn.utils.validation import validate_data  # scikit-learn is loaded: the model is one

    stages = model.estimators_
    per_stage = int(stages.shape[1])
    _check_size(est.tree_.node_count for stage in stages for est in stage)
    flat = FlatTrees([_tree(est.tree_, est.tree_.value.reshape(est.tree_.node_count, -1))
                      for stage in stages for est in stage])
    scale = float(model.learning_rate)
    original = {"predict": model.predict}
    if classifier:
        original.update(predict_proba=model.predict_proba, decision_function=model.decision_function)

    def raw(X: Any) -> Any:
        checked = _plain(model, X, np.float32, finite=True)
        if checked is None:
            checked = validate_data(model, X, dtype=np.float32, order="C", accept_sparse="csr", reset=False)
        if _sparse(checked):
            return None
        initial = model._raw_predict_init(checked)
        return flat.running_sum(_as_f64(checked), initial, scale=scale, per_stage=per_stage)

    def decision_function(X: Any) -> Any:
        values = raw(X)
        if values is None:
            return original["decision_function"](X)
        return values.ravel() if values.shape[1] == 1 else values

    if not classifier:
        def predict_regression(X: Any) -> Any:
            values = raw(X)
            return original["predict"](X) if values is None else values.ravel()
        return flat, {"predict": predict_regression}

    def predict(X: Any) -> Any:
        values = raw(X)
        if values is None:
            return original["predict"](X)
        if values.shape[1] == 1:
            return model.classes_[(values.ravel() >= 0).astype(int)]
        return model.classes_[np.argmax(values, axis=1)]

    def predict_proba(X: Any) -> Any:
        values = raw(X)
        if values is None:
            return original["predict_proba"](X)
        return model._loss.predict_proba(values.ravel() if values.shape[1] == 1 else values)

    return flat, {"predict": predict, "predict_proba": predict_proba, "decision_function": decision_function}


def _plain(model: Any, X: Any, dtype: Any, *, finite: bool) -> np.ndarray[Any, Any] | None:
    """What scikit-learn's own input check returns, for the common case only: a 2-D float array of the
    fitted width, for a model fitted without feature names (with ``finite``: no NaN or infinity).
    None for anything else, which then goes through the model's own check (and its errors, warnings)."""
    if (type(X) is not np.ndarray or X.ndim != 2 or X.dtype not in _FLOATS or X.shape[0] == 0
            or X.shape[1] != model.n_features_in_ or hasattr(model, "feature_names_in_")):
        return None
    converted = np.ascontiguousarray(X, dtype=dtype)
    if finite and not np.isfinite(converted).all():
        return None
    return converted


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _as_f64(X: Any) -> np.ndarray[Any, Any]:
    return np.ascontiguousarray(X, dtype=np.float64)
