"""The fastest proven way to call a scikit-learn tree ensemble, chosen per model when it is loaded.

Candidates for each prediction method: the model's own method; the flat walk over all trees at once
(:mod:`.tree_runtime`, :mod:`.sklearn_trees`); for forests, the per-tree sum without joblib
(:mod:`.sklearn_forest`). At construction (load time, so ``--workers`` share what is built here):

1. every candidate other than the model's own runs on probe rows built from the ensemble's split
   thresholds (values on, just below and just above them, and NaN where the model accepts it) and
   is kept only if its outputs equal, bit for bit, the model's own method run sequentially;
2. the kept candidates and the model's own method are timed on 1 row and on 64 rows, and each method
   uses the fastest for small calls (up to :data:`SMALL_ROWS` rows) and for larger ones.

Anything unsure goes to the model's own method: a probe that raises, any differing bit, an input the
flat walk does not take (sparse). Large batches of a forest fitted with ``n_jobs != 1`` keep
scikit-learn's threads. :attr:`TreeShortcut.choice` says what was chosen (``python -m
benchmarks.serving`` prints it).
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .sklearn_forest import PARALLEL_ROWS, _effective_jobs, _identical, forest_shortcut
from .sklearn_trees import Unsupported, family, flat_methods
from .tree_runtime import FlatTrees

__all__ = ["SMALL_ROWS", "TreeShortcut", "probe_rows", "tree_shortcut"]

log = logging.getLogger(__name__)

SMALL_ROWS = 16
"""Calls with up to this many rows use the choice timed on 1 row; larger ones the one timed on 64."""

_PROBE_ROWS = 48
_TIMED_ROWS = (1, 64)
_TIMING_BUDGET_S = 0.005
"""Each candidate is timed at most this long per size (at least twice)."""

Method = Callable[[Any], Any]


def tree_shortcut(model: Any) -> TreeShortcut | None:
    """The shortcut for a fitted ensemble of a supported class, or None (then call the model itself)."""
    found = family(model)
    if found is None:
        return None
    try:
        shortcut = TreeShortcut(model, found[0])
    except Exception as exc:  # a shortcut is an optimisation: never a reason for a load to fail
        log.warning("tree shortcut off for %s: building it raised %r", type(model).__name__, exc)
        return None
    return shortcut if shortcut.methods else None


class TreeShortcut:
    """Per method, the fastest candidate proven identical to the model's own (see the module docstring)."""

    def __init__(self, model: Any, kind: str) -> None:
        self.model = model
        self.kind = kind
        self.choice: dict[str, tuple[str, str]] = {}
        """Method name → (candidate for small calls, candidate for large ones)."""
        self.timings: dict[str, dict[str, list[float]]] = {}
        """Method name → candidate → seconds per call at each of :data:`_TIMED_ROWS`."""
        self.methods: dict[str, Method] = {}
        self._parallel = kind == "forest" and _effective_jobs(model) > 1
        candidates = self._candidates()
        if candidates:
            from threadpoolctl import threadpool_limits  # a scikit-learn dependency

            with threadpool_limits(1):  # as served (``--threads 1``); OpenMP spinning skews timings
                self._choose(candidates)

    def method(self, name: str) -> Method | None:
        """A replacement for the model's method ``name``, or None where the model's own is best."""
        return self.methods.get(name)

    def _candidates(self) -> dict[str, dict[str, Method]]:
        found: dict[str, dict[str, Method]] = {}
        try:
            self.flat, flat = flat_methods(self.model)
        except Unsupported as exc:
            log.info("flat tree walk off for %s: %s", type(self.model).__name__, exc)
            flat = {}
        for name, compute in flat.items():
            found.setdefault(name, {})["flat"] = compute
        per_tree = forest_shortcut(self.model) if self.kind == "forest" else None
        if per_tree is not None:
            for name in ("predict", "predict_proba"):
                method = per_tree.method(name)
                if method is not None:
                    found.setdefault(name, {})["per-tree"] = method
        return found

    def _choose(self, candidates: dict[str, dict[str, Method]]) -> None:
        reference = copy.copy(self.model)  # shares the fitted state; only n_jobs differs
        if hasattr(reference, "n_jobs"):
            reference.n_jobs = 1
        probes = _probe_sets(self)
        for name, options in candidates.items():
            theirs: Method = getattr(reference, name)
            proven = {label: f for label, f in options.items() if _same(f, theirs, probes, self.model, label)}
            if not proven:
                continue
            own: Method = getattr(self.model, name)
            timed = {**proven, "model": own}
            rows = _tile(probes[0], max(_TIMED_ROWS))
            seconds: dict[str, list[float]] = {}
            for label, f in timed.items():  # the model's own last: cut short when clearly slower
                bests = [min((s[i] for s in seconds.values()), default=float("inf"))
                         for i in range(len(_TIMED_ROWS))]
                seconds[label] = [_seconds(f, rows[:n], 5 * best) for n, best in zip(_TIMED_ROWS, bests, strict=True)]
            small = min(seconds, key=lambda label: seconds[label][0])
            large = min(seconds, key=lambda label: seconds[label][1])
            self.timings[name] = seconds
            self.choice[name] = (small, large)
            if (small, large) != ("model", "model"):
                self.methods[name] = self._dispatch(timed[small], timed[large], own)
        log.info("tree shortcut for %s: %s", type(self.model).__name__, self.choice)

    def _dispatch(self, small: Method, large: Method, own: Method) -> Method:
        parallel = self._parallel

        def call(X: Any) -> Any:
            rows = X.shape[0] if hasattr(X, "shape") else len(X)
            if rows <= SMALL_ROWS:
                return small(X)
            if parallel and rows >= PARALLEL_ROWS:
                return own(X)
            return large(X)

        return call


def _same(ours: Method, theirs: Method, probes: list[Any], model: Any, label: str) -> bool:
    for X in probes:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # feature-name warnings: probes are bare arrays
                expected = theirs(X)
        except Exception as exc:  # the model refuses these rows (NaN where it takes none): nothing to compare
            log.debug("probe rows refused by %s: %s", type(model).__name__, exc)
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = ours(X)
        except Exception as exc:
            log.info("%s off for %s: the probe raised %s", label, type(model).__name__, exc)
            return False
        if not _identical(got, expected):
            log.warning("%s off for %s: its outputs differ from scikit-learn's on probe rows",
                        label, type(model).__name__)
            return False
    return True


def _probe_sets(shortcut: TreeShortcut) -> list[np.ndarray[Any, Any]]:
    return probe_rows(int(shortcut.model.n_features_in_), getattr(shortcut, "flat", None))


def probe_rows(n_features: int, flat: FlatTrees | None) -> list[np.ndarray[Any, Any]]:
    """Rows on, below and above the split thresholds of ``flat``; the same rows in float32; the same rows
    with NaN in a third of the cells."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(_PROBE_ROWS, n_features))
    if flat is not None:
        features, thresholds = flat.split_nodes()
        for f in range(n_features):
            values = thresholds[(features == f) & np.isfinite(thresholds)]
            if values.size:
                picks = rng.choice(values, size=_PROBE_ROWS)
                nudge = rng.choice([-1.0, 0.0, 1.0], size=_PROBE_ROWS) * 1e-3 * (1.0 + np.abs(picks))
                X[:, f] = picks + nudge
    with_nan = X.copy()
    with_nan[rng.random(X.shape) < 0.33] = np.nan
    return [X, X.astype(np.float32), with_nan]


def _tile(X: np.ndarray[Any, Any], rows: int) -> np.ndarray[Any, Any]:
    return np.resize(X, (rows, X.shape[1]))


def _seconds(f: Method, X: Any, enough: float = float("inf")) -> float:
    """Best time per call of ``f(X)``: at least twice within the timing budget, or once when the
    first call already took more than ``enough`` seconds (five times the best candidate's)."""
    best = float("inf")
    deadline = time.perf_counter() + _TIMING_BUDGET_S
    for attempt in range(50):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f(X)
        end = time.perf_counter()
        best = min(best, end - start)
        if best > enough or (attempt >= 1 and end > deadline):
            break
    return best
