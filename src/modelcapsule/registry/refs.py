"""References to model versions: ``name`` (latest), ``name/3``, ``name@alias``, and the same behind
``models:/`` (what ``mc.load`` and every command taking a capsule path accept)."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["URI_PREFIX", "Ref", "check_alias", "check_name", "parse_ref"]

URI_PREFIX = "models:/"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def check_name(name: str, what: str = "model name") -> str:
    """``name`` if it is a valid model or alias name (letters, digits, ``.``, ``_``, ``-``), else ValueError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{what} {name!r} is not valid: use letters, digits, '.', '_' and '-' (at most 255), "
                         "starting with a letter or digit")
    return name


def check_alias(alias: str) -> str:
    check_name(alias, "alias")
    if alias.isdigit() or alias == "latest":
        raise ValueError(f"alias {alias!r} is reserved: aliases cannot be numbers or 'latest'")
    return alias


@dataclass(frozen=True)
class Ref:
    """A parsed reference: exactly one of ``version`` or ``alias`` is set, or neither (the latest)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def parse_ref(ref: str) -> Ref:
    """Parse ``name``, ``name/N``, ``name@alias``, ``name/latest`` or any of them behind ``models:/``."""
    text = ref[len(URI_PREFIX):] if ref.startswith(URI_PREFIX) else ref
    if "@" in text:
        name, alias = text.split("@", 1)
        return Ref(check_name(name), alias=check_alias(alias))
    if "/" in text:
        name, version = text.split("/", 1)
        check_name(name)
        if version == "latest":
            return Ref(name)
        if not version.isdigit() or int(version) < 1:
            raise ValueError(f"{ref!r}: the version must be a positive integer (as in 'fraud/3'), or use 'fraud@ALIAS'")
        return Ref(name, version=int(version))
    return Ref(check_name(text))
