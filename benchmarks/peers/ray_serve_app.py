"""The forest as a plain Ray Serve deployment (run in its own venv by ``benchmarks.serving``).

    BENCH_MODEL=model.joblib [BENCH_BEST=1] python -m benchmarks.peers.ray_serve_app PORT

Starts a local Ray cluster, deploys, and serves ``POST /predict`` with ``{"rows": [[...], ...]}`` →
``{"prediction": [...]}`` until killed. Defaults: one replica, one call per request. ``BENCH_BEST=1``:
``@serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)``, the same settings as ``capsule serve``'s.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import joblib
import numpy as np
from ray import serve
from starlette.requests import Request

BEST = os.environ.get("BENCH_BEST") == "1"


@serve.deployment
class Forest:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL"])

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def batched(self, parts: list[np.ndarray]) -> list[list[Any]]:
        sizes = [len(p) for p in parts]
        predictions = self.model.predict(np.concatenate(parts))
        return [p.tolist() for p in np.split(predictions, np.cumsum(sizes)[:-1])]

    async def __call__(self, request: Request) -> dict[str, Any]:
        rows = np.asarray((await request.json())["rows"], dtype=np.float64)
        if BEST:
            return {"prediction": await self.batched(rows)}
        return {"prediction": self.model.predict(rows).tolist()}


if __name__ == "__main__":
    port = int(sys.argv[1])
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(Forest.bind(), route_prefix="/predict")
    while True:
        time.sleep(3600)
