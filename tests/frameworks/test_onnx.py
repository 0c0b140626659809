"""ONNX: plain graphs as capsules, export at save time checked against the golden sample, ONNX runtimes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import skl2onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelcapsule as mc
from modelcapsule.load import load_capsule
from modelcapsule.onnx.export import export_onnx
from modelcapsule.onnx.runtime import OnnxPredictor


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def pipeline(iris) -> object:
    x, y = iris
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)


def graph(model: object, n_features: int = 4) -> onnx.ModelProto:
    from skl2onnx.common.data_types import FloatTensorType

    return skl2onnx.convert_sklearn(model, initial_types=[("X", FloatTensorType([None, n_features]))],
                                    options={id(model): {"zipmap": False}})


def test_plain_onnx_file_becomes_a_capsule_that_loads_in_a_fresh_process(tmp_path: Path, iris, pipeline,
                                                                         fresh_python) -> None:
    x, _ = iris
    onnx.save_model(graph(pipeline), tmp_path / "model.onnx")
    manifest = mc.save(tmp_path / "model.onnx", tmp_path / "m.capsule", sample=x[:10].astype(np.float32))
    assert manifest.format["name"] == "onnx" and manifest.model["framework"] == "onnx"
    assert manifest.signature is not None and manifest.signature.output_names == ("label", "probabilities")
    assert "onnxruntime" in manifest.environment["packages"]
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    fresh_python(f"""
        import sys, numpy as np
        from modelcapsule.load import load_capsule
        loaded = load_capsule({str(tmp_path / "m.capsule")!r}, on_mismatch="error")
        assert type(loaded.model).__name__ == "InferenceSession"
        assert "sklearn" not in sys.modules  # serving an ONNX capsule needs no scikit-learn
        out = loaded.predictor.predict({{"input": np.load({str(tmp_path / "x.npy")!r})}}, ["probabilities"])
        np.save({str(tmp_path / "out.npy")!r}, out["probabilities"])
    """)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), pipeline.predict_proba(x), rtol=1e-4, atol=1e-5)


def test_model_proto_is_saved_and_loaded_as_a_session(tmp_path: Path, iris, pipeline) -> None:
    x, _ = iris
    mc.save(graph(pipeline), tmp_path / "m.capsule", sample=x[:5])
    session = mc.load(tmp_path / "m.capsule")
    label, _ = session.run(None, {"X": x[:5].astype(np.float32)})
    np.testing.assert_array_equal(label, pipeline.predict(x[:5]))


def test_export_is_checked_against_the_golden_sample(tmp_path: Path, iris, pipeline) -> None:
    x, _ = iris
    manifest = mc.save(pipeline, tmp_path / "p.capsule", sample=x[::10], onnx=True)
    section = manifest.onnx
    assert section is not None
    assert section["converter"].startswith("skl2onnx")
    assert section["outputs"] == {"label": "predict", "probabilities": "predict_proba"}
    assert section["check"]["predict"]["label_flips"] == 0
    assert section["check"]["predict_proba"]["max_abs_diff"] < 1e-5
    assert section["not_exported"] == ["decision_function"]
    assert section["reproduces_sample"] is True
    onnx_loaded = load_capsule(tmp_path / "p.capsule", runtime="onnx")
    assert isinstance(onnx_loaded.predictor, OnnxPredictor)
    got = onnx_loaded.predictor.predict({"input": x}, ["predict", "predict_proba", "decision_function"])
    np.testing.assert_array_equal(got["predict"], pipeline.predict(x))
    np.testing.assert_allclose(got["predict_proba"], pipeline.predict_proba(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got["decision_function"], pipeline.decision_function(x))  # answered by Python


def test_label_flips_near_the_boundary_are_reported_not_hidden(tmp_path: Path) -> None:
    """float32 cannot tell apart two points 1e-10 either side of the boundary: ONNX gives both one label."""
    x = np.linspace(-1, 1, 40).reshape(-1, 1)
    model = LogisticRegression().fit(x, (x[:, 0] > 0.1).astype(int))
    boundary = -model.intercept_[0] / model.coef_[0, 0]
    near = np.array([[boundary * (1 - 1e-10)], [boundary * (1 + 1e-10)], [-1.0], [1.0]])
    assert np.float32(near[0, 0]) == np.float32(near[1, 0]) and len(set(model.predict(near[:2]))) == 2
    manifest = mc.save(model, tmp_path / "lr.capsule", sample=near, onnx=True)
    assert manifest.onnx is not None
    check = manifest.onnx["check"]["predict"]
    assert check["label_flips"] == 1 and check["flipped_rows"] in ([0], [1])
    assert manifest.onnx["reproduces_sample"] is False
    auto = load_capsule(tmp_path / "lr.capsule", runtime="auto")
    assert not isinstance(auto.predictor, OnnxPredictor)  # auto never serves an export that flips labels
    np.testing.assert_array_equal(auto.predictor.predict({"input": near})["predict"], model.predict(near))


def test_auto_runtime_serves_onnx_only_when_it_reproduces_and_is_faster(tmp_path: Path, iris) -> None:
    x, y = iris
    model = KNeighborsClassifier(n_neighbors=3).fit(x, y)
    mc.save(model, tmp_path / "knn.capsule", sample=x[::10], onnx=True)
    loaded = load_capsule(tmp_path / "knn.capsule", runtime="auto")
    if isinstance(loaded.predictor, OnnxPredictor):
        assert loaded.predictor.selection["onnx_seconds"] < loaded.predictor.selection["python_seconds"]
    out = loaded.predictor.predict({"input": x[::10]}, ["predict", "predict_proba"])
    np.testing.assert_array_equal(out["predict"], model.predict(x[::10]))
    np.testing.assert_allclose(out["predict_proba"], model.predict_proba(x[::10]), rtol=1e-4, atol=1e-5)


def test_onnx_runtime_without_an_export_says_how_to_get_one(tmp_path: Path, iris, pipeline) -> None:
    x, _ = iris
    mc.save(pipeline, tmp_path / "p.capsule", sample=x[:5])
    with pytest.raises(mc.UnsupportedModelError, match="onnx=True"):
        load_capsule(tmp_path / "p.capsule", runtime="onnx")
    assert not isinstance(load_capsule(tmp_path / "p.capsule", runtime="auto").predictor, OnnxPredictor)


def test_dataframe_inputs_export_one_input_per_column(tmp_path: Path, iris) -> None:
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    x, y = iris
    frame = pd.DataFrame({"length": x[:, 0], "width": x[:, 1], "kind": np.where(x[:, 2] > 3, "long", "short")})
    model = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), ["length", "width"]), ("cat", OneHotEncoder(), ["kind"])]),
        LogisticRegression(max_iter=500)).fit(frame, y)
    manifest = mc.save(model, tmp_path / "df.capsule", sample=frame.iloc[::15], onnx=True)
    assert manifest.onnx is not None and manifest.onnx["input_layout"] == "columns"
    assert [i["name"] for i in manifest.onnx["inputs"]] == ["length", "width", "kind"]
    predictor = load_capsule(tmp_path / "df.capsule", runtime="onnx").predictor
    np.testing.assert_array_equal(predictor.predict({"input": frame})["predict"], model.predict(frame))


@pytest.mark.parametrize("library", ["xgboost", "lightgbm", "torch", "keras"])
def test_other_frameworks_export_within_tolerance(library: str, tmp_path: Path, iris) -> None:
    x, y = iris
    if library == "xgboost":
        import xgboost

        model: object = xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(x, y)
    elif library == "lightgbm":
        import lightgbm

        model = lightgbm.LGBMClassifier(n_estimators=3, num_leaves=4, verbose=-1).fit(x, y)
    elif library == "torch":
        import torch

        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    else:
        from modelcapsule.frameworks.keras import import_keras

        keras = import_keras()
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="relu"), keras.layers.Dense(3)])
    manifest = mc.save(model, tmp_path / "m.capsule", sample=x[::10].astype(np.float32), onnx=True)
    assert manifest.onnx is not None and manifest.onnx["reproduces_sample"] is True, manifest.onnx
    assert manifest.onnx["batch_independent"] is True
    predictor = load_capsule(tmp_path / "m.capsule", runtime="onnx").predictor
    python = load_capsule(tmp_path / "m.capsule").predictor
    first = manifest.signature.output_names[0] if manifest.signature else "predict"
    np.testing.assert_allclose(predictor.predict({"input": x})[first], python.predict({"input": x})[first],
                               rtol=1e-4, atol=1e-5)


def test_export_function_reports_inputs_and_outputs(iris, pipeline) -> None:
    x, _ = iris
    data, report = export_onnx(pipeline, "sklearn", {"input": x[:3]})
    assert onnx.load_model_from_string(data).graph.output[0].name == "label"
    assert report["inputs"] == [{"name": "input", "elem_type": "float", "shape": [-1, 4]}]


def test_graph_with_external_data_is_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones(4, dtype=np.float32), name="w")
    model = helper.make_model(
        helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])], [weights]),
        opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, tmp_path / "ext.onnx", save_as_external_data=True, size_threshold=0,
                    location="weights.bin")
    with pytest.raises(mc.CapsuleFormatError, match="external file"):
        mc.load(tmp_path / "ext.onnx")


def test_graph_with_custom_operators_is_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    node = helper.make_node("Exec", ["x"], ["y"], domain="com.attacker")
    model = helper.make_model(
        helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.attacker", 1)])
    onnx.save_model(model, tmp_path / "custom.onnx")
    with pytest.raises(mc.CapsuleFormatError, match="com.attacker"):
        mc.load(tmp_path / "custom.onnx")


@pytest.mark.parametrize("omp, threads", [("1", 1), ("3", 3), (None, 0), ("many", 0)])
def test_sessions_run_on_the_threads_omp_num_threads_allows(monkeypatch: pytest.MonkeyPatch, pipeline: object,
                                                           omp: str | None, threads: int) -> None:
    # capsule serve sets OMP_NUM_THREADS to --threads; unset (or not a count), onnxruntime picks (0)
    from modelcapsule.frameworks.onnx import make_session

    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    session = make_session(graph(pipeline).SerializeToString())
    assert session.get_session_options().intra_op_num_threads == threads


def test_a_graph_onnxruntime_refuses_is_a_format_error_on_every_path_to_a_session() -> None:
    # the capsule's payload and its ONNX export both become sessions through checked_session
    from onnx import TensorProto, helper

    from modelcapsule.errors import CapsuleFormatError
    from modelcapsule.formats.onnx import checked_session

    node = helper.make_node("NoSuchOperator", ["x"], ["y"])
    proto = helper.make_model(
        helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])]),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    for keep_bytes in (True, False):
        with pytest.raises(CapsuleFormatError, match="onnxruntime refused the graph"):
            checked_session(proto.SerializeToString(), None, keep_bytes=keep_bytes)
