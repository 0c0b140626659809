"""The fresh process of ``advise``: load one capsule cold, time it, and check its golden sample exactly.

Usage: ``python -m modelcapsule.advise.child CAPSULE TRUSTED_JSON TRUST_CODE(0|1)``; prints one JSON line
``{"load_seconds": ..., "exact": true|false|null, "detail": ...}``. The time covers ``load_capsule`` only
(hash checks, audit, construction, and the imports the model itself needs), not the interpreter start.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def main(argv: list[str]) -> int:
    path, trusted, trust_code = argv[0], json.loads(argv[1]), argv[2] == "1"
    from ..core.container import open_capsule
    from ..core.sample import compare_outputs, model_inputs, read_sample
    from ..frameworks import get_framework
    from ..load import load_capsule

    start = time.perf_counter()
    loaded = load_capsule(path, trusted=trusted, trust_code=trust_code, verify=False, on_mismatch="ignore")
    seconds = time.perf_counter() - start
    result: dict[str, Any] = {"load_seconds": seconds, "exact": None, "pid": os.getpid()}
    manifest = loaded.manifest
    if manifest.sample:
        framework = get_framework(manifest.framework)
        with open_capsule(path) as reader:
            inputs, outputs = read_sample(reader, manifest.sample)
        diffs = []
        for method, expected in outputs.items():
            try:
                got = framework.call(loaded.model, method, model_inputs(inputs))
                diff = compare_outputs(expected, got, exact=True)
            except Exception as exc:
                diff = f"{type(exc).__name__}: {exc}"
            if diff is not None:
                diffs.append(f"{method}: {diff.splitlines()[0]}")
        result["exact"] = not diffs
        result["detail"] = "; ".join(diffs)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
