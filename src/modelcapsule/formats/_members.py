"""Small helpers the framework formats share: finding the payload member, reading JSON, importing a name."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..errors import CapsuleFormatError
from ..security.policy import TrustPolicy, import_trusted
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


def resolve(name: str, policy: TrustPolicy, vocabulary: Callable[[str], bool] | None = None) -> Any:
    """The object ``module.qualname`` names, through the one importer of trusted names
    (:func:`modelcapsule.security.policy.import_trusted`): refused unless ``policy`` admits it or it
    belongs to the format's own ``vocabulary``."""
    return import_trusted(name.replace("__builtin__.", "builtins.", 1), policy, vocabulary=vocabulary)
