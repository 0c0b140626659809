"""``convert`` and ``capsule convert``: a legacy model file becomes a safe capsule once its names are trusted."""

from __future__ import annotations

import json
import pickle
import subprocess
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import FunctionTransformer

import modelcapsule as mc


def _square(x: np.ndarray) -> np.ndarray:
    """A user function kept by a model: its name is outside the default policy."""
    return x * x


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(50, 4))


@pytest.fixture(scope="module")
def forest(data: np.ndarray) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(data, (data[:, 0] > 0).astype(int))


@pytest.mark.parametrize("name", ["model.joblib", "model.pkl", "model.skops"])
def test_convert_a_legacy_file_into_a_capsule_with_a_golden_sample(
    tmp_path: Path, forest: RandomForestClassifier, data: np.ndarray, name: str
) -> None:
    src = tmp_path / name
    if name.endswith(".skops"):
        sio.dump(forest, src)
    elif name.endswith(".pkl"):
        src.write_bytes(pickle.dumps(forest))
    else:
        joblib.dump(forest, src)
    sample = tmp_path / "sample.npy"
    np.save(sample, data[:8])
    manifest = mc.convert(src, tmp_path / "model.capsule", sample=sample)
    assert manifest.format_name == "safepickle" and manifest.format["chosen_by"] == "auto"
    assert manifest.sample and manifest.environment["packages"]["scikit-learn"]
    assert manifest.metadata["converted_from"]["path"] == name
    assert len(manifest.metadata["converted_from"]["sha256"]) == 64
    loaded = mc.load(tmp_path / "model.capsule")  # verifies the golden sample
    np.testing.assert_array_equal(loaded.predict(data), forest.predict(data))


def test_convert_needs_the_names_audit_listed(tmp_path: Path, data: np.ndarray) -> None:
    src = tmp_path / "model.joblib"
    joblib.dump(FunctionTransformer(_square).fit(data), src)
    needed = mc.audit(src).untrusted
    assert needed == [f"{__name__}._square"]
    with pytest.raises(mc.UntrustedTypesError):
        mc.convert(src, tmp_path / "m.capsule")
    assert not (tmp_path / "m.capsule").exists()
    manifest = mc.convert(src, tmp_path / "m.capsule", trusted=needed, sample=data[:5], format="skops")
    assert manifest.format_name == "skops"
    np.testing.assert_array_equal(mc.load(tmp_path / "m.capsule", trusted=needed).transform(data), data * data)


def test_convert_reads_csv_and_json_samples(tmp_path: Path, forest: RandomForestClassifier, data: np.ndarray) -> None:
    src = tmp_path / "model.joblib"
    joblib.dump(forest, src)
    pd.DataFrame(data[:5]).to_csv(tmp_path / "s.csv", index=False)
    (tmp_path / "s.json").write_text(json.dumps(data[:5].tolist()))
    for sample in ("s.csv", "s.json"):
        manifest = mc.convert(src, tmp_path / f"{sample}.capsule", sample=tmp_path / sample)
        assert manifest.sample
        mc.load(tmp_path / f"{sample}.capsule")


def test_cli_convert(
    tmp_path: Path,
    forest: RandomForestClassifier,
    data: np.ndarray,
    capsule_cmd: list[str],
    subprocess_env: dict[str, str],
) -> None:
    src = tmp_path / "model.joblib"
    joblib.dump(forest, src, compress=3)
    np.save(tmp_path / "sample.npy", data[:5])
    run = subprocess.run(
        check=False,
        args=[
            *capsule_cmd,
            "convert",
            str(src),
            str(tmp_path / "m.capsule"),
            "--format",
            "joblib",
            "--sample",
            str(tmp_path / "sample.npy"),
        ],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "format joblib (chosen by user)" in run.stdout and "golden sample: recorded" in run.stdout
    assert mc.inspect(tmp_path / "m.capsule").format_name == "joblib"
    again = subprocess.run(
        check=False,
        args=[*capsule_cmd, "convert", str(src), str(tmp_path / "m.capsule")],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2 and "already exists" in again.stderr
