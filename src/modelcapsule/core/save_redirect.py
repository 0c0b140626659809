"""Redirect a training script's own ``modelcapsule.save(...)`` call to another path.

It lives in the core because ``save`` (a verb) reads it and ``reproduce`` (above the verbs) sets it:
the variable's name is the whole contract between the two, and both may import the core.

``capsule retrain`` runs the stored training script unchanged. The script ends with its usual
``mc.save(model, "model.capsule", ...)``; re-training must not overwrite that capsule. So ``retrain``
sets the environment variable :data:`SAVE_REDIRECT_ENV` to the new path in the script's process, and
``modelcapsule.save`` asks :func:`redirected_target` where to write. Every save in that process goes to
the new path (the last one wins, hence ``overwrite`` is forced on: ``retrain`` owns that path).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["SAVE_REDIRECT_ENV", "redirected_target"]

SAVE_REDIRECT_ENV = "MODELCAPSULE_SAVE_REDIRECT"
"""Name of the environment variable holding the path every ``modelcapsule.save`` call writes to instead."""


def redirected_target(
    path: str | os.PathLike[str], overwrite: bool, environ: Mapping[str, str] | None = None
) -> tuple[Path, bool]:
    """Where ``save(..., path, overwrite=overwrite)`` should really write, and with which ``overwrite``.

    Without the variable (the normal case) this is ``(path, overwrite)`` unchanged.
    """
    target = (os.environ if environ is None else environ).get(SAVE_REDIRECT_ENV)
    if not target:
        return Path(path), overwrite
    return Path(target), True
