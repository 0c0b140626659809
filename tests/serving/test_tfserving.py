"""TF Serving's REST API: the examples from its documentation give the documented answers."""

from __future__ import annotations

import numpy as np
import requests

from .conftest import Models, Server


def test_model_status(server: Server) -> None:
    expected = {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    assert requests.get(f"{server.url}/v1/models/half_plus_three", timeout=10).json() == expected
    assert requests.get(f"{server.url}/v1/models/half_plus_three/versions/1", timeout=10).json() == expected
    missing = requests.get(f"{server.url}/v1/models/half_plus_three/versions/7", timeout=10)
    assert missing.status_code == 404 and "no version 7" in missing.json()["error"]


def test_metadata_has_signature_defs(server: Server) -> None:
    doc = requests.get(f"{server.url}/v1/models/iris/metadata", timeout=10).json()
    assert doc["model_spec"] == {"name": "iris", "signature_name": "", "version": "1"}
    defs = doc["metadata"]["signature_def"]["signature_def"]
    assert set(defs) == {"serving_default", "predict", "predict_proba", "decision_function"}
    default = defs["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["input"]["dtype"] == "DT_DOUBLE"
    assert default["inputs"]["input"]["tensor_shape"]["dim"] == [
        {"size": "-1", "name": ""},
        {"size": "4", "name": ""},
    ]
    assert list(default["outputs"]) == ["predict"]


def test_documented_row_and_columnar_predict(server: Server) -> None:
    url = f"{server.url}/v1/models/half_plus_three:predict"
    row = requests.post(url, json={"instances": [1.0, 2.0, 5.0]}, timeout=10)
    assert row.json() == {"predictions": [3.5, 4.0, 5.5]}
    columnar = requests.post(url, json={"inputs": [1.0, 2.0, 5.0]}, timeout=10)
    assert columnar.json() == {"outputs": [3.5, 4.0, 5.5]}
    versioned = requests.post(
        f"{server.url}/v1/models/half_plus_three/versions/1:predict",
        json={"instances": [[1.0], [2.0]]},
        timeout=10,
    )
    assert versioned.json() == {"predictions": [3.5, 4.0]}


def test_documented_regress_and_classify(server: Server, models: Models) -> None:
    regress = requests.post(
        f"{server.url}/v1/models/half_plus_three:regress",
        timeout=10,
        json={"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}, {"x": 2.0}]},
    )
    assert regress.json() == {"result": [3.5, 4.0]}
    examples = [dict(zip(models.frame.columns, row, strict=True)) for row in models.X[:2].tolist()]
    classify = requests.post(f"{server.url}/v1/models/iris_df:classify", json={"examples": examples}, timeout=10)
    result = classify.json()["result"]
    proba = models.iris_df.predict_proba(models.frame[:2])
    assert [[label for label, _ in row] for row in result] == [["0", "1", "2"]] * 2
    np.testing.assert_allclose([[p for _, p in row] for row in result], proba)
    wrong = requests.post(
        f"{server.url}/v1/models/half_plus_three:classify", json={"examples": [{"x": 1.0}]}, timeout=10
    )
    assert wrong.status_code == 400 and "cannot :classify" in wrong.json()["error"]


def test_named_inputs_and_signature_names(server: Server, models: Models) -> None:
    rows = models.X[:3].tolist()
    named = requests.post(
        f"{server.url}/v1/models/iris:predict", timeout=10, json={"instances": [{"input": r} for r in rows]}
    )
    assert named.json() == {"predictions": models.iris.predict(models.X[:3]).tolist()}
    proba = requests.post(
        f"{server.url}/v1/models/iris:predict",
        timeout=10,
        json={"signature_name": "predict_proba", "inputs": {"input": rows}},
    )
    np.testing.assert_allclose(proba.json()["outputs"], models.iris.predict_proba(models.X[:3]))
    records = requests.post(
        f"{server.url}/v1/models/iris_df:predict",
        timeout=10,
        json={"instances": models.frame[:3].to_dict(orient="records")},
    )
    assert records.json() == {"predictions": models.iris_df.predict(models.frame[:3]).tolist()}
