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
    from ..core.sample import describe_error, verify_capsule_sample
    from ..errors import CapsuleError
    from ..load import framework_of, load_capsule

    start = time.perf_counter()
    loaded = load_capsule(path, trusted=trusted, trust_code=trust_code, verify=False, on_mismatch="ignore")
    seconds = time.perf_counter() - start
    result: dict[str, Any] = {"load_seconds": seconds, "exact": None, "pid": os.getpid()}
    manifest = loaded.manifest
    if manifest.sample:
        diffs = []
        try:
            framework = framework_of(loaded.model, manifest)
            with open_capsule(path) as reader:
                checks = verify_capsule_sample(reader, manifest.sample, manifest.signature, framework,
                                               loaded.model, exact=True)
        except CapsuleError as exc:
            diffs.append(describe_error(exc))
            checks = []
        diffs += [f"{c.method}: {c.difference.splitlines()[0]}" for c in checks if c.difference is not None]
        result["exact"] = not diffs
        result["detail"] = "; ".join(diffs)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
