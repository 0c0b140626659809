"""Metrics from the registry the app was given, the models page, and the OpenAPI description."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from modelcapsule.serving import MetricsRegistry, ServingMetrics

from .conftest import Models, Server


def samples(server: Server) -> dict[str, float]:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name + str(sorted(s.labels.items()))] = s.value
    return out


def test_metrics_count_requests_batches_and_loaded_versions(server: Server, models: Models) -> None:
    for _ in range(3):
        requests.post(f"{server.url}/v1/models/iris:predict", json={"instances": models.X[:2].tolist()}, timeout=10)
    got = samples(server)
    key = "modelcapsule_requests_total" + str(
        sorted({"model": "iris", "version": "1", "protocol": "tfserving", "status": "200"}.items())
    )
    assert got[key] >= 3
    assert any(k.startswith("modelcapsule_request_seconds_bucket") and "'tfserving'" in k for k in got)
    assert any(k.startswith("modelcapsule_batch_rows_count") and "'iris'" in k and v >= 3 for k, v in got.items())
    assert got["modelcapsule_loaded_versions" + str([("model", "iris")])] == 1


def test_metrics_live_on_the_registry_passed_in() -> None:
    first, second = ServingMetrics(MetricsRegistry()), ServingMetrics(MetricsRegistry())
    first.load_failures.labels("m").inc()
    assert first.registry.get_sample_value("modelcapsule_load_failures_total", {"model": "m"}) == 1
    assert second.registry.get_sample_value("modelcapsule_load_failures_total", {"model": "m"}) is None


def test_models_page_lists_models_versions_and_a_form(server: Server) -> None:
    page = requests.get(f"{server.url}/", timeout=10)
    assert page.headers["content-type"].startswith("text/html")
    for text in ("iris_df", "half_plus_three", "AVAILABLE"):
        assert text in page.text
    card = requests.get(f"{server.url}/models/iris_df/versions/1", timeout=10).text
    for text in ("sepal_length", "<form", "predict_proba"):
        assert text in card


def test_openapi_describes_every_protocol(server: Server) -> None:
    doc = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.")
    for path in (
        "/v2/models/iris/infer",
        "/v2/models/iris/versions/1/infer",
        "/v1/models/mixed:predict",
        "/v1/models/half_plus_three:regress",
        "/metrics",
    ):
        assert path in doc["paths"]
    # several models: the routes that take ?model=NAME cannot tie a body to it, so they are left out
    assert "/predict" not in doc["paths"] and "/invocations" not in doc["paths"]


def test_unknown_model_names_do_not_create_metric_series(server: Server) -> None:
    for i in range(3):
        requests.post(f"{server.url}/v2/models/made-up-{i}/infer", json={}, timeout=10)
    assert "made-up" not in requests.get(f"{server.url}/metrics", timeout=10).text
