"""Crashes that fuzzing found, kept as regression tests: each once escaped as a builtin exception (or
was accepted) and must now be a typed refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostile_corpus import build_capsule, manifest_for

from modelcapsule.container import open_capsule
from modelcapsule.errors import CapsuleFormatError
from modelcapsule.manifest import MANIFEST_NAME, parse_manifest

MEMBERS = {"model/model.pkl": b"\x80\x05K\x01." * 40, "sample/inputs.json": b"[[1, 2, 3]]" * 200}


def test_an_unknown_zip_version_is_a_format_error_not_notimplementederror(tmp_path: Path) -> None:
    """zipfile raises NotImplementedError("zip file version 8.9") for a mangled version-needed field."""
    path = build_capsule(tmp_path / "v.capsule", MEMBERS)
    blob = bytearray(path.read_bytes())
    central = blob.index(b"PK\x01\x02")
    blob[central + 6] = 89  # "version needed to extract" = 8.9
    path.write_bytes(bytes(blob))
    with pytest.raises(CapsuleFormatError, match="zip file version"):
        open_capsule(path)


def test_a_corrupt_deflate_stream_is_a_format_error_not_zlib_error(tmp_path: Path) -> None:
    """A flipped byte inside a deflated manifest made zlib.error escape from CapsuleReader.read."""
    path = build_capsule(tmp_path / "z.capsule", MEMBERS, compress=True)
    blob = bytearray(path.read_bytes())
    start = blob.index(MANIFEST_NAME.encode()) + len(MANIFEST_NAME)  # first byte of its deflate stream
    blob[start] = 0xFF  # an invalid deflate block type
    path.write_bytes(bytes(blob))
    with pytest.raises(CapsuleFormatError, match=r"capsule\.json"):
        open_capsule(path)


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: {**d, "provenance": [[]]}, "'provenance' should be an object"),
        (lambda d: {**d, "metadata": [None]}, "'metadata' should be an object"),
        (lambda d: {**d, "metadata": "text"}, "'metadata' should be an object"),
        (lambda d: {**d, "signature": {"inputs": [{"name": "x", "dtype": "f8", "shape": ["HUGE"]}]}},
         "'signature' is malformed"),
    ],
    ids=["provenance-list", "metadata-list", "metadata-string", "shape-infinity"],
)
def test_malformed_optional_fields_are_format_errors(edit: object, needle: str) -> None:
    # "1e400" parses as float infinity, and int(inf) raised OverflowError.
    raw = json.dumps(edit(manifest_for(MEMBERS))).replace('"HUGE"', "1e400").encode()  # type: ignore[operator]
    with pytest.raises(CapsuleFormatError, match=needle):
        parse_manifest(raw)


def test_an_integer_too_long_to_convert_is_a_format_error() -> None:
    """json.loads raises a plain ValueError (not JSONDecodeError) for integers over 4300 digits."""
    raw = json.dumps(manifest_for(MEMBERS)).replace('"capsule_version": 1', '"capsule_version": ' + "9" * 5000)
    with pytest.raises(CapsuleFormatError, match="not valid JSON"):
        parse_manifest(raw.encode())


def test_an_invalid_escape_in_a_string_opcode_is_a_format_error() -> None:
    """pickletools only *warns* about invalid escapes in STRING arguments; under warnings-as-errors (as
    in this suite, or a user's -W error) the warning escaped the scanner as DeprecationWarning. Found
    when a ZIP's bytes were read as a pickle (its first byte is PERSID's opcode, 'P')."""
    from modelcapsule.pickle_scan import scan_pickle

    with pytest.raises(CapsuleFormatError, match="malformed"):
        scan_pickle(b"\x80\x02S'\\ '\n.")
