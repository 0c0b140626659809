"""Open Inference Protocol V2 over REST, driven by tritonclient.http with its default settings."""

from __future__ import annotations

import numpy as np
import orjson
import requests
import tritonclient.http as triton

from .conftest import Models, Server


def client(server: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.url.removeprefix("http://"))


def test_health_and_metadata(server: Server) -> None:
    c = client(server)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("iris")
    assert "binary_tensor_data" in c.get_server_metadata()["extensions"]
    meta = c.get_model_metadata("iris")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba", "decision_function"]
    assert c.get_model_metadata("iris", model_version="1")["versions"] == ["1"]


def test_binary_inference_with_default_client_settings(server: Server, models: Models) -> None:
    rows = models.X[:7]
    tensor = triton.InferInput("input", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)  # binary_data=True by default
    result = client(server).infer("iris", [tensor])  # no outputs named: all, in binary
    np.testing.assert_array_equal(result.as_numpy("predict"), models.iris.predict(rows))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), models.iris.predict_proba(rows))


def test_json_inputs_and_selected_json_output(server: Server, models: Models) -> None:
    rows = models.X[50:53].astype(np.float32)  # FP32 converts losslessly to the model's float64
    tensor = triton.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)
    out = triton.InferRequestedOutput("predict_proba", binary_data=False)
    result = client(server).infer("iris", [tensor], outputs=[out], request_id="req-7")
    assert result.get_response()["id"] == "req-7"
    assert [o["name"] for o in result.get_response()["outputs"]] == ["predict_proba"]
    np.testing.assert_allclose(result.as_numpy("predict_proba"), models.iris.predict_proba(rows.astype(np.float64)))


def test_plain_json_request_and_version_route(server: Server, models: Models) -> None:
    body = {
        "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": models.X[:2].tolist()}],
        "outputs": [{"name": "predict"}],
    }
    r = requests.post(f"{server.url}/v2/models/iris/versions/1/infer", json=body, timeout=10)
    assert r.status_code == 200
    doc = r.json()
    assert doc["model_name"] == "iris" and doc["model_version"] == "1"
    assert doc["outputs"] == [
        {
            "name": "predict",
            "datatype": "INT64",
            "shape": [2],
            "data": models.iris.predict(models.X[:2]).tolist(),
        }
    ]


def test_binary_response_layout(server: Server, models: Models) -> None:
    header = orjson.dumps(
        {
            "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "parameters": {"binary_data_size": 32}}],
            "outputs": [{"name": "predict_proba", "parameters": {"binary_data": True}}],
        }
    )
    body = header + models.X[:1].astype("<f8").tobytes()
    r = requests.post(
        f"{server.url}/v2/models/iris/infer",
        data=body,
        timeout=10,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 200
    split = int(r.headers["Inference-Header-Content-Length"])
    doc = orjson.loads(r.content[:split])
    assert doc["outputs"][0]["parameters"]["binary_data_size"] == 24
    values = np.frombuffer(r.content[split:], dtype="<f8").reshape(1, 3)
    np.testing.assert_allclose(values, models.iris.predict_proba(models.X[:1]))


def test_tabular_model_takes_rows_in_column_order(server: Server, models: Models) -> None:
    rows = models.frame.to_numpy()[100:104]
    tensor = triton.InferInput("input", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)
    result = client(server).infer("iris_df", [tensor], outputs=[triton.InferRequestedOutput("predict")])
    np.testing.assert_array_equal(result.as_numpy("predict"), models.iris_df.predict(models.frame[100:104]))
