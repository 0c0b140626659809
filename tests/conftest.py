"""Fixtures shared by every test module."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="session")
def subprocess_env() -> dict[str, str]:
    """Environment for child processes: they import modelcapsule from this checkout's ``src``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="session")
def capsule_cmd() -> list[str]:
    """The ``capsule`` command as a child process runs it (from this checkout, not an installed copy)."""
    return [sys.executable, "-m", "modelcapsule"]
