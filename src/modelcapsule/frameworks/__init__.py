"""The registry of frameworks: one table, filled by one loop, duplicates refused.

Each built-in framework module ends with a ``FRAMEWORKS`` tuple; plug-ins add theirs through the
``modelcapsule.frameworks`` entry-point group. Matching is tried in registration order, so specific
frameworks (XGBoost's scikit-learn wrappers, say) are listed before general ones (scikit-learn).
"""

from __future__ import annotations

from typing import Any

from ..core.extensions import Registry
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

_REGISTRY: Registry[Framework] = Registry("framework", lambda f: isinstance(f, Framework), "FRAMEWORKS",
                                          BUILTIN_MODULES, "modelcapsule.frameworks")


def register_framework(framework: Framework, *, replace: bool = False) -> None:
    """Add a framework to the registry. A second one with the same name is refused unless ``replace``."""
    _REGISTRY.register(framework, replace=replace)


def all_frameworks() -> list[Framework]:
    """Every framework, most specific first (the order ``framework_for`` tries them in)."""
    return _REGISTRY.all()


def framework_for(model: Any) -> Framework:
    """The first registered framework that recognises ``model``."""
    framework = _REGISTRY.first(lambda fw: fw.matches(model))
    if framework is not None:
        return framework
    raise UnsupportedModelError(
        f"no framework knows how to save a {type(model).__module__}.{type(model).__qualname__}; supported: "
        f"{', '.join(_REGISTRY.names())}. Install the matching extra (pip install 'modelcapsule[all]')."
    )


def get_framework(name: str) -> Framework:
    framework = _REGISTRY.get(name)
    if framework is None:
        raise UnsupportedModelError(
            f"this capsule needs the {name!r} framework, which is not available; install "
            f"'modelcapsule[{name}]' (and the framework itself)."
        )
    return framework
