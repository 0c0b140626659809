"""The manifests ``capsule kserve`` writes are valid for KServe's own Python SDK model classes.

The ``kserve`` package pins versions this project does not use (pandas < 3, psutil < 6...), so it is
installed in a separate virtual environment under a temporary folder, and ``kserve_sdk_check.py`` runs
there: it builds each document into ``V1alpha1ServingRuntime`` / ``V1beta1InferenceService`` field by
field, and fails on any field those classes (or the Kubernetes classes they embed) do not define, on a
wrongly typed value and on a missing required field. Set ``MODELCAPSULE_TEST_KSERVE_PYTHON`` to a Python
that already has ``kserve`` to skip the installation (about a minute).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

import modelcapsule as mc
from modelcapsule.cli import cli

CHECK = Path(__file__).with_name("kserve_sdk_check.py")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kserve_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    given = os.environ.get("MODELCAPSULE_TEST_KSERVE_PYTHON")
    if given:
        return given
    venv = tmp_path_factory.mktemp("kserve-sdk") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "kserve"],
        check=False, capture_output=True, text=True, timeout=600,
    )
    if install.returncode != 0:
        pytest.fail(f"could not install the kserve SDK in a separate venv:\n{install.stderr[-2000:]}")
    return python


@pytest.mark.timeout(900)
def test_manifests_build_into_the_kserve_sdk_classes(kserve_python: str, tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(40, 3))
    capsule = tmp_path / "churn.capsule"
    mc.save(LogisticRegression().fit(x, (x[:, 1] > 0).astype(int)), capsule, sample=x[:4])
    out = tmp_path / "manifests"
    result = CliRunner().invoke(cli, [
        "kserve", str(capsule), "--image", "registry.example.com/churn:3", "--storage-prefix", "s3://capsules",
        "--namespace", "ml", "--batch-size", "16", "-o", str(out),
    ])
    assert result.exit_code == 0, result.output
    files = [out / "servingruntime.yaml", out / "inferenceservice.yaml"]
    checked = subprocess.run(
        [kserve_python, str(CHECK), *map(str, files)], check=False, capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "V1alpha1ServingRuntime" in checked.stdout
    assert "V1beta1InferenceService" in checked.stdout


def test_the_check_itself_rejects_an_unknown_field(kserve_python: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "apiVersion: serving.kserve.io/v1alpha1\nkind: ServingRuntime\nmetadata: {name: x}\n"
        "spec:\n  containers:\n    - name: c\n      image: i\n      readinesProbe: {}\n",
        encoding="utf-8",
    )
    checked = subprocess.run(
        [kserve_python, str(CHECK), str(broken)], check=False, capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 1
    assert "readinesProbe" in checked.stdout
