"""How many threads the numeric libraries a model runs on may start, said before they load.

OpenMP, OpenBLAS and MKL read their thread-count variables once, when they load: numpy's OpenBLAS starts
its pool (one thread per core) as ``import numpy`` runs, and that pool's threads spin for a while after
starting. A server that sets the variables after numpy is imported has to shrink the pool again through
``threadpoolctl`` and has already paid for it: on two cores, ``import numpy`` costs ~200 ms of CPU with
the pool and ~130 ms without, the difference taken from the cores the server is still starting on.
``capsule serve`` calls :func:`default_numeric_threads` before anything imports numpy; ONNX sessions
follow ``OMP_NUM_THREADS`` too (``frameworks/onnx.py``). When it did so in time, the server need not ask
``threadpoolctl`` to shrink pools that never grew (:func:`limited_before_load`), which saves its import
and its walk of every loaded library (~5 ms of the start).
"""

from __future__ import annotations

import os
import sys

__all__ = ["NUMERIC_THREAD_VARIABLES", "default_numeric_threads", "limited_before_load"]

NUMERIC_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

NUMERIC_MODULES = ("numpy", "scipy", "sklearn", "torch", "onnxruntime", "xgboost", "lightgbm", "tensorflow")
"""The Python packages whose extension modules bring BLAS or OpenMP into a process: until one of them is
imported, no thread pool of those libraries exists (the standard library loads none)."""

_limited_before_load: int | None = None


def default_numeric_threads(threads: int) -> None:
    """Let numeric libraries loaded from now on start ``threads`` threads, unless the user's environment
    already says how many (a variable that is set is left as it is)."""
    global _limited_before_load
    for variable in NUMERIC_THREAD_VARIABLES:
        os.environ.setdefault(variable, str(threads))
    if _limited_before_load is None and not any(name in sys.modules for name in NUMERIC_MODULES):
        every = all(os.environ[variable] == str(threads) for variable in NUMERIC_THREAD_VARIABLES)
        _limited_before_load = threads if every else 0


def limited_before_load(threads: int) -> bool:
    """Whether every numeric library in this process was loaded under ``threads`` threads: the variables
    said exactly that before any of :data:`NUMERIC_MODULES` was imported (and the first call of
    :func:`default_numeric_threads` saw to it)."""
    return _limited_before_load == threads and all(
        os.environ.get(variable) == str(threads) for variable in NUMERIC_THREAD_VARIABLES)
