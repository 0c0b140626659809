"""Serving benchmark: ``capsule serve`` against the servers a scikit-learn user would pick instead.

    python -m benchmarks.serving            # the full run
    python -m benchmarks.serving --quick    # a smoke run: every server starts and answers correctly

Modules, one per concern: :mod:`.core` (the run, the load points, the report), :mod:`.venvs` (one
virtualenv per peer), :mod:`.peers` (how each peer is started, in its defaults and its best
configuration), :mod:`.coldstart` (process start to first answered prediction, and RSS),
:mod:`.instructions` (deterministic per-call instruction counts of the model call under callgrind).
"""

from .core import (
    ROOT,
    WORK,
    Check,
    Measurement,
    main,
    process_tree,
    pss_bytes,
    render_checks,
    render_row,
    wrk_script,
)

__all__ = ["ROOT", "WORK", "Check", "Measurement", "main", "process_tree", "pss_bytes", "render_checks",
           "render_row", "wrk_script"]
