"""The registry of formats: one table, filled by one loop, duplicates refused.

Each built-in format module ends with a ``FORMATS`` tuple; third-party packages add theirs through the
``modelcapsule.formats`` entry-point group (each entry point names a module with a ``FORMATS`` tuple).
"""

from __future__ import annotations

from pathlib import Path

from ..core.extensions import Registry
from ..errors import UnsupportedModelError
from .base import Format, LoadOptions, MemberSink, MemberSource, SaveResult

__all__ = [
    "BUILTIN_MODULES", "Format", "LoadOptions", "MemberSink", "MemberSource", "SaveResult", "all_formats",
    "format_for_file", "get_format", "register_format",
]

BUILTIN_MODULES = (
    "modelcapsule.formats.safepickle",
    "modelcapsule.formats.skops",
    "modelcapsule.formats.pickle",
    "modelcapsule.formats.joblib",
    "modelcapsule.formats.cloudpickle",
    "modelcapsule.formats.safetensors", "modelcapsule.formats.torchexport", "modelcapsule.formats.pt",
    "modelcapsule.formats.xgboost", "modelcapsule.formats.lightgbm",
    "modelcapsule.formats.keras", "modelcapsule.formats.onnx",
)
"""Modules whose ``FORMATS`` tables are registered on first use."""

_REGISTRY: Registry[Format] = Registry("format", lambda f: isinstance(f, Format), "FORMATS", BUILTIN_MODULES,
                                       "modelcapsule.formats")


def register_format(fmt: Format, *, replace: bool = False) -> None:
    """Add a format to the registry. A second format with the same name is refused unless ``replace``."""
    _REGISTRY.register(fmt, replace=replace)


def get_format(name: str) -> Format:
    """The registered format called ``name``."""
    fmt = _REGISTRY.get(name)
    if fmt is None:
        raise UnsupportedModelError(
            f"unknown format {name!r}; known formats: {', '.join(sorted(_REGISTRY.names()))}. A capsule written "
            "by a newer modelcapsule or a plug-in may need that package installed."
        )
    return fmt


def all_formats() -> list[Format]:
    """Every registered format, safest first."""
    return sorted(_REGISTRY.all(), key=lambda f: (f.safety, f.name))


def format_for_file(path: str | Path) -> Format:
    """The format that reads a plain model file, by its suffix (``.pkl``, ``.joblib``, ``.skops``, ...)."""
    suffixes = "".join(Path(path).suffixes[-2:]).lower()
    suffix = Path(path).suffix.lower()
    for fmt in all_formats():
        if suffixes in fmt.extensions or suffix in fmt.extensions:
            return fmt
    raise UnsupportedModelError(
        f"no format reads {Path(path).name!r} (suffix {suffix or 'none'}); known suffixes: "
        + ", ".join(sorted({e for f in all_formats() for e in f.extensions}))
    )
