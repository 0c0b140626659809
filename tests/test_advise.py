"""``advise`` and ``capsule advise``: every format measured on the model, loads timed in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import modelcapsule as mc
from modelcapsule.advise import CANDIDATES, FormatTrial, recommend

ALL_LABELS = [label for label, _name in CANDIDATES]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(80, 5))
    return x, (x[:, 0] - x[:, 2] > 0).astype(int)


@pytest.mark.slow
def test_cli_advise_on_a_forest_measures_every_format_in_its_own_process(
    tmp_path: Path, data: tuple, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    path = tmp_path / "forest.joblib"
    joblib.dump(RandomForestClassifier(n_estimators=20, random_state=0).fit(*data), path)
    run = subprocess.run(
        check=False,
        args=[*capsule_cmd, "advise", str(path), "--json"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    advice = json.loads(run.stdout)
    trials = {t["format"]: t for t in advice["trials"]}
    assert [t["label"] for t in advice["trials"]] == ALL_LABELS
    measured = [t for t in advice["trials"] if t["error"] is None]
    assert {t["format"] for t in measured} >= {
        "safepickle",
        "skops",
        "pickle",
        "joblib",
        "joblib-compressed",
        "cloudpickle",
    }
    pids = [t["load_pid"] for t in measured]
    assert len(set(pids)) == len(pids) and os.getpid() not in pids  # one fresh process per format
    for t in measured:
        assert t["load_seconds"] > 0 and t["save_seconds"] > 0 and t["size"] > 0 and t["exact"] is True
    assert advice["sample_rows"] == 20  # random rows: the model records n_features_in_
    assert trials["joblib-compressed"]["size"] < trials["joblib"]["size"]
    assert not trials["cloudpickle"]["safe"] and trials["safepickle"]["safe"]
    assert advice["recommendation"].startswith("Use ")


@pytest.mark.slow
def test_cli_advise_prints_the_table_for_a_pipeline(
    tmp_path: Path, data: tuple, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(*data)
    path = tmp_path / "pipeline.capsule"
    mc.save(model, path, sample=data[0][:10], source=False)
    env = {**subprocess_env, "COLUMNS": "200"}
    run = subprocess.run(
        check=False,
        args=[
            *capsule_cmd,
            "advise",
            str(path),
            "--format",
            "safepickle",
            "--format",
            "skops",
            "--format",
            "joblib-compressed",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert "every format measured on 10 sample rows" in run.stdout  # the capsule's own golden sample
    for label in ("safepickle", "skops", "joblib (zlib 3)", "fresh process", "exact round trip?"):
        assert label in run.stdout
    assert "Use " in run.stdout and " s" in run.stdout
    assert "measuring skops (2/3)" in run.stderr  # progress is shown while it measures


def test_advise_on_custom_code_recommends_refactoring_or_trust_code(data: tuple) -> None:
    model = make_pipeline(FunctionTransformer(lambda x: x + 1.0), LogisticRegression()).fit(*data)
    advice = mc.advise(model, data[0][:5], formats=["safepickle", "cloudpickle"])
    by = {t.format: t for t in advice.trials}
    assert by["safepickle"].error is not None and "cannot save" in by["safepickle"].error
    assert by["cloudpickle"].exact is True and by["cloudpickle"].load_seconds is not None
    assert "only cloudpickle can store" in advice.recommendation and "trust_code=True" in advice.recommendation


def test_recommendation_follows_the_measurements() -> None:
    fast = FormatTrial("safepickle", "safepickle", safe=True, safety="yes", exact=True, load_seconds=0.2)
    slow = FormatTrial("skops", "skops", safe=True, safety="yes", exact=True, load_seconds=0.9)
    gated = FormatTrial(
        "joblib", "joblib", safe=False, safety="only with trusted=['my.Thing']", exact=True, load_seconds=0.3
    )
    onnx = FormatTrial("onnx", "onnx", safe=True, safety="yes", exact=True, load_seconds=0.05)
    text = recommend([slow, fast, onnx])
    assert text.startswith("Use safepickle") and "skops 0.90 s" in text and "ONNX export" in text
    assert recommend([gated]).startswith("Use joblib only with trusted=['my.Thing']")
    broken = FormatTrial("skops", "skops", safe=True, safety="yes", exact=False, load_seconds=0.5)
    assert recommend([broken]).startswith("No format reproduced")
