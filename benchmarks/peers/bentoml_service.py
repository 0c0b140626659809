"""The forest as a BentoML 1.4 service (run in its own venv by ``benchmarks.serving``).

    BENCH_MODEL=model.joblib [BENCH_BEST=1] bentoml serve benchmarks.peers.bentoml_service:Forest --port P

``POST /predict`` with ``{"rows": [[...], ...]}`` answers the list of predicted classes. Defaults: one
API call per request. ``BENCH_BEST=1``: BentoML's adaptive batching (``batchable=True``, at most 32
rows, as ``capsule serve``'s), as its documentation recommends for this kind of model. Its
``max_latency_ms`` is left at its default: it is not a batching wait but a deadline past which BentoML
answers 503, and at 2 ms it turned away most requests at c=16 in a smoke run.
"""

from __future__ import annotations

import os

import bentoml
import joblib
import numpy as np

BEST = os.environ.get("BENCH_BEST") == "1"


@bentoml.service
class Forest:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL"])

    if BEST:
        @bentoml.api(batchable=True, batch_dim=0, max_batch_size=32)
        def predict(self, rows: np.ndarray) -> np.ndarray:
            return self.model.predict(rows)
    else:
        @bentoml.api
        def predict(self, rows: np.ndarray) -> np.ndarray:
            return self.model.predict(rows)
