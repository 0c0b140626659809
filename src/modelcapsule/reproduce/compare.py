"""Compare a capsule with its re-trained successor: versions, training data, metrics, predictions.

scikit-learn's persistence guide advises keeping the cross-validation score with a model "to check that
the cross-validation score is in the same range as before" when re-building it with newer versions.
This module makes that check: a saved metric holding the scores of several folds defines the range
``mean ± K·std`` (population std of the folds, K = 2 by default); the re-trained model's metric (the mean
of its folds, or its single value) must fall inside it. A metric saved as one number has no spread, so
its range is that number (up to float rounding).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_TOLERANCE",
    "Agreement",
    "DataCheck",
    "MetricCheck",
    "PackageChange",
    "RetrainReport",
    "compare_data",
    "compare_metrics",
    "compare_outputs",
    "compare_packages",
]

DEFAULT_TOLERANCE = 2.0
"""K in ``mean ± K·std``: how many standard deviations of the saved folds a new score may move."""

WITHIN, OUTSIDE, MISSING, NEW, NOT_NUMERIC = "within", "outside", "missing", "new", "not numeric"


@dataclass(frozen=True)
class PackageChange:
    """One package's version when the capsule was saved and in the re-trained capsule."""

    name: str
    then: str | None
    now: str | None

    @property
    def changed(self) -> bool:
        return self.then != self.now


@dataclass(frozen=True)
class DataCheck:
    """Whether the training data the script used now is the data it used then (by fingerprint)."""

    then: str | None
    now: str | None
    then_shape: tuple[int | None, int | None]
    now_shape: tuple[int | None, int | None]

    @property
    def same(self) -> bool | None:
        """True or False when both capsules record a fingerprint, else None (unknown)."""
        if self.then is None or self.now is None:
            return None
        return self.then == self.now


@dataclass(frozen=True)
class MetricCheck:
    """One metric then and now, with its saved range and the verdict."""

    name: str
    then: list[float]
    now: list[float]
    low: float | None
    high: float | None
    verdict: str
    """``within``, ``outside``, ``missing`` (not recorded now), ``new`` (not recorded then: not judged) or
    ``not numeric`` (not judged)."""

    @property
    def then_mean(self) -> float | None:
        return float(np.mean(self.then)) if self.then else None

    @property
    def then_std(self) -> float | None:
        return float(np.std(self.then)) if self.then else None

    @property
    def now_mean(self) -> float | None:
        return float(np.mean(self.now)) if self.now else None

    @property
    def judged(self) -> bool:
        """Whether this metric takes part in the overall verdict."""
        return self.verdict in (WITHIN, OUTSIDE, MISSING)


@dataclass(frozen=True)
class Agreement:
    """How many golden-sample rows the re-trained model predicts as the saved model did, per method."""

    method: str
    rows: int
    equal: int

    @property
    def fraction(self) -> float:
        return self.equal / self.rows if self.rows else 1.0


@dataclass
class RetrainReport:
    """Everything ``capsule retrain`` reports; :attr:`within_range` decides its exit code."""

    name: str
    old: str
    new: str
    script: str
    seconds: float
    tolerance: float
    python: tuple[str | None, str | None]
    packages: list[PackageChange]
    data: DataCheck
    metrics: list[MetricCheck]
    agreement: list[Agreement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def within_range(self) -> bool:
        """True only when at least one metric was judged and every judged metric is within its range."""
        judged = [m for m in self.metrics if m.judged]
        return bool(judged) and all(m.verdict == WITHIN for m in judged)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``capsule retrain --json``)."""
        return {
            "name": self.name,
            "old": self.old,
            "new": self.new,
            "script": self.script,
            "seconds": round(self.seconds, 3),
            "tolerance": self.tolerance,
            "within_range": self.within_range,
            "python": {"then": self.python[0], "now": self.python[1]},
            "packages": [{**asdict(p), "changed": p.changed} for p in self.packages],
            "training_data": {
                "then": self.data.then,
                "now": self.data.now,
                "same": self.data.same,
                "then_shape": list(self.data.then_shape),
                "now_shape": list(self.data.now_shape),
            },
            "metrics": [
                {"name": m.name, "then": m.then, "now": m.now, "then_mean": m.then_mean,
                 "then_std": m.then_std, "now_mean": m.now_mean, "low": m.low, "high": m.high,
                 "verdict": m.verdict}
                for m in self.metrics
            ],
            "golden_sample_agreement": [
                {"method": a.method, "rows": a.rows, "equal": a.equal, "fraction": a.fraction}
                for a in self.agreement
            ],
            "notes": self.notes,
        }


def compare_packages(then: Mapping[str, Any], now: Mapping[str, Any]) -> list[PackageChange]:
    """Versions of every package recorded in either capsule, sorted by name."""
    names = sorted(set(then) | set(now), key=str.lower)
    return [PackageChange(n, _str_or_none(then.get(n)), _str_or_none(now.get(n))) for n in names]


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _shape(data: Mapping[str, Any]) -> tuple[int | None, int | None]:
    def as_int(v: Any) -> int | None:
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    return as_int(data.get("n_samples")), as_int(data.get("n_features"))


def compare_data(then: Mapping[str, Any] | None, now: Mapping[str, Any] | None) -> DataCheck:
    """Compare the ``provenance.training_data`` sections of two manifests."""
    then, now = then or {}, now or {}
    return DataCheck(
        then=_str_or_none(then.get("fingerprint")),
        now=_str_or_none(now.get("fingerprint")),
        then_shape=_shape(then),
        now_shape=_shape(now),
    )


def _numbers(value: Any) -> list[float] | None:
    """A metric as a list of floats (one for a scalar), or None when it is not numeric."""
    items = value if isinstance(value, list | tuple) else [value]
    if not items:
        return None
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
            return None
        out.append(float(item))
    return out


def saved_range(scores: list[float], tolerance: float) -> tuple[float, float]:
    """``mean ± tolerance·std`` of the saved fold scores, widened by float rounding only."""
    mean = float(np.mean(scores))
    spread = tolerance * float(np.std(scores)) if len(scores) > 1 else 0.0
    slack = 1e-9 * max(1.0, abs(mean))
    return mean - spread - slack, mean + spread + slack


def compare_metrics(then: Mapping[str, Any], now: Mapping[str, Any],
                    tolerance: float = DEFAULT_TOLERANCE) -> list[MetricCheck]:
    """Judge every saved metric against its range; metrics only the new capsule has are listed, not judged."""
    if tolerance < 0 or not math.isfinite(tolerance):
        raise ValueError(f"the tolerance must be a finite number ≥ 0, not {tolerance!r}")
    checks = []
    for name in sorted(set(then) | set(now), key=str.lower):
        old, new = _numbers(then.get(name)), _numbers(now.get(name))
        if name not in then:
            checks.append(MetricCheck(name, [], new or [], None, None, NEW))
        elif old is None:
            checks.append(MetricCheck(name, [], new or [], None, None, NOT_NUMERIC))
        elif name not in now or new is None:
            low, high = saved_range(old, tolerance)
            checks.append(MetricCheck(name, old, [], low, high, MISSING))
        else:
            low, high = saved_range(old, tolerance)
            value = float(np.mean(new))
            checks.append(MetricCheck(name, old, new, low, high, WITHIN if low <= value <= high else OUTSIDE))
    return checks


def compare_outputs(method: str, saved: Any, new: Any) -> Agreement:
    """Count rows where the re-trained model's output equals the saved one (floats: ``np.isclose`` with
    the tolerances ``load`` verifies golden samples with)."""
    a, b = np.asarray(saved), np.asarray(new)
    rows = int(a.shape[0]) if a.ndim else 1
    if a.shape != b.shape:
        return Agreement(method, rows, 0)
    if a.ndim == 0:
        a, b = a.reshape(1), b.reshape(1)
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        same = np.isclose(a, b, rtol=1e-7, atol=1e-10, equal_nan=True)
    else:
        same = np.asarray(a.astype(object) == b.astype(object), dtype=bool)
    per_row = np.asarray(same).reshape(rows, -1).all(axis=1)
    return Agreement(method, rows, int(np.count_nonzero(per_row)))
