"""The forest on KServe's Python ModelServer, as its scikit-learn server does it (own venv).

    BENCH_MODEL=model.joblib [BENCH_BEST=1] python -m benchmarks.peers.kserve_model PORT

A ``kserve.Model`` that loads the joblib file and calls ``predict`` on the V1 ``instances``, served at
``POST /v1/models/forest:predict`` → ``{"predictions": [...]}``. Defaults: one worker. The Python
ModelServer has no request batching of its own (KServe batches in its Knative agent, not here), so
``BENCH_BEST=1`` runs it with 2 workers, one per core.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import joblib
import numpy as np
from kserve import Model, ModelServer

BEST = os.environ.get("BENCH_BEST") == "1"


class Forest(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.model: Any = None
        self.load()

    def load(self) -> bool:
        self.model = joblib.load(os.environ["BENCH_MODEL"])
        self.ready = True
        return self.ready

    def predict(self, payload: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        rows = np.asarray(payload["instances"], dtype=np.float64)
        return {"predictions": self.model.predict(rows).tolist()}


if __name__ == "__main__":
    port = int(sys.argv[1])
    server = ModelServer(http_port=port, grpc_port=int(sys.argv[2]) if len(sys.argv) > 2 else port + 1,
                         enable_grpc=False, workers=2 if BEST else 1)
    server.start([Forest("forest")])
