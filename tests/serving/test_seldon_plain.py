"""The classic Flask recipe and Seldon's prediction API, told apart on one /predict route by the body."""

from __future__ import annotations

import numpy as np
import requests

from .conftest import Models, Server


def test_flask_recipe(server: Server, models: Models) -> None:
    r = requests.post(
        f"{server.url}/predict?model=iris",
        json={"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]},
        timeout=10,
    )
    assert r.status_code == 200
    assert r.json() == {
        "prediction": models.iris.predict(np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])).tolist()
    }
    records = requests.post(
        f"{server.url}/predict?model=iris_df",
        timeout=10,
        json={"inputs": models.frame[:2].to_dict(orient="records")},
    )
    assert records.json() == {"prediction": models.iris_df.predict(models.frame[:2]).tolist()}


def test_seldon_ndarray_on_both_paths(server: Server, models: Models) -> None:
    body = {"data": {"names": list(models.frame.columns), "ndarray": models.X[:2].tolist()}}
    for path in ("/api/v1.0/predictions?model=iris_df", "/predict?model=iris_df"):
        doc = requests.post(server.url + path, json=body, timeout=10).json()
        assert set(doc) == {"data", "meta"}
        assert doc["data"]["names"] == ["0", "1", "2"]
        np.testing.assert_allclose(doc["data"]["ndarray"], models.iris_df.predict_proba(models.frame[:2]))


def test_seldon_names_reorder_columns(server: Server, models: Models) -> None:
    reordered = list(reversed(models.frame.columns))
    body = {"data": {"names": reordered, "ndarray": models.frame[reordered][:3].to_numpy().tolist()}}
    doc = requests.post(f"{server.url}/api/v1.0/predictions?model=iris_df", json=body, timeout=10).json()
    np.testing.assert_allclose(doc["data"]["ndarray"], models.iris_df.predict_proba(models.frame[:3]))


def test_seldon_tensor(server: Server, models: Models) -> None:
    body = {"data": {"tensor": {"shape": [2, 4], "values": models.X[:2].ravel().tolist()}}}
    doc = requests.post(f"{server.url}/api/v1.0/predictions?model=iris", json=body, timeout=10).json()
    assert doc["data"]["tensor"]["shape"] == [2, 3]
    np.testing.assert_allclose(
        np.reshape(doc["data"]["tensor"]["values"], (2, 3)), models.iris.predict_proba(models.X[:2])
    )
