"""Malformed requests across every protocol get a 4xx in that protocol's error shape, naming the
problem; nothing is a 500 or a stack trace, and the server answers a good request afterwards."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson
import pytest
import requests

from .conftest import Models, Server

V2 = "/v2/models/iris/infer"
TF = "/v1/models/iris:predict"
ROW = [5.1, 3.5, 1.4, 0.2]


def v2_body(**tensor: Any) -> dict[str, Any]:
    base = {"name": "input", "shape": [1, 4], "datatype": "FP64", "data": ROW}
    base.update(tensor)
    return {"inputs": [base]}


# (path, body (dict → JSON, bytes → raw), extra headers, expected status, words the message must contain)
CASES: list[tuple[str, Any, dict[str, str], int, str]] = [
    # V2 REST
    (V2, b"{not json", {}, 400, "not valid JSON"),
    (V2, b"", {}, 400, "empty"),
    (V2, [1, 2], {}, 400, "JSON object"),
    (V2, {"inputs": []}, {}, 400, "non-empty list"),
    (V2, v2_body(name="features"), {}, 400, "unknown input name"),
    (V2, v2_body(shape=[1, 3], data=ROW[:3]), {}, 400, "expected [-1, 4]"),
    (V2, v2_body(shape=[2, 4]), {}, 400, "needs 8"),
    (V2, v2_body(datatype="FLOAT"), {}, 400, "not a V2 datatype"),
    (V2, v2_body(data=["a", "b", "c", "d"]), {}, 400, "non-numeric"),
    (V2, v2_body(shape="1x4"), {}, 400, "shape must be a list"),
    (
        V2,
        v2_body(datatype="INT64", data=[1, 2, 3, 4]) | {"outputs": [{"name": "nope"}]},
        {},
        400,
        "unknown output",
    ),
    (V2, {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64"}]}, {}, 400, "neither 'data'"),
    (V2, v2_body(parameters={"binary_data_size": 64}), {}, 400, "binary_data_size"),
    ("/v2/models/nope/infer", v2_body(), {}, 404, "no model named 'nope'"),
    ("/v2/models/iris/versions/9/infer", v2_body(), {}, 404, "version 9"),
    ("/v2/models/iris/versions/x/infer", v2_body(), {}, 404, "positive integers"),
    (V2, b'{"inputs": []}', {"Inference-Header-Content-Length": "999"}, 400, "byte length of the JSON part"),
    (V2, b"x" * 1_000_001, {}, 413, "over the server's limit"),
    # TF Serving REST
    (TF, {"instances": [[1, 2, 3]]}, {}, 400, "dimension 1 must be 4"),
    (TF, {"instances": [ROW], "inputs": [ROW]}, {}, 400, "exactly one of"),
    (TF, {"signature_name": "nope", "instances": [ROW]}, {}, 400, "signature_name 'nope'"),
    (TF, {"instances": []}, {}, 400, "non-empty list"),
    (TF, {"instances": [[1, 2, 3, 4], [1, 2]]}, {}, 400, "rectangular"),
    (TF, {"instances": [{"features": ROW}]}, {}, 400, "inputs ['input']"),
    ("/v1/models/iris/labels/canary:predict", {"instances": [ROW]}, {}, 400, "no label 'canary'"),
    ("/v1/models/iris:regress", {"examples": [{"a": 1, "b": 2, "c": 3, "d": 4}]}, {}, 400, "use :classify"),
    ("/v1/models/iris:classify", {"examples": [{"a": 1}]}, {}, 400, "takes 4"),
    ("/v1/models/half_plus_three:predict", {"instances": [["one"]]}, {}, 400, "expected numbers"),
    # Seldon and the plain recipe
    ("/predict?model=iris", {"features": ROW}, {}, 400, '{"inputs"'),
    ("/predict?model=iris", {"inputs": ROW}, {}, 400, "Wrap a single row"),
    ("/predict", {"inputs": [ROW]}, {}, 400, "?model=NAME"),
    ("/api/v1.0/predictions?model=iris", {"data": {"ndarray": [[1, 2]]}}, {}, 400, "expected [-1, 4]"),
    (
        "/api/v1.0/predictions?model=iris",
        {"data": {"tensor": {"shape": [2, 4], "values": [1]}}},
        {},
        400,
        "do not fit",
    ),
    (
        "/api/v1.0/predictions?model=iris_df",
        {"data": {"names": ["a", "b", "c", "d"], "ndarray": [ROW]}},
        {},
        400,
        "do not match the model's columns",
    ),
    ("/predict?model=iris", {"data": []}, {}, 400, "'data' must be an object"),
    # MLflow
    (
        "/invocations?model=iris_df",
        {"dataframe_split": {"columns": ["sepal_length"], "data": [[1]]}},
        {},
        400,
        "do not match",
    ),
    ("/invocations?model=iris_df", {"dataframe_records": [{"sepal_length": 1}]}, {}, 400, "missing column"),
    ("/invocations?model=iris_df", {"instances": [ROW], "inputs": [ROW]}, {}, 400, "exactly one of"),
    ("/invocations?model=iris_df", b"a,b\n1", {"Content-Type": "text/csv"}, 400, "line 2"),
    ("/invocations?model=iris_df", b"<x/>", {"Content-Type": "application/xml"}, 400, "not supported"),
    ("/invocations?model=nope", {"inputs": [ROW]}, {}, 404, "no model named"),
]


def send(server: Server, path: str, body: Any, headers: dict[str, str]) -> requests.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return requests.post(
        server.url + path, data=data, headers={"Content-Type": "application/json", **headers}, timeout=10
    )


def message(response: requests.Response) -> str:
    doc = response.json()
    if "status" in doc:  # Seldon
        return str(doc["status"]["info"])
    return str(doc.get("error") or doc.get("message"))


def test_there_are_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "words"),
    CASES,
    ids=[f"{i}-{c[0].split('?')[0]}" for i, c in enumerate(CASES)],
)
def test_bad_request_gets_a_useful_4xx(
    server: Server, path: str, body: Any, headers: dict[str, str], status: int, words: str
) -> None:
    r = send(server, path, body, headers)
    assert r.status_code == status, r.text
    assert words in message(r), message(r)
    assert "Traceback" not in r.text
    assert r.headers["x-request-id"]


def test_error_shapes_follow_each_protocol(server: Server) -> None:
    bad = {"instances": [[1]]}
    assert set(send(server, TF, bad, {}).json()) == {"error"}
    seldon = send(server, "/api/v1.0/predictions?model=iris", {"data": {"ndarray": [[1]]}}, {}).json()
    assert seldon["status"]["reason"] == "MICROSERVICE_BAD_DATA" and seldon["status"]["status"] == "FAILURE"
    mlflow = send(server, "/invocations?model=iris", {"bad": 1}, {}).json()
    assert mlflow["error_code"] == "BAD_REQUEST"


def test_model_failure_is_a_500_with_a_request_id_in_the_log(server: Server) -> None:
    header = orjson.dumps(
        {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "parameters": {"binary_data_size": 32}}]}
    )
    nan_row = np.full((1, 4), np.nan).tobytes()  # valid per the signature; the model refuses NaN
    r = requests.post(
        server.url + V2,
        data=header + nan_row,
        timeout=10,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 500
    request_id = r.headers["x-request-id"]
    assert request_id in r.json()["error"] and "Traceback" not in r.text
    deadline = time.monotonic() + 5
    while request_id not in server.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"request {request_id}" in server.stderr()


def test_server_still_answers_after_bad_requests(server: Server, models: Models) -> None:
    for path, body, headers, _, _ in CASES:
        send(server, path, body, headers)
    good = send(server, V2, v2_body(), {})
    assert good.status_code == 200
    assert good.json()["outputs"][0]["data"] == models.iris.predict(np.array([ROW])).tolist()
