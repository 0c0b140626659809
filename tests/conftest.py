"""Fixtures shared by every test module."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Caches (passed checks, computed trust lists) go to a fresh folder, never the user's own."""
    path = tmp_path_factory.mktemp("modelcapsule-cache")
    os.environ["MODELCAPSULE_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def subprocess_env(private_cache_dir: Path) -> dict[str, str]:
    """Environment for child processes: they import modelcapsule from this checkout's ``src``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="session")
def capsule_cmd() -> list[str]:
    """The ``capsule`` command as a child process runs it (from this checkout, not an installed copy)."""
    return [sys.executable, "-m", "modelcapsule"]
