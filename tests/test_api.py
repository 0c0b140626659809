"""save → load round trips, with every check the loader makes: hashes, drift, golden sample."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import modelcapsule as mc
from modelcapsule.core import environment

from helpers import iris_forest, rewrite_capsule


def test_save_then_load_gives_the_same_predictions(tmp_path: Path) -> None:
    model, x, y = iris_forest()
    manifest = mc.save(model, tmp_path / "iris.capsule", sample=x[:20], training_data=(x, y),
                       metrics={"cv_accuracy": [0.9, 0.95, 0.97]}, metadata={"owner": "fraud-team"})
    loaded = mc.load(tmp_path / "iris.capsule")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert manifest.format_name == "safepickle"
    assert manifest.model["class"] == "sklearn.ensemble._forest.RandomForestClassifier"
    assert manifest.model["methods"] == ["predict", "predict_proba"]
    assert manifest.signature is not None and manifest.signature.inputs[0].shape == (-1, 4)
    assert manifest.signature.classes == (0, 1, 2)
    assert manifest.provenance["training_data"]["n_samples"] == 150
    assert manifest.provenance["metrics"]["cv_accuracy"] == [0.9, 0.95, 0.97]
    assert manifest.provenance["source"]["path"].endswith("test_api.py")
    assert manifest.metadata == {"owner": "fraud-team"}
    assert {"scikit-learn", "numpy", "scipy", "joblib"} <= set(manifest.environment["packages"])
    assert any(r.startswith("threadpoolctl==") for r in manifest.environment["requirements"])


def test_directory_layout_loads_like_a_zip(tmp_path: Path) -> None:
    model, x, _ = iris_forest()
    mc.save(model, tmp_path / "iris", layout="dir", sample=x[:5])
    assert (tmp_path / "iris" / "capsule.json").is_file()
    np.testing.assert_array_equal(mc.load(tmp_path / "iris").predict(x), model.predict(x))


def test_inspect_reads_only_the_manifest(tmp_path: Path) -> None:
    model, x, _ = iris_forest()
    mc.save(model, tmp_path / "m.capsule", sample=x[:5], name="iris-forest")
    manifest = mc.inspect(tmp_path / "m.capsule")
    assert manifest.name == "iris-forest"
    assert manifest.sample is not None and set(manifest.sample["outputs"]) == {"predict", "predict_proba"}


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    model, _, _ = iris_forest()
    mc.save(model, tmp_path / "m.capsule")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        mc.save(model, tmp_path / "m.capsule")
    mc.save(model, tmp_path / "m.capsule", overwrite=True)


class _ExplodesWhilePickling:
    def __reduce__(self) -> tuple:
        raise RuntimeError("disk full, say")


def test_a_failed_save_leaves_the_previous_capsule_intact(tmp_path: Path) -> None:
    model, x, _ = iris_forest()
    target = tmp_path / "m.capsule"
    mc.save(model, target, sample=x[:5])
    before = target.read_bytes()
    model.broken_ = _ExplodesWhilePickling()
    with pytest.raises(RuntimeError, match="disk full"):
        mc.save(model, target, format="safepickle", overwrite=True)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.capsule"], "no temporary file is left behind"
    mc.load(target)


def test_tabular_pipeline_with_mixed_dtypes_round_trips(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "age": [22.0, 35.0, 58.0, np.nan, 41.0, 30.0] * 5,
        "city": pd.Categorical(["paris", "lyon", "nice", "lyon", "paris", "nice"] * 5),
        "plan": ["free", "pro", "pro", None, "free", "pro"] * 5,
    })
    target = [0, 1, 1, 0, 0, 1] * 5
    pre = ColumnTransformer([("num", make_pipeline(_imputer(), StandardScaler()), ["age"]),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"])])
    model = make_pipeline(pre, LogisticRegression()).fit(frame, target)
    manifest = mc.save(model, tmp_path / "tab.capsule", sample=frame.head(8), training_data=(frame, target))
    spec = manifest.signature.inputs[0]  # type: ignore[union-attr]
    assert [c.name for c in spec.columns] == ["age", "city", "plan"]  # type: ignore[union-attr]
    assert [c.dtype for c in spec.columns][:2] == ["float64", "category"]  # type: ignore[union-attr]
    loaded = mc.load_capsule(tmp_path / "tab.capsule")
    np.testing.assert_array_equal(loaded.model.predict_proba(frame), model.predict_proba(frame))
    rows = frame.head(3).to_numpy(dtype=object)
    out = loaded.predictor.predict({"input": rows}, outputs=["predict_proba"])
    np.testing.assert_allclose(out["predict_proba"], model.predict_proba(frame.head(3)))


def _imputer():  # type: ignore[no-untyped-def]
    from sklearn.impute import SimpleImputer

    return SimpleImputer()


def test_large_arrays_are_memory_mapped_not_copied(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 16))
    model = KNeighborsClassifier(algorithm="brute").fit(x, rng.integers(0, 2, 20_000))
    mc.save(model, tmp_path / "knn.capsule", sample=x[:5])
    loaded = mc.load(tmp_path / "knn.capsule")
    fitted = loaded._fit_X
    assert not fitted.flags.owndata
    np.testing.assert_array_equal(fitted, x)
    assert fitted.ctypes.data % 64 == 0, "out-of-band arrays start on an aligned offset"


def test_a_tampered_member_fails_the_hash_check(tmp_path: Path) -> None:
    model, x, _ = iris_forest()
    path = tmp_path / "m.capsule"
    mc.save(model, path, sample=x[:5])
    data = bytearray(path.read_bytes())
    stream_at = data.find(b"\x80\x05")  # the pickle stream, stored uncompressed
    data[stream_at + 40] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(mc.IntegrityError, match="model/model.pkl"):
        mc.load(path)


def test_a_newer_capsule_version_is_refused_with_upgrade_advice(tmp_path: Path) -> None:
    model, _, _ = iris_forest()
    mc.save(model, tmp_path / "m.capsule")
    rewrite_capsule(tmp_path / "m.capsule", tmp_path / "new.capsule", lambda n, d: d,
                    lambda m: m.update(capsule_version=99))
    with pytest.raises(mc.CapsuleFormatError, match=r"capsule_version 99.*pip install -U modelcapsule"):
        mc.load(tmp_path / "new.capsule")


def test_environment_drift_follows_on_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, x, _ = iris_forest()
    mc.save(model, tmp_path / "m.capsule", sample=x[:5])
    real = environment.installed_version
    monkeypatch.setattr(environment, "installed_version", lambda d: "0.0.1" if d == "scipy" else real(d))
    with pytest.warns(mc.EnvironmentMismatchWarning, match=r"scipy \S+ → 0\.0\.1"):
        mc.load(tmp_path / "m.capsule")
    with pytest.raises(mc.EnvironmentMismatchError, match=r"scipy \S+ → 0\.0\.1") as info:
        mc.load(tmp_path / "m.capsule", on_mismatch="error")
    assert [d.name for d in info.value.drifts] == ["scipy"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mc.load(tmp_path / "m.capsule", on_mismatch="ignore")


def test_scikit_learns_own_version_warning_is_folded_into_the_drift_report(tmp_path: Path) -> None:
    import sklearn

    model, x, _ = iris_forest()
    mc.save(model, tmp_path / "m.capsule", sample=x[:5])
    current = sklearn.__version__.encode()
    older = b"0" * (len(current) - 2) + b".1"  # same length, so the pickle stays well-formed

    def age(name: str, data: bytes) -> bytes:
        return data.replace(current, older) if name == "model/model.pkl" else data

    rewrite_capsule(tmp_path / "m.capsule", tmp_path / "old.capsule", age)
    with pytest.raises(mc.EnvironmentMismatchError, match="scikit-learn") as info:
        mc.load(tmp_path / "old.capsule", on_mismatch="error")
    assert info.value.drifts[0].saved == older.decode()


def test_changed_predictions_fail_verification_with_the_differing_rows(tmp_path: Path) -> None:
    model, x, _ = iris_forest()
    mc.save(model, tmp_path / "m.capsule", sample=x[:20])

    def other_outputs(name: str, data: bytes) -> bytes:
        if name != "sample/outputs/predict.npy":
            return data
        buf = io.BytesIO()
        np.save(buf, (model.predict(x[:20]) + np.r_[np.zeros(17, int), 1, 1, 1]) % 3)
        return buf.getvalue()

    rewrite_capsule(tmp_path / "m.capsule", tmp_path / "changed.capsule", other_outputs)
    expected = r"predict\(\) differs[\s\S]*3 of 20 row\(s\)[\s\S]*row 17: expected"
    with pytest.raises(mc.VerificationError, match=expected):
        mc.load(tmp_path / "changed.capsule")
    assert mc.load(tmp_path / "changed.capsule", verify=False).predict(x[:1]).shape == (1,)
    report = mc.verify(tmp_path / "changed.capsule")
    assert not report.ok
    assert report.sample == {"predict": "differs", "predict_proba": "ok"}


def test_verify_reports_every_check(tmp_path: Path) -> None:
    model, x, _ = iris_forest()
    mc.save(model, tmp_path / "m.capsule", sample=x[:5])
    report = mc.verify(tmp_path / "m.capsule")
    assert report.ok
    assert report.hashes.startswith("ok")
    assert report.sample == {"predict": "ok", "predict_proba": "ok"}
    assert report.drift == []


def test_unsupported_objects_get_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(mc.UnsupportedModelError, match="no framework knows how to save a builtins.dict"):
        mc.save({"weights": [1, 2]}, tmp_path / "x.capsule")


def test_a_plain_pickle_of_data_loads_through_the_restricted_path(tmp_path: Path) -> None:
    import pickle

    (tmp_path / "weights.pkl").write_bytes(pickle.dumps({"w": np.arange(3)}))
    loaded = mc.load_capsule(tmp_path / "weights.pkl")
    np.testing.assert_array_equal(loaded.model["w"], np.arange(3))
    with pytest.raises(mc.UnsupportedModelError, match="builtins.dict"):
        loaded.predictor.predict({"input": np.zeros((1, 3))})
