"""Fuzzing every section of a real capsule's manifest: whatever value lands in whatever field, parsing
gives a manifest or a CapsuleFormatError, ``load`` raises only modelcapsule's typed errors, and
``verify`` returns a report without raising.

The capsule is real (a fitted model, a golden sample, correct hashes); only ``capsule.json`` changes,
exactly as an attacker can change an unsigned manifest.
"""

from __future__ import annotations

import contextlib
import copy
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

import modelcapsule as mc
from modelcapsule.core.manifest import parse_manifest
from modelcapsule.errors import CapsuleError, CapsuleFormatError

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

HOSTILE_TEXT = ["fit", "__init__", "../../etc/passwd", "sample/x.npy", "model/model.pkl", "object", "float64", "|O",
                "V8", "<U99999999"]
scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=12) | st.sampled_from(HOSTILE_TEXT))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12)


@pytest.fixture(scope="module")
def capsule(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    x = np.random.default_rng(2).normal(size=(20, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    path = tmp_path_factory.mktemp("fuzz") / "m"
    mc.save(model, path, sample=x[:4], layout="dir", source=False, metrics={"acc": [0.9, 0.8]})
    return path, json.loads((path / "capsule.json").read_text())


def paths_of(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``doc`` (a key or index at each level), the manifest's own fields."""
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += paths_of(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += paths_of(value, (*prefix, i))
    return found


def apply(doc: dict[str, Any], path: tuple[Any, ...], value: Any, delete: bool) -> None:
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    if delete and isinstance(target, dict):
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value


def check_everything(path: Path, doc: dict[str, Any]) -> None:
    raw = json.dumps(doc).encode()
    try:
        manifest = parse_manifest(raw)
    except CapsuleFormatError:
        manifest = None
    if manifest is not None:
        assert parse_manifest(manifest.to_json()).to_dict() == manifest.to_dict()
    (path / "capsule.json").write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # drift warnings from fuzzed package versions
        with contextlib.suppress(CapsuleError):  # a typed refusal is fine; anything else fails the test
            mc.load(path, on_mismatch="ignore")
        report = mc.verify(path)
    assert isinstance(report.to_dict(), dict)
    if manifest is None:
        assert not report.ok


@FUZZ
@given(data=st.data())
def test_any_value_in_any_section_is_parsed_or_refused_and_never_crashes_load_or_verify(
        capsule: tuple[Path, dict[str, Any]], data: st.DataObject) -> None:
    path, original = capsule
    doc = copy.deepcopy(original)
    fields = paths_of(original)
    for _ in range(data.draw(st.integers(1, 3))):
        field = data.draw(st.sampled_from(fields))
        try:
            apply(doc, field, data.draw(json_values), data.draw(st.booleans()))
        except (KeyError, IndexError, TypeError):
            continue
    check_everything(path, doc)


SECTION_ATTACKS: dict[str, tuple[tuple[Any, ...], Any]] = {
    "sample-member-outside-sample": (("sample", "inputs", "input", "member"), "model/model.pkl"),
    "sample-kind-unknown": (("sample", "inputs", "input", "kind"), "pickle"),
    "sample-stored-as-pickle": (("sample", "outputs", "predict", "stored_as"), "pickle"),
    "environment-packages-list": (("environment", "packages"), ["numpy"]),
    "environment-version-object": (("environment", "packages", "numpy"), {"v": 1}),
    "model-methods-not-strings": (("model", "methods"), [1, None]),
    "model-framework-path": (("model", "framework"), "../onnx"),
    "signature-dtype-object-record": (("signature", "inputs", 0, "dtype"), "[('a', 'O')]"),
    "signature-shape-bool": (("signature", "inputs", 0, "shape"), [True, 3]),
    "signature-shape-huge": (("signature", "outputs", 0, "shape"), [-1] * 64),
    "format-name-path": (("format", "name"), "../../safepickle"),
    "provenance-source-list": (("provenance", "source"), ["x"]),
    "onnx-section-list": (("onnx",), ["onnx/model.onnx"]),
    "files-size-bool": (("files", "sample/inputs/0.npy", "size"), True),
}


@pytest.mark.parametrize("attack", sorted(SECTION_ATTACKS))
def test_each_section_refuses_a_hostile_value_by_name(capsule: tuple[Path, dict[str, Any]], attack: str) -> None:
    _path, original = capsule
    doc = copy.deepcopy(original)
    field, value = SECTION_ATTACKS[attack]
    apply(doc, field, value, False)
    with pytest.raises(CapsuleFormatError):
        parse_manifest(json.dumps(doc).encode())


def test_a_sample_output_named_fit_parses_but_never_runs(capsule: tuple[Path, dict[str, Any]]) -> None:
    """Which names may run depends on the loaded object, so the refusal comes at load, before any call."""
    path, original = capsule
    doc = copy.deepcopy(original)
    doc["sample"]["outputs"] = {"fit": doc["sample"]["outputs"]["predict"]}
    parse_manifest(json.dumps(doc).encode())
    (path / "capsule.json").write_text(json.dumps(doc))
    with pytest.raises(CapsuleFormatError, match="'fit', which is not a declared prediction method"):
        mc.load(path)
    (path / "capsule.json").write_text(json.dumps(original))


def test_a_manifest_nested_past_the_budget_is_refused_without_recursion(
        capsule: tuple[Path, dict[str, Any]]) -> None:
    _path, original = capsule
    template = json.dumps({**original, "metadata": {"deep": "NEST"}}).encode()
    parse_manifest(template.replace(b'"NEST"', b'{"a": ' * 20 + b'"x"' + b"}" * 20))  # well within the budget
    for depth in (40, 900, 100_000):  # past the budget; near the interpreter's limit; far past it
        raw = template.replace(b'"NEST"', b'{"a": ' * depth + b'"x"' + b"}" * depth)
        with pytest.raises(CapsuleFormatError, match="nests deeper|not valid JSON"):
            parse_manifest(raw)
