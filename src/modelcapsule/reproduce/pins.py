"""The pinned package set a capsule was saved with, read strictly from its manifest.

The pins end up in files other tools execute (``requirements.txt``, a Dockerfile's ``pip install``), and
the manifest comes from whoever sent the capsule. So every pin must be exactly ``name==version`` with a
PEP 508 name and a PEP 440 version: anything else (pip options such as ``--index-url``, URLs, markers,
``-e`` lines) is refused rather than passed on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

from ..core.environment import canonical_name
from ..errors import CapsuleFormatError

__all__ = [
    "EnvironmentInfo",
    "Pin",
    "environment_info",
    "normalize_name",
    "parse_pin",
    "pins_from_environment",
]

_NAME = re.compile(r"([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])")
_VERSION_CHARS = re.compile(r"[A-Za-z0-9.+!_-]{1,64}")
_PIN = re.compile(r"\s*(?P<name>[^=<>!~\s;\[]+)\s*==\s*(?P<version>[^\s;#,]+)\s*")

TOOL_PACKAGES = frozenset({"modelcapsule"})
"""Packages installed on their own (the tool that loads the capsule), never from the capsule's pins."""


normalize_name = canonical_name
"""The PEP 503 normalized form of a distribution name (``Scikit_Learn`` → ``scikit-learn``)."""


@dataclass(frozen=True, order=True)
class Pin:
    """One exact requirement, ``name==version``."""

    key: str
    """The normalized name, used to sort and compare."""
    name: str
    """The name as the manifest spells it."""
    version: str

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


def _make_pin(name: str, version: str, where: str) -> Pin:
    if not _NAME.fullmatch(name):
        raise CapsuleFormatError(
            f"the capsule's {where} names a package {name!r} that is not a valid distribution name; "
            "refusing to pass it to pip. The manifest is corrupt or hostile: get a fresh copy of the capsule."
        )
    try:
        if not _VERSION_CHARS.fullmatch(version):
            raise InvalidVersion(version)
        Version(version)
    except InvalidVersion:
        raise CapsuleFormatError(
            f"the capsule's {where} pins {name} to {version!r}, which is not a valid version; refusing to "
            "pass it to pip. The manifest is corrupt or hostile: get a fresh copy of the capsule."
        ) from None
    return Pin(normalize_name(name), name, version)


def parse_pin(line: str, where: str = "requirements") -> Pin:
    """Parse one ``name==version`` line; raise :class:`CapsuleFormatError` for anything else."""
    match = _PIN.fullmatch(line) if isinstance(line, str) else None
    if match is None:
        raise CapsuleFormatError(
            f"the capsule's {where} holds {line!r}, which is not an exact 'name==version' pin; refusing to "
            "pass it to pip. The manifest is corrupt or hostile: get a fresh copy of the capsule."
        )
    return _make_pin(match["name"], match["version"], where)


def _dedupe(pins: Iterable[Pin]) -> list[Pin]:
    seen: dict[str, Pin] = {}
    for pin in pins:
        other = seen.setdefault(pin.key, pin)
        if other.version != pin.version:
            raise CapsuleFormatError(
                f"the capsule pins {pin.name} twice, to {other.version} and {pin.version}; "
                "the manifest is corrupt."
            )
    return sorted(seen.values())


def pins_from_environment(environment: Mapping[str, Any], *, include_tool: bool = False) -> list[Pin]:
    """Every pinned package of a manifest's ``environment`` section, sorted by name.

    ``requirements`` (the pinned transitive closure) is used when present; capsules without it fall back
    to ``packages`` (the model's packages only). The capsule's own tool, modelcapsule, is left out unless
    ``include_tool``: it is installed separately (it may not be on the index the pins come from).
    """
    raw = environment.get("requirements")
    if raw is not None:
        if not isinstance(raw, list):
            raise CapsuleFormatError(
                "the capsule's environment.requirements should be a list of 'name==version' strings."
            )
        pins = [parse_pin(line, "environment.requirements") for line in raw]
    else:
        packages = environment.get("packages")
        if not isinstance(packages, Mapping) or not packages:
            raise CapsuleFormatError(
                "the capsule records no package versions (environment.requirements and environment.packages "
                "are missing), so there is no environment to re-create. Save the model again with "
                "modelcapsule.save."
            )
        pins = []
        for name, version in packages.items():
            if not isinstance(name, str) or not isinstance(version, str):
                raise CapsuleFormatError(
                    "the capsule's environment.packages should map names to version strings."
                )
            pins.append(_make_pin(name, version, "environment.packages"))
    result = _dedupe(pins)
    if not include_tool:
        result = [p for p in result if p.key not in TOOL_PACKAGES]
    return result


@dataclass(frozen=True)
class EnvironmentInfo:
    """The interpreter and platform a capsule was saved on, as far as the manifest says."""

    python: str | None
    """Full Python version, e.g. ``"3.11.7"``."""
    implementation: str | None
    platform: str | None
    machine: str | None
    modelcapsule: str | None
    """The modelcapsule version that wrote the capsule, when recorded."""

    @property
    def python_minor(self) -> str | None:
        """``"3.11"`` for ``"3.11.7"``; ``None`` when the manifest does not say."""
        if self.python is None:
            return None
        parts = self.python.split(".")
        return ".".join(parts[:2]) if len(parts) >= 2 and all(p.isdigit() for p in parts[:2]) else None

    @property
    def sys_platform(self) -> str | None:
        """The PEP 508 ``sys_platform`` value the saved platform corresponds to, if it is recognisable."""
        text = (self.platform or "").lower()
        for prefix, value in (("linux", "linux"), ("darwin", "darwin"), ("mac", "darwin"), ("win", "win32")):
            if text.startswith(prefix):
                return value
        return None

    def describe(self) -> str:
        """One line for humans: ``CPython 3.11.7 on Linux x86_64``."""
        parts = [self.implementation or "Python", self.python or "(unknown version)"]
        where = " ".join(p for p in (self.platform, self.machine) if p)
        return " ".join(parts) + (f" on {where}" if where else "")


_SAFE_TEXT = re.compile(r"[A-Za-z0-9 ._+()/,:-]{1,200}")


def _text(env: Mapping[str, Any], key: str) -> str | None:
    value = env.get(key)
    # These strings are echoed into comments and base-image tags; keep them to plain characters.
    return value if isinstance(value, str) and _SAFE_TEXT.fullmatch(value) else None


def environment_info(environment: Mapping[str, Any]) -> EnvironmentInfo:
    """Read the interpreter fields of a manifest's ``environment`` section, dropping malformed values."""
    python = _text(environment, "python")
    if python is not None and not re.fullmatch(r"\d+\.\d+(\.\d+)?([a-z]+\d*)?\+?", python):
        python = None
    return EnvironmentInfo(
        python=python,
        implementation=_text(environment, "implementation"),
        platform=_text(environment, "platform"),
        machine=_text(environment, "machine"),
        modelcapsule=_tool_version(environment),
    )


def _tool_version(environment: Mapping[str, Any]) -> str | None:
    """The modelcapsule version recorded among the packages or requirements, if any and well-formed."""
    try:
        pins = pins_from_environment(environment, include_tool=True)
    except CapsuleFormatError:
        return None
    return next((p.version for p in pins if p.key in TOOL_PACKAGES), None)
