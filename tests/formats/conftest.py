"""Builders for the format tests: small fitted models and files that would run code if loaded naively."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A path that must still be absent at the end of the test."""
    return tmp_path / "CANARY"


@pytest.fixture(scope="session")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    return x, (x[:, 0] + x[:, 1] > 0).astype(int)


@pytest.fixture(scope="session")
def forest(data: tuple[np.ndarray, np.ndarray]) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(*data)


@pytest.fixture(scope="session")
def pipeline(data: tuple[np.ndarray, np.ndarray]) -> object:
    return make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=3, random_state=0)).fit(*data)


@pytest.fixture(scope="session")
def encoder() -> OneHotEncoder:
    """Fitted state with object-dtype arrays (joblib writes those as nested pickles)."""
    return OneHotEncoder().fit(np.array([["red"], ["green"], ["blue"]], dtype=object))
