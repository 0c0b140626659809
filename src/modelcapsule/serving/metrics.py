"""Prometheus metrics of one server, kept on a registry the caller passes in (no global state).

The counters, gauges and histograms are our own, written out in Prometheus' text exposition format
0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/): a server needs eight labelled
metrics, and the client library costs a serving process 60 modules and ~3.5 MiB of memory before it
counts anything (measured; the ONNX-only server's memory target is 100 MiB). Every value change holds
its own lock: the event loop and the batching threads both count.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from typing import ClassVar

__all__ = ["CONTENT_TYPE", "MetricsRegistry", "ServingMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The media type of :meth:`MetricsRegistry.expose`'s text."""

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

Sample = tuple[str, dict[str, str], float]


def _number(value: float) -> str:
    """A sample value or bucket bound as Prometheus writes it: ``+Inf``, ``NaN``, else Python's repr."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Value:
    """One labelled series of a counter or gauge."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value -= amount

    def set(self, value: float) -> None:
        with self._lock:
            self.value = float(value)


class _Buckets:
    """One labelled series of a histogram: a count per bucket (not cumulative: summed on exposition)."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self._lock = threading.Lock()
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        index = bisect_left(self.bounds, value)  # bucket "le" holds every value <= its bound
        with self._lock:
            self.counts[index] += 1
            self.sum += value


class _Family:
    """A metric and its series, one per combination of label values (made on first use)."""

    kind: ClassVar[str]
    suffix: ClassVar[str] = ""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: MetricsRegistry) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._series: dict[tuple[str, ...], _Value | _Buckets] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def _new(self) -> _Value | _Buckets:
        return _Value()

    def _child(self, values: tuple[str, ...]) -> _Value | _Buckets:
        series = self._series.get(values)
        if series is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes the labels {self.labelnames}, not {len(values)} value(s)")
            with self._lock:
                series = self._series.setdefault(values, self._new())
        return series

    def _labels(self, values: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(self.labelnames, values, strict=True))

    def samples(self) -> Iterator[Sample]:
        for values, series in list(self._series.items()):
            assert isinstance(series, _Value)
            yield self.name + self.suffix, self._labels(values), series.value


class Counter(_Family):
    kind = "counter"
    suffix = "_total"

    def labels(self, *values: str) -> _Value:
        series = self._child(tuple(str(v) for v in values))
        assert isinstance(series, _Value)
        return series


class Gauge(Counter):
    kind = "gauge"
    suffix = ""


class Histogram(_Family):
    kind = "histogram"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: MetricsRegistry,
                 buckets: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in buckets)
        super().__init__(name, documentation, labelnames, registry)

    def _new(self) -> _Buckets:
        return _Buckets(self.bounds)

    def labels(self, *values: str) -> _Buckets:
        series = self._child(tuple(str(v) for v in values))
        assert isinstance(series, _Buckets)
        return series

    def samples(self) -> Iterator[Sample]:
        for values, series in list(self._series.items()):
            assert isinstance(series, _Buckets)
            labels = self._labels(values)
            with series._lock:
                counts, total = list(series.counts), series.sum
            running = 0
            for bound, count in zip((*self.bounds, math.inf), counts, strict=True):
                running += count
                yield f"{self.name}_bucket", {**labels, "le": _number(bound)}, float(running)
            yield f"{self.name}_count", labels, float(running)
            yield f"{self.name}_sum", labels, total


class MetricsRegistry:
    """The metrics of one server (or one test): written out by :meth:`expose` for ``/metrics``."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}

    def register(self, family: _Family) -> None:
        if family.name in self._families:
            raise ValueError(f"a metric named {family.name!r} is already registered")
        self._families[family.name] = family

    def samples(self) -> Iterator[Sample]:
        for family in self._families.values():
            yield from family.samples()

    def get_sample_value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The value of the sample ``name`` with exactly ``labels``, or None when there is none yet."""
        wanted = dict(labels or {})
        return next((value for sample, got, value in self.samples() if sample == name and got == wanted), None)

    def expose(self) -> bytes:
        """Every metric in the text exposition format (``# HELP``, ``# TYPE``, then its samples)."""
        lines: list[str] = []
        for family in self._families.values():
            name = family.name + family.suffix
            documentation = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
            lines += [f"# HELP {name} {documentation}", f"# TYPE {name} {family.kind}"]
            for sample, labels, value in family.samples():
                pairs = ",".join(f'{key}="{_label_value(val)}"' for key, val in labels.items())
                lines.append(f"{sample}{{{pairs}}} {_number(value)}" if pairs else f"{sample} {_number(value)}")
        return ("\n".join(lines) + "\n").encode()


class ServingMetrics:
    """Requests, latencies, batch sizes, loaded versions and load failures."""

    def __init__(self, registry: MetricsRegistry | None = None) -> None:
        self.registry = registry if registry is not None else MetricsRegistry()
        self.requests = Counter(
            "modelcapsule_requests",
            "Requests answered, by model, version, protocol and HTTP status (for gRPC, the one its code maps to).",
            ["model", "version", "protocol", "status"],
            self.registry,
        )
        self.latency = Histogram(
            "modelcapsule_request_seconds",
            "Time from request to response, by model, version and protocol.",
            ["model", "version", "protocol"],
            self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.in_flight = Gauge(
            "modelcapsule_requests_in_flight",
            "Inference requests being answered now, by protocol.",
            ["protocol"],
            self.registry,
        )
        self.batch_rows = Histogram(
            "modelcapsule_batch_rows",
            "Rows per model call (adaptive batching merges requests).",
            ["model", "version"],
            self.registry,
            buckets=_BATCH_BUCKETS,
        )
        self.loaded = Gauge(
            "modelcapsule_loaded_versions",
            "Model versions loaded and available.",
            ["model"],
            self.registry,
        )
        self.load_failures = Counter(
            "modelcapsule_load_failures",
            "Versions that failed to load or verify.",
            ["model"],
            self.registry,
        )
        self.shed = Counter(
            "modelcapsule_shed_requests",
            "Inference requests refused without computing them: reason overloaded (the model's queue was "
            "full, 503) or deadline (it expired before the model ran it, 504).",
            ["model", "reason"],
            self.registry,
        )
        self.queued = Gauge(
            "modelcapsule_queued_requests",
            "Inference requests waiting for or in a model call, by model (this worker).",
            ["model"],
            self.registry,
        )
        self._answered: dict[tuple[str, str, str, int], tuple[_Value, _Buckets]] = {}  # made once per labels
        self._in_flight: dict[str, _Value] = {}

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

    def in_flight_of(self, protocol: str) -> _Value:
        """The in-flight gauge of one protocol (looked up once)."""
        gauge = self._in_flight.get(protocol)
        if gauge is None:
            gauge = self._in_flight[protocol] = self.in_flight.labels(protocol)
        return gauge
