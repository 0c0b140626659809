"""``audit`` and ``capsule audit``: every name a file would import, found without importing or running it."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modelcapsule as mc


class _Touch:
    """Pickles as ``os.system("touch <path>")``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.path}",)


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    return LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))


@pytest.fixture
def hostile_pkl(tmp_path: Path) -> tuple[Path, Path]:
    canary = tmp_path / "CANARY"
    path = tmp_path / "hostile.pkl"
    path.write_bytes(pickle.dumps({"model": "looks fine", "payload": _Touch(canary)}))
    return path, canary


def test_audit_of_a_capsule_summarises_the_manifest_and_checks_hashes(
    tmp_path: Path, model: LogisticRegression
) -> None:
    path = tmp_path / "m.capsule"
    mc.save(model, path, sample=np.zeros((2, 3)), source=False)
    report = mc.audit(path)
    assert report.kind == "capsule" and report.format == "safepickle" and report.ok
    assert "sklearn.linear_model._logistic.LogisticRegression" in report.globals
    assert report.untrusted == [] and report.hashes.startswith("ok")
    assert report.manifest is not None and report.manifest["chosen_by"] == "auto"
    assert report.manifest["class"] == "sklearn.linear_model._logistic.LogisticRegression"


def test_audit_reports_untrusted_names_and_the_flags_to_trust_them(hostile_pkl: tuple[Path, Path]) -> None:
    path, canary = hostile_pkl
    report = mc.audit(path)
    assert report.format == "pickle" and report.untrusted == ["posix.system"]
    assert report.trusted_arg == "trusted=['posix.system']"
    assert report.trust_flags == "--trust posix.system"
    assert mc.audit(path, trusted=["posix.system"]).ok  # the policy is the caller's, never the file's
    assert not canary.exists()


def test_audit_of_plain_joblib_and_skops_files(tmp_path: Path, model: LogisticRegression) -> None:
    import skops.io as sio

    joblib.dump(model, tmp_path / "m.joblib", compress=3)
    sio.dump(model, tmp_path / "m.skops")
    for name, fmt in (("m.joblib", "joblib"), ("m.skops", "skops")):
        report = mc.audit(tmp_path / name)
        assert report.format == fmt and report.ok, report
        assert "sklearn.linear_model._logistic.LogisticRegression" in report.globals


def test_audit_reports_tampered_capsules(tmp_path: Path, model: LogisticRegression) -> None:
    path = tmp_path / "m.capsule"
    mc.save(model, path, layout="dir", source=False)
    member = path / "model" / "model.pkl"
    original = member.read_bytes()
    member.write_bytes(original[:-2] + bytes([original[-2] ^ 1]) + original[-1:])  # same size, one bit
    report = mc.audit(path)
    assert report.hashes == "mismatch" and not report.ok
    member.write_bytes(original + b"\x00")  # a different size is caught when the capsule is opened
    report = mc.audit(path)
    assert not report.ok and "altered" in report.problems[0]


def test_cli_audit_of_a_hostile_pkl_lists_the_names_and_has_no_side_effect(
    hostile_pkl: tuple[Path, Path], capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    path, canary = hostile_pkl
    run = subprocess.run(
        check=False,
        args=[*capsule_cmd, "audit", str(path)],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    assert "posix.system" in run.stdout and "--trust posix.system" in run.stdout
    assert not canary.exists()
    as_json = subprocess.run(
        check=False,
        args=[*capsule_cmd, "audit", str(path), "--json", "--trust", "posix.system"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["untrusted"] == []
    assert not canary.exists()


def test_cli_audit_usage_errors_exit_2(tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]) -> None:
    missing = subprocess.run(
        check=False,
        args=[*capsule_cmd, "audit", str(tmp_path / "nope.pkl")],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(1))
    bad_name = subprocess.run(
        check=False,
        args=[*capsule_cmd, "audit", str(tmp_path / "m.pkl"), "--trust", "os"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad_name.returncode == 2 and "exact 'module.qualname'" in bad_name.stderr
