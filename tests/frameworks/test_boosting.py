"""XGBoost and LightGBM: native model files for boosters and scikit-learn wrappers, no pickle."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from sklearn.datasets import load_iris

import modelcapsule as mc


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


class MyXGB(xgb.XGBClassifier):
    """A user subclass: its class is not part of the format's vocabulary, so it needs trust."""


def test_xgboost_classifier_round_trips_in_a_fresh_process(tmp_path: Path, iris, fresh_python) -> None:
    x, y = iris
    model = xgb.XGBClassifier(n_estimators=4, max_depth=2, learning_rate=0.3).fit(x, y)
    manifest = mc.save(model, tmp_path / "xgb.capsule", sample=x[::15])
    assert manifest.format["name"] == "xgboost"
    assert manifest.signature is not None and manifest.signature.classes == (0, 1, 2)
    assert manifest.signature.output_names == ("predict", "predict_proba")
    assert "xgboost" in manifest.environment["packages"]
    np.save(tmp_path / "x.npy", x)
    fresh_python(f"""
        import numpy as np, modelcapsule as mc
        model = mc.load({str(tmp_path / "xgb.capsule")!r}, on_mismatch="error")
        assert type(model).__name__ == "XGBClassifier"
        assert (model.n_estimators, model.max_depth, model.learning_rate) == (4, 2, 0.3)
        assert list(model.classes_) == [0, 1, 2]
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save({str(tmp_path / "proba.npy")!r}, model.predict_proba(x))
    """)
    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), model.predict_proba(x))


def test_lightgbm_classifier_with_text_labels_round_trips_in_a_fresh_process(tmp_path: Path, iris,
                                                                             fresh_python) -> None:
    x, y = iris
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    model = lgb.LGBMClassifier(n_estimators=4, num_leaves=4, verbose=-1).fit(x, labels)
    manifest = mc.save(model, tmp_path / "lgb.capsule", sample=x[::15])
    assert manifest.format["name"] == "lightgbm"
    np.save(tmp_path / "x.npy", x)
    fresh_python(f"""
        import numpy as np, modelcapsule as mc
        model = mc.load({str(tmp_path / "lgb.capsule")!r}, on_mismatch="error")
        assert model.get_params()["num_leaves"] == 4 and model.n_classes_ == 3
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save({str(tmp_path / "labels.npy")!r}, model.predict(x))
        np.save({str(tmp_path / "proba.npy")!r}, model.predict_proba(x))
    """)
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), model.predict(x))
    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), model.predict_proba(x))


@pytest.mark.parametrize("make", [
    lambda x, y: xgb.XGBRegressor(n_estimators=3).fit(x, y),
    lambda x, y: xgb.train({"max_depth": 2}, xgb.DMatrix(x, label=y), num_boost_round=3),
    lambda x, y: lgb.LGBMRegressor(n_estimators=3, verbose=-1).fit(x, y),
    lambda x, y: lgb.train({"verbose": -1, "num_leaves": 4}, lgb.Dataset(x, label=y), num_boost_round=3),
], ids=["XGBRegressor", "xgboost.Booster", "LGBMRegressor", "lightgbm.Booster"])
def test_regressors_and_boosters_round_trip(make, tmp_path: Path, iris) -> None:
    x, y = iris
    model = make(x, y.astype(float))
    mc.save(model, tmp_path / "m.capsule", sample=x[:10])
    loaded = mc.load_capsule(tmp_path / "m.capsule", on_mismatch="error")
    assert type(loaded.model) is type(model)
    expected = model.inplace_predict(x) if isinstance(model, xgb.Booster) else model.predict(x)
    np.testing.assert_array_equal(loaded.predictor.predict({"input": x})["predict"], expected)


def test_subclass_of_a_wrapper_needs_trust(tmp_path: Path, iris) -> None:
    x, y = iris
    mc.save(MyXGB(n_estimators=2).fit(x, y), tmp_path / "sub.capsule", sample=x[:5],
            trusted=[f"{__name__}.MyXGB"])
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(tmp_path / "sub.capsule")
    assert info.value.names == [f"{__name__}.MyXGB"]
    assert type(mc.load(tmp_path / "sub.capsule", trusted=[f"{__name__}.MyXGB"])) is MyXGB


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_forged_class_name_is_refused(library: str, tmp_path: Path, iris, forge) -> None:
    x, y = iris
    model = (xgb.XGBClassifier(n_estimators=2) if library == "xgboost" else
             lgb.LGBMClassifier(n_estimators=2, verbose=-1)).fit(x, y)
    good = tmp_path / "good.capsule"
    mc.save(model, good, sample=x[:5])
    with zipfile.ZipFile(good) as archive:
        doc = json.loads(archive.read("model/params.json"))
    doc["class"] = "os.system"
    bad = forge(good, tmp_path / "bad.capsule", {"model/params.json": json.dumps(doc).encode()})
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(bad)
    assert info.value.names == ["os.system"]


def test_corrupt_booster_is_a_format_error(tmp_path: Path, iris, forge) -> None:
    x, y = iris
    good = tmp_path / "good.capsule"
    mc.save(xgb.XGBRegressor(n_estimators=2).fit(x, y), good, sample=x[:5])
    bad = forge(good, tmp_path / "bad.capsule", {"model/model.ubj": b"{not a model"})
    with pytest.raises(mc.CapsuleFormatError):
        mc.load(bad)


def test_callable_parameter_cannot_be_stored_without_pickle(tmp_path: Path, iris) -> None:
    x, y = iris

    def objective(labels: np.ndarray, preds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return preds - labels, np.ones_like(preds)

    model = xgb.XGBRegressor(n_estimators=2, objective=objective).fit(x, y)
    with pytest.raises(mc.UnsupportedModelError, match="objective"):
        mc.save(model, tmp_path / "f.capsule", format="xgboost")
