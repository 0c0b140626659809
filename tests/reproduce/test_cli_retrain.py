"""`capsule retrain`: re-run the stored script, compare, exit 0 only within the saved range."""

from __future__ import annotations

import hashlib
import json
import statistics
import subprocess
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import modelcapsule as mc

from .conftest import TRAIN_SCRIPT, Trained


def _retrain(cmd: list[str], env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cmd, "retrain", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_stored_script_retrains_within_the_saved_range(
    trained: Trained, tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    new = tmp_path / "again.capsule"
    done = _retrain(
        capsule_cmd, subprocess_env, trained.workdir, str(trained.capsule), "-o", str(new), "--trust-script",
        "--json",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["within_range"] is True
    (metric,) = report["metrics"]
    assert (metric["name"], metric["verdict"]) == ("cv_accuracy", "within")
    assert metric["now"] == metric["then"], "same script, same data, same library versions: same folds"
    assert report["training_data"]["same"] is True
    assert {a["method"]: a["fraction"] for a in report["golden_sample_agreement"]}["predict"] == 1.0
    assert any(p["name"] == "scikit-learn" and not p["changed"] for p in report["packages"])
    # the script's own save went to the new path; the original is untouched
    assert mc.inspect(new).name == "iris"
    assert mc.inspect(trained.capsule).created_at <= mc.inspect(new).created_at


def test_the_stored_script_runs_only_when_trusted_and_can_be_read_first(
    trained: Trained, tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    new = tmp_path / "never.capsule"
    refused = _retrain(capsule_cmd, subprocess_env, trained.workdir, str(trained.capsule), "-o", str(new))
    assert refused.returncode == 1
    assert "--trust-script" in refused.stderr and "Nothing was run" in refused.stderr
    assert hashlib.sha256(TRAIN_SCRIPT.encode()).hexdigest()[:16] in refused.stderr
    assert not new.exists()
    shown = _retrain(capsule_cmd, subprocess_env, trained.workdir, str(trained.capsule), "--show-script")
    assert shown.returncode == 0
    assert shown.stdout == TRAIN_SCRIPT


def test_different_hyper_parameters_are_out_of_range_with_a_non_zero_exit(
    trained: Trained, tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    changed = tmp_path / "stump.py"
    changed.write_text(
        TRAIN_SCRIPT.replace(
            "from sklearn.linear_model import LogisticRegression",
            "from sklearn.tree import DecisionTreeClassifier",
        ).replace("LogisticRegression(C=1.0, max_iter=500)", "DecisionTreeClassifier(max_depth=1)")
    )
    done = _retrain(
        capsule_cmd,
        subprocess_env,
        trained.workdir,
        str(trained.capsule),
        "--script",
        str(changed),
        "-o",
        str(tmp_path / "stump.capsule"),
        "--json",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["within_range"] is False
    assert report["metrics"][0]["verdict"] == "outside"
    assert report["metrics"][0]["now_mean"] < report["metrics"][0]["low"]


def test_different_training_data_is_reported_with_its_fingerprint(
    trained: Trained, tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    changed = tmp_path / "one_feature.py"
    changed.write_text(
        TRAIN_SCRIPT.replace(
            "X, y = load_iris(return_X_y=True)", "X, y = load_iris(return_X_y=True)\nX = X[:, :1]"
        )
    )
    done = _retrain(
        capsule_cmd,
        subprocess_env,
        trained.workdir,
        str(trained.capsule),
        "--script",
        str(changed),
        "-o",
        str(tmp_path / "one.capsule"),
        "--json",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["training_data"]["same"] is False
    assert report["training_data"]["now_shape"] == [150, 1]
    assert report["metrics"][0]["verdict"] == "outside"
    # the one-feature model cannot take the saved 4-feature sample: no row agrees, and the note says why
    assert [a["equal"] for a in report["golden_sample_agreement"]] == [0, 0, 0]
    assert "X has 4 features" in report["notes"][0]


def test_a_wider_tolerance_can_admit_what_the_default_rejects(
    trained: Trained, tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    weaker = tmp_path / "weaker.py"
    weaker.write_text(TRAIN_SCRIPT.replace("C=1.0", "C=0.01"))
    done = _retrain(
        capsule_cmd,
        subprocess_env,
        trained.workdir,
        str(trained.capsule),
        "--script",
        str(weaker),
        "-o",
        str(tmp_path / "weaker.capsule"),
        "--tolerance",
        "20",
        "--json",
    )
    (metric,) = json.loads(done.stdout)["metrics"]
    then_mean, then_std = statistics.fmean(metric["then"]), statistics.pstdev(metric["then"])
    assert abs(metric["now_mean"] - then_mean) > 2 * then_std, "outside the default range (K=2)..."
    assert done.returncode == 0, "...but within K=20"
    assert metric["low"] == pytest.approx(then_mean - 20 * then_std)


def test_a_failing_script_exits_1_with_its_last_lines(
    trained: Trained, tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("print('loading data')\nraise SystemExit('the data source is gone')\n")
    done = _retrain(
        capsule_cmd,
        subprocess_env,
        trained.workdir,
        str(trained.capsule),
        "--script",
        str(broken),
        "-o",
        str(tmp_path / "x.capsule"),
    )
    assert done.returncode == 1
    assert "broken.py failed with exit code 1" in done.stderr
    assert "the data source is gone" in done.stderr


def test_a_script_that_runs_too_long_is_stopped(
    trained: Trained, tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    slow = tmp_path / "slow.py"
    slow.write_text("import time\nprint('epoch 1', flush=True)\ntime.sleep(60)\n")
    done = _retrain(capsule_cmd, subprocess_env, trained.workdir, str(trained.capsule), "--script", str(slow),
                    "-o", str(tmp_path / "x.capsule"), "--timeout", "1")
    assert done.returncode == 1
    assert "did not finish within 1 s" in done.stderr


def test_a_negative_tolerance_is_a_usage_error(trained: Trained, capsule_cmd: list[str],
                                               subprocess_env: dict[str, str]) -> None:
    done = _retrain(capsule_cmd, subprocess_env, trained.workdir, str(trained.capsule), "--tolerance", "-1")
    assert done.returncode == 2


def test_a_script_that_never_saves_is_an_error(
    trained: Trained, tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    silent = tmp_path / "silent.py"
    silent.write_text("print('trained, but forgot to save')\n")
    done = _retrain(
        capsule_cmd,
        subprocess_env,
        trained.workdir,
        str(trained.capsule),
        "--script",
        str(silent),
        "-o",
        str(tmp_path / "x.capsule"),
    )
    assert done.returncode == 1
    assert "saved no capsule" in done.stderr


def test_an_existing_output_needs_overwrite(
    trained: Trained, tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    existing = tmp_path / "taken.capsule"
    existing.write_bytes(b"keep me")
    done = _retrain(capsule_cmd, subprocess_env, trained.workdir, str(trained.capsule), "-o", str(existing))
    assert done.returncode == 2
    assert "--overwrite" in done.stderr
    assert existing.read_bytes() == b"keep me"


def test_a_capsule_saved_without_its_script_asks_for_one(
    tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    X, y = load_iris(return_X_y=True)
    mc.save(
        LogisticRegression(max_iter=500).fit(X, y),
        tmp_path / "bare.capsule",
        sample=X[:5],
        source=False,
        metrics={"cv_accuracy": [0.9, 0.95]},
    )
    done = _retrain(capsule_cmd, subprocess_env, tmp_path, str(tmp_path / "bare.capsule"))
    assert done.returncode == 1
    assert "--script FILE" in done.stderr


@pytest.mark.parametrize("name", ["env", "dockerfile", "retrain"])
def test_help_works_for_every_reproduce_command(
    name: str, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    done = subprocess.run(
        [*capsule_cmd, name, "--help"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: capsule " + name in done.stdout
