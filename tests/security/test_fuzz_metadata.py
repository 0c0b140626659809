"""Fuzzing the metadata readers of the formats: Keras configs, LightGBM's fitted state, safetensors
headers and skops schemas. Whatever the bytes, each reader gives its result or a typed modelcapsule
error (never ``KeyError``, ``TypeError``, ``RecursionError``...), and ``load`` of a capsule carrying the
fuzzed metadata raises only typed errors too.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelcapsule as mc
from modelcapsule.errors import CapsuleError, CapsuleFormatError
from modelcapsule.formats.keras import MAX_CONFIG_DEPTH, config_custom_objects, read_config
from modelcapsule.formats.lightgbm import check_fitted
from modelcapsule.formats.safetensors import check_header

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

names = st.text(alphabet=st.characters(blacklist_characters=">"), max_size=10)  # ">" would look up Keras' registry
scalars = (st.none() | st.booleans() | st.integers(-(2**66), 2**66) | st.floats(allow_nan=False, allow_infinity=False)
           | names | st.sampled_from(["__lambda__", "function", "builtins", "keras.layers", "os", "system",
                                      "F32", "I64", "<U5", "|O", "float64", "__module__", "__class__"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(names | st.sampled_from(
                               ["class_name", "module", "config", "registered_name", "dtype", "values", "shape",
                                "data_offsets", "__metadata__", "objective", "classes", "n_features_in",
                                "__module__", "__class__", "content", "type"]), inner, max_size=4), max_leaves=20)


def keras_archive(config: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", config)
        zf.writestr("metadata.json", b"{}")
    return buf.getvalue()


@FUZZ
@given(config=json_values)
def test_keras_configs_give_names_or_a_format_error(config: Any) -> None:
    try:
        found = config_custom_objects(read_config(keras_archive(json.dumps(config).encode())))
    except CapsuleFormatError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in found.items())


@pytest.mark.parametrize("depth", [MAX_CONFIG_DEPTH + 1, 5_000, 200_000])
def test_a_keras_config_nested_past_its_budget_is_refused(depth: int) -> None:
    raw = b'{"class_name": "Sequential", "config": ' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(CapsuleFormatError, match="nests deeper|not valid JSON"):
        read_config(keras_archive(raw))


@FUZZ
@given(fitted=st.dictionaries(st.sampled_from(["objective", "best_iteration", "fitted_with_feature_names",
                                               "n_features_in", "classes"]), json_values, max_size=5))
def test_lightgbm_fitted_state_is_checked_or_refused(fitted: dict[str, Any]) -> None:
    try:
        check_fitted(fitted, "model/params.json")
    except CapsuleFormatError:
        return


def safetensors_bytes(header: Any, body: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


@FUZZ
@given(header=json_values, body=st.binary(max_size=64))
def test_safetensors_headers_are_checked_or_refused(header: Any, body: bytes) -> None:
    try:
        check_header(safetensors_bytes(header, body))
    except CapsuleFormatError:
        return


@FUZZ
@given(raw=st.binary(max_size=256))
def test_arbitrary_bytes_are_not_a_safetensors_header(raw: bytes) -> None:
    try:
        check_header(raw)
    except CapsuleFormatError:
        return


@pytest.mark.parametrize("header", [
    {"w": {"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 4]}},
    {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 1 << 50]}},
    {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "v": {"dtype": "F32", "shape": [1],
                                                                       "data_offsets": [4, 8]}},
    {"w": {"dtype": "OBJ", "shape": [1], "data_offsets": [0, 8]}},
    {"__metadata__": {"k": ["not", "a", "string"]}},
    {"": {"dtype": []}},  # an unhashable dtype (found by the fuzzer: a TypeError escaped)
])
def test_hostile_safetensors_headers_are_refused_before_any_allocation(header: Any) -> None:
    with pytest.raises(CapsuleFormatError):
        check_header(safetensors_bytes(header, b"\0" * 8))


def test_a_safetensors_length_prefix_past_the_file_is_refused() -> None:
    with pytest.raises(CapsuleFormatError, match="claims"):
        check_header(struct.pack("<Q", 1 << 62) + b"{}")


# -------------------------------------------------------------------------- through load and verify


def capsule_with(path: Path, member: str, data: bytes, format_name: str, details: dict[str, Any]) -> Path:
    doc = {"capsule_version": 1, "name": "fuzz", "created_at": "2026-01-01T00:00:00Z",
           "model": {"framework": "sklearn", "class": "x", "task": "x", "methods": [], "params": {}},
           "format": {"name": format_name, **details},
           "files": {member: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}},
           "signature": None, "environment": {"python": "3.11", "packages": {}}, "provenance": {},
           "sample": None, "types": [], "metadata": {}}
    path.mkdir(exist_ok=True)
    (path / member).parent.mkdir(parents=True, exist_ok=True)
    (path / member).write_bytes(data)
    (path / "capsule.json").write_text(json.dumps(doc))
    return path


def load_or_refuse(path: Path) -> None:
    with contextlib.suppress(CapsuleError):  # a typed refusal is fine; anything else fails the test
        mc.load(path, on_mismatch="ignore")
    report = mc.verify(path)
    assert isinstance(report.ok, bool)


def skops_bytes(schema: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("schema.json", schema)
    return buf.getvalue()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schema=json_values)
def test_skops_schemas_through_load_raise_only_typed_errors(schema: Any, tmp_path: Path) -> None:
    path = capsule_with(tmp_path / "skops", "model/model.skops", skops_bytes(json.dumps(schema).encode()), "skops",
                        {"member": "model/model.skops"})
    load_or_refuse(path)


def test_a_deep_skops_schema_through_load_is_a_format_error(tmp_path: Path) -> None:
    deep = b'{"__class__": "dict", "__module__": "builtins", "content": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    path = capsule_with(tmp_path / "skops", "model/model.skops", skops_bytes(deep), "skops",
                        {"member": "model/model.skops"})
    with pytest.raises(CapsuleFormatError):
        mc.load(path)
    assert not mc.verify(path).ok


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=json_values, body=st.binary(max_size=32))
def test_safetensors_payloads_through_load_raise_only_typed_errors(header: Any, body: bytes, tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    path = capsule_with(tmp_path / "st", "model/model.safetensors", safetensors_bytes(header, body), "safetensors",
                        {"member": "model/model.safetensors"})
    load_or_refuse(path)


@pytest.fixture(scope="module")
def lightgbm_capsule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lightgbm = pytest.importorskip("lightgbm")
    x = np.random.default_rng(3).normal(size=(60, 3))
    model = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(x, (x[:, 0] > 0).astype(int))
    path = tmp_path_factory.mktemp("lgbm") / "m"
    mc.save(model, path, layout="dir", source=False)
    return path


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fitted=st.dictionaries(st.sampled_from(["objective", "best_iteration", "fitted_with_feature_names",
                                               "n_features_in", "classes"]), json_values, max_size=5))
def test_lightgbm_fitted_state_through_load_raises_only_typed_errors(lightgbm_capsule: Path,
                                                                     fitted: dict[str, Any]) -> None:
    params = lightgbm_capsule / "model" / "params.json"
    original = params.read_bytes()
    doc = json.loads(original)
    doc["fitted"] = fitted
    data = json.dumps(doc).encode()
    manifest = json.loads((lightgbm_capsule / "capsule.json").read_text())
    old_manifest = json.dumps(manifest)
    manifest["files"]["model/params.json"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    try:
        params.write_bytes(data)
        (lightgbm_capsule / "capsule.json").write_text(json.dumps(manifest))
        load_or_refuse(lightgbm_capsule)
    finally:
        params.write_bytes(original)
        (lightgbm_capsule / "capsule.json").write_text(old_manifest)
