"""The pins an MLflow model records (``requirements.txt``, ``python_env.yaml``, ``conda.yaml``).

They describe the environment the model was trained in and become the capsule's
``environment.requirements``. Only exact ``name==version`` pins are carried; anything else (ranges,
URLs, ``-r`` includes, conda-only packages) is reported as left behind. MLflow itself is dropped: a
capsule loads without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.environment import canonical_name
from .mlmodel import safe_yaml

__all__ = ["Pins", "read_pins"]

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([A-Za-z0-9._+!-]+)\s*(;.*)?$")
_DROPPED = {"mlflow", "mlflow-skinny", "mlflow-tracing"}
MAX_ENV_FILE_BYTES = 1 << 20


@dataclass
class Pins:
    """Exact pins found, the lines left behind, the Python version and which files were read."""

    pins: dict[str, str] = field(default_factory=dict)
    left_behind: list[str] = field(default_factory=list)
    python: str | None = None
    files: list[str] = field(default_factory=list)

    @property
    def requirements(self) -> list[str]:
        return sorted(f"{name}=={version}" for name, version in self.pins.items())


def _add(pins: Pins, line: str) -> None:
    line = line.split(" #", 1)[0].strip()
    if not line or line.startswith("#") or line.startswith("-r ") or line.startswith("-c "):
        return
    match = _PIN.match(line)
    if match is None:
        pins.left_behind.append(line)
        return
    name = canonical_name(match.group(1))
    if name in _DROPPED:
        return
    local = match.group(3).split("+", 1)[0]
    pins.pins.setdefault(name, local)


def _read_text(path: Path) -> str | None:
    if not path.is_file() or path.stat().st_size > MAX_ENV_FILE_BYTES:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def _yaml(path: Path) -> Any:
    import yaml

    text = _read_text(path)
    if text is None:
        return None
    try:
        return safe_yaml(text)
    except (yaml.YAMLError, RecursionError):
        return None


def read_pins(directory: Path) -> Pins:
    """Pins from ``requirements.txt``, else the pip section of ``conda.yaml``; Python from ``python_env.yaml``."""
    pins = Pins()
    requirements = _read_text(directory / "requirements.txt")
    if requirements is not None:
        pins.files.append("requirements.txt")
        for line in requirements.splitlines():
            _add(pins, line)
    conda = _yaml(directory / "conda.yaml")
    if isinstance(conda, dict):
        pins.files.append("conda.yaml")
        for dep in conda.get("dependencies") or []:
            if isinstance(dep, dict):
                for line in dep.get("pip") or []:
                    if requirements is None:
                        _add(pins, str(line))
            elif isinstance(dep, str) and dep.startswith("python=") and pins.python is None:
                pins.python = dep.split("=", 1)[1]
    python_env = _yaml(directory / "python_env.yaml")
    if isinstance(python_env, dict):
        pins.files.append("python_env.yaml")
        if python_env.get("python"):
            pins.python = str(python_env["python"])
        if requirements is None:
            for line in python_env.get("dependencies") or []:
                _add(pins, str(line))
    return pins
