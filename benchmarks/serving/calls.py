"""Deterministic per-call costs of the ways to call a tree ensemble: function calls, not seconds.

    python -m benchmarks.serving.calls          # the forest, HistGradientBoosting, GradientBoosting

Timings on a shared machine are noise; the number of Python-level and C-level function calls a
prediction makes (counted with ``sys.setprofile``) is the same on every run and machine with the same
packages, and it is what the per-call overhead of small batches is made of. For each model and each
candidate the tree shortcut chooses from (the model's own method, the per-tree sum, the flat walk)
this prints the calls made by one ``predict_proba`` (or ``predict``) on 1 row and on 8 rows, and the
candidate the shortcut chose when the model was loaded (that choice is timed, so it may differ
between machines; the counts do not).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

sys.setrecursionlimit(10_000)


def count_calls(f: Callable[[Any], Any], X: Any) -> int:
    calls = 0

    def profile(_frame: Any, event: str, _arg: Any) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    f(X)  # warm: first-call caches are not per-call costs
    sys.setprofile(profile)
    try:
        f(X)
    finally:
        sys.setprofile(None)
    return calls


def models() -> dict[str, tuple[Any, np.ndarray[Any, Any]]]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )

    x, y = make_classification(n_samples=20_000, n_features=20, n_informative=10, random_state=0)
    return {
        "RandomForestClassifier(100 trees, depth 10)": (
            RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0).fit(x, y), x),
        "HistGradientBoostingClassifier(100 iterations)": (
            HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x, y), x),
        "GradientBoostingClassifier(100 stages, depth 3)": (
            GradientBoostingClassifier(n_estimators=100, random_state=0).fit(x[:5000], y[:5000]), x),
    }


def calls_table() -> str:
    """The markdown table of calls per candidate and model (see the module doc)."""
    from threadpoolctl import threadpool_limits

    from modelcapsule.frameworks.tree_shortcut import tree_shortcut

    rows = ["| model | candidate | calls, 1 row | calls, 8 rows |", "|---|---|---|---|"]
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (model, x) in models().items():
            shortcut = tree_shortcut(model)
            method = "predict_proba"
            candidates: dict[str, Callable[[Any], Any]] = {"model's own": getattr(model, method)}
            if shortcut is not None:
                from modelcapsule.frameworks.sklearn_forest import forest_shortcut
                from modelcapsule.frameworks.sklearn_trees import flat_methods

                candidates["flat walk"] = flat_methods(model)[1][method]
                per_tree = forest_shortcut(model)
                if per_tree is not None:
                    candidates["per-tree sum"] = per_tree.method(method)
            for label, f in candidates.items():
                rows.append(f"| {name} | {label} | {count_calls(f, x[:1]):,} | {count_calls(f, x[:8]):,} |")
            chosen = shortcut.choice.get(method) if shortcut is not None else None
            rows.append(f"| {name} | chosen at load (small, large calls) | {chosen} | |")
    return "\n".join(rows)


def main() -> None:
    print(calls_table())


if __name__ == "__main__":
    main()
