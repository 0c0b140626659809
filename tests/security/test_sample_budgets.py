"""The golden sample is read under a budget and compared without builtin exceptions; what an error
message quotes from it is short and escaped.

Every hostile capsule here has correct hashes (the manifest was rewritten to match), so the check
under test is what must stop it; each case measures the memory or time it was allowed to take.
"""

from __future__ import annotations

import hashlib
import io
import json
import resource
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modelcapsule as mc
from modelcapsule.core.npy import NpyError, array_from_npy
from modelcapsule.core.sample import compare_outputs, excerpt
from modelcapsule.errors import CapsuleFormatError, LimitExceededError, VerificationError


def saved(tmp_path: Path) -> tuple[Path, np.ndarray]:
    x = np.random.default_rng(1).normal(size=(30, 4))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    path = tmp_path / "m"
    mc.save(model, path, sample=x[:6], layout="dir", source=False)
    return path, x


def replace_member(path: Path, member: str, data: bytes, edit: Any = None) -> None:
    """Put ``data`` in ``member`` and make the manifest's hash and size agree (an unsigned capsule)."""
    (path / member).parent.mkdir(parents=True, exist_ok=True)
    (path / member).write_bytes(data)
    doc = json.loads((path / "capsule.json").read_text())
    doc["files"][member] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    if edit is not None:
        edit(doc)
    (path / "capsule.json").write_text(json.dumps(doc))


def npy_header(shape: tuple[int, ...], descr: Any = "<f8") -> bytes:
    body = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    body += b" " * ((-(len(body) + 11)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_header_promising_a_terabyte_allocates_nothing(tmp_path: Path) -> None:
    """``np.load`` sizes its buffer from the header; the strict reader checks the header against the bytes."""
    path, _x = saved(tmp_path)
    before = peak_rss_mib()
    start = time.perf_counter()
    replace_member(path, "sample/inputs/0.npy", npy_header((1 << 37, 4)) + b"\0" * 64)
    with pytest.raises(CapsuleFormatError, match="header promises"):
        mc.load(path)
    assert time.perf_counter() - start < 5
    assert peak_rss_mib() - before < 64


@pytest.mark.parametrize("descr", ["|O", [("a", "<f8"), ("b", "|O")], "|V8"])
def test_object_and_record_dtypes_are_refused_in_sample_arrays(descr: Any) -> None:
    with pytest.raises(NpyError, match="not plain data"):
        array_from_npy(npy_header((1,), descr) + b"\0" * 16)


def test_the_sample_size_budget_names_its_knob(tmp_path: Path) -> None:
    path, _x = saved(tmp_path)
    with pytest.raises(LimitExceededError, match="max_sample_bytes"):
        mc.load(path, limits=mc.Limits(max_sample_bytes=100))
    assert mc.load(path, limits=mc.Limits(max_sample_bytes=1 << 20)) is not None


def test_deeply_nested_json_sample_is_refused_without_recursion(tmp_path: Path) -> None:
    path, _x = saved(tmp_path)

    def as_json(doc: dict[str, Any]) -> None:
        doc["sample"]["inputs"]["input"].update(member="sample/inputs/0.json", stored_as="json", dtype="object")

    replace_member(path, "sample/inputs/0.json", b"[" * 100_000 + b"]" * 100_000, as_json)
    with pytest.raises(CapsuleFormatError, match="golden-sample member 'sample/inputs/0.json'"):
        mc.load(path)
    replace_member(path, "sample/inputs/0.json", json.dumps([[[[[["deep"]]]]]]).encode(), as_json)
    with pytest.raises(CapsuleFormatError, match="plain, shallow JSON"):
        mc.load(path)


def test_zero_dimensional_outputs_compare_and_report() -> None:
    assert compare_outputs(np.array(1.5), np.float64(1.5)) is None
    assert compare_outputs(np.array(1.5), np.float64(2.5)) == "expected 1.5, got 2.5"
    assert compare_outputs(np.array("a"), "b", exact=True) == "expected 'a', got 'b'"


def test_ragged_and_uncomparable_outputs_are_differences_not_crashes() -> None:
    assert "2 of 2 row(s) differ" in str(compare_outputs(np.array([1, 2]), np.array(["x", None], dtype=object)))
    assert "not an array" in str(compare_outputs(np.array([1, 2]), [[1], [2, 3]]))
    assert compare_outputs(np.zeros((2, 2)), np.zeros(3)) == "shape (3,) instead of (2, 2)"


def test_a_verification_error_quotes_a_short_escaped_excerpt(tmp_path: Path) -> None:
    """A recorded output of megabyte-long strings full of terminal escapes must not reach a log verbatim."""
    path, _x = saved(tmp_path)
    hostile = np.array(["\x1b[2J\x1b]0;owned\x07" + "A" * 1_000_000] * 6)
    buf = io.BytesIO()
    np.save(buf, hostile, allow_pickle=False)

    def as_text(doc: dict[str, Any]) -> None:
        doc["sample"]["outputs"]["predict"]["dtype"] = hostile.dtype.str

    replace_member(path, "sample/outputs/predict.npy", buf.getvalue(), as_text)
    with pytest.raises(VerificationError) as info:
        mc.load(path)
    message = str(info.value)
    assert len(message) < 4000
    assert "\x1b" not in message and "\x07" not in message
    assert "\\x1b" in message


def test_excerpt_survives_a_hostile_repr() -> None:
    class Loud:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert excerpt(Loud()) == "<Loud>"
    assert excerpt("\u202e" + "x" * 500, text=True).startswith("\\u202e") and len(excerpt("x" * 500)) < 200
