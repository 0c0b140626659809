"""Where a model came from: the training script (hash, git commit, text), a fingerprint of the training
data that never stores the data, and metrics made JSON."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from modelcapsule.core.provenance import (
    MAX_SOURCE_BYTES,
    SOURCE_MEMBER,
    calling_script,
    describe_source,
    fingerprint_data,
    json_metrics,
)


def test_the_calling_script_is_the_first_file_outside_modelcapsule_and_libraries() -> None:
    assert calling_script() == Path(__file__).resolve()


def test_a_script_is_recorded_by_hash_with_its_text(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("print('training')\n")
    entry, text = describe_source(script)
    assert entry == {
        "path": str(script.resolve()),
        "sha256": hashlib.sha256(script.read_bytes()).hexdigest(),
        "member": SOURCE_MEMBER,
    }
    assert text == script.read_bytes()


def test_no_source_when_asked_or_when_the_file_is_missing(tmp_path: Path) -> None:
    assert describe_source(False) == (None, None)
    assert describe_source(tmp_path / "absent.py") == (None, None)


def test_a_script_in_a_git_repository_records_its_commit_and_whether_it_changed_since(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q")
    script = tmp_path / "train.py"
    script.write_text("x = 1\n")
    git("add", "train.py")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "train")
    entry, _ = describe_source(script)
    assert entry is not None
    assert entry["git_commit"] == git("rev-parse", "HEAD")
    assert entry["git_dirty"] is False
    script.write_text("x = 2\n")
    entry, _ = describe_source(script)
    assert entry is not None and entry["git_dirty"] is True


def test_a_very_large_script_is_recorded_by_hash_only(tmp_path: Path) -> None:
    script = tmp_path / "generated.py"
    script.write_bytes(b"#" * (MAX_SOURCE_BYTES + 1))
    entry, text = describe_source(script)
    assert text is None
    assert entry is not None and "member" not in entry and len(entry["sha256"]) == 64


def test_the_fingerprint_describes_arrays_without_storing_them() -> None:
    X = np.arange(12.0).reshape(4, 3)
    y = np.array([0, 1, 0, 1])
    fp = fingerprint_data((X, y))
    assert fp["n_samples"] == 4 and fp["n_features"] == 3
    assert fp["dtypes"] == "float64" and fp["target_dtype"] == "int64"
    assert fp["fingerprint"].startswith("sha256:") and len(fp["fingerprint"]) == 7 + 64
    assert set(fp) == {"n_samples", "n_features", "dtypes", "target_dtype", "fingerprint"}


def test_the_same_data_gives_the_same_fingerprint_and_any_change_another() -> None:
    X = np.arange(12.0).reshape(4, 3)
    y = np.array([0, 1, 0, 1])
    same = fingerprint_data((X.copy(), y.copy()))["fingerprint"]
    assert fingerprint_data((X, y))["fingerprint"] == same
    changed = X.copy()
    changed[2, 1] += 1e-9
    assert fingerprint_data((changed, y))["fingerprint"] != same
    assert fingerprint_data((X, y[::-1].copy()))["fingerprint"] != same
    assert fingerprint_data(X)["fingerprint"] != same
    assert fingerprint_data((X.astype(np.float32), y))["fingerprint"] != same


def test_a_dataframe_records_its_columns_and_dtypes() -> None:
    frame = pd.DataFrame({"age": [31, 45], "city": ["Paris", "Lyon"]})
    fp = fingerprint_data((frame, pd.Series([1, 0])))
    assert fp["columns"] == ["age", "city"]
    assert fp["dtypes"]["age"] == "int64"
    assert fp["n_samples"] == 2 and fp["n_features"] == 2
    renamed = frame.rename(columns={"city": "town"})
    assert fingerprint_data((renamed, pd.Series([1, 0])))["fingerprint"] != fp["fingerprint"]


def test_a_single_column_of_values_counts_as_one_feature() -> None:
    assert fingerprint_data(np.array([1.0, 2.0, 3.0]))["n_features"] == 1


def test_metrics_become_json_floats_and_lists() -> None:
    metrics = {"cv_accuracy": np.array([0.9, 0.95]), "auc": np.float32(0.5), "folds": 5, "note": "holdout",
               "pair": (1, 2)}
    assert json_metrics(metrics) == {"cv_accuracy": [0.9, 0.95], "auc": 0.5, "folds": 5.0, "note": "holdout",
                                     "pair": [1.0, 2.0]}
    assert json_metrics(None) == {}
