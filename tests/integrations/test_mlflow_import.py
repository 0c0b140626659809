"""``import_mlflow`` on real MLflow model directories: what becomes of the payload, the signature, the
input example, the requirements, and MLflow's own trust lists."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

import modelcapsule as mc
from modelcapsule.cli import cli
from modelcapsule.integrations.mlflow import import_mlflow
from modelcapsule.integrations.mlflow.refusals import MLflowCodeRefusedError, MLflowUntrustedError

from .mlflow_helpers import doubler, iris, mlflow, quiet, rewrite_mlmodel, sklearn_dir


@pytest.fixture(scope="module")
def fitted() -> tuple[LogisticRegression, np.ndarray]:
    x, y = iris()
    return LogisticRegression(max_iter=500).fit(x, y), x


@pytest.fixture(scope="module")
def pickle_dir(tmp_path_factory: pytest.TempPathFactory, fitted: tuple) -> Path:
    model, x = fitted
    return sklearn_dir(tmp_path_factory.mktemp("mlflow") / "pickle", model, "pickle", x[:5])


@pytest.fixture(scope="module")
def frame_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scikit-learn model trained on a DataFrame, saved by MLflow in its default (skops) format."""
    x, y = iris()
    frame = pd.DataFrame(x.astype(np.float32), columns=["sepal_l", "sepal_w", "petal_l", "petal_w"])
    model = LogisticRegression(max_iter=500).fit(frame, y)
    return sklearn_dir(tmp_path_factory.mktemp("mlflow") / "frame", model, "skops", frame.iloc[:4])


def test_a_pickled_mlflow_model_becomes_a_capsule_with_its_signature_sample_and_pins(
        pickle_dir: Path, fitted: tuple, tmp_path: Path) -> None:
    model, x = fitted
    report = import_mlflow(pickle_dir, tmp_path / "iris.capsule")
    assert (report.flavor, report.reader) == ("sklearn", "pickle")

    loaded = mc.load(tmp_path / "iris.capsule")  # every check, golden sample included
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    manifest = mc.inspect(tmp_path / "iris.capsule")
    assert manifest.format_name == "safepickle"
    assert manifest.signature is not None
    assert manifest.signature.inputs[0].dtype == "float64"
    assert manifest.signature.inputs[0].shape == (-1, 4)
    assert manifest.sample is not None
    assert manifest.environment["requirements"] == ["numpy==2.4.6", "scikit-learn==1.9.1"]
    record = manifest.provenance["mlflow"]
    assert record["flavor"] == "sklearn"
    assert record["serialization"] == "pickle"
    assert record["mlflow_version"] == mlflow.__version__
    assert "ignored_trust_lists" not in record


def test_a_dataframe_example_keeps_mlflow_column_names_and_dtypes(frame_dir: Path, tmp_path: Path) -> None:
    report = import_mlflow(frame_dir, tmp_path / "frame.capsule")
    assert report.reader == "skops"
    spec = mc.inspect(tmp_path / "frame.capsule").signature.inputs[0]
    assert [(c.name, c.dtype) for c in spec.columns] == [
        ("sepal_l", "float32"), ("sepal_w", "float32"), ("petal_l", "float32"), ("petal_w", "float32")]
    assert not report.notes  # the example, cast to MLflow's types, matches MLflow's signature exactly


def test_a_plain_estimator_in_cloudpickle_is_read_by_the_restricted_unpickler(
        fitted: tuple, tmp_path: Path) -> None:
    model, x = fitted
    source = sklearn_dir(tmp_path / "cp", model, "cloudpickle", x[:3])
    report = import_mlflow(source, tmp_path / "cp.capsule")
    assert (report.reader, report.manifest.provenance["mlflow"]["serialization"]) == ("pickle", "cloudpickle")
    np.testing.assert_array_equal(mc.load(tmp_path / "cp.capsule").predict(x), model.predict(x))


def test_a_trust_list_inside_the_model_is_ignored_and_reported(pickle_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "listed"
    subprocess.run(["cp", "-r", str(pickle_dir), str(copy)], check=True)
    rewrite_mlmodel(copy, flavors__sklearn__skops_trusted_types=["builtins.exec", "posix.system"])
    report = import_mlflow(copy, tmp_path / "listed.capsule")
    assert report.ignored_trust_lists == {"sklearn.skops_trusted_types": ["builtins.exec", "posix.system"]}
    assert mc.inspect(tmp_path / "listed.capsule").provenance["mlflow"]["ignored_trust_lists"]


def test_xgboost_wrapper_comes_back_as_the_same_wrapper(tmp_path: Path) -> None:
    xgboost = pytest.importorskip("xgboost")
    import mlflow.xgboost

    x, y = iris()
    model = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(x, y)
    with quiet():
        mlflow.xgboost.save_model(model, str(tmp_path / "xgb"), input_example=x[:4], pip_requirements=["xgboost"])
    report = import_mlflow(tmp_path / "xgb", tmp_path / "xgb.capsule")
    assert report.reader == "xgboost"
    loaded = mc.load(tmp_path / "xgb.capsule")
    assert type(loaded) is xgboost.XGBClassifier
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x))
    assert mc.inspect(tmp_path / "xgb.capsule").format_name == "xgboost"


def test_lightgbm_needs_its_names_trusted_by_the_user_not_by_mlflow(tmp_path: Path) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    import mlflow.lightgbm

    x, y = iris()
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y)
    with quiet():
        mlflow.lightgbm.save_model(model, str(tmp_path / "lgb"), input_example=x[:4], pip_requirements=["lightgbm"])
    with pytest.raises(MLflowUntrustedError) as refused:  # MLflow wrote its own lightgbm list into MLmodel
        import_mlflow(tmp_path / "lgb", tmp_path / "lgb.capsule")
    assert refused.value.ignored_trust_lists["lightgbm.skops_trusted_types"]
    assert "it was ignored" in str(refused.value)
    assert not (tmp_path / "lgb.capsule").exists()

    report = import_mlflow(tmp_path / "lgb", tmp_path / "lgb.capsule", trusted=refused.value.names)
    assert report.manifest.format_name == "lightgbm"  # re-stored in LightGBM's own safe format
    np.testing.assert_allclose(mc.load(tmp_path / "lgb.capsule").predict_proba(x), model.predict_proba(x))


def test_onnx_model_imports_as_an_onnx_capsule(fitted: tuple, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    import mlflow.onnx

    model, x = fitted
    proto = skl2onnx.to_onnx(model, x[:1].astype(np.float32), options={"zipmap": False})
    with quiet():
        mlflow.onnx.save_model(proto, str(tmp_path / "onnx"), input_example=x[:3].astype(np.float32),
                               pip_requirements=["onnxruntime"])
    report = import_mlflow(tmp_path / "onnx", tmp_path / "onnx.capsule")
    assert report.manifest.format_name == "onnx"
    assert report.manifest.sample is not None


def test_a_custom_pyfunc_model_is_code_and_is_refused(tmp_path: Path) -> None:
    with quiet():
        mlflow.pyfunc.save_model(str(tmp_path / "custom"), python_model=doubler(), pip_requirements=["numpy"])
    with pytest.raises(MLflowCodeRefusedError, match="Nothing was imported or run"):
        import_mlflow(tmp_path / "custom", tmp_path / "custom.capsule")


def test_a_payload_path_leaving_the_model_directory_is_refused(pickle_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "escape"
    subprocess.run(["cp", "-r", str(pickle_dir), str(copy)], check=True)
    rewrite_mlmodel(copy, flavors__sklearn__pickled_model="../../etc/passwd.pkl")
    with pytest.raises(mc.CapsuleFormatError, match="outside the model directory"):
        import_mlflow(copy, tmp_path / "escape.capsule")


def test_unknown_flavors_and_non_mlflow_folders_are_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "tf").mkdir()
    (tmp_path / "tf" / "MLmodel").write_text("flavors:\n  tensorflow: {saved_model_dir: tfmodel}\n")
    with pytest.raises(mc.UnsupportedModelError, match="modelcapsule imports sklearn"):
        import_mlflow(tmp_path / "tf", tmp_path / "tf.capsule")
    (tmp_path / "empty").mkdir()
    with pytest.raises(mc.CapsuleFormatError, match="no MLmodel file"):
        import_mlflow(tmp_path / "empty", tmp_path / "empty.capsule")
    (tmp_path / "tags").mkdir()
    (tmp_path / "tags" / "MLmodel").write_text("flavors: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(mc.CapsuleFormatError, match="not valid YAML"):
        import_mlflow(tmp_path / "tags", tmp_path / "tags.capsule")
    (tmp_path / "bomb").mkdir()  # nine nested aliases: a few lines that expand to a billion strings
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)]
    (tmp_path / "bomb" / "MLmodel").write_text("\n".join(lines) + "\nflavors: {sklearn: {pickled_model: *i}}\n")
    with pytest.raises(mc.CapsuleFormatError, match="aliases"):
        import_mlflow(tmp_path / "bomb", tmp_path / "bomb.capsule")


def test_cli_imports_and_says_what_it_ignored(pickle_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "listed"
    subprocess.run(["cp", "-r", str(pickle_dir), str(copy)], check=True)
    rewrite_mlmodel(copy, flavors__sklearn__skops_trusted_types=["posix.system"])
    result = CliRunner().invoke(cli, ["import-mlflow", str(copy), str(tmp_path / "a.capsule")])
    assert result.exit_code == 0, result.output
    assert "ignored the trust list in MLmodel (sklearn.skops_trusted_types: posix.system)" in result.output

    result = CliRunner().invoke(cli, ["import-mlflow", str(copy), str(tmp_path / "b.capsule"), "--json"])
    assert json.loads(result.output)["ignored_trust_lists"] == {"sklearn.skops_trusted_types": ["posix.system"]}

    result = CliRunner().invoke(cli, ["import-mlflow", str(copy), str(tmp_path / "c.capsule"), "--trust", "os.*"])
    assert result.exit_code == 2
    result = CliRunner().invoke(cli, ["import-mlflow", str(tmp_path / "nowhere"), str(tmp_path / "d.capsule")])
    assert result.exit_code == 2


def test_importing_modelcapsule_or_a_local_model_never_imports_mlflow(
        pickle_dir: Path, tmp_path: Path, subprocess_env: dict) -> None:
    code = ("import sys, modelcapsule as mc\n"
            f"mc.import_mlflow({str(pickle_dir)!r}, {str(tmp_path / 'x.capsule')!r})\n"
            "print('MLFLOW', 'mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True, check=True)
    assert "MLFLOW False" in out.stdout


@pytest.mark.slow
def test_a_pt2_pytorch_model_imports_without_trusting_any_class(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import mlflow.pytorch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    x = np.random.default_rng(0).random((5, 4), dtype=np.float32)
    with quiet():  # torch.export traces the module: MLflow's slowest save (~20 s here)
        mlflow.pytorch.save_model(module, str(tmp_path / "pt2"), input_example=x, pip_requirements=["torch"])
    report = import_mlflow(tmp_path / "pt2", tmp_path / "pt2.capsule")
    assert (report.reader, report.manifest.format_name) == ("torchexport", "torchexport")
    assert report.manifest.sample is not None
    mc.load(tmp_path / "pt2.capsule")  # golden sample re-checked


@pytest.mark.slow
def test_a_keras_model_imports_through_keras_safe_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # Keras 3 defaults to TensorFlow, which is not installed here
    keras = pytest.importorskip("keras")
    import mlflow.keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    x = np.random.default_rng(0).random((5, 4), dtype=np.float32)
    (tmp_path / "keras").mkdir()  # MLflow 3.17's keras flavor writes the example before creating the folder
    with quiet():
        mlflow.keras.save_model(model, str(tmp_path / "keras"), input_example=x, pip_requirements=["keras"])
    report = import_mlflow(tmp_path / "keras", tmp_path / "keras.capsule")
    assert (report.reader, report.manifest.format_name) == ("keras", "keras")
    np.testing.assert_allclose(mc.load(tmp_path / "keras.capsule").predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-6)


def test_without_an_input_example_mlflow_signature_is_recorded_and_the_report_says_no_sample(
        tmp_path: Path) -> None:
    from mlflow.models import infer_signature

    x, y = iris()
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"]).astype({"d": "int64"})
    model = LogisticRegression(max_iter=500).fit(frame, y)
    with quiet():
        signature = infer_signature(frame, model.predict(frame))
    source = sklearn_dir(tmp_path / "nosample", model, "skops", None, signature=signature)
    report = import_mlflow(source, tmp_path / "nosample.capsule")
    manifest = mc.inspect(tmp_path / "nosample.capsule")
    assert manifest.sample is None
    assert "no golden sample: the MLflow model has no input example" in report.notes
    spec = manifest.signature.inputs[0]
    assert [(c.name, c.dtype) for c in spec.columns] == [("a", "float64"), ("b", "float64"), ("c", "float64"),
                                                         ("d", "int64")]
    assert [o.name for o in manifest.signature.outputs] == ["predict"]


def test_a_lightgbm_booster_is_read_by_lightgbm_own_parser(tmp_path: Path) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    import mlflow.lightgbm

    x, y = iris()
    booster = lightgbm.train({"objective": "multiclass", "num_class": 3, "verbose": -1},
                             lightgbm.Dataset(x, y), num_boost_round=5)
    with quiet():
        mlflow.lightgbm.save_model(booster, str(tmp_path / "booster"), input_example=x[:4],
                                   pip_requirements=["lightgbm"])
    report = import_mlflow(tmp_path / "booster", tmp_path / "booster.capsule")
    assert (report.payload, report.reader, report.manifest.format_name) == ("model.lgb", "lightgbm", "lightgbm")
    np.testing.assert_allclose(mc.load(tmp_path / "booster.capsule").predict(x), booster.predict(x))


def test_a_forest_mlflow_needed_a_trust_list_for_imports_under_modelcapsule_policy(tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    x, y = iris()
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    # MLflow refuses to save a forest with skops unless the caller lists Tree, and writes the list into MLmodel
    source = sklearn_dir(tmp_path / "forest", forest, "skops", x[:4], skops_trusted_types=["sklearn.tree._tree.Tree"])
    report = import_mlflow(source, tmp_path / "forest.capsule")
    assert report.ignored_trust_lists == {"sklearn.skops_trusted_types": ["sklearn.tree._tree.Tree"]}
    np.testing.assert_array_equal(mc.load(tmp_path / "forest.capsule").predict(x), forest.predict(x))
