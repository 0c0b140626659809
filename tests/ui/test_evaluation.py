"""save(..., evaluation=(X_val, y_val)) stores a compact evaluation the model card charts."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris, make_classification
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.svm import LinearSVC

import modelcapsule as mc
from modelcapsule.core.container import open_capsule
from modelcapsule.core.evaluation import EVALUATION_MEMBER, MAX_CURVE_POINTS, MAX_SCATTER_POINTS, read_evaluation


def _stored(path):
    with open_capsule(path) as reader:
        reader.check_hashes()
        return reader.manifest, read_evaluation(reader, reader.manifest.evaluation)


def test_multiclass_evaluation_has_confusion_matrix_curves_and_calibration(tmp_path):
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x[::2], y[::2])
    path = tmp_path / "iris.capsule"
    mc.save(model, path, sample=x[:3], evaluation=(x[1::2], y[1::2]))
    manifest, report = _stored(path)
    assert manifest.evaluation is not None
    assert manifest.evaluation["member"] == EVALUATION_MEMBER
    assert manifest.evaluation["metrics"] == report["metrics"]
    assert report["task"] == "classification" and report["n_samples"] == 75
    cm = np.array(report["confusion_matrix"]["matrix"])
    assert cm.shape == (3, 3) and cm.sum() == 75
    assert report["metrics"]["accuracy"] == pytest.approx(np.trace(cm) / 75)
    assert [c["class"] for c in report["roc"]] == [0, 1, 2]  # one-vs-rest per class
    for curve in report["roc"]:
        assert curve["fpr"][0] == 0 and curve["tpr"][-1] == 1
        assert 0.5 < curve["auc"] <= 1
    assert all(len(c["bins"]) >= 1 for c in report["calibration"])
    assert sum(b["count"] for b in report["calibration"][0]["bins"]) == 75
    assert "log_loss" in report["metrics"] and "roc_auc_ovr_macro" in report["metrics"]


def test_binary_curves_are_bounded_and_inputs_are_not_stored(tmp_path):
    x, y = make_classification(n_samples=4000, n_features=5, random_state=0)
    model = LogisticRegression().fit(x[:2000], y[:2000])
    path = tmp_path / "bin.capsule"
    mc.save(model, path, evaluation=(x[2000:], y[2000:]))
    _, report = _stored(path)
    assert len(report["roc"]) == 1 and report["roc"][0]["class"] == 1  # the positive class only
    assert len(report["roc"][0]["fpr"]) <= MAX_CURVE_POINTS
    assert len(report["pr"][0]["recall"]) <= MAX_CURVE_POINTS
    raw = zipfile.ZipFile(path).read(EVALUATION_MEMBER)
    assert len(raw) < 30_000
    assert str(round(float(x[2000, 0]), 6)) not in raw.decode()  # no validation input leaks in
    assert report["data"]["n_samples"] == 2000 and report["data"]["fingerprint"].startswith("sha256:")


def test_decision_function_gives_curves_but_no_calibration(tmp_path):
    x, y = make_classification(n_samples=300, n_features=4, random_state=1)
    path = tmp_path / "svc.capsule"
    mc.save(LinearSVC().fit(x, y), path, evaluation=(x, y))
    _, report = _stored(path)
    assert report["scores_from"] == "decision_function"
    assert report["roc"] and report["calibration"] == []
    assert "log_loss" not in report["metrics"]


def test_regression_evaluation_has_residuals_and_a_bounded_scatter(tmp_path):
    x, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(x[:200], y[:200])
    path = tmp_path / "reg.capsule"
    mc.save(model, path, evaluation=(x[200:], y[200:]))
    _, report = _stored(path)
    assert set(report["metrics"]) >= {"r2", "mae", "rmse"}
    assert sum(report["residuals"]["counts"]) == len(y) - 200
    assert len(report["residuals"]["bin_edges"]) == len(report["residuals"]["counts"]) + 1
    scatter = report["predicted_vs_actual"]
    assert len(scatter["actual"]) == len(scatter["predicted"]) == min(MAX_SCATTER_POINTS, len(y) - 200)
    assert set(scatter["actual"]) <= {round(float(v), 6) for v in y[200:]}


def test_a_capsule_without_evaluation_has_none(tmp_path):
    x, y = load_iris(return_X_y=True)
    path = tmp_path / "plain.capsule"
    mc.save(LogisticRegression(max_iter=500).fit(x, y), path)
    manifest, report = _stored(path)
    assert manifest.evaluation is None and report is None
    assert "evaluation" not in json.loads(zipfile.ZipFile(path).read("capsule.json"))


def test_bad_evaluation_arguments_say_what_to_pass(tmp_path):
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    with pytest.raises(TypeError, match=r"\(X_val, y_val\)"):
        mc.save(model, tmp_path / "a.capsule", evaluation=x)
    with pytest.raises(ValueError, match="as many targets"):
        mc.save(model, tmp_path / "b.capsule", evaluation=(x, y[:10]))
    assert not (tmp_path / "a.capsule").exists() and not (tmp_path / "b.capsule").exists()
