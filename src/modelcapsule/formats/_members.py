"""Small helpers the framework formats share: finding the payload member, reading JSON, importing a name."""

from __future__ import annotations

import importlib
import json
from typing import Any

from ..errors import CapsuleFormatError
from .base import MemberSource

__all__ = ["main_member", "read_json", "resolve"]


def main_member(source: MemberSource, details: dict[str, Any], default: str) -> str:
    """The member holding the payload: the one named in ``details``, the default, or a plain file's only member."""
    name = str(details.get("member", default))
    if name in source:
        return name
    names = source.names()
    if len(names) == 1:
        return names[0]
    raise CapsuleFormatError(f"the payload member {name!r} is missing; the capsule is incomplete or corrupt.")


def read_json(source: MemberSource, name: str) -> Any:
    """Parse a JSON member; corrupt JSON is a :class:`CapsuleFormatError`."""
    try:
        return json.loads(source.read(name))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CapsuleFormatError(f"{name} is not valid JSON ({exc}); the capsule is corrupt.") from exc


def resolve(name: str) -> Any:
    """Import the object ``module.qualname`` names. Call it only for names the trust policy admitted."""
    parts = name.replace("__builtin__.", "builtins.", 1).split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError as exc:
            raise CapsuleFormatError(f"{name!r} does not exist in the installed packages") from exc
        return obj
    raise CapsuleFormatError(f"cannot import {name!r}, which the file needs")
