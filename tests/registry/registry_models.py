"""A function outside the default trust policy, for capsules that need an explicit trust name."""

from __future__ import annotations

import numpy as np


def doubled(x: np.ndarray) -> np.ndarray:
    return np.asarray(x) * 2.0
