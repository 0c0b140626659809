"""Capsules and data files for the batch scoring tests (small, saved once per session)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from batchdata import FEATURES, Saved, log1p_abs, make_frame
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LinearRegression
from sklearn.tree import DecisionTreeRegressor

import modelcapsule as mc


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    """200 rows: an ``id`` column then the four features."""
    return make_frame(200)


@pytest.fixture(scope="session")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Saved:
    """A random forest fitted on a DataFrame: the capsule records column names, classes are strings."""
    train = make_frame(300, seed=1)
    y = np.where(train["a"] + train["b"] > 0, "up", "down")
    model = RandomForestClassifier(n_estimators=8, max_depth=5, random_state=0).fit(train[FEATURES], y)
    path = tmp_path_factory.mktemp("capsules") / "classifier.capsule"
    mc.save(model, path, sample=train[FEATURES][:10])
    return Saved(path, model)


@pytest.fixture(scope="session")
def array_model(tmp_path_factory: pytest.TempPathFactory) -> Saved:
    """A tree fitted on a plain array: the capsule records no column names."""
    train = make_frame(300, seed=2)[FEATURES].to_numpy()
    model = DecisionTreeRegressor(max_depth=6, random_state=0).fit(train, train[:, 0] * 2 - train[:, 3])
    path = tmp_path_factory.mktemp("capsules") / "array.capsule"
    mc.save(model, path, sample=train[:10])
    return Saved(path, model)


@pytest.fixture(scope="session")
def linear(tmp_path_factory: pytest.TempPathFactory) -> Saved:
    """A linear regression on a DataFrame: it refuses missing values."""
    train = make_frame(300, seed=3)
    model = LinearRegression().fit(train[FEATURES], train["a"] - train["c"])
    path = tmp_path_factory.mktemp("capsules") / "linear.capsule"
    mc.save(model, path, sample=train[FEATURES][:10])
    return Saved(path, model)


@pytest.fixture(scope="session")
def nan_tolerant(tmp_path_factory: pytest.TempPathFactory) -> Saved:
    """A histogram gradient boosting regressor on a DataFrame: it takes missing values."""
    train = make_frame(300, seed=4)
    model = HistGradientBoostingRegressor(max_iter=10, random_state=0).fit(train[FEATURES], train["b"])
    path = tmp_path_factory.mktemp("capsules") / "hgb.capsule"
    mc.save(model, path, sample=train[FEATURES][:10])
    return Saved(path, model)


@pytest.fixture(scope="session")
def counts_model(tmp_path_factory: pytest.TempPathFactory) -> Saved:
    """A tree on a DataFrame with an int64 column ``n`` and a float column ``x``."""
    rng = np.random.default_rng(5)
    train = pd.DataFrame({"n": rng.integers(0, 10, 300), "x": rng.normal(size=300).round(3)})
    model = DecisionTreeRegressor(max_depth=4, random_state=0).fit(train, train["n"] * train["x"])
    path = tmp_path_factory.mktemp("capsules") / "counts.capsule"
    mc.save(model, path, sample=train[:10])
    return Saved(path, model)


@pytest.fixture(scope="session")
def custom_code(tmp_path_factory: pytest.TempPathFactory) -> Saved:
    """A pipeline whose first step calls a function outside the default trust policy."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    train = make_frame(100, seed=6)
    model = make_pipeline(FunctionTransformer(log1p_abs), LinearRegression()).fit(train[FEATURES], train["a"])
    path = tmp_path_factory.mktemp("capsules") / "custom.capsule"
    mc.save(model, path, sample=train[FEATURES][:10], trusted=["batchdata.log1p_abs"])
    return Saved(path, model)
