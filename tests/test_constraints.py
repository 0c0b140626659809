"""``constraints.txt`` is the lock generated from ``pyproject.toml`` by ``scripts/lock``: it pins every
package any extra names, and says at its top how to regenerate it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if match:
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    requirements = [*project["dependencies"], *(r for extra in extras for r in extra)]
    names = {canonicalize_name(Requirement(r).name) for r in requirements}
    return names - {canonicalize_name(project["name"])}


def test_every_dependency_of_every_extra_is_pinned() -> None:
    missing = sorted(_declared() - set(_pins()))
    assert not missing, f"not in constraints.txt: {missing}; run scripts/lock to regenerate it from pyproject.toml"


def test_the_lock_names_the_command_that_regenerates_it() -> None:
    head = (ROOT / "constraints.txt").read_text().splitlines()[:8]
    assert any("scripts/lock" in line and "pip-compile --all-extras" in line for line in head)
    assert (ROOT / "scripts" / "lock").stat().st_mode & 0o111


def test_pins_have_no_local_version_label() -> None:
    """``torch==2.13.0`` accepts the CPU and the CUDA wheel; ``2.13.0+cpu`` would not install from PyPI."""
    assert [f"{name}=={version}" for name, version in _pins().items() if "+" in version] == []
