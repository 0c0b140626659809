"""Capsules the UI tests look at: a classifier and a regressor with evaluations, and an older capsule
saved without one (as every capsule written before evaluations existed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import cross_val_score

import modelcapsule as mc


@pytest.fixture(scope="session")
def capsules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ui-capsules")
    x, y = load_iris(return_X_y=True, as_frame=True)
    out: dict[str, Path] = {}
    for version, c in ((1, 0.05), (2, 1.0)):
        model = LogisticRegression(C=c, max_iter=500)
        scores = cross_val_score(model, x[::2], y[::2], cv=5)
        model.fit(x[::2], y[::2])
        out[f"iris{version}"] = path = root / f"iris-{version}.capsule"
        mc.save(model, path, name="iris", sample=x[:4], training_data=(x[::2], y[::2]),
                metrics={"cv_accuracy": scores}, evaluation=(x[1::2], y[1::2]),
                metadata={"owner": "plants-team", "intended_use": "Sorting iris flowers by species.",
                          "license": "apache-2.0", "tags": ["demo", "tabular"]})
    xd, yd = load_diabetes(return_X_y=True)
    out["diabetes"] = root / "diabetes.capsule"
    mc.save(Ridge().fit(xd[:300], yd[:300]), out["diabetes"], name="diabetes", sample=xd[:3],
            metrics={"cv_r2": [0.41, 0.45, 0.39]}, evaluation=(xd[300:], yd[300:]))
    out["old"] = root / "old.capsule"
    mc.save(LogisticRegression(max_iter=500).fit(x, y), out["old"], name="old", sample=x[:2], source=False)
    return out
