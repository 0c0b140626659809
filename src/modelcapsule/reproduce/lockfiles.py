"""Render a capsule's pinned environment as a requirements file, a PEP 751 ``pylock.toml`` or a conda
``environment.yml``.

One renderer per format, registered in :data:`RENDERERS`. Every renderer takes the same
:class:`LockInput` and returns the file's text; nothing here touches the network, so the pylock file
carries names and versions but no artifact URLs or hashes (those need an index: complete it with a
locker such as ``pip lock`` if your installer requires them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .pins import EnvironmentInfo, Pin, environment_info, pins_from_environment

__all__ = ["RENDERERS", "LockInput", "lock_input", "render"]


@dataclass(frozen=True)
class LockInput:
    """What every renderer needs: the capsule's name, its interpreter and its pins."""

    name: str
    info: EnvironmentInfo
    pins: list[Pin]


def lock_input(name: str, environment: Mapping[str, Any]) -> LockInput:
    """Read the pins and interpreter of a manifest's ``environment`` section (strictly, see ``pins``)."""
    return LockInput(name=name, info=environment_info(environment), pins=pins_from_environment(environment))


def _quoted(text: str) -> str:
    """A double-quoted string valid in TOML and YAML alike (JSON escapes are a subset of both)."""
    return json.dumps(text, ensure_ascii=True)


def _comment(text: str) -> str:
    """Text safe to put after ``#`` on one line."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _header(lock: LockInput) -> str:
    return f"# Pinned environment of capsule {_comment(lock.name)!r}, saved with {lock.info.describe()}."


def render_requirements(lock: LockInput) -> str:
    """A pip requirements file: one ``name==version`` per line, with a header saying where it comes from."""
    python = lock.info.python_minor or "3"
    lines = [
        _header(lock),
        "# Written by `capsule env`. Re-create it with:",
        f"#   python{python} -m venv .venv && .venv/bin/pip install -r requirements.txt",
        *(str(pin) for pin in lock.pins),
    ]
    return "\n".join(lines) + "\n"


def render_pylock(lock: LockInput) -> str:
    """A PEP 751 ``pylock.toml`` with every package's name and exact version.

    ``requires-python`` pins the saved minor version; ``environments`` holds the saved platform as a
    marker when it is recognisable. Artifact entries (``wheels``, ``sdist`` with hashes) are left out:
    they can only come from an index.
    """
    info = lock.info
    lines = [
        _header(lock),
        "# Names and versions only: no artifact URLs or hashes (those come from an index, not the capsule).",
        'lock-version = "1.0"',
    ]
    markers = []
    if info.sys_platform:
        markers.append(f"sys_platform == '{info.sys_platform}'")
    if info.machine:
        markers.append(f"platform_machine == '{info.machine}'")
    if markers:
        lines.append(f"environments = [{_quoted(' and '.join(markers))}]")
    if info.python_minor:
        lines.append(f"requires-python = {_quoted('==' + info.python_minor + '.*')}")
    lines.append('created-by = "modelcapsule"')
    for pin in lock.pins:
        lines += ["", "[[packages]]", f"name = {_quoted(pin.key)}", f"version = {_quoted(pin.version)}"]
    return "\n".join(lines) + "\n"


def render_conda(lock: LockInput) -> str:
    """A conda ``environment.yml``: Python pinned to the saved version, every package in its ``pip:`` list.

    The packages go through pip, not conda, because the pins are PyPI versions; conda only supplies the
    interpreter (from conda-forge).
    """
    python = lock.info.python or lock.info.python_minor
    lines = [
        _header(lock),
        "# Re-create it with: conda env create -f environment.yml",
        f"name: {_quoted(lock.name)}",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        f"  - python={python}" if python else "  - python",
        "  - pip",
        "  - pip:",
        *(f"      - {_quoted(str(pin))}" for pin in lock.pins),
    ]
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[LockInput], str]] = {
    "requirements": render_requirements,
    "pylock": render_pylock,
    "conda": render_conda,
}
"""Format name → renderer. The names are the choices of ``capsule env --format``."""


def render(lock: LockInput, format: str = "requirements") -> str:
    """Render ``lock`` in ``format`` (one of :data:`RENDERERS`)."""
    try:
        renderer = RENDERERS[format]
    except KeyError:
        choices = ", ".join(RENDERERS)
        raise ValueError(f"unknown environment format {format!r}; choose one of {choices}") from None
    return renderer(lock)
