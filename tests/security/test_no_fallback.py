"""Nothing ever falls back to an unrestricted loader, whatever error happens first.

Every unrestricted loader the process could reach (pickle, _pickle, joblib, cloudpickle, numpy.load
with pickles) is replaced by a tripwire that records the call. Then every hostile capsule of the corpus
is loaded in every mode (signed or not, right or wrong key, golden sample on or off, ZIP or
directory), and faults are injected at each step of the load. Each attempt must end in a typed error
with no tripwire touched and no canary created.
"""

from __future__ import annotations

import _pickle
import importlib
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import joblib
import joblib.numpy_pickle
import numpy as np
import pytest
from hostile_corpus import PICKLE_CASES, build_capsule, canary_path
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from test_trusted_type_abuse import CASES as ABUSE_CASES

import modelcapsule as mc
from modelcapsule.errors import CapsuleError, SignatureError
from modelcapsule.formats import safepickle
from modelcapsule.security import policy as trust
from modelcapsule.security.signing import generate_key, sign_capsule

load_module = importlib.import_module("modelcapsule.load")  # the module; mc.load is the function
sample_module = importlib.import_module("modelcapsule.core.sample")

STREAM = "model/model.pkl"
UNRESTRICTED = [
    (pickle, "load"), (pickle, "loads"), (pickle, "_load"), (pickle, "_loads"), (pickle, "Unpickler"),
    (pickle, "_Unpickler"), (_pickle, "load"), (_pickle, "loads"), (_pickle, "Unpickler"),
    (joblib, "load"), (joblib.numpy_pickle, "load"), (cloudpickle, "load"), (cloudpickle, "loads"),
    (np, "load"),
]


@pytest.fixture
def tripwires(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Replace every unrestricted loader with a function that records its use and refuses to load."""
    fired: list[str] = []
    for module, attr in UNRESTRICTED:
        name = f"{module.__name__}.{attr}"
        original = getattr(module, attr)

        def wire(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            if _name == "numpy.load" and not kwargs.get("allow_pickle", False):
                return _original(*args, **kwargs)  # numpy.load without pickles is a plain array reader
            fired.append(_name)
            raise RuntimeError(f"unrestricted loader {_name} was called")

        monkeypatch.setattr(module, attr, wire)
    yield fired


def _hostile_capsules(tmp: Path) -> Iterator[tuple[str, Path]]:
    for case, spec in sorted(PICKLE_CASES.items()):
        members = {STREAM: spec.build(tmp)}
        yield case, build_capsule(tmp / f"{case}.capsule", members,
                                  details={"member": STREAM, "protocol": 5, "buffers": 0})
    for case, (build, _limits, _error, _needle) in sorted(ABUSE_CASES.items()):
        members = build(tmp)
        buffers = sum(n.startswith("model/buffers/") for n in members)
        yield case, build_capsule(tmp / f"{case}.capsule", members,
                                  details={"member": STREAM, "protocol": 5, "buffers": buffers})


@pytest.mark.parametrize("mode", ["plain", "no-sample-check", "signed-right-key", "signed-wrong-key",
                                  "unsigned-with-key", "directory"])
def test_no_hostile_capsule_reaches_an_unrestricted_loader(tmp_path: Path, tripwires: list[str],
                                                           mode: str) -> None:
    key = generate_key()
    for case, built in _hostile_capsules(tmp_path):
        path = built
        kwargs: dict[str, Any] = {"limits": mc.Limits(max_array_elements=1000)}
        if mode == "no-sample-check":
            kwargs["verify"] = False
        if mode.startswith("signed"):
            sign_capsule(path, key)
            kwargs["public_key"] = key.public_key() if mode == "signed-right-key" else generate_key().public_key()
        if mode == "unsigned-with-key":
            kwargs["public_key"] = key.public_key()
        if mode == "directory":
            unpacked = tmp_path / f"{case}.dir"
            with mc.core.container.open_capsule(path) as reader:
                build_capsule(unpacked, {n: reader.read(n) for n in reader.manifest.files}, layout="dir",
                              details=dict(reader.manifest.format))
            path = unpacked
        with pytest.raises(CapsuleError) as info:
            mc.load(path, **kwargs)
        if mode in ("signed-wrong-key", "unsigned-with-key"):
            assert type(info.value) is SignatureError, case
        report = mc.verify(path, public_key=kwargs.get("public_key"), limits=kwargs["limits"])
        assert not report.ok, case
        assert tripwires == [], f"{case} in mode {mode} reached {tripwires}"
        assert not canary_path(tmp_path).exists(), case
        if path.is_dir():
            shutil.rmtree(path)


class Injected(Exception):
    """A fault injected into one step of the load."""


STEPS = [
    (mc.core.container.CapsuleReader, "check_hashes"),
    (load_module, "validate_model"),
    (trust.RestrictedUnpickler, "find_class"),
    (safepickle, "restricted_loads"),
    (safepickle, "scan_pickle"),
    (load_module.environment, "compare_environment"),
    (sample_module, "read_sample"),  # the one golden-sample loop lives in core/sample.py
    (sample_module, "compare_outputs"),
]


@pytest.fixture(scope="module")
def good_capsule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    X, y = load_iris(return_X_y=True)
    path = tmp_path_factory.mktemp("good") / "iris.capsule"
    mc.save(LogisticRegression(max_iter=500).fit(X, y), path, sample=X[:5], source=False)
    return path


@pytest.mark.parametrize("error", [Injected, MemoryError, RecursionError, ValueError, KeyError, OSError])
@pytest.mark.parametrize(("owner", "attr"), STEPS, ids=[f"{o.__name__}.{a}" for o, a in STEPS])
def test_a_fault_in_any_step_propagates_instead_of_falling_back(
    good_capsule: Path, tripwires: list[str], monkeypatch: pytest.MonkeyPatch, owner: Any, attr: str,
    error: type[BaseException],
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise error(f"injected into {attr}")

    monkeypatch.setattr(owner, attr, broken)
    with pytest.raises(BaseException) as info:
        mc.load(good_capsule)
    assert "injected" in str(info.value) or isinstance(info.value, CapsuleError)
    assert tripwires == []


def test_the_tripwires_are_armed(tripwires: list[str]) -> None:
    """The fixture really replaces the loaders a fallback would use."""
    with pytest.raises(RuntimeError, match="pickle.loads"):
        pickle.loads(b"\x80\x05K\x01.")
    with pytest.raises(RuntimeError, match="joblib.load"):
        joblib.load("anything")
    with pytest.raises(RuntimeError, match="numpy.load"):
        np.load("anything", allow_pickle=True)
    assert tripwires == ["pickle.loads", "joblib.load", "numpy.load"]
