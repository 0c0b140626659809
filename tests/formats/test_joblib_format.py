"""The ``joblib`` format: joblib files read without joblib, arrays and nested pickles held to the policy."""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
from format_helpers import CanaryCommand
from joblib.numpy_pickle import NumpyArrayWrapper

import modelcapsule as mc
from modelcapsule.formats import format_for_file
from modelcapsule.security.pickle_stream import load_stream
from modelcapsule.security.policy import TrustPolicy

COMPRESSIONS = [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)]


@pytest.mark.parametrize("compress", COMPRESSIONS, ids=str)
def test_plain_joblib_files_load_compressed_or_not(tmp_path: Path, forest: object, data: tuple,
                                                   compress: object) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(forest, path, compress=compress)
    loaded = mc.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(data[0]), forest.predict_proba(data[0]))  # type: ignore[attr-defined]


@pytest.mark.parametrize("suffix", [".joblib", ".joblib.gz", ".joblib.xz", ".joblib.bz2", ".joblib.lzma", ".joblib.z"])
def test_joblib_suffixes_map_to_joblib(suffix: str) -> None:
    assert format_for_file(f"model{suffix}").name == "joblib"


def test_object_arrays_come_back_through_the_nested_reader(tmp_path: Path, encoder: object) -> None:
    path = tmp_path / "encoder.joblib"
    joblib.dump(encoder, path)
    loaded = mc.load(path)
    assert loaded.categories_[0].dtype == object  # type: ignore[attr-defined]
    assert list(loaded.categories_[0]) == ["blue", "green", "red"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("compress", [0, ("gzip", 3), ("xz", 3)], ids=str)
def test_untrusted_global_in_the_main_stream_is_refused(tmp_path: Path, canary: Path, compress: object) -> None:
    path = tmp_path / "evil.joblib"
    joblib.dump({"weights": np.arange(10.0), "hook": CanaryCommand(canary)}, path, compress=compress)
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(path)
    assert info.value.names == ["posix.system"]
    assert not canary.exists()


@pytest.mark.parametrize("compress", [0, ("gzip", 3)], ids=str)
def test_untrusted_global_in_a_nested_object_array_pickle_is_refused(tmp_path: Path, canary: Path,
                                                                      compress: object) -> None:
    path = tmp_path / "evil.joblib"
    hidden = np.empty(2, dtype=object)
    hidden[:] = ["fine", CanaryCommand(canary)]
    joblib.dump({"weights": np.arange(10.0), "labels": hidden}, path, compress=compress)
    report = mc.audit(path)
    assert "posix.system" in report.untrusted  # found in the nested stream, without loading it
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(path)
    assert info.value.names == ["posix.system"]
    assert not canary.exists()


def test_arrays_in_fortran_order_and_foreign_byte_order(tmp_path: Path) -> None:
    values = np.arange(12.0).reshape(3, 4)
    arrays = {"f": np.asfortranarray(values), "big": values.astype(">f8"), "empty": np.zeros((0, 3))}
    joblib.dump(arrays, tmp_path / "a.joblib")
    data = (tmp_path / "a.joblib").read_bytes()
    loaded = load_stream(memoryview(data), TrustPolicy(), what="a.joblib", limits=mc.Limits())
    for key, original in arrays.items():
        np.testing.assert_array_equal(loaded[key], original)
        assert loaded[key].shape == original.shape
    assert loaded["big"].dtype.isnative


def test_joblib_capsule_round_trip(tmp_path: Path, encoder: object, pipeline: object, data: tuple) -> None:
    for model in (encoder, pipeline):
        path = tmp_path / "m.capsule"
        mc.save(model, path, format="joblib", overwrite=True, source=False)
        loaded = mc.load(path)
        assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(data[0]), pipeline.predict(data[0]))  # type: ignore[attr-defined]


def test_loading_never_uses_joblibs_reader(tmp_path: Path, forest: object, data: tuple,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(forest, path, compress=3)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("joblib's own reader was called")

    monkeypatch.setattr(joblib, "load", forbidden)
    monkeypatch.setattr(joblib.numpy_pickle, "load", forbidden)
    monkeypatch.setattr(NumpyArrayWrapper, "read", forbidden)
    monkeypatch.setattr(joblib.numpy_pickle.NumpyUnpickler, "load_build", forbidden)
    loaded = mc.load(path)
    np.testing.assert_array_equal(loaded.predict(data[0]), forest.predict(data[0]))  # type: ignore[attr-defined]


def test_array_sizes_are_checked_before_allocating(tmp_path: Path) -> None:
    huge = NumpyArrayWrapper(np.ndarray, (1 << 40,), "C", np.dtype("f8"))
    path = tmp_path / "huge.joblib"
    path.write_bytes(pickle.dumps(huge, protocol=2))
    with pytest.raises(mc.LimitExceededError, match="max_array_elements"):
        mc.load(path)
    forged = NumpyArrayWrapper(np.ndarray, (1000,), "C", np.dtype("f8"))
    path.write_bytes(pickle.dumps(forged, protocol=2) + b"\x00" * 64)
    with pytest.raises(mc.CapsuleFormatError, match="truncated or forged"):
        mc.load(path)
    for bad in (NumpyArrayWrapper(np.ndarray, (3,), "C", "f8"),
                NumpyArrayWrapper(np.ndarray, (3,), "X", np.dtype("f8")),
                NumpyArrayWrapper(np.ndarray, (-3,), "C", np.dtype("f8")),
                NumpyArrayWrapper(np.ma.MaskedArray, (3,), "C", np.dtype("f8"))):
        path.write_bytes(pickle.dumps(bad, protocol=2) + bytes(25))
        with pytest.raises(mc.CapsuleFormatError, match="invalid|not supported"):
            mc.load(path)
    framed = pickle.dumps(forged, protocol=4) + b"\x00" * 8000
    path.write_bytes(framed)
    with pytest.raises(mc.CapsuleFormatError, match="inside a pickle frame"):
        mc.load(path)


def test_decompression_is_capped(tmp_path: Path) -> None:
    path = tmp_path / "bomb.joblib.gz"
    path.write_bytes(gzip.compress(pickle.dumps(np.zeros(4 << 20, dtype=np.uint8)), 9))
    assert path.stat().st_size < 64 << 10
    with pytest.raises(mc.LimitExceededError, match="max_member_size"):
        mc.load(path, limits=mc.Limits(max_member_size=1 << 20))


def test_old_and_unsupported_layouts_are_refused_with_a_reason(tmp_path: Path) -> None:
    legacy = tmp_path / "old.joblib"
    legacy.write_bytes(b"\x80\x02cjoblib.numpy_pickle\nNDArrayWrapper\n)\x81}b.")
    with pytest.raises(mc.CapsuleFormatError, match=r"joblib < 0\.10"):
        mc.load(legacy)
    lz4 = tmp_path / "model.joblib"
    lz4.write_bytes(b"\x04\x22\x4d\x18" + bytes(32))
    with pytest.raises(mc.CapsuleFormatError, match="lz4"):
        mc.load(lz4)


def test_trailing_bytes_after_the_stream_are_refused(tmp_path: Path, forest: object) -> None:
    buffer = io.BytesIO()
    joblib.dump(forest, buffer)
    path = tmp_path / "model.joblib"
    path.write_bytes(buffer.getvalue() + b"\x80\x04junk")
    with pytest.raises(mc.CapsuleFormatError, match="after its pickle stream"):
        mc.load(path)
