"""The JSON record of a boosting library's scikit-learn wrapper (XGBoost, LightGBM): which class to
rebuild, audited by name before anything is imported, and checked to be that library's wrapper."""

from __future__ import annotations

from typing import Any

from ..errors import CapsuleFormatError, UntrustedTypesError
from ._members import read_json, resolve
from .base import LoadOptions, MemberSource

__all__ = ["PARAMS", "audit_wrapper", "wrapper_class"]

PARAMS = "model/params.json"


def _untrusted(class_name: Any, library: str, builtin: frozenset[str]) -> list[str]:
    """The library's own wrappers need no trust; any other class (a user's subclass) must be trusted."""
    if not isinstance(class_name, str) or not class_name:
        raise CapsuleFormatError(f"the stored {library} wrapper has no class name; the capsule is corrupt.")
    return [] if class_name in builtin else [class_name]


def audit_wrapper(source: MemberSource, details: dict[str, Any], library: str, builtin: frozenset[str]) -> list[str]:
    """Names the wrapper record would import (none for a bare booster), found by reading JSON only."""
    params_name = str(details.get("params", PARAMS))
    if params_name not in source:
        return []
    doc = read_json(source, params_name)
    return _untrusted(doc.get("class") if isinstance(doc, dict) else None, library, builtin)


def wrapper_class(doc: dict[str, Any], options: LoadOptions, library: str, builtin: frozenset[str],
                  base: type) -> type:
    """The wrapper class named in ``doc``, imported only once the policy admits it, and only if it is one
    of ``base``'s subclasses (so no other callable is ever constructed from the record)."""
    class_name = doc.get("class")
    refused = [n for n in _untrusted(class_name, library, builtin) if not options.policy.admits(n)]
    if refused:
        raise UntrustedTypesError(refused, source=f"the {library} capsule")
    cls = resolve(str(class_name), options.policy, vocabulary=builtin.__contains__)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise CapsuleFormatError(f"{class_name} is not a {library} scikit-learn wrapper; refusing to call it")
    return cls
