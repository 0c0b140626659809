"""MLflow's scoring protocol: every JSON form and CSV, plus its health routes."""

from __future__ import annotations

import requests

from .conftest import Models, Server


def test_every_json_form(server: Server, models: Models) -> None:
    frame = models.frame[40:44]
    expected = {"predictions": models.iris_df.predict(frame).tolist()}
    url = f"{server.url}/invocations?model=iris_df"
    bodies = [
        {"dataframe_split": frame.to_dict(orient="split")},
        {"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}},
        {"dataframe_records": frame.to_dict(orient="records")},
        {"instances": frame.to_dict(orient="records")},
        {"inputs": frame.to_numpy().tolist()},
    ]
    for body in bodies:
        body.get("dataframe_split", {}).pop("index", None)
        r = requests.post(url, json=body, timeout=10)
        assert r.status_code == 200, (body, r.text)
        assert r.json() == expected


def test_csv(server: Server, models: Models) -> None:
    frame = models.frame[60:63]
    r = requests.post(
        f"{server.url}/invocations?model=iris_df",
        data=frame.to_csv(index=False),
        timeout=10,
        headers={"Content-Type": "text/csv"},
    )
    assert r.json() == {"predictions": models.iris_df.predict(frame).tolist()}


def test_health_routes(server: Server) -> None:
    for path in ("/ping", "/health"):
        assert requests.get(server.url + path, timeout=10).status_code == 200
    assert requests.get(server.url + "/version", timeout=10).text.strip()
