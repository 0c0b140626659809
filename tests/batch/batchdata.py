"""Shared helpers of the batch scoring tests: the feature names, a saved capsule, data frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FEATURES = ["a", "b", "c", "d"]


@dataclass(frozen=True)
class Saved:
    """A capsule on disk and the fitted model it was saved from."""

    path: Path
    model: Any


def make_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))).round(4), columns=FEATURES)
    frame.insert(0, "id", np.arange(1000, 1000 + n))
    return frame


def log1p_abs(x: Any) -> Any:
    """A user-defined transform: a pipeline using it needs ``--trust batchdata.log1p_abs`` to load."""
    return np.log1p(np.abs(x))
