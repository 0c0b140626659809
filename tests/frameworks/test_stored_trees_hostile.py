"""Stored flat trees come from an untrusted file: every inconsistency is a ``CapsuleFormatError`` before
any walk, never an ``IndexError``, a hang or an out-of-bounds read (children inside their tree and after
their parent, one parent each, features inside the input, lengths that agree, sizes within ``Limits``)."""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

import modelcapsule as mc
from modelcapsule.core.container import DEFAULT_LIMITS, Limits, sha256_of
from modelcapsule.errors import CapsuleFormatError, LimitExceededError
from modelcapsule.frameworks.tree_store import MAX_FLAT_DEPTH, check_arrays

SECTION = {"layout": 1, "family": "forest", "classifier": True, "n_features": 3, "n_trees": 2, "per_stage": 1,
           "n_outputs": 1, "input_dtype": "float32", "allow_nan": False, "allow_inf": False, "link": "identity",
           "methods": ["predict"]}


def arrays() -> dict[str, np.ndarray[Any, Any]]:
    """Two trees: a split on column 2 with two leaves, then a single leaf."""
    return {"roots": np.array([0, 3]), "children": np.array([[1, 2], [-1, -1], [-1, -1], [-1, -1]]),
            "feature": np.array([2, 0, 0, 0]), "threshold": np.array([0.5, -2, -2, -2]),
            "missing_left": np.zeros(4, dtype=bool), "value": np.array([[0.5, 0.5], [1, 0], [0, 1], [0.3, 0.7]]),
            "classes": np.array([0, 1])}


def test_the_consistent_arrays_load_and_walk() -> None:
    stored = check_arrays(SECTION, arrays(), DEFAULT_LIMITS)
    assert stored.flat.depth == 1
    x = np.array([[0, 0, 0.0], [0, 0, 1.0]])
    assert stored.flat.leaves(x).tolist() == [[1, 3], [2, 3]]


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda a: a.__setitem__(key, np.asarray(value))


HOSTILE: dict[str, Callable[[dict[str, Any]], None]] = {
    "a child index out of range": _set("children", [[1, 9], [-1, -1], [-1, -1], [-1, -1]]),
    "a negative child": _set("children", [[1, -5], [-1, -1], [-1, -1], [-1, -1]]),
    "a cycle (a child before its parent)": _set("children", [[1, 2], [0, 2], [-1, -1], [-1, -1]]),
    "a node that is its own child": _set("children", [[0, 2], [-1, -1], [-1, -1], [-1, -1]]),
    "a child in the next tree": _set("children", [[1, 3], [-1, -1], [-1, -1], [-1, -1]]),
    "a leaf with one child": _set("children", [[1, 2], [2, -1], [-1, -1], [-1, -1]]),
    "a node with two parents": _set("children", [[1, 2], [2, 2], [-1, -1], [-1, -1]]),
    "a feature index too large": _set("feature", [3, 0, 0, 0]),
    "a negative feature": _set("feature", [-1, 0, 0, 0]),
    "mismatched lengths": _set("threshold", [0.5, -2, -2]),
    "children of the wrong width": _set("children", [[1, 2, 0], [-1, -1, 0], [-1, -1, 0], [-1, -1, 0]]),
    "roots out of order": _set("roots", [3, 0]),
    "a root past the nodes": _set("roots", [0, 4]),
    "a root that is a child": _set("roots", [0, 1]),
    "too few trees for the section": _set("roots", [0]),
    "leaf values that are not a class per column": _set("value", np.zeros((4, 3))),
    "float indices": _set("children", np.array([[1, 2], [-1, -1], [-1, -1], [-1, -1]], dtype=float)),
    "no classes": lambda a: a.pop("classes"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_arrays_are_refused(case: str) -> None:
    hostile = arrays()
    HOSTILE[case](hostile)
    with pytest.raises(CapsuleFormatError):
        check_arrays(SECTION, hostile, DEFAULT_LIMITS)


def test_a_chain_deeper_than_the_cap_is_refused_at_once() -> None:
    n = 2 * MAX_FLAT_DEPTH + 3  # a right-leaning chain: node 2k splits into leaf 2k+1 and node 2k+2
    children = np.full((n, 2), -1)
    inner = np.arange(0, n - 1, 2)
    children[inner, 0], children[inner, 1] = inner + 1, inner + 2
    chain = {**arrays(), "roots": np.array([0]), "children": children, "feature": np.zeros(n, dtype=int),
             "threshold": np.zeros(n), "missing_left": np.zeros(n, dtype=bool), "value": np.ones((n, 2))}
    start = time.perf_counter()
    with pytest.raises(CapsuleFormatError, match="deeper than"):
        check_arrays({**SECTION, "n_trees": 1}, chain, DEFAULT_LIMITS)
    assert time.perf_counter() - start < 2


def test_the_node_count_obeys_the_limits() -> None:
    with pytest.raises(LimitExceededError):
        check_arrays(SECTION, arrays(), Limits(max_array_elements=3))


def _npy(value: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, value, allow_pickle=True)
    return buffer.getvalue()


@pytest.fixture
def capsule(tmp_path: Path) -> Path:
    x = np.random.default_rng(0).normal(size=(200, 4))
    model = RandomForestClassifier(4, max_depth=3, random_state=0).fit(x, x[:, 0] > 0)
    path = tmp_path / "forest"
    mc.save(model, path, sample=x[:8], source=False, layout="dir")
    return path


def _replace_member(path: Path, member: str, data: bytes) -> None:
    """Write ``data`` as ``member`` and record its true hash, as an attacker who rewrites the manifest would."""
    (path / member).write_bytes(data)
    manifest = json.loads((path / "capsule.json").read_text())
    manifest["files"][member] = {"sha256": sha256_of(memoryview(data)), "size": len(data)}
    (path / "capsule.json").write_text(json.dumps(manifest))


def test_a_hostile_member_with_a_matching_hash_is_refused_on_load(capsule: Path) -> None:
    children = np.load(capsule / "trees" / "children.npy")
    children[0] = [len(children) + 10, 1]
    _replace_member(capsule, "trees/children.npy", _npy(children))
    with pytest.raises(CapsuleFormatError, match="node 0"):
        mc.load_capsule(capsule, runtime="flat", recheck=True)


def test_a_pickled_member_is_never_unpickled(capsule: Path) -> None:
    _replace_member(capsule, "trees/value.npy", _npy(np.array([{"a": 1}], dtype=object)))
    with pytest.raises(CapsuleFormatError, match="plain NPY"):
        mc.load_capsule(capsule, runtime="flat", recheck=True)


@pytest.mark.parametrize("edit", [
    lambda t: t.update(family="svm"),
    lambda t: t.update(methods=["transform"]),
    lambda t: t["members"].update(value="model/payload.bin"),
    lambda t: t.update(n_features=0),
    lambda t: t["members"].pop("children"),
])
def test_a_malformed_section_is_refused_when_the_manifest_is_read(capsule: Path, edit: Callable[[Any], None]) -> None:
    manifest = json.loads((capsule / "capsule.json").read_text())
    edit(manifest["trees"])
    (capsule / "capsule.json").write_text(json.dumps(manifest))
    with pytest.raises(CapsuleFormatError, match="trees"):
        mc.inspect(capsule)


FIELDS = ["family", "classifier", "n_features", "n_trees", "per_stage", "n_outputs", "input_dtype", "allow_nan",
          "allow_inf", "link", "learning_rate", "methods", "members", "object_labels", "feature_names", "layout"]
VALUES: list[Any] = [None, True, False, 0, 1, 2, 3, 5, -1, 2**40, 1e308, "forest", "hist", "gb", "float64", "expit",
                     "softmax", ["predict"], ["decision_function"], ["predict", "predict_proba"], {},
                     "trees/value.npy", ["a", "b"]]


@pytest.mark.parametrize("field", FIELDS)
def test_any_value_in_any_field_gives_a_predictor_or_a_typed_error(capsule: Path, field: str) -> None:
    original = (capsule / "capsule.json").read_text()
    for value in VALUES:
        manifest = json.loads(original)
        manifest["trees"][field] = value
        (capsule / "capsule.json").write_text(json.dumps(manifest))
        try:
            loaded = mc.load_capsule(capsule, runtime="flat", recheck=True)
        except mc.CapsuleError:
            continue
        rows = np.zeros((2, 4))
        with contextlib.suppress(mc.CapsuleError):  # InvalidInputError when the section's width is not the input's
            loaded.predictor.predict({"input": rows}, list(loaded.predictor.signature.output_names))
