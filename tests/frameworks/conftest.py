"""Fixtures for the framework tests: a fresh Python process, and a way to forge a capsule's members."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from modelcapsule import inspect
from modelcapsule.core.container import CapsuleWriter, open_capsule

HERE = Path(__file__).resolve().parent

FreshPython = Callable[[str], str]
Forge = Callable[[Path, Path, Mapping[str, bytes]], Path]


@pytest.fixture
def fresh_python(subprocess_env: dict[str, str]) -> FreshPython:
    """Run a snippet in a new interpreter that imports this checkout (and the test model modules here);
    returns its stdout, failing the test with its stderr if it exits non-zero."""
    env = dict(subprocess_env)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env["PYTHONPATH"]])
    env.setdefault("KERAS_BACKEND", "torch")

    def run(code: str) -> str:
        proc = subprocess.run([sys.executable, "-W", "error", "-c", textwrap.dedent(code)], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, f"child process failed:\n{proc.stderr[-4000:]}"
        return proc.stdout

    return run


@pytest.fixture
def forge() -> Forge:
    """Copy a capsule with some members replaced, re-hashing them as an attacker without a signing key can."""

    def rewrite(src: Path, dst: Path, replace: Mapping[str, bytes]) -> Path:
        manifest = inspect(src)
        with open_capsule(src) as reader, CapsuleWriter(dst, overwrite=True) as writer:
            for name in reader.names():
                if name != "capsule.json":
                    writer.add(name, replace.get(name, reader.read(name)))
            writer.finish(manifest)
        return dst

    return rewrite
