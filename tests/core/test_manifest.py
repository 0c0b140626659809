"""``capsule.json``: written by :class:`Manifest`, read back by the reader for its version, and refused
with a message saying what is wrong when it is malformed, ambiguous or newer than this release."""

from __future__ import annotations

import json

import pytest

from modelcapsule.core.manifest import CAPSULE_VERSION, FileEntry, Manifest, parse_manifest
from modelcapsule.errors import CapsuleFormatError
from modelcapsule.types import Signature, TensorSpec

SHA = "ab" * 32


def _manifest() -> Manifest:
    return Manifest(
        name="iris",
        created_at="2026-12-01T12:00:00+00:00",
        model={"framework": "sklearn", "class": "sklearn.linear_model.LogisticRegression", "methods": ["predict"]},
        format={"name": "safepickle", "member": "model/model.pkl"},
        files={"model/model.pkl": FileEntry(SHA, 1234), "sample/inputs/0.npy": FileEntry("cd" * 32, 200)},
        signature=Signature((TensorSpec("input", "float64", (-1, 4)),), (TensorSpec("predict", "int64", (-1,)),),
                            classes=(0, 1, 2)),
        environment={"python": "3.11.7", "packages": {"scikit-learn": "1.9.1"}},
        provenance={"metrics": {"cv_accuracy": [0.9, 0.95]}},
        sample={"inputs": {}, "outputs": {}},
        types=["sklearn.linear_model._logistic.LogisticRegression"],
        metadata={"owner": "fraud-team"},
    )


def _raw(**changes: object) -> bytes:
    data = _manifest().to_dict()
    data.update(changes)
    return json.dumps(data).encode()


def test_a_written_manifest_reads_back_the_same() -> None:
    manifest = _manifest()
    back = parse_manifest(manifest.to_json())
    assert back == manifest
    assert back.format_name == "safepickle"
    assert back.framework == "sklearn"


def test_members_are_listed_in_sorted_order_and_the_version_comes_first() -> None:
    data = json.loads(_manifest().to_json())
    assert next(iter(data)) == "capsule_version"
    assert data["capsule_version"] == CAPSULE_VERSION
    assert list(data["files"]) == sorted(data["files"])


def test_the_onnx_section_is_written_only_when_there_is_an_export() -> None:
    assert "onnx" not in _manifest().to_dict()
    manifest = _manifest()
    manifest.onnx = {"member": "onnx/model.onnx"}
    assert parse_manifest(manifest.to_json()).onnx == {"member": "onnx/model.onnx"}


def test_a_newer_capsule_version_is_refused_with_what_to_do() -> None:
    with pytest.raises(CapsuleFormatError, match=r"capsule_version 2, newer than .* Upgrade modelcapsule"):
        parse_manifest(_raw(capsule_version=CAPSULE_VERSION + 1))


@pytest.mark.parametrize("version", [None, 0, True, "1"])
def test_a_missing_or_invalid_capsule_version_is_refused(version: object) -> None:
    with pytest.raises(CapsuleFormatError, match="no valid capsule_version"):
        parse_manifest(_raw(capsule_version=version))


def test_a_missing_field_is_named() -> None:
    data = _manifest().to_dict()
    del data["environment"]
    with pytest.raises(CapsuleFormatError, match="capsule.json has no 'environment' field"):
        parse_manifest(json.dumps(data).encode())


def test_a_field_of_the_wrong_type_is_named() -> None:
    with pytest.raises(CapsuleFormatError, match="field 'model' should be dict, not list"):
        parse_manifest(_raw(model=[]))


@pytest.mark.parametrize(
    "entry",
    [{"sha256": "not-hex", "size": 1}, {"sha256": SHA, "size": -1}, {"sha256": SHA}, "abc"],
)
def test_a_malformed_member_entry_is_refused(entry: object) -> None:
    with pytest.raises(CapsuleFormatError, match="entry for member 'model/model.pkl'"):
        parse_manifest(_raw(files={"model/model.pkl": entry}))


def test_a_key_given_twice_is_ambiguous_and_refused() -> None:
    raw = _manifest().to_json().replace(b'"name": "iris"', b'"name": "iris", "name": "other"')
    with pytest.raises(CapsuleFormatError, match="the key 'name' appears twice"):
        parse_manifest(raw)


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"1e400"])
def test_numbers_json_cannot_hold_are_refused(number: bytes) -> None:
    raw = _manifest().to_json().replace(b'"owner": "fraud-team"', b'"owner": ' + number)
    with pytest.raises(CapsuleFormatError, match="not valid JSON"):
        parse_manifest(raw)


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"[1, 2]", b"{"])
def test_what_is_not_a_json_object_is_refused(raw: bytes) -> None:
    with pytest.raises(CapsuleFormatError, match="capsule"):
        parse_manifest(raw)


def test_a_malformed_signature_is_refused() -> None:
    with pytest.raises(CapsuleFormatError, match=r"'signature(\.inputs)?'"):
        parse_manifest(_raw(signature={"inputs": "x"}))


def test_optional_sections_may_be_absent() -> None:
    data = _manifest().to_dict()
    for key in ("provenance", "sample", "types", "metadata", "signature"):
        del data[key]
    manifest = parse_manifest(json.dumps(data).encode())
    assert (manifest.provenance, manifest.sample, manifest.types, manifest.metadata) == ({}, None, [], {})
    assert manifest.signature is None
