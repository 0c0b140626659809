"""The golden sample cannot choose what runs: only the declared prediction methods of the object that
was actually loaded, on plain inputs that fit the signature.

Each capsule here is a real, well-formed capsule whose manifest was edited the way an attacker would
(an unsigned manifest is just JSON). The canary is a cache folder that scikit-learn's ``Pipeline`` writes
whenever its ``fit`` runs: it must never appear, whatever the manifest asks for and whether or not
the sample is verified.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import modelcapsule as mc
from modelcapsule.errors import CapsuleFormatError, UnsupportedModelError, VerificationError


def pipeline_with_cache(canary: Path) -> tuple[Pipeline, np.ndarray]:
    """A pipeline whose ``fit`` writes a joblib cache into ``canary`` (its ``predict`` never does)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int)
    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(x, y)
    model.set_params(memory=str(canary))  # set after fitting: nothing written yet
    return model, x


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "canary-cache"
    yield path
    assert not path.exists(), "a method the manifest named was run: the pipeline's fit wrote its cache"


def edited(tmp_path: Path, model: Any, sample: Any, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A directory capsule of ``model`` whose capsule.json went through ``edit``."""
    path = tmp_path / "m"
    mc.save(model, path, sample=sample, layout="dir", source=False)
    doc = json.loads((path / "capsule.json").read_text())
    edit(doc)
    (path / "capsule.json").write_text(json.dumps(doc))
    return path


def rename_output(doc: dict[str, Any], new: str) -> None:
    doc["sample"]["outputs"] = {new: doc["sample"]["outputs"]["predict"]}


@pytest.mark.parametrize("method", ["fit", "fit_transform", "partial_fit", "set_params", "__init__",
                                    "__setstate__", "_fit", "steps", "score"])
def test_a_sample_naming_anything_but_a_declared_prediction_method_runs_nothing(
        tmp_path: Path, canary: Path, method: str) -> None:
    model, x = pipeline_with_cache(canary)
    path = edited(tmp_path, model, x[:5], lambda doc: rename_output(doc, method))
    with pytest.raises(CapsuleFormatError, match="not a declared prediction method"):
        mc.load(path)
    report = mc.verify(path)
    assert not report.ok and any("not a declared prediction method" in p for p in report.problems)


def test_a_signature_naming_fit_is_refused_even_without_verification(tmp_path: Path, canary: Path) -> None:
    """The silent variant: with verify=False the old loader handed back a predictor whose default output
    was ``fit``, so the first served request retrained (and poisoned) the model."""
    model, x = pipeline_with_cache(canary)

    def edit(doc: dict[str, Any]) -> None:
        doc["signature"]["outputs"][0]["name"] = "fit"

    path = edited(tmp_path, model, x[:5], edit)
    with pytest.raises(CapsuleFormatError, match="the signature asks to run 'fit'"):
        mc.load_capsule(path, verify=False)


def test_the_framework_is_the_loaded_objects_not_the_manifests(tmp_path: Path, canary: Path) -> None:
    model, x = pipeline_with_cache(canary)

    def edit(doc: dict[str, Any]) -> None:
        doc["model"]["framework"] = "onnx"  # the ONNX adapter would run graph outputs by name

    path = edited(tmp_path, model, x[:5], edit)
    with pytest.raises(CapsuleFormatError, match="manifest says framework 'onnx' but the payload is a sklearn"):
        mc.load(path, verify=False)


def test_sample_inputs_must_fit_the_declared_signature(tmp_path: Path, canary: Path) -> None:
    model, x = pipeline_with_cache(canary)

    def edit(doc: dict[str, Any]) -> None:
        doc["signature"]["inputs"][0]["shape"] = [-1, 7]

    path = edited(tmp_path, model, x[:5], edit)
    with pytest.raises(CapsuleFormatError, match="does not|declares"):
        mc.load(path)


def test_a_sample_member_outside_sample_is_refused(tmp_path: Path) -> None:
    """Pointing the sample at the payload would make the loader read the model's bytes as 'inputs'."""
    model, x = pipeline_with_cache(tmp_path / "unused")

    def edit(doc: dict[str, Any]) -> None:
        doc["sample"]["inputs"]["input"]["member"] = doc["format"]["member"]

    path = edited(tmp_path, model, x[:5], edit)
    with pytest.raises(CapsuleFormatError, match="not a sample/ member"):
        mc.inspect(path)


def test_a_vectorizer_that_opens_the_files_its_inputs_name_is_never_run_on_the_sample(tmp_path: Path) -> None:
    """``CountVectorizer(input='filename')`` opens every path in its input: a sample of paths would read
    any file the loading user can read, and the old error message quoted what it found there."""
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2 " * 50)
    texts = np.array(["red apple", "green pear", "red pear"])
    model = make_pipeline(CountVectorizer(), LogisticRegression()).fit(texts, [0, 1, 0])
    path = edited(tmp_path, model, texts, lambda doc: None)
    model.set_params(countvectorizer__input="filename")
    opened: list[str] = []

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and args and str(args[0]) == str(secret):
            opened.append(event)

    sys.addaudithook(audit)
    mc.save(model, path, sample=np.array([str(secret)] * 3), layout="dir", source=False, overwrite=True)
    manifest = mc.inspect(path)
    assert "predict" in manifest.model.get("skipped_methods", {})  # never called at save either
    assert manifest.sample is not None and not manifest.sample["outputs"]
    doc = json.loads((path / "capsule.json").read_text())
    (path / "sample" / "outputs").mkdir()
    np.save(path / "sample" / "outputs" / "predict.npy", np.zeros(3, dtype=np.int64))
    from modelcapsule.core.container_write import sha256_of

    data = (path / "sample" / "outputs" / "predict.npy").read_bytes()
    doc["files"]["sample/outputs/predict.npy"] = {"sha256": sha256_of(data), "size": len(data)}
    doc["sample"]["outputs"] = {"predict": {"member": "sample/outputs/predict.npy", "dtype": "int64"}}
    (path / "capsule.json").write_text(json.dumps(doc))
    with pytest.raises(VerificationError, match="opens the files its inputs name") as info:
        mc.load(path)
    assert "hunter2" not in str(info.value)
    assert not opened, "the loader opened a file named by the golden sample"
    with pytest.raises(UnsupportedModelError):
        mc.frameworks.sklearn.SklearnFramework().call(model, "predict", [str(secret)])  # type: ignore[attr-defined]
