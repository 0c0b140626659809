"""Crashes that fuzzing found, kept as regression tests: each once escaped as a builtin exception (or
was accepted) and must now be a typed refusal."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hostile_corpus import (
    BUILD,
    EMPTY_DICT,
    MEMOIZE,
    NONE,
    SETITEM,
    build_capsule,
    call,
    glob,
    integer,
    manifest_for,
    stream,
    text,
    tup,
)

from modelcapsule.core.container import open_capsule
from modelcapsule.core.manifest import MANIFEST_NAME, parse_manifest
from modelcapsule.errors import CapsuleFormatError
from modelcapsule.security.pickle_scan import scan_pickle
from modelcapsule.security.policy import DEFAULT_POLICY, restricted_loads

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
         "out of the range"),
    ],
    ids=["provenance-list", "metadata-list", "metadata-string", "shape-out-of-range"],
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
    in this suite, or a user's -W error) the warning escaped the exact walk as DeprecationWarning. Found
    when a ZIP's bytes were read as a pickle (its first byte is PERSID's opcode, 'P')."""
    from modelcapsule.security.pickle_scan import _scan_opcodes

    raw = b"\x80\x02S'\\ '\n."
    assert scan_pickle(raw).globals == ()
    with pytest.raises(CapsuleFormatError, match="malformed"):
        _scan_opcodes(memoryview(raw), "stream")


# --- found by fuzzing the unpickler with mutated model pickles -------------------------------------------



def _dtype(spec: str, state: bytes) -> bytes:
    return call(glob("numpy", "dtype"), text(spec), b"\x89", b"\x88") + state + BUILD


_F8 = _dtype("f8", tup(integer(3), text("<"), NONE, NONE, NONE, b"J\xff\xff\xff\xff", b"J\xff\xff\xff\xff",
                       integer(0)))


def _struct_state(fields: bytes, elsize: int = 16, flags: int = 16, names: tuple[str, ...] = ("a", "b")) -> bytes:
    return tup(integer(3), text("|"), NONE, tup(*(text(n) for n in names)), fields, integer(elsize), integer(1),
               integer(flags))


@pytest.mark.parametrize(
    ("fields", "extra", "needle"),
    [
        # numpy accepted a field entry that is a string, not (dtype, offset): the first cast crashed
        (EMPTY_DICT + text("a") + tup(_F8 + MEMOIZE, integer(0)) + SETITEM + text("b") + tup(text("x"), integer(8))
         + SETITEM, b"", "field 'b' that is not a (dtype, offset) pair"),
        (EMPTY_DICT + text("a") + tup(_F8 + MEMOIZE, integer(0)) + SETITEM + text("b")
         + tup(b"h\x00", integer(12)) + SETITEM, b"", "puts field 'b' at bytes 12..20 of a 16-byte item"),
        (EMPTY_DICT + text("a") + tup(_F8 + MEMOIZE, integer(0)) + SETITEM + text("b")
         + tup(b"h\x00", integer(8)) + SETITEM, b"", ""),
    ],
    ids=["field-not-a-pair", "field-past-item", "valid"],
)
def test_structured_dtype_states_are_checked_before_numpy_sees_them(fields: bytes, extra: bytes,
                                                                    needle: str) -> None:
    raw = stream(_dtype("V16", _struct_state(fields)) + extra)
    if not needle:
        scan_pickle(raw)
        assert restricted_loads(raw, DEFAULT_POLICY).names == ("a", "b")
        return
    with pytest.raises(CapsuleFormatError, match=re.escape(needle)):
        scan_pickle(raw)


def test_flags_claiming_objects_are_refused() -> None:
    raw = stream(_dtype("V8", tup(integer(3), text("|"), NONE, NONE, NONE, integer(8), integer(1), integer(63))))
    with pytest.raises(CapsuleFormatError, match="claims flags 63"):
        scan_pickle(raw)


def test_a_fields_dict_cannot_change_after_the_dtype_was_checked() -> None:
    good = EMPTY_DICT + MEMOIZE + text("a") + tup(_F8 + MEMOIZE, integer(0)) + SETITEM
    raw = stream(_dtype("V8", _struct_state(good, elsize=8, names=("a",))) + b"0" + b"h\x00" + text("b")
                 + tup(text("x"), integer(0)) + SETITEM)
    with pytest.raises(CapsuleFormatError, match="already became a numpy dtype's fields"):
        scan_pickle(raw)


def test_a_cython_checksum_mismatch_is_a_format_error() -> None:
    """Cython's __pyx_unpickle helpers raise pickle.PickleError, which is not an UnpicklingError."""
    raw = stream(call(glob("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
                      glob("numpy.random.bit_generator", "SeedSequence"), integer(0x1234), NONE))
    with pytest.raises(CapsuleFormatError, match="Incompatible checksums"):
        restricted_loads(raw, DEFAULT_POLICY)


def test_a_sparse_matrix_without_its_arrays_is_a_format_error() -> None:
    import scipy.sparse

    from modelcapsule.security.state_checks import validate_model

    broken = scipy.sparse.csr_matrix((2, 2))
    del broken.indptr
    with pytest.raises(CapsuleFormatError, match=r"model\['coef'\]: its state is malformed"):
        validate_model({"coef": broken})


def test_a_float_out_of_range_is_a_format_error() -> None:
    """'1e400' parsed as infinity, which the manifest then could not write back (found by fuzzing)."""
    raw = json.dumps(manifest_for(MEMBERS, metadata={"x": "HUGE"})).replace('"HUGE"', "1e400")
    with pytest.raises(CapsuleFormatError, match="out of the range"):
        parse_manifest(raw.encode())


def test_numpys_internal_argument_errors_are_format_errors() -> None:
    """A zeroed byte inside a tree's node dtype made numpy raise SystemError from its C code."""
    from test_fuzz_unpickler import load_checked, seeds

    raw, _ = seeds()[0]
    blob = bytearray(raw)
    blob[443422 % len(blob)] = 0
    with pytest.raises(CapsuleFormatError):
        load_checked(bytes(blob))
