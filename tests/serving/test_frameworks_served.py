"""Every framework beyond scikit-learn served by one real ``capsule serve``: PyTorch, Keras 3, XGBoost,
LightGBM and a plain ONNX graph each answer Open Inference Protocol V2 and TF Serving requests with the
predictions the model gives in this process; and a scikit-learn forest is served through its ONNX export.

One server holds the five frameworks (a repository ``<name>/1/model.capsule``), so Keras and PyTorch are
imported once. Tolerance: float64 answers must be equal; float32 answers (PyTorch, Keras, the boosted
probabilities, ONNX) may differ by a few float32 ulps (``RTOL``, ``ATOL``), because the server may
run a row in a batch of another size or with another thread count than this process, which changes the
order of float32 sums. Labels are always equal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from sklearn.datasets import load_iris

import modelcapsule as mc
from modelcapsule.core.container import open_capsule

from .conftest import Server, start_server

X, Y = load_iris(return_X_y=True)
X32 = X.astype(np.float32)
SAMPLE = slice(None, None, 15)  # the golden sample: every 15th row
ROWS = slice(1, None, 10)  # the rows sent to the server: none of them in the sample
RTOL, ATOL = 1e-6, 1e-7  # for float32 answers
V2_DATATYPES = {"float32": "FP32", "float64": "FP64"}


@dataclass(frozen=True)
class Case:
    """One served model: the rows sent, what the model itself answers for them, its V2 metadata."""

    rows: np.ndarray[Any, Any]
    expected: dict[str, np.ndarray[Any, Any]]
    platform: str
    outputs: list[dict[str, Any]]


def torch_case(root: Path) -> Case:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.SiLU(), torch.nn.Linear(5, 3))
    mc.save(model, root / "torch" / "1" / "model.capsule", sample=X32[SAMPLE], name="torch")
    rows = X32[ROWS]
    with torch.no_grad():
        expected = {"forward": model(torch.from_numpy(rows)).numpy()}
    return Case(rows, expected, "modelcapsule_torch", [{"name": "forward", "datatype": "FP32", "shape": [-1, 3]}])


def keras_case(root: Path) -> Case:
    from modelcapsule.frameworks.keras import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(2)])
    mc.save(model, root / "keras" / "1" / "model.capsule", sample=X32[SAMPLE], name="keras")
    rows = X32[ROWS]
    expected = {"predict": np.asarray(model.predict(rows, verbose=0))}
    return Case(rows, expected, "modelcapsule_keras", [{"name": "predict", "datatype": "FP32", "shape": [-1, 2]}])


def xgboost_case(root: Path) -> Case:
    import xgboost

    model = xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(X, Y)
    mc.save(model, root / "xgboost" / "1" / "model.capsule", sample=X[SAMPLE], name="xgboost")
    rows = X[ROWS]
    expected = {"predict": np.asarray(model.predict(rows)), "predict_proba": np.asarray(model.predict_proba(rows))}
    outputs = [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP32", "shape": [-1, 3]},
    ]
    return Case(rows, expected, "modelcapsule_xgboost", outputs)


def lightgbm_case(root: Path) -> Case:
    import lightgbm

    model = lightgbm.LGBMRegressor(n_estimators=3, num_leaves=4, verbose=-1).fit(X, Y.astype(np.float64))
    mc.save(model, root / "lightgbm" / "1" / "model.capsule", sample=X[SAMPLE], name="lightgbm")
    rows = X[ROWS]
    expected = {"predict": np.asarray(model.predict(rows))}
    return Case(rows, expected, "modelcapsule_lightgbm", [{"name": "predict", "datatype": "FP64", "shape": [-1]}])


def onnx_case(root: Path) -> Case:
    """A plain ONNX graph (a logistic regression exported by skl2onnx) saved as a capsule of its own."""
    import onnxruntime
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    source = LogisticRegression(max_iter=500).fit(X, Y)
    graph = skl2onnx.convert_sklearn(
        source, initial_types=[("input", FloatTensorType([None, 4]))], options={id(source): {"zipmap": False}}
    )
    mc.save(graph, root / "onnx" / "1" / "model.capsule", sample=X32[SAMPLE], name="onnx")
    rows = X32[ROWS]
    session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    label, probabilities = session.run(["label", "probabilities"], {"input": rows})
    outputs = [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ]
    return Case(rows, {"label": label, "probabilities": probabilities}, "modelcapsule_onnx", outputs)


CASES: dict[str, Callable[[Path], Case]] = {
    "torch": torch_case,
    "keras": keras_case,
    "xgboost": xgboost_case,
    "lightgbm": lightgbm_case,
    "onnx": onnx_case,
}


@dataclass(frozen=True)
class Served:
    server: Server
    cases: dict[str, Case]


def keras_env(subprocess_env: dict[str, str]) -> dict[str, str]:
    env = dict(subprocess_env)
    env.setdefault("KERAS_BACKEND", "torch")  # the backend installed here (no TensorFlow)
    return env


@pytest.fixture(scope="module")
def served(
    capsule_cmd: list[str], subprocess_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """One server for all five frameworks, from a repository of one version each."""
    repo = tmp_path_factory.mktemp("frameworks")
    cases = {name: build(repo) for name, build in CASES.items()}
    srv = start_server(capsule_cmd, keras_env(subprocess_env), tmp_path_factory.mktemp("log"), str(repo), "--no-grpc")
    yield Served(srv, cases)
    srv.stop()


def assert_same(got: Any, expected: np.ndarray[Any, Any]) -> None:
    """Labels and float64 answers equal; float32 answers within :data:`RTOL` and :data:`ATOL`."""
    got = np.asarray(got).reshape(expected.shape)
    if expected.dtype == np.float32:
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    else:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", sorted(CASES))
def test_metadata_shows_the_signature(served: Served, name: str) -> None:
    case = served.cases[name]
    doc = requests.get(f"{served.server.url}/v2/models/{name}", timeout=10).json()
    datatype = V2_DATATYPES[str(case.rows.dtype)]
    assert doc == {
        "name": name,
        "versions": ["1"],
        "platform": case.platform,
        "inputs": [{"name": "input", "datatype": datatype, "shape": [-1, 4]}],
        "outputs": case.outputs,
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_v2_plain_json(served: Served, name: str) -> None:
    case = served.cases[name]
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": "input",
                "shape": list(case.rows.shape),
                "datatype": V2_DATATYPES[str(case.rows.dtype)],
                "data": case.rows.ravel().tolist(),
            }
        ],
        "outputs": [{"name": output} for output in case.expected],
    }
    r = requests.post(f"{served.server.url}/v2/models/{name}/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    answers = {o["name"]: o for o in r.json()["outputs"]}
    assert list(answers) == list(case.expected)
    for output, expected in case.expected.items():
        assert answers[output]["shape"] == list(expected.shape)
        assert_same(answers[output]["data"], expected)


@pytest.mark.parametrize("name", sorted(CASES))
def test_v2_tritonclient_default_settings(served: Served, name: str) -> None:
    case = served.cases[name]
    tensor = triton.InferInput("input", list(case.rows.shape), V2_DATATYPES[str(case.rows.dtype)])
    tensor.set_data_from_numpy(case.rows)  # binary tensor data, as the client does by default
    result = triton.InferenceServerClient(served.server.url.removeprefix("http://")).infer(name, [tensor])
    for output, expected in case.expected.items():
        assert_same(result.as_numpy(output), expected)


@pytest.mark.parametrize("name", sorted(CASES))
def test_tf_serving_predict_instances(served: Served, name: str) -> None:
    case = served.cases[name]
    url = f"{served.server.url}/v1/models/{name}:predict"
    first, *others = case.expected
    default = requests.post(url, json={"instances": case.rows.tolist()}, timeout=30)
    assert default.status_code == 200, default.text
    assert_same(default.json()["predictions"], case.expected[first])  # serving_default: the first output
    for output in others:
        r = requests.post(url, json={"signature_name": output, "instances": case.rows.tolist()}, timeout=30)
        assert r.status_code == 200, r.text
        assert_same(r.json()["predictions"], case.expected[output])


def test_forest_served_through_its_onnx_export(
    capsule_cmd: list[str], subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    """``--runtime onnx`` answers with the export: labels as the Python forest's, except exactly the rows
    the manifest reports as flipped (float32 thresholds); probabilities as onnxruntime computes them here, in
    float32, though answered as the float64 the metadata promises.

    The server does not say which runtime serves a model, so the float32 precision of the answers shows it:
    scikit-learn's float64 averages of the trees are not all float32 numbers, onnxruntime's are."""
    import onnxruntime
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, Y)
    path = tmp_path / "forest.capsule"
    manifest = mc.save(forest, path, sample=X[::7], onnx=True, name="forest")
    assert manifest.onnx is not None
    flipped = manifest.onnx["check"]["predict"]["flipped_rows"]
    rows = X[::7]  # the golden sample: the rows the manifest's check reports on
    with open_capsule(path) as reader:
        graph = reader.read(manifest.onnx["member"])
    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    onnx_proba = session.run(["probabilities"], {"input": rows.astype(np.float32)})[0]
    python_labels, python_proba = forest.predict(rows), forest.predict_proba(rows)
    assert not np.array_equal(python_proba, python_proba.astype(np.float32))  # so precision tells them apart

    srv = start_server(capsule_cmd, subprocess_env, tmp_path / "log", str(path), "--runtime", "onnx", "--no-grpc")
    try:
        meta = requests.get(f"{srv.url}/v2/models/forest", timeout=10).json()
        body = {
            "inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        }
        v2 = requests.post(f"{srv.url}/v2/models/forest/infer", json=body, timeout=30)
        tfs = requests.post(f"{srv.url}/v1/models/forest:predict", json={"instances": rows.tolist()}, timeout=30)
    finally:
        srv.stop()
    assert v2.status_code == 200 and tfs.status_code == 200, (v2.text, tfs.text)
    outputs = v2.json()["outputs"]
    assert [(o["name"], o["datatype"]) for o in outputs] == [(o["name"], o["datatype"]) for o in meta["outputs"]]
    answers = {o["name"]: np.asarray(o["data"]) for o in outputs}
    for labels in (answers["predict"], np.asarray(tfs.json()["predictions"])):
        assert sorted(np.flatnonzero(labels != python_labels).tolist()) == sorted(flipped)
    proba = answers["predict_proba"].reshape(onnx_proba.shape)
    np.testing.assert_array_equal(proba, proba.astype(np.float32))
    np.testing.assert_allclose(proba, onnx_proba, rtol=RTOL, atol=ATOL)
