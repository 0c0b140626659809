"""The forest behind LitServe (run in its own venv by ``benchmarks.serving``).

    BENCH_MODEL=model.joblib [BENCH_BEST=1] python -m benchmarks.peers.litserve_app PORT

``POST /predict`` with ``{"rows": [[...], ...]}`` answers ``{"prediction": [...]}``. Defaults:
``LitServer(api)``. ``BENCH_BEST=1``: LitServe's batching (``max_batch_size=32``, ``batch_timeout``
2 ms, the same settings as ``capsule serve``'s), rows of all batched requests predicted in one call.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import joblib
import litserve as ls
import numpy as np

BEST = os.environ.get("BENCH_BEST") == "1"


class ForestAPI(ls.LitAPI):
    def setup(self, device: Any) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL"])

    def decode_request(self, request):  # type: ignore[no-untyped-def]  # unannotated: LitServe reads the JSON body
        return np.asarray(request["rows"], dtype=np.float64)

    def batch(self, inputs: Any) -> Any:
        return inputs  # a list of (n_i, width) arrays: predicted together in predict

    def predict(self, x: Any) -> Any:
        if isinstance(x, list):
            sizes = [len(part) for part in x]
            predictions = self.model.predict(np.concatenate(x))
            return np.split(predictions, np.cumsum(sizes)[:-1])
        return self.model.predict(x)

    def unbatch(self, output: Any) -> Any:
        return list(output)

    def encode_response(self, output):  # type: ignore[no-untyped-def]  # unannotated: a JSON response
        return {"prediction": np.asarray(output).tolist()}


if __name__ == "__main__":
    port = int(sys.argv[1])
    options: dict[str, Any] = {"max_batch_size": 32, "batch_timeout": 0.002} if BEST else {}
    server = ls.LitServer(ForestAPI(**options), accelerator="cpu")
    server.run(port=port, host="127.0.0.1", generate_client_file=False)
