"""``/metrics`` text: our counters, gauges and histograms read back by Prometheus' own parser with the
values the Prometheus client library would expose for the same operations."""

from __future__ import annotations

import prometheus_client as reference
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelcapsule.serving.metrics import Counter, Gauge, Histogram, MetricsRegistry, ServingMetrics


def parsed(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if not s.name.endswith("_created")}  # the library's creation timestamps: not part of ours


def test_the_same_operations_expose_the_same_samples_as_the_prometheus_client() -> None:
    ours = MetricsRegistry()
    theirs = reference.CollectorRegistry()
    odd = 'quote " backslash \\ newline \n end'
    for module, registry in ((None, ours), (reference, theirs)):
        if module is None:
            counter = Counter("m_requests", "Requests.", ["model", "status"], registry)
            gauge = Gauge("m_queued", "Queued.", ["model"], registry)
            histogram = Histogram("m_seconds", "Latency.", ["model"], registry, buckets=(0.001, 0.01, 0.1))
        else:
            counter = module.Counter("m_requests", "Requests.", ["model", "status"], registry=registry)
            gauge = module.Gauge("m_queued", "Queued.", ["model"], registry=registry)
            histogram = module.Histogram("m_seconds", "Latency.", ["model"], registry=registry,
                                         buckets=(0.001, 0.01, 0.1))
        counter.labels("iris", "200").inc()
        counter.labels("iris", "200").inc(2)
        counter.labels(odd, "400").inc()
        gauge.labels("iris").set(5)
        gauge.labels("iris").dec()
        for seconds in (0.0005, 0.001, 0.02, 3.0):
            histogram.labels("iris").observe(seconds)
    assert parsed(ours.expose().decode()) == parsed(reference.generate_latest(theirs).decode())
    assert ours.get_sample_value("m_requests_total", {"model": odd, "status": "400"}) == 1
    assert ours.get_sample_value("m_seconds_bucket", {"model": "iris", "le": "0.001"}) == 2  # le is inclusive
    assert ours.get_sample_value("m_seconds_count", {"model": "iris"}) == 4
    assert ours.get_sample_value("m_requests_total", {"model": "absent", "status": "200"}) is None


def test_a_server_exposes_every_metric_with_help_and_type_even_before_any_request() -> None:
    text = ServingMetrics().registry.expose().decode()
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert families == {
        "modelcapsule_requests": "counter", "modelcapsule_request_seconds": "histogram",
        "modelcapsule_requests_in_flight": "gauge", "modelcapsule_batch_rows": "histogram",
        "modelcapsule_loaded_versions": "gauge", "modelcapsule_load_failures": "counter",
        "modelcapsule_shed_requests": "counter", "modelcapsule_queued_requests": "gauge",
    }


def test_a_label_count_that_does_not_match_is_refused() -> None:
    with pytest.raises(ValueError, match="takes the labels"):
        ServingMetrics().requests.labels("iris")


def test_the_server_does_not_import_the_prometheus_client(subprocess_env: dict[str, str]) -> None:
    import subprocess
    import sys

    code = ("import sys, modelcapsule.serving.server, modelcapsule.serving.app; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prometheus_client'))")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"
