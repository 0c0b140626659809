"""Fuzzing the manifest parser: any bytes, any JSON, any value in any field give either a manifest or a
:class:`CapsuleFormatError`, never another exception. A parsed manifest survives a round trip."""

from __future__ import annotations

import json
from typing import Any

from hostile_corpus import manifest_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelcapsule.core.manifest import parse_manifest
from modelcapsule.errors import CapsuleFormatError

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)


def _valid() -> dict[str, Any]:
    doc = manifest_for({"model/model.pkl": b"\x80\x05K\x01.", "sample/inputs.npy": b"x"})
    doc["signature"] = {"inputs": [{"name": "input", "dtype": "float64", "shape": [-1, 4],
                                    "columns": [{"name": "a", "dtype": "float64"}]}],
                        "outputs": [{"name": "predict", "dtype": "int64", "shape": [-1]}], "classes": [0, 1]}
    doc["sample"] = {"inputs": "sample/inputs.npy", "outputs": {}}
    doc["onnx"] = {"member": "onnx/model.onnx"}
    return doc


FIELDS: list[tuple[str | int, ...]] = [
    ("capsule_version",), ("name",), ("created_at",), ("model",), ("format",), ("format", "name"), ("files",),
    ("files", "model/model.pkl"), ("files", "model/model.pkl", "size"), ("files", "model/model.pkl", "sha256"),
    ("signature",), ("signature", "inputs"), ("signature", "inputs", 0), ("signature", "inputs", 0, "shape"),
    ("signature", "inputs", 0, "shape", 0), ("signature", "inputs", 0, "columns"),
    ("signature", "inputs", 0, "columns", 0), ("signature", "outputs"), ("signature", "classes"),
    ("environment",), ("provenance",), ("sample",), ("types",), ("types", 0), ("metadata",), ("onnx",),
]


def parse_or_refuse(raw: bytes) -> None:
    try:
        manifest = parse_manifest(raw)
    except CapsuleFormatError:
        return
    again = parse_manifest(manifest.to_json())
    assert again.to_dict() == manifest.to_dict()


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(FIELDS), json_values), min_size=1, max_size=4))
def test_any_value_in_any_field_parses_or_is_refused(edits: list[tuple[tuple[str | int, ...], Any]]) -> None:
    doc: Any = _valid()
    for path, value in edits:
        target = doc
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    parse_or_refuse(json.dumps(doc).encode())


@FUZZ
@given(drop=st.sets(st.sampled_from(sorted(_valid()))))
def test_missing_fields_are_refused_or_defaulted(drop: set[str]) -> None:
    parse_or_refuse(json.dumps({k: v for k, v in _valid().items() if k not in drop}).encode())


@FUZZ
@given(raw=st.binary(max_size=512))
def test_arbitrary_bytes_are_refused(raw: bytes) -> None:
    parse_or_refuse(raw)


@FUZZ
@given(value=json_values)
def test_arbitrary_json_documents_are_refused_or_parsed(value: Any) -> None:
    parse_or_refuse(json.dumps(value).encode())


@FUZZ
@given(position=st.integers(0, 10_000), fragment=st.sampled_from(
    [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"9" * 5000, b"\xff", b"\x00", b'"\\ud800"', b"[" * 2000,
     b'"files": {}, ', b"}", b"{", b","]))
def test_hostile_fragments_spliced_into_a_manifest_are_refused_or_parsed(position: int, fragment: bytes) -> None:
    raw = json.dumps(_valid()).encode()
    pos = position % len(raw)
    parse_or_refuse(raw[:pos] + fragment + raw[pos:])
