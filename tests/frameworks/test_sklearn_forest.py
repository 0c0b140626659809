"""Forests served through the predictor give scikit-learn's own outputs, bit for bit, without its
per-tree dispatch; anything the shortcut is not sure of goes to the model's own methods."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)

import modelcapsule as mc
from modelcapsule.frameworks import sklearn_forest
from modelcapsule.frameworks.sklearn_forest import ForestShortcut, forest_shortcut

X, Y = make_classification(600, 8, n_informative=5, n_classes=3, random_state=0)
XR, YR = make_regression(600, 8, n_targets=1, random_state=0)


def same_bits(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool(np.array_equal(a.view(np.uint8), b.view(np.uint8))) if a.dtype.kind == "f" else bool(
        np.array_equal(a, b))


def served(model: Any, tmp_path: Path, sample: Any) -> Any:
    mc.save(model, tmp_path / "m.capsule", sample=sample)
    return mc.load_capsule(tmp_path / "m.capsule").predictor


def ask(predictor: Any, rows: Any, output: str) -> Any:
    return predictor.predict({predictor.signature.inputs[0].name: rows}, [output])[output]


FORESTS = {
    "random forest classifier": lambda: RandomForestClassifier(n_estimators=25, random_state=0).fit(X, Y),
    "extra-trees classifier": lambda: ExtraTreesClassifier(n_estimators=25, random_state=0).fit(X, Y),
    "string classes, class weights": lambda: RandomForestClassifier(
        n_estimators=25, class_weight="balanced", random_state=0).fit(X, np.array(["a", "b", "c"])[Y]),
    "multi-output classifier": lambda: RandomForestClassifier(n_estimators=15, random_state=0).fit(
        X, np.c_[Y, Y % 2]),
    "random forest regressor": lambda: RandomForestRegressor(n_estimators=25, random_state=0).fit(XR, YR),
    "extra-trees regressor": lambda: ExtraTreesRegressor(n_estimators=25, random_state=0).fit(XR, YR),
    "multi-output regressor": lambda: RandomForestRegressor(n_estimators=15, random_state=0).fit(
        XR, np.c_[YR, -2 * YR]),
}


@pytest.mark.parametrize("name", list(FORESTS))
@pytest.mark.parametrize("rows", [1, 7, 300])
def test_the_shortcut_gives_scikit_learns_outputs_bit_for_bit(name: str, rows: int) -> None:
    model = FORESTS[name]()
    shortcut = forest_shortcut(model)
    assert shortcut is not None
    x = (XR if "regressor" in name else X)[:rows] + 0.01
    for method in ("predict", "predict_proba"):
        if hasattr(model, method):
            fast = shortcut.method(method)
            assert fast is not None
            ours, theirs = fast(x), getattr(model, method)(x)
            if isinstance(theirs, list):
                assert all(same_bits(a, b) for a, b in zip(ours, theirs, strict=True))
            else:
                assert same_bits(ours, theirs), (name, method)
    assert shortcut.proven is True


def test_a_served_forest_answers_through_the_shortcut_with_the_same_bits(tmp_path: Path) -> None:
    model = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=1).fit(X, Y)
    predictor = served(model, tmp_path, X[:5])
    for output in ("predict", "predict_proba"):
        assert same_bits(ask(predictor, X[:64], output), getattr(model, output)(X[:64]))


def test_missing_values_dataframes_and_sparse_rows_behave_as_in_scikit_learn() -> None:
    holes = X.copy()
    holes[::7, 2] = np.nan
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(holes, Y)
    fast = forest_shortcut(model).method("predict_proba")  # type: ignore[union-attr]
    assert same_bits(fast(holes[:50]), model.predict_proba(holes[:50]))

    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(8)])
    named = RandomForestRegressor(n_estimators=10, random_state=0).fit(frame, YR)
    fast = forest_shortcut(named).method("predict")  # type: ignore[union-attr]
    assert same_bits(fast(frame.iloc[:20]), named.predict(frame.iloc[:20]))
    with pytest.warns(UserWarning, match="feature names"):  # the same warning scikit-learn gives
        fast(X[:3])

    fast = forest_shortcut(RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y)).method("predict")
    sparse = sp.csr_matrix(np.where(np.abs(X[:20]) > 1, X[:20], 0.0))
    assert fast is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast(sparse)


def test_bad_rows_raise_the_error_scikit_learn_raises() -> None:
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y)
    fast = forest_shortcut(model).method("predict")  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="8 features"):
        fast(X[:2, :5])
    nan_rows = X[:2].copy()
    nan_rows[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        fast(nan_rows)


def test_subclasses_other_ensembles_and_unfitted_forests_keep_their_own_methods() -> None:
    class Calibrated(RandomForestClassifier):
        def predict_proba(self, X: Any) -> Any:
            return super().predict_proba(X) ** 2

    assert forest_shortcut(Calibrated(n_estimators=3).fit(X, Y)) is None
    assert forest_shortcut(GradientBoostingClassifier(n_estimators=3).fit(X, Y)) is None
    assert forest_shortcut(RandomForestClassifier()) is None
    assert forest_shortcut(RandomForestRegressor(n_estimators=3).fit(XR, YR)).method(  # type: ignore[union-attr]
        "predict_proba") is None


def test_a_shortcut_that_would_differ_switches_itself_off_and_the_model_answers(caplog) -> None:
    class Skewed(ForestShortcut):  # what a scikit-learn release with another aggregation would look like
        def _mean(self, X: Any) -> Any:
            return super()._mean(X) * (1 + 1e-15)

    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, Y)
    shortcut = Skewed(model, classifier=True)
    fast = shortcut.method("predict_proba")
    assert fast is not None
    assert same_bits(fast(X[:40]), model.predict_proba(X[:40]))
    assert shortcut.proven is False
    assert "differ" in caplog.text


def test_large_batches_of_a_parallel_forest_keep_scikit_learns_threads(monkeypatch) -> None:
    model = RandomForestClassifier(n_estimators=10, n_jobs=2, random_state=0).fit(X, Y)
    shortcut = forest_shortcut(model)
    assert shortcut is not None
    direct: list[int] = []
    original = shortcut._mean

    def counted(x: Any) -> Any:
        direct.append(x.shape[0])
        return original(x)

    monkeypatch.setattr(shortcut, "_mean", counted)
    fast = shortcut.method("predict_proba")
    assert fast is not None
    small = fast(X[:10])
    big = fast(X[: sklearn_forest.PARALLEL_ROWS])
    assert 10 in direct and sklearn_forest.PARALLEL_ROWS not in direct
    assert np.allclose(small, model.predict_proba(X[:10]), rtol=1e-12)
    assert big.shape == (sklearn_forest.PARALLEL_ROWS, 3)


def test_a_forest_fitted_with_n_jobs_saves_and_its_golden_sample_holds_on_every_load(tmp_path: Path) -> None:
    """Its threads sum the trees' probabilities in the order they finish, so two calls differ in the
    last bits; the golden sample runs in order (as ``n_jobs=None`` would) and reproduces exactly."""
    forest = RandomForestClassifier(n_estimators=60, max_depth=8, n_jobs=2, random_state=0).fit(X, Y)
    path = tmp_path / "parallel.capsule"
    mc.save(forest, path, sample=X[:40])
    for _ in range(3):
        assert mc.verify(path).ok
    loaded = mc.load(path)
    assert loaded.n_jobs == 2  # serving keeps the model's own parallelism
    assert np.allclose(loaded.predict_proba(X[:40]), forest.predict_proba(X[:40]), rtol=0, atol=1e-12)
