"""Fixtures for the reproduce tests: a real training script, run once, and the capsule it saves."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

TRAIN_SCRIPT = '''\
"""Train a small iris classifier and save it with its cross-validation scores."""
import modelcapsule as mc
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

X, y = load_iris(return_X_y=True)
model = LogisticRegression(C=1.0, max_iter=500)
scores = cross_val_score(model, X, y, cv=5)
model.fit(X, y)
print("cv accuracy", scores.mean())
mc.save(model, "iris.capsule", sample=X[::15], training_data=(X, y), metrics={"cv_accuracy": scores})
'''


@dataclass(frozen=True)
class Trained:
    """A training script and the capsule it saved, in their own directory."""

    workdir: Path
    script: Path
    capsule: Path


def run_training(workdir: Path, script_text: str, env: dict[str, str], name: str = "train.py") -> Path:
    """Write ``script_text`` to ``workdir/name`` and run it there, as a user would."""
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / name
    script.write_text(script_text, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return script


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, subprocess_env: dict[str, str]) -> Trained:
    """The iris capsule saved by :data:`TRAIN_SCRIPT` (with its script stored in it)."""
    workdir = tmp_path_factory.mktemp("training")
    script = run_training(workdir, TRAIN_SCRIPT, subprocess_env)
    return Trained(workdir, script, workdir / "iris.capsule")


@dataclass(frozen=True)
class BuiltVenv:
    """The result of ``capsule env --venv`` on the trained capsule."""

    path: Path
    returncode: int
    stdout: str
    stderr: str
    seconds: float


@pytest.fixture(scope="session")
def built_venv(
    trained: Trained,
    tmp_path_factory: pytest.TempPathFactory,
    subprocess_env: dict[str, str],
    capsule_cmd: list[str],
) -> BuiltVenv:
    """A venv re-created from the trained capsule's pins (modelcapsule installed from this checkout).

    Shared by the env and dockerfile tests: building it is the slow part (pip installs from the local
    wheel cache in well under a minute here).
    """
    import time

    target = tmp_path_factory.mktemp("venvs") / "iris-env"
    start = time.monotonic()
    done = subprocess.run(
        [
            *capsule_cmd,
            "env",
            str(trained.capsule),
            "--venv",
            str(target),
            "--modelcapsule",
            str(REPO_ROOT),
            "--json",
        ],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return BuiltVenv(target, done.returncode, done.stdout, done.stderr, time.monotonic() - start)
