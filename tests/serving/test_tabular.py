"""A pipeline trained on a DataFrame of mixed column types, served through every protocol by column name."""

from __future__ import annotations

import numpy as np
import requests
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from .conftest import Models, Server


def expected(models: Models, rows: slice) -> list[str]:
    return [str(v) for v in models.mixed.predict(models.people[rows])]


def test_records_and_rows_on_the_plain_route(server: Server, models: Models) -> None:
    records = models.people[:4].to_dict(orient="records")
    r = requests.post(f"{server.url}/predict?model=mixed", json={"inputs": records}, timeout=10)
    assert r.json() == {"prediction": expected(models, slice(0, 4))}
    rows = models.people[:4].to_numpy().tolist()
    r = requests.post(f"{server.url}/predict?model=mixed", json={"inputs": rows}, timeout=10)
    assert r.json() == {"prediction": expected(models, slice(0, 4))}


def test_mlflow_csv_and_tf_serving_records(server: Server, models: Models) -> None:
    csv = models.people[4:8].to_csv(index=False)
    r = requests.post(
        f"{server.url}/invocations?model=mixed", data=csv, headers={"Content-Type": "text/csv"}, timeout=10
    )
    assert r.json() == {"predictions": expected(models, slice(4, 8))}
    body = {"instances": models.people[4:8].to_dict(orient="records")}
    assert requests.post(f"{server.url}/v1/models/mixed:predict", json=body, timeout=10).json() == {
        "predictions": expected(models, slice(4, 8))
    }


def test_v2_bytes_tensors_from_triton_clients(server: Server, models: Models) -> None:
    rows = models.people[8:11].to_numpy().astype(object)
    http_input = triton_http.InferInput("input", list(rows.shape), "BYTES")
    http_input.set_data_from_numpy(rows)
    http = triton_http.InferenceServerClient(server.url.removeprefix("http://")).infer("mixed", [http_input])
    assert [v.decode() for v in http.as_numpy("predict")] == expected(models, slice(8, 11))
    np.testing.assert_allclose(http.as_numpy("predict_proba"), models.mixed.predict_proba(models.people[8:11]))
    grpc_input = triton_grpc.InferInput("input", list(rows.shape), "BYTES")
    grpc_input.set_data_from_numpy(rows)
    grpc = triton_grpc.InferenceServerClient(server.grpc_address).infer("mixed", [grpc_input])
    assert [v.decode() for v in grpc.as_numpy("predict")] == expected(models, slice(8, 11))


def test_wrong_column_types_are_4xx(server: Server) -> None:
    url = f"{server.url}/predict?model=mixed"
    number_city = requests.post(url, json={"inputs": [[70, 3, 44.1]]}, timeout=10)
    assert number_city.status_code == 400 and "column 'city' holds 3; expected strings" in number_city.text
    text_age = requests.post(url, json={"inputs": [["old", "Oslo", 44.1]]}, timeout=10)
    assert text_age.status_code == 400 and "column 'age'" in text_age.text
    ragged = requests.post(url, json={"inputs": [[70, "Oslo", 44.1], [1]]}, timeout=10)
    assert ragged.status_code == 400 and "expected rows of 3 values" in ragged.text


def test_the_try_it_form_predicts_for_a_mixed_table(server: Server, models: Models) -> None:
    rows = models.people[:2].to_numpy().tolist()
    answer = requests.post(f"{server.url}/models/mixed/versions/1/predict", json={"rows": rows}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"]["predict"] == expected(models, slice(0, 2))
