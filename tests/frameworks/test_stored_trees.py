"""A tree ensemble saved with its flat trees is served from them alone: ``load_capsule(path, runtime="flat")``
imports neither scikit-learn nor SciPy and answers the very bits scikit-learn answers, for every supported
family; a tampered member is caught by its hash; an output the trees do not cover goes to the Python
model, loaded on first use; inputs are refused where scikit-learn refuses them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

import modelcapsule as mc
from modelcapsule.core.container import sha256_of
from modelcapsule.errors import IntegrityError, InvalidInputError, VerificationError
from modelcapsule.frameworks.tree_predictor import FlatTreePredictor

RNG = np.random.default_rng(0)
X = RNG.normal(size=(600, 5))
X_NAN = X.copy()
X_NAN[RNG.random(X.shape) < 0.05] = np.nan
Y2 = (X[:, 0] + X[:, 1] > 0).astype(int)
Y3 = np.digitize(X[:, 0], [-0.5, 0.5])
YR = 2 * X[:, 0] + X[:, 2]

MODELS: dict[str, tuple[Any, np.ndarray[Any, Any], np.ndarray[Any, Any]]] = {
    "forest classifier, NaN": (RandomForestClassifier(8, max_depth=6, random_state=0), X_NAN, Y3),
    "forest regressor": (RandomForestRegressor(8, max_depth=6, random_state=0), X, YR),
    "forest, two outputs": (RandomForestRegressor(5, max_depth=5, random_state=0), X, np.c_[YR, Y2]),
    "extra-trees, text labels": (ExtraTreesClassifier(8, max_depth=6, random_state=0), X,
                                 np.array(["low", "mid", "high"])[Y3]),
    "hist binary, NaN": (HistGradientBoostingClassifier(max_iter=15), X_NAN, Y2),
    "hist multiclass": (HistGradientBoostingClassifier(max_iter=10), X, Y3),
    "hist poisson": (HistGradientBoostingRegressor(max_iter=15, loss="poisson"), X, np.abs(YR)),
    "gb binary": (GradientBoostingClassifier(n_estimators=15, max_depth=3), X, Y2),
    "gb multiclass": (GradientBoostingClassifier(n_estimators=8, max_depth=3), X, Y3),
    "gb exponential": (GradientBoostingClassifier(n_estimators=10, loss="exponential"), X, Y2),
    "gb regressor, huber": (GradientBoostingRegressor(n_estimators=15, loss="huber"), X, YR),
}

CHILD = """
import json, sys
import numpy as np
import modelcapsule as mc
out = {}
for path in json.loads(sys.argv[1]):
    loaded = mc.load_capsule(path, runtime="flat")
    rows = np.load(sys.argv[2] if loaded.manifest.trees["allow_nan"] else sys.argv[3])
    methods = loaded.predictor.methods
    for method, value in loaded.predictor.predict({"input": rows}, list(methods)).items():
        np.save(f"{path}.{method}.npy", value, allow_pickle=False)
    out[path] = [type(loaded.predictor).__name__, list(methods), loaded.manifest.trees["allow_nan"]]
out["imported"] = sorted(m for m in ("sklearn", "scipy", "pandas") if m in sys.modules)
print(json.dumps(out))
"""
ROWS_NAN, ROWS = X_NAN[100:160], X[200:260]


def _same_bits(ours: np.ndarray[Any, Any], theirs: np.ndarray[Any, Any]) -> bool:
    return ours.dtype == theirs.dtype and ours.shape == theirs.shape and (
        np.ascontiguousarray(ours).tobytes() == np.ascontiguousarray(theirs).tobytes()
        if ours.dtype.kind == "f" else bool(np.array_equal(ours, theirs)))


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Path]]:
    folder = tmp_path_factory.mktemp("stored-trees")
    out = {}
    for i, (label, (model, x, y)) in enumerate(MODELS.items()):
        model.fit(x, y)
        path = folder / f"model{i}.capsule"
        manifest = mc.save(model, path, sample=x[:16], source=False)
        assert manifest.trees is not None, label
        out[label] = (model, path)
    return out


def test_every_family_is_served_bit_for_bit_without_scikit_learn(saved: dict[str, tuple[Any, Path]], tmp_path: Path,
                                                                 subprocess_env: dict[str, str]) -> None:
    np.save(tmp_path / "nan.npy", ROWS_NAN)
    np.save(tmp_path / "clean.npy", ROWS)
    paths = [str(p) for _, p in saved.values()]
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(paths), str(tmp_path / "nan.npy"),
                            str(tmp_path / "clean.npy")],
                           env=subprocess_env, capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(child.stdout)
    assert report["imported"] == []
    covered = {}
    for label, (model, path) in saved.items():
        kind, methods, allow_nan = report[str(path)]
        assert kind == "FlatTreePredictor", label
        covered[label] = methods
        rows = ROWS_NAN if allow_nan else ROWS
        for method in methods:
            ours = np.load(f"{path}.{method}.npy")
            assert _same_bits(ours, np.asarray(getattr(model, method)(rows))), (label, method)
    assert covered["forest classifier, NaN"] == ["predict", "predict_proba"]
    assert covered["gb multiclass"] == ["predict", "predict_proba", "decision_function"]
    assert covered["hist poisson"] == ["predict"]


def test_inputs_are_refused_where_scikit_learn_refuses_them(saved: dict[str, tuple[Any, Path]]) -> None:
    model, path = saved["gb binary"]
    predictor = mc.load_capsule(path, runtime="flat").predictor
    bad = {"NaN": X_NAN[:50][np.isnan(X_NAN[:50]).any(axis=1)], "width": X[:3, :4], "1-D": X[0],
           "no rows": X[:0], "text": np.array([["a"] * 5])}
    for what, rows in bad.items():
        with pytest.raises(ValueError):
            model.predict(rows)
        with pytest.raises(InvalidInputError):
            predictor.predict({"input": rows})
    ints = X[:3].astype(int)
    assert predictor.predict({"input": ints})["predict"].tolist() == model.predict(ints).tolist()
    hist, hist_path = saved["hist binary, NaN"]
    nan_rows = X_NAN[:50]
    assert _same_bits(mc.load_capsule(hist_path, runtime="flat").predictor.predict({"input": nan_rows})["predict"],
                      hist.predict(nan_rows))


def _rewrite_manifest(path: Path, edit: Any) -> None:
    """Edit a directory capsule's manifest (it is not a member: no hash covers it, a signature would)."""
    manifest = json.loads((path / "capsule.json").read_text())
    edit(manifest)
    (path / "capsule.json").write_text(json.dumps(manifest))


def _dir_capsule(tmp_path: Path, label: str = "forest classifier, NaN") -> tuple[Any, Path]:
    model, x, _ = MODELS[label]
    path = tmp_path / "forest"
    mc.save(model, path, sample=x[:16], source=False, layout="dir")
    return model, path


def test_a_tampered_member_is_caught_by_its_hash(saved: dict[str, tuple[Any, Path]], tmp_path: Path) -> None:
    _, path = _dir_capsule(tmp_path)
    value = path / "trees" / "value.npy"
    data = bytearray(value.read_bytes())
    data[-8:] = np.float64(0.5).tobytes()
    value.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="trees/value.npy"):
        mc.load_capsule(path, runtime="flat", recheck=True)


def test_an_altered_leaf_with_a_matching_hash_fails_the_golden_sample(saved: dict[str, tuple[Any, Path]],
                                                                     tmp_path: Path) -> None:
    _, path = _dir_capsule(tmp_path)
    value = path / "trees" / "value.npy"
    array = np.load(value)
    array[:] = array[:, ::-1]  # every leaf votes for another class
    np.save(value, array)
    data = value.read_bytes()
    _rewrite_manifest(path, lambda m: m["files"].update({"trees/value.npy": {"sha256": sha256_of(memoryview(data)),
                                                                              "size": len(data)}}))
    with pytest.raises(VerificationError, match="bit for bit"):
        mc.load_capsule(path, runtime="flat", recheck=True)
    report = mc.verify(path)  # verify runs the checks serving runs, and reports instead of raising
    assert not report.ok and report.stored_trees == "failed"
    assert any(p.startswith("stored trees:") and "bit for bit" in p for p in report.problems)
    assert all(result == "ok" for result in report.sample.values())  # the Python model itself is fine


def test_verify_reports_the_stored_trees(saved: dict[str, tuple[Any, Path]]) -> None:
    _, path = saved["forest classifier, NaN"]
    report = mc.verify(path)
    assert report.ok and report.stored_trees == "ok" and report.to_dict()["stored_trees"] == "ok"


def test_an_output_the_trees_lack_goes_to_the_python_model(saved: dict[str, tuple[Any, Path]], tmp_path: Path) -> None:
    model, path = _dir_capsule(tmp_path)
    _rewrite_manifest(path, lambda m: m["trees"].update(methods=["predict"]))
    predictor = mc.load_capsule(path, runtime="flat", recheck=True).predictor
    assert isinstance(predictor, FlatTreePredictor) and predictor.methods == ("predict",)
    rows = X[300:310]
    answer = predictor.predict({"input": rows}, ["predict", "predict_proba"])
    assert _same_bits(answer["predict"], model.predict(rows))
    assert _same_bits(answer["predict_proba"], model.predict_proba(rows))


def test_the_python_runtime_and_older_capsules_keep_the_model(saved: dict[str, tuple[Any, Path]],
                                                               tmp_path: Path) -> None:
    _, path = saved["forest regressor"]
    assert mc.load_capsule(path, runtime="python").model is not None
    _, folder = _dir_capsule(tmp_path)
    _rewrite_manifest(folder, lambda m: m.pop("trees"))  # as written before stored trees existed
    loaded = mc.load_capsule(folder, runtime="flat", recheck=True)
    assert loaded.model is not None and not isinstance(loaded.predictor, FlatTreePredictor)


TABLE_CHILD = """
import sys
import numpy as np
import pandas as pd
import modelcapsule as mc
loaded = mc.load_capsule(sys.argv[1], runtime="flat")
rows = pd.read_csv(sys.argv[2])
answer = loaded.predictor.predict({"input": rows}, ["predict", "predict_proba"])
np.save(sys.argv[3], answer["predict_proba"], allow_pickle=False)
print(",".join(answer["predict"].tolist()), answer["predict"].dtype, "sklearn" in sys.modules, "scipy" in sys.modules)
"""


def test_a_forest_fitted_on_named_columns_with_text_labels(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)]).astype({"f4": "int64"})
    labels = np.array(["low", "mid", "high"], dtype=object)[Y3]
    model = RandomForestClassifier(6, max_depth=5, random_state=0).fit(frame, labels)
    manifest = mc.save(model, tmp_path / "named.capsule", sample=frame[:12], source=False)
    assert manifest.trees is not None and manifest.trees["feature_names"] == list(frame.columns)
    rows = frame[300:330]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    child = subprocess.run([sys.executable, "-c", TABLE_CHILD, str(tmp_path / "named.capsule"),
                            str(tmp_path / "rows.csv"), str(tmp_path / "proba.npy")],
                           env=subprocess_env, capture_output=True, text=True, timeout=60, check=True)
    predicted, dtype, sklearn_loaded, scipy_loaded = child.stdout.split()
    assert predicted.split(",") == model.predict(rows).tolist() and dtype == "object"
    assert (sklearn_loaded, scipy_loaded) == ("False", "False")
    assert _same_bits(np.load(tmp_path / "proba.npy"), model.predict_proba(rows))
    predictor = mc.load_capsule(tmp_path / "named.capsule", runtime="flat").predictor
    renamed = rows.rename(columns={"f0": "other"})
    with pytest.raises(ValueError, match="feature names"):
        model.predict(renamed)
    with pytest.raises(InvalidInputError, match="fitted on"):
        predictor.predict({"input": renamed})


def test_an_ensemble_whose_flat_trees_would_be_large_is_saved_without_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every load hashes every member: past the size cap the accelerator is left out, and the capsule is
    served by the Python model as before."""
    from modelcapsule.frameworks import tree_export

    model = RandomForestClassifier(8, max_depth=6, random_state=0).fit(X, Y2)
    monkeypatch.setattr(tree_export, "MAX_STORED_BYTES", 1024)
    manifest = mc.save(model, tmp_path / "big.capsule", sample=X[:10], source=False)
    assert manifest.trees is None and not any(m.startswith("trees/") for m in manifest.files)
    loaded = mc.load_capsule(tmp_path / "big.capsule", runtime="flat")
    np.testing.assert_array_equal(loaded.predictor.predict({"input": X[:20]})["predict"], model.predict(X[:20]))
