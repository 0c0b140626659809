"""The registry of frameworks: one table, filled by one loop, duplicates refused.

Each built-in framework module ends with a ``FRAMEWORKS`` tuple; plug-ins add theirs through the
``modelcapsule.frameworks`` entry-point group. Matching is tried in registration order, so specific
frameworks (XGBoost's scikit-learn wrappers, say) are listed before general ones (scikit-learn).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from ..errors import UnsupportedModelError
from .base import Framework

__all__ = ["BUILTIN_MODULES", "Framework", "all_frameworks", "framework_for", "get_framework",
           "register_framework"]

BUILTIN_MODULES = (
    "modelcapsule.frameworks.keras", "modelcapsule.frameworks.torch", "modelcapsule.frameworks.xgboost",
    "modelcapsule.frameworks.lightgbm", "modelcapsule.frameworks.onnx",
    "modelcapsule.frameworks.sklearn",
)
"""Modules whose ``FRAMEWORKS`` tables are registered on first use, most specific first."""

_REGISTRY: dict[str, Framework] = {}
_loaded = False


def register_framework(framework: Framework, *, replace: bool = False) -> None:
    """Add a framework to the registry. A second one with the same name is refused unless ``replace``."""
    if not isinstance(framework, Framework):
        raise TypeError(f"{framework!r} does not implement modelcapsule.frameworks.Framework")
    if framework.name in _REGISTRY and not replace:
        raise ValueError(f"a framework named {framework.name!r} is already registered")
    _REGISTRY[framework.name] = framework


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    modules = list(BUILTIN_MODULES) + [ep.value for ep in entry_points(group="modelcapsule.frameworks")]
    for name in modules:
        for fw in getattr(importlib.import_module(name), "FRAMEWORKS", ()):
            if fw.name not in _REGISTRY:
                register_framework(fw)


def all_frameworks() -> list[Framework]:
    _ensure_loaded()
    return list(_REGISTRY.values())


def framework_for(model: Any) -> Framework:
    """The first registered framework that recognises ``model``."""
    for fw in all_frameworks():
        if fw.matches(model):
            return fw
    raise UnsupportedModelError(
        f"no framework knows how to save a {type(model).__module__}.{type(model).__qualname__}; supported: "
        f"{', '.join(_REGISTRY)}. Install the matching extra (pip install 'modelcapsule[all]')."
    )


def get_framework(name: str) -> Framework:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnsupportedModelError(
            f"this capsule needs the {name!r} framework, which is not available; install "
            f"'modelcapsule[{name}]' (and the framework itself)."
        ) from None
