"""The ``pickle`` format: plain ``.pkl`` files and pickle payloads, only through the restricted unpickler."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
from format_helpers import CanaryCommand

import modelcapsule as mc
from modelcapsule.formats import format_for_file, get_format


def test_plain_pkl_loads_like_a_capsule(tmp_path: Path, forest: object, data: tuple) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(forest))
    loaded = mc.load(path)
    np.testing.assert_array_equal(loaded.predict(data[0]), forest.predict(data[0]))  # type: ignore[attr-defined]


def test_pkl_suffixes_map_to_pickle() -> None:
    assert format_for_file("m.pkl").name == "pickle"
    assert format_for_file("m.pickle").name == "pickle"


def test_pkl_naming_an_untrusted_global_is_refused_and_runs_nothing(tmp_path: Path, canary: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"model": CanaryCommand(canary)}))
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(path)
    assert info.value.names == ["posix.system"]
    assert "trusted=['posix.system']" in str(info.value)
    assert not canary.exists()


def test_a_joblib_dump_saved_as_pkl_is_read_by_the_joblib_reader(tmp_path: Path, forest: object,
                                                                  data: tuple) -> None:
    path = tmp_path / "model.pkl"
    joblib.dump(forest, path)
    loaded = mc.load(path)
    np.testing.assert_array_equal(loaded.predict(data[0]), forest.predict(data[0]))  # type: ignore[attr-defined]


def test_pickle_capsule_round_trip_is_readable_by_plain_pickle(tmp_path: Path, pipeline: object,
                                                               data: tuple) -> None:
    path = tmp_path / "m.capsule"
    manifest = mc.save(pipeline, path, format="pickle", sample=data[0][:5], source=False)
    assert manifest.format_name == "pickle"
    loaded = mc.load(path)
    np.testing.assert_array_equal(loaded.predict(data[0]), pipeline.predict(data[0]))  # type: ignore[attr-defined]
    import zipfile

    with zipfile.ZipFile(path) as zf:
        clone = pickle.loads(zf.read(manifest.format["member"]))  # our own file: the interop promise
    np.testing.assert_array_equal(clone.predict(data[0]), pipeline.predict(data[0]))


def test_audit_lists_the_globals_without_loading(tmp_path: Path, canary: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([np.arange(3), CanaryCommand(canary)]))
    report = mc.audit(path)
    assert report.format == "pickle"
    assert "posix.system" in report.globals and report.untrusted == ["posix.system"]
    assert not report.ok and not canary.exists()


def test_pickle_format_is_registered_as_safe() -> None:
    fmt = get_format("pickle")
    assert not fmt.runs_code and fmt.safety > get_format("skops").safety
