"""`modelcapsule.save` writes to MODELCAPSULE_SAVE_REDIRECT when it is set, keeping the capsule's name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modelcapsule as mc
from modelcapsule.core.save_redirect import SAVE_REDIRECT_ENV, redirected_target


def test_without_the_variable_the_target_is_unchanged() -> None:
    assert redirected_target("a.capsule", False, {}) == (Path("a.capsule"), False)


def test_with_the_variable_every_save_goes_there_and_may_replace_it() -> None:
    assert redirected_target("a.capsule", False, {SAVE_REDIRECT_ENV: "/tmp/new.capsule"}) == (
        Path("/tmp/new.capsule"),
        True,
    )


def test_save_honours_the_redirect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.9, 0.1]])
    model = LogisticRegression().fit(X, [0, 1, 0, 1])
    redirected = tmp_path / "elsewhere" / "new.capsule"
    monkeypatch.setenv(SAVE_REDIRECT_ENV, str(redirected))
    manifest = mc.save(model, tmp_path / "churn.capsule", sample=X)
    assert redirected.is_file() and not (tmp_path / "churn.capsule").exists()
    assert manifest.name == "churn", "the capsule keeps the name the script gave it"
    mc.save(model, tmp_path / "churn.capsule", sample=X)  # a second save replaces the first
    assert mc.load(redirected).predict(X).tolist() == model.predict(X).tolist()
