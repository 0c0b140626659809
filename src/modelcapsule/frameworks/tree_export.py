"""At save time: a scikit-learn tree ensemble as stored flat trees, proven bit-identical first.

:func:`export_trees` turns a fitted ensemble of one of the exact classes
:func:`~.sklearn_trees.family` knows (forests and extra-trees, ``HistGradientBoosting*`` without
categorical splits, ``GradientBoosting*``) into the members and manifest section
:mod:`.tree_store` describes, reads them back exactly as a load will, and runs the resulting
:class:`~.tree_predictor.FlatTreePredictor` against the model's own methods on the golden sample and
on probe rows built from the split thresholds (float64, float32, with NaN, with infinity). A method
is stored as covered only if every output is the same bits as scikit-learn's and every input the
model refuses is refused too; if none is, nothing is stored and the capsule is saved without the
section. Unsupported models (a classifier with several outputs, a model fitted on named columns,
categorical splits, a custom ``init`` estimator, more than :data:`~.sklearn_trees.MAX_FLAT_NODES` nodes,
:data:`~.tree_store.MAX_FLAT_DEPTH` levels or :data:`MAX_STORED_BYTES`...) are skipped with the reason
logged.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from ..core.container import DEFAULT_LIMITS
from ..core.npy import array_from_npy
from ..core.sample import model_inputs
from ..errors import CapsuleError, InvalidInputError
from ..types import Signature
from .sklearn_forest import _identical
from .sklearn_trees import MAX_FLAT_NODES, Unsupported, family, hist_tree_arrays
from .tree_predictor import FlatTreePredictor
from .tree_shortcut import probe_rows
from .tree_store import LAYOUT, StoredTrees, check_arrays, encode_arrays, member_name

__all__ = ["COVERED", "MAX_STORED_BYTES", "export_trees"]

log = logging.getLogger(__name__)

MAX_STORED_BYTES = 32 << 20
"""Larger flat trees are not stored. They are a cold-start accelerator (serving without importing
scikit-learn, ~1 s here), and they cost on every other load: every member is hashed, so a Python-runtime
load of the 300-tree benchmark forest (71 MiB of flat trees beside 117 MiB of nodes) hashed 60% more
bytes (~35 ms on the hash thread) and its save took 1.4 s longer to prove them. Serving-sized ensembles
(100 trees of depth 10: ~3 MiB) are far below the cap."""

COVERED = ("predict", "predict_proba", "decision_function")
"""Methods the stored trees may compute; any other stays with the Python model."""

_LINKS = {"IdentityLink": "identity", "LogLink": "exp", "LogitLink": "expit", "HalfLogitLink": "expit2",
          "MultinomialLogit": "softmax"}

Arrays = dict[str, np.ndarray[Any, Any]]
Call = Callable[[Any, str, Any], Any]


def export_trees(model: Any, call: Call, methods: list[str], inputs: Mapping[str, Any] | None
                 ) -> tuple[dict[str, Any], dict[str, bytes]] | None:
    """``(manifest section, {member: bytes})`` for ``model``, or None (not supported, or not proven).

    ``call(model, method, X)`` is the framework's reference call (sequential), ``methods`` the model's
    prediction methods, ``inputs`` the golden sample."""
    found = family(model)
    if found is None or inputs is None:
        return None
    try:
        X = model_inputs(inputs)
        _check_sample(model, X)
        section, arrays = _describe(model, *found)
        size = sum(a.nbytes for a in arrays.values())
        if size > MAX_STORED_BYTES:
            raise Unsupported(f"its flat trees would take {size / 2**20:.0f} MiB, more than the "
                              f"{MAX_STORED_BYTES >> 20} MiB stored")
        names = getattr(model, "feature_names_in_", None)
        if names is not None:
            section["feature_names"] = [str(n) for n in names]
        section["allow_nan"], section["allow_inf"] = _accepts(model, call, X, np.nan), _accepts(model, call, X, np.inf)
        encoded = encode_arrays(arrays)
        stored = check_arrays(section | {"methods": []},
                              {k.removeprefix("trees/").removesuffix(".npy"): array_from_npy(v)
                               for k, v in encoded.items()}, DEFAULT_LIMITS)
    except (Unsupported, CapsuleError, AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        log.info("no stored flat trees for %s: %s", type(model).__name__, exc)
        return None
    candidates = [m for m in COVERED if m in methods]
    stored_all = _with_methods(stored, candidates)
    predictor = FlatTreePredictor(stored_all, Signature((), ()))
    rows = [X, *probe_rows(section["n_features"], stored.flat)]
    rows.append(np.where(np.arange(rows[1].size).reshape(rows[1].shape) % 7 == 0, np.inf, rows[1]))
    proven = [m for m in candidates if _proves(model, call, predictor, m, rows)]
    if not proven:
        log.info("no stored flat trees for %s: no method reproduced scikit-learn bit for bit", type(model).__name__)
        return None
    section["methods"] = proven
    section["members"] = {k: member_name(k) for k in arrays}
    return section, encoded


def _check_sample(model: Any, X: Any) -> None:
    """The golden sample must be one 2-D array, or one DataFrame of numeric columns named as in fit."""
    if type(X) is np.ndarray and X.ndim == 2:
        return
    columns = getattr(X, "columns", None)
    dtypes = getattr(X, "dtypes", None)
    if columns is None or dtypes is None or getattr(X, "ndim", 0) != 2:
        raise Unsupported("the golden sample is not one 2-D array or DataFrame")
    if not all(np.dtype(d).kind in "biuf" for d in dtypes if isinstance(d, np.dtype)) or \
            not all(isinstance(d, np.dtype) for d in dtypes):
        raise Unsupported("the golden sample has columns that are not plain numbers")
    names = getattr(model, "feature_names_in_", None)
    if names is None or [str(c) for c in columns] != [str(n) for n in names]:
        raise Unsupported("the golden sample's columns are not the ones the model was fitted on")


def _with_methods(stored: StoredTrees, methods: list[str]) -> StoredTrees:
    return replace(stored, methods=tuple(methods))


def _accepts(model: Any, call: Call, X: np.ndarray[Any, Any], value: float) -> bool:
    """Whether the model predicts on a row holding ``value`` (scikit-learn raises ValueError if not)."""
    row = np.array(X[:1], dtype=np.float64)
    row[0, 0] = value
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call(model, "predict", row)
    except ValueError:
        return False
    return True


def _proves(model: Any, call: Call, predictor: FlatTreePredictor, method: str, rows: list[Any]) -> bool:
    for X in rows:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = call(model, method, X)
        except ValueError:  # refused by scikit-learn: must be refused here too
            try:
                predictor.compute(X, [method])
            except InvalidInputError:
                continue
            log.info("stored trees: %s accepted rows %s refuses", method, type(model).__name__)
            return False
        try:
            got = predictor.compute(X, [method])[method]
        except Exception as exc:  # any failure of ours means: leave this method to the model
            log.info("stored trees: %s raised %r where %s answers", method, exc, type(model).__name__)
            return False
        if not _identical(got, expected):
            log.warning("stored trees: %s differs from %s's own on probe rows; not stored", method,
                        type(model).__name__)
            return False
    return True


def _concat(trees: list[tuple[Any, ...]]) -> Arrays:
    """Trees ``(left, right, feature, threshold, missing_left, value)`` as the stored global arrays."""
    sizes = [len(t[0]) for t in trees]
    if sum(sizes) > MAX_FLAT_NODES:
        raise Unsupported(f"{sum(sizes):,} nodes, more than the {MAX_FLAT_NODES:,} stored")
    roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    children, feature, threshold, missing, values = [], [], [], [], []
    for (raw_left, raw_right, feat, thr, miss, value), start in zip(trees, roots, strict=True):
        left, right = np.asarray(raw_left, dtype=np.int64), np.asarray(raw_right, dtype=np.int64)
        leaf = left < 0
        children.append(np.stack([np.where(leaf, -1, left + start), np.where(leaf, -1, right + start)], axis=1))
        feature.append(np.where(leaf, 0, np.asarray(feat, dtype=np.int64)))
        threshold.append(np.asarray(thr, dtype=np.float64))
        missing.append(np.asarray(miss, dtype=bool) & ~leaf)
        values.append(np.asarray(value, dtype=np.float64))
    return {"roots": roots, "children": np.concatenate(children), "feature": np.concatenate(feature),
            "threshold": np.concatenate(threshold), "missing_left": np.concatenate(missing),
            "value": np.concatenate(values)}


def _link(model: Any) -> str:
    name = type(model._loss.link).__name__
    if name not in _LINKS:
        raise Unsupported(f"the {name} link")
    return _LINKS[name]


def _describe(model: Any, kind: str, classifier: bool) -> tuple[dict[str, Any], Arrays]:
    """The section (without ``methods``/``members``/NaN flags) and the arrays of ``model``."""
    section: dict[str, Any] = {"layout": LAYOUT, "family": kind, "classifier": classifier,
                               "n_features": int(model.n_features_in_), "per_stage": 1, "n_outputs": 1,
                               "input_dtype": "float64" if kind == "hist" else "float32", "link": "identity"}
    if kind == "forest":
        trees = [est.tree_ for est in model.estimators_]
        arrays = _concat([(t.children_left, t.children_right, t.feature, t.threshold, t.missing_go_to_left,
                           t.value.reshape(t.node_count, -1)) for t in trees])
        section["n_outputs"] = int(model.n_outputs_)
        if classifier and section["n_outputs"] != 1:
            raise Unsupported("a classifier with several outputs")
    elif kind == "hist":
        if getattr(model, "_preprocessor", None) is not None or (
                model.is_categorical_ is not None and bool(np.any(model.is_categorical_))):
            raise Unsupported("categorical features")
        arrays = _concat([(t.left, t.right, t.feature, t.threshold, t.missing_left, t.value)
                          for t in hist_tree_arrays(model)])
        section["per_stage"] = int(model.n_trees_per_iteration_)
        arrays["baseline"] = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
        section["link"] = _link(model)
    else:
        if model.init not in (None, "zero"):
            raise Unsupported("a custom init estimator (its starting value may depend on the row)")
        stages = model.estimators_
        arrays = _concat([(e.tree_.children_left, e.tree_.children_right, e.tree_.feature, e.tree_.threshold,
                           e.tree_.missing_go_to_left, e.tree_.value.reshape(e.tree_.node_count, -1))
                          for stage in stages for e in stage])
        section["per_stage"] = int(stages.shape[1])
        section["learning_rate"] = float(model.learning_rate)
        start = model._raw_predict_init(np.zeros((4, section["n_features"]), dtype=np.float32))
        if not all(_identical(start[i], start[0]) for i in range(len(start))):
            raise Unsupported("the init estimator's starting value differs from row to row")
        arrays["baseline"] = np.asarray(start[0], dtype=np.float64)
        section["link"] = _link(model) if classifier else "identity"
    if classifier:
        classes = np.asarray(model.classes_)
        if classes.dtype.kind == "O" and all(type(c) is str for c in classes):
            classes, section["object_labels"] = np.array(classes.tolist(), dtype=str), True  # given back as objects
        if classes.dtype.kind not in "biuUS":
            raise Unsupported(f"class labels of dtype {classes.dtype}")
        arrays["classes"] = classes
    section["n_trees"] = len(arrays["roots"])
    return section, arrays
