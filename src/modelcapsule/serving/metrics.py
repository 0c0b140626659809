"""Prometheus metrics of one server, registered on a registry the caller passes in (no global state)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ServingMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServingMetrics:
    """Requests, latencies, batch sizes, loaded versions and load failures."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "modelcapsule_requests",
            "Requests answered, by model, version, protocol and HTTP status (for gRPC, the one its code maps to).",
            ["model", "version", "protocol", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelcapsule_request_seconds",
            "Time from request to response, by model, version and protocol.",
            ["model", "version", "protocol"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "modelcapsule_requests_in_flight",
            "Inference requests being answered now, by protocol.",
            ["protocol"],
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "modelcapsule_batch_rows",
            "Rows per model call (adaptive batching merges requests).",
            ["model", "version"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.loaded = Gauge(
            "modelcapsule_loaded_versions",
            "Model versions loaded and available.",
            ["model"],
            registry=self.registry,
        )
        self.load_failures = Counter(
            "modelcapsule_load_failures",
            "Versions that failed to load or verify.",
            ["model"],
            registry=self.registry,
        )
        self.shed = Counter(
            "modelcapsule_shed_requests",
            "Inference requests refused without computing them: reason overloaded (the model's queue was "
            "full, 503) or deadline (it expired before the model ran it, 504).",
            ["model", "reason"],
            registry=self.registry,
        )
        self.queued = Gauge(
            "modelcapsule_queued_requests",
            "Inference requests waiting for or in a model call, by model (this worker).",
            ["model"],
            registry=self.registry,
        )
        self._answered: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}  # labelled children, made once
        self._in_flight: dict[str, Any] = {}

    def count(self, model: str, version: str, protocol: str, status: int, seconds: float) -> None:
        """One answered request: its count by outcome and its latency (the same labels for every transport)."""
        key = (model, version, protocol, status)
        pair = self._answered.get(key)
        if pair is None:
            pair = self._answered[key] = (
                self.requests.labels(model, version, protocol, str(status)),
                self.latency.labels(model, version, protocol),
            )
        pair[0].inc()
        pair[1].observe(seconds)

    def in_flight_of(self, protocol: str) -> Any:
        """The in-flight gauge of one protocol (looked up once)."""
        gauge = self._in_flight.get(protocol)
        if gauge is None:
            gauge = self._in_flight[protocol] = self.in_flight.labels(protocol)
        return gauge
