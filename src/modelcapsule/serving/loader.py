"""Loading one capsule for serving: the safe loader, the golden-sample check, and the predictor.

The loader is a plain callable so that the data plane does not care how a capsule becomes a
predictor; the default one goes through :func:`modelcapsule.load.load_capsule` with ``verify=True``, so
a version is only ever served after it reproduced its golden sample.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

from ..core.manifest import Manifest
from ..types import Predictor

__all__ = ["Loader", "load_for_serving"]

Loader = Callable[[Path], tuple[Manifest, Predictor]]
log = logging.getLogger("modelcapsule.serving")


def load_for_serving(
    path: Path, *, trusted: tuple[str, ...] = (), verify: bool = True, runtime: str = "flat"
) -> tuple[Manifest, Predictor]:
    """Load, check and verify ``path``; environment drift is logged, not raised (the sample decides)."""
    from ..load import load_capsule

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_capsule(path, trusted=trusted, verify=verify, on_mismatch="warn", runtime=runtime)
    for warning in caught:
        log.warning("%s: %s", path, warning.message)
    return loaded.manifest, loaded.predictor
