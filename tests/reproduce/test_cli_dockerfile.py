"""`capsule dockerfile` on a real capsule; its requirements install into a fresh venv."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import modelcapsule as mc

from .conftest import BuiltVenv, Trained


def _run(cmd: list[str], env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_writes_a_context_whose_pins_and_python_are_the_capsules(
    trained: Trained, tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    out = tmp_path / "ctx"
    done = _run(capsule_cmd, subprocess_env, "dockerfile", str(trained.capsule), "-o", str(out))
    assert done.returncode == 0, done.stderr
    environment = mc.inspect(trained.capsule).environment
    dockerfile = (out / "Dockerfile").read_text()
    minor = ".".join(environment["python"].split(".")[:2])
    assert f"FROM python:{minor}-slim" in dockerfile.splitlines()
    pins = [line for line in (out / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert sorted(pins) == sorted(
        r for r in environment["requirements"] if not r.startswith("modelcapsule==")
    )
    copied = out / "model" / "iris.capsule"
    assert (
        hashlib.sha256(copied.read_bytes()).digest() == hashlib.sha256(trained.capsule.read_bytes()).digest()
    )
    assert (out / ".dockerignore").read_text().splitlines()[1] == "*"
    again = _run(capsule_cmd, subprocess_env, "dockerfile", str(trained.capsule), "-o", str(out))
    assert again.returncode == 2 and "--force" in again.stderr


def test_the_dockerfile_requirements_are_already_satisfied_in_the_recreated_venv(
    built_venv: BuiltVenv,
    trained: Trained,
    tmp_path: Path,
    capsule_cmd: list[str],
    subprocess_env: dict[str, str],
) -> None:
    assert built_venv.returncode == 0, built_venv.stderr
    done = _run(
        capsule_cmd, subprocess_env, "dockerfile", str(trained.capsule), "-o", str(tmp_path), "--json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["files"][:3] == ["Dockerfile", "requirements.txt", ".dockerignore"]
    pip = subprocess.run(
        [
            str(built_venv.path / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--report",
            "-",
            "-r",
            str(tmp_path / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert pip.returncode == 0, pip.stderr
    assert json.loads(pip.stdout)["install"] == [], (
        "every pinned version is already installed in the fresh venv"
    )
