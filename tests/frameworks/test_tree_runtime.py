"""Tree ensembles served through the flat walk (all trees at once) give scikit-learn's own outputs, bit
for bit, for every supported shape; the fastest proven candidate is chosen per model at load, and
anything the flat walk cannot prove goes to the model's own methods."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from threadpoolctl import threadpool_limits

import modelcapsule as mc
from modelcapsule.frameworks import sklearn_trees, tree_shortcut
from modelcapsule.frameworks.sklearn_trees import flat_methods
from modelcapsule.frameworks.tree_runtime import FlatTrees, TreeArrays
from modelcapsule.frameworks.tree_shortcut import TreeShortcut

X, Y = make_classification(400, 6, n_informative=4, n_classes=3, random_state=0)
XR, YR = make_regression(400, 6, random_state=0)
X_NAN = X.copy()
X_NAN[np.random.default_rng(1).random(X.shape) < 0.15] = np.nan
LABELS = np.array(["setosa", "versicolor", "virginica"])

MODELS: dict[str, tuple[Callable[[], Any], np.ndarray[Any, Any]]] = {
    "random forest classifier": (lambda: RandomForestClassifier(12, random_state=0).fit(X, Y), X),
    "extra-trees classifier, string classes": (
        lambda: ExtraTreesClassifier(12, random_state=0).fit(X, LABELS[Y]), X),
    "multi-output forest classifier": (
        lambda: RandomForestClassifier(8, random_state=0).fit(X, np.c_[Y, Y % 2]), X),
    "forest classifier fitted on NaN": (lambda: RandomForestClassifier(12, random_state=0).fit(X_NAN, Y), X_NAN),
    "random forest regressor, depth 4": (
        lambda: RandomForestRegressor(12, max_depth=4, random_state=0).fit(XR, YR), XR),
    "multi-output extra-trees regressor": (
        lambda: ExtraTreesRegressor(8, random_state=0).fit(XR, np.c_[YR, -3 * YR]), XR),
    "hist gradient boosting, 3 classes, NaN": (
        lambda: HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(X_NAN, Y), X_NAN),
    "hist gradient boosting, binary, string classes": (
        lambda: HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(X, LABELS[Y % 2]), X),
    "hist gradient boosting regressor, poisson loss": (
        lambda: HistGradientBoostingRegressor(max_iter=15, loss="poisson").fit(XR, np.abs(YR)), XR),
    "gradient boosting, 3 classes": (
        lambda: GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, Y), X),
    "gradient boosting, binary": (
        lambda: GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, Y % 2), X),
    "gradient boosting regressor, huber, subsampled": (
        lambda: GradientBoostingRegressor(n_estimators=10, loss="huber", subsample=0.7,
                                          random_state=0).fit(XR, YR), XR),
}


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """scikit-learn's OpenMP threads as served (``--threads 1``): spinning threads are slow on a busy machine."""
    with threadpool_limits(1):
        yield


def same_bits(a: Any, b: Any) -> bool:
    if isinstance(b, list):
        return isinstance(a, list) and len(a) == len(b) and all(same_bits(x, y) for x, y in zip(a, b, strict=True))
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8)))
    return bool(np.array_equal(a, b))


@pytest.mark.parametrize("name", list(MODELS))
def test_the_flat_walk_gives_scikit_learns_outputs_bit_for_bit(name: str) -> None:
    build, data = MODELS[name]
    model = build()
    _, methods = flat_methods(model)
    assert "predict" in methods
    for method, ours in methods.items():
        for rows in (1, 2, 17, 300):
            assert same_bits(ours(data[:rows]), getattr(model, method)(data[:rows])), (method, rows)


@pytest.mark.parametrize("name", ["random forest classifier", "hist gradient boosting, 3 classes, NaN",
                                  "gradient boosting, binary"])
def test_dataframes_with_feature_names_answer_as_the_model_does(name: str) -> None:
    build, data = MODELS[name]
    columns = [f"f{i}" for i in range(data.shape[1])]
    frame = pd.DataFrame(data, columns=columns)
    template = build()
    model = clone(template).fit(frame, template.predict(data))
    _, methods = flat_methods(model)
    for method, ours in methods.items():
        assert same_bits(ours(frame.iloc[:40]), getattr(model, method)(frame.iloc[:40]))
    with pytest.raises(ValueError, match="features"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the model's own check, with its own message and warning
        methods["predict"](data[:3, :4])


def test_trees_are_walked_together_by_depth_not_one_by_one() -> None:
    """Two stumps and a deeper tree, by hand: every row reaches its leaf in three steps."""
    stump = TreeArrays(np.array([1, -1, -1]), np.array([2, -1, -1]), np.array([0, -2, -2]),
                       np.array([0.5, 0, 0]), np.zeros(3, bool), np.array([[0.0], [1.0], [2.0]]))
    deep = TreeArrays(np.array([1, 3, -1, -1, -1]), np.array([2, 4, -1, -1, -1]), np.array([1, 0, -2, -2, -2]),
                      np.array([0.0, -1.0, 0, 0, 0]), np.array([False, True, False, False, False]),
                      np.array([[0.0], [0.0], [30.0], [10.0], [20.0]]))
    flat = FlatTrees([stump, deep, stump])
    assert flat.depth == 2
    rows = np.array([[0.0, -5.0], [1.0, 5.0], [-2.0, -1.0], [np.nan, np.nan]])
    values = flat.leaf_values(rows)[:, :, 0]
    # NaN follows missing_left: right at the deep tree's root, left at its second split
    assert values.tolist() == [[1.0, 2.0, 1.0, 2.0], [20.0, 30.0, 10.0, 30.0], [1.0, 2.0, 1.0, 2.0]]
    assert flat.leaf_values(np.array([[-2.0, -1.0], [np.nan, -1.0]]))[1, :, 0].tolist() == [10.0, 10.0]
    total = flat.running_sum(rows, np.full((4, 1), 0.5), scale=2.0)[:, 0]
    assert total.tolist() == [0.5 + 2 * 22, 0.5 + 2 * 34, 0.5 + 2 * 12, 0.5 + 2 * 34]


def test_a_served_ensemble_answers_through_the_chosen_candidate_with_the_same_bits(tmp_path: Path) -> None:
    model = HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(X_NAN, Y)
    mc.save(model, tmp_path / "m.capsule", sample=X_NAN[:5])
    predictor = mc.load_capsule(tmp_path / "m.capsule").predictor
    name = predictor.signature.inputs[0].name
    for rows in (1, 64):
        got = predictor.predict({name: X_NAN[:rows]}, ["predict_proba"])["predict_proba"]
        assert same_bits(got, model.predict_proba(X_NAN[:rows]))


def test_the_choice_is_made_per_model_by_timing_the_proven_candidates() -> None:
    model = RandomForestClassifier(12, random_state=0).fit(X, Y)
    shortcut = tree_shortcut.tree_shortcut(model)
    assert shortcut is not None
    for method in ("predict", "predict_proba"):
        small, large = shortcut.choice[method]
        assert {small, large} <= {"flat", "per-tree", "model"}
        assert set(shortcut.timings[method]) == {"flat", "per-tree", "model"}
        assert all(len(seconds) == 2 and min(seconds) > 0 for seconds in shortcut.timings[method].values())


def test_a_candidate_that_would_differ_is_never_chosen(monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    real = sklearn_trees.flat_methods

    def skewed(model: Any) -> Any:  # what a scikit-learn release that sums differently would look like
        flat, methods = real(model)
        return flat, {name: _skew(f) for name, f in methods.items()}

    monkeypatch.setattr(tree_shortcut, "flat_methods", skewed)
    model = HistGradientBoostingRegressor(max_iter=10).fit(XR, YR)
    with caplog.at_level(logging.WARNING):
        shortcut = tree_shortcut.tree_shortcut(model)
    assert shortcut is None  # no candidate proven: the model's own methods answer
    assert "flat off for HistGradientBoostingRegressor" in caplog.text


def _skew(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda X: f(X) * (1 + 1e-15)


def test_categorical_splits_subclasses_and_sparse_rows_keep_the_models_own_methods() -> None:
    frame = pd.DataFrame({"colour": pd.Categorical(np.array(["r", "g", "b"])[Y]), "x": X[:, 0]})
    categorical = HistGradientBoostingClassifier(max_iter=5, categorical_features="from_dtype").fit(frame, Y)
    assert tree_shortcut.tree_shortcut(categorical) is None

    class Custom(RandomForestClassifier):
        pass

    assert tree_shortcut.tree_shortcut(Custom(n_estimators=3).fit(X, Y)) is None
    assert tree_shortcut.tree_shortcut(RandomForestClassifier()) is None  # not fitted

    import scipy.sparse as sp

    model = GradientBoostingClassifier(n_estimators=5).fit(X, Y)
    _, methods = flat_methods(model)
    sparse_rows = sp.csr_matrix(X[:5])
    assert same_bits(methods["predict_proba"](sparse_rows), model.predict_proba(sparse_rows))


def test_the_shortcut_is_built_once_at_load_and_reused() -> None:
    model = RandomForestRegressor(6, random_state=0).fit(XR, YR)
    shortcut = TreeShortcut(model, "forest")
    assert shortcut.flat.n_trees == 6 and shortcut.flat.nbytes > 0


@pytest.mark.parametrize("name", ["random forest classifier", "gradient boosting, binary",
                                  "hist gradient boosting, 3 classes, NaN"])
def test_rows_the_quick_input_check_does_not_take_get_the_models_own_check_and_error(name: str) -> None:
    build, data = MODELS[name]
    model = build()
    _, methods = flat_methods(model)
    for bad in (np.array([[np.inf] * data.shape[1]]), np.ones((2, data.shape[1] + 1))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                expected: Any = model.predict(bad)
            except ValueError as exc:
                expected = exc
            if isinstance(expected, ValueError):  # the same error, from the model's own check
                with pytest.raises(ValueError, match=re.escape(str(expected))):
                    methods["predict"](bad)
            else:  # HistGradientBoosting takes infinities: the same answer
                assert same_bits(methods["predict"](bad), expected)
    integers = np.arange(3 * data.shape[1]).reshape(3, -1)  # not floats: converted by the model's own check
    assert same_bits(methods["predict"](integers), model.predict(integers))


def test_ensembles_too_large_to_flatten_keep_the_other_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    model = RandomForestClassifier(6, random_state=0).fit(X, Y)
    monkeypatch.setattr(sklearn_trees, "MAX_FLAT_NODES", 10)
    with pytest.raises(sklearn_trees.Unsupported, match="nodes, more than the 10 flattened"):
        flat_methods(model)
    shortcut = tree_shortcut.tree_shortcut(model)
    assert shortcut is not None
    assert all("flat" not in timings for timings in shortcut.timings.values())
    assert same_bits(shortcut.methods.get("predict", model.predict)(X[:9]), model.predict(X[:9]))


def test_a_shortcut_that_cannot_be_built_leaves_the_model_its_own_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    model = RandomForestRegressor(4, random_state=0).fit(XR, YR)

    def broken(_shortcut: Any) -> Any:
        raise RuntimeError("probe rows could not be made")

    monkeypatch.setattr(tree_shortcut, "_probe_sets", broken)
    assert tree_shortcut.tree_shortcut(model) is None
