"""How many threads the numeric libraries a model runs on may start, said before they load.

OpenMP, OpenBLAS and MKL read their thread-count variables once, when they load: numpy's OpenBLAS starts
its pool (one thread per core) as ``import numpy`` runs, and that pool's threads spin for a while after
starting. A server that sets the variables after numpy is imported has to shrink the pool again through
``threadpoolctl`` and has already paid for it: on two cores, ``import numpy`` costs ~200 ms of CPU with
the pool and ~130 ms without, the difference taken from the cores the server is still starting on.
``capsule serve`` calls :func:`default_numeric_threads` before anything imports numpy; ONNX sessions
follow ``OMP_NUM_THREADS`` too (``frameworks/onnx.py``).
"""

from __future__ import annotations

import os

__all__ = ["NUMERIC_THREAD_VARIABLES", "default_numeric_threads"]

NUMERIC_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def default_numeric_threads(threads: int) -> None:
    """Let numeric libraries loaded from now on start ``threads`` threads, unless the user's environment
    already says how many (a variable that is set is left as it is)."""
    for variable in NUMERIC_THREAD_VARIABLES:
        os.environ.setdefault(variable, str(threads))
