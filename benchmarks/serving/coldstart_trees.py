"""Cold start of ``capsule serve`` on the benchmark forest: its stored flat trees (the default runtime)
against the saved scikit-learn object (``--runtime python``), measured as :mod:`.coldstart` measures it.

    python -m benchmarks.serving.coldstart_trees [--repeats 5]

The forest is the serving benchmark's (100 trees, depth 10, 20k×20), saved with its golden sample (and so
with its stored trees). Starts alternate between the two runtimes so that a burst of load on the shared
machine lands on both; each start is a fresh process with gRPC on, as users run it.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

from .coldstart import ColdStart, cold_start, compile_bytecode, render_cold_starts
from .core import WORK, Endpoint, Spec, body_plain, build_models, capsule_spec, first_plain, ready_post, rows_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    forest, _ = build_models(quick=True)
    compile_bytecode()
    rows = rows_for(forest.x, 1)
    expected = forest.estimator.predict(forest.x[:1])[0]

    def capsule(label: str, *extra: str) -> Callable[[], tuple[Spec, Endpoint]]:
        def make() -> tuple[Spec, Endpoint]:
            spec = capsule_spec(label, forest.capsule, batching=True, grpc=True, extra=list(extra))
            spec.ready = ready_post("/predict", body_plain(rows))
            return spec, Endpoint(label, spec.port, "/predict", body_plain, first_plain)
        return make

    makers = {"capsule serve, --runtime python (the scikit-learn object)": capsule("python", "--runtime", "python"),
              "capsule serve, default runtime (stored flat trees)": capsule("flat")}
    results = {label: ColdStart(label, [], 0, 0, False, False) for label in makers}
    for _ in range(args.repeats):
        for label, make in makers.items():
            one = cold_start(make, rows, expected, 1)
            if one.error is not None:
                raise SystemExit(f"{label}: {one.error}")
            seconds = results[label].seconds + one.seconds
            results[label] = ColdStart(label, seconds, one.rss_mib, one.pss_mib, one.sklearn, one.scipy)
    print(render_cold_starts(list(results.values())))
    medians = [statistics.median(r.seconds) for r in results.values()]
    print(f"\nmedian python / flat: {medians[0] / medians[1]:.2f}×")


if __name__ == "__main__":
    main()
