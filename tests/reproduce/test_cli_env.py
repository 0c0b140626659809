"""`capsule env`: print the pinned environment, or re-create it as a venv where the capsule verifies."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

import modelcapsule as mc
from modelcapsule.core import environment

from .conftest import REPO_ROOT, BuiltVenv, Trained


def _capsule(cmd: list[str], env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def test_prints_the_pinned_requirements_of_the_capsule(
    trained: Trained, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    done = _capsule(capsule_cmd, subprocess_env, "env", str(trained.capsule))
    assert done.returncode == 0, done.stderr
    pins = [line for line in done.stdout.splitlines() if not line.startswith("#")]
    saved = mc.inspect(trained.capsule).environment["requirements"]
    assert sorted(pins) == sorted(saved)
    assert any(p.startswith("scikit-learn==") for p in pins)


def test_json_gives_the_interpreter_and_the_pins(
    trained: Trained, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    done = _capsule(capsule_cmd, subprocess_env, "env", str(trained.capsule), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    saved = mc.inspect(trained.capsule).environment
    assert (data["name"], data["python"], data["machine"]) == ("iris", saved["python"], saved["machine"])
    assert data["requirements"] == sorted(saved["requirements"], key=lambda r: r.split("==")[0].lower())


def test_writes_a_pylock_file(
    trained: Trained, capsule_cmd: list[str], subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "pylock.toml"
    done = _capsule(
        capsule_cmd, subprocess_env, "env", str(trained.capsule), "--format", "pylock", "-o", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    packages = {p["name"]: p["version"] for p in tomllib.loads(out.read_text())["packages"]}
    assert packages["scikit-learn"] == mc.inspect(trained.capsule).environment["packages"]["scikit-learn"]


def test_a_missing_capsule_is_a_usage_error(
    capsule_cmd: list[str], subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    done = _capsule(capsule_cmd, subprocess_env, "env", str(tmp_path / "nope.capsule"))
    assert done.returncode == 2


def test_venv_holds_exactly_the_pins_and_the_capsule_loads_and_verifies_there(
    built_venv: BuiltVenv, trained: Trained
) -> None:
    assert built_venv.returncode == 0, built_venv.stderr
    result = json.loads(built_venv.stdout)
    assert result["verified"] is True
    assert result["model"] == "sklearn.linear_model._logistic.LogisticRegression"
    # modelcapsule was imported from inside the venv, not from this checkout
    assert Path(result["modelcapsule"]).is_relative_to(built_venv.path.resolve())
    saved = dict(line.split("==") for line in mc.inspect(trained.capsule).environment["requirements"])
    assert {k: v for k, v in result["versions"].items()} == {
        k: v for k, v in saved.items() if k != "modelcapsule"
    }
    assert built_venv.seconds < 300, f"building the venv took {built_venv.seconds:.0f} s"


def test_venv_interpreter_sees_its_own_packages_only(built_venv: BuiltVenv) -> None:
    python = built_venv.path / "bin" / "python"
    done = subprocess.run(
        [str(python), "-I", "-c", "import sklearn, sys; print(sklearn.__file__, sys.prefix)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0].startswith(str(built_venv.path.resolve()))


def _with_impossible_pins(real: Any) -> Any:
    def capture(modules: Any) -> dict[str, Any]:
        env = real(modules)
        swap = {"scikit-learn": "0.0.1", "numpy": "0.0.2"}
        env["requirements"] = [
            f"{line.split('==')[0]}=={swap[line.split('==')[0]]}" if line.split("==")[0] in swap else line
            for line in env["requirements"]
        ]
        return env

    return capture


def test_an_impossible_pin_fails_naming_every_version_that_cannot_be_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    X, y = load_iris(return_X_y=True)
    monkeypatch.setattr(
        environment, "capture_environment", _with_impossible_pins(environment.capture_environment)
    )
    capsule = tmp_path / "impossible.capsule"
    mc.save(DecisionTreeClassifier(max_depth=2).fit(X, y), capsule, sample=X[:5], source=False)
    venv = tmp_path / "venv"
    done = _capsule(
        capsule_cmd,
        subprocess_env,
        "env",
        str(capsule),
        "--venv",
        str(venv),
        "--modelcapsule",
        str(REPO_ROOT),
    )
    assert done.returncode == 1
    assert "scikit-learn==0.0.1" in done.stderr
    assert "numpy==0.0.2" in done.stderr
    assert "2 pinned version(s) cannot be installed" in done.stderr
    assert not venv.exists(), "a half-built environment is removed"


def test_an_existing_non_empty_venv_directory_is_a_usage_error(
    trained: Trained, tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    done = _capsule(capsule_cmd, subprocess_env, "env", str(trained.capsule), "--venv", str(tmp_path))
    assert done.returncode == 2
    assert "not empty" in done.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"
