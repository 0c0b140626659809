"""A check that passed on an unchanged file is not repeated; any change to the file, the manifest or
the software brings every check back.

Reusing a recorded *hash* check is the opt-in mapped path (``MODELCAPSULE_MAP_FILES=1``), which these
tests turn on; by default every load hashes the bytes it parses (tests/security/test_exact_bytes.py)."""

from __future__ import annotations

import importlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelcapsule as mc
from modelcapsule.core import checks_on_record as check_cache
from modelcapsule.core.container import CapsuleReader
from modelcapsule.errors import IntegrityError, VerificationError

from helpers import iris_forest

load_module = importlib.import_module("modelcapsule.load")  # the module; mc.load is the function

SETTLE = 0.05


class Runs:
    """How many times each check ran during the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hashes = self.sample = 0
        check_hashes, check_sample = CapsuleReader.check_hashes, load_module._check_sample

        def counted_hashes(reader: CapsuleReader, names: list[str] | None = None) -> None:
            self.hashes += 1
            check_hashes(reader, names)

        def counted_sample(*args: Any) -> None:
            self.sample += 1
            check_sample(*args)

        monkeypatch.setattr(CapsuleReader, "check_hashes", counted_hashes)
        monkeypatch.setattr(load_module, "_check_sample", counted_sample)

    def load(self, path: Path, **kwargs: Any) -> tuple[int, int]:
        before = (self.hashes, self.sample)
        mc.load(path, **kwargs)
        return self.hashes - before[0], self.sample - before[1]


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Runs]:
    monkeypatch.setenv("MODELCAPSULE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MODELCAPSULE_MAP_FILES", "1")
    monkeypatch.setattr(check_cache, "SETTLE_SECONDS", SETTLE)
    yield Runs(monkeypatch)


def settled_capsule(path: Path, layout: str = "zip") -> Path:
    model, x, _y = iris_forest()
    mc.save(model, path, sample=x[::10], layout=layout)
    time.sleep(SETTLE * 2)
    return path


@pytest.mark.parametrize("layout", ["zip", "dir"])
def test_an_unchanged_capsule_is_hashed_and_verified_once(runs: Runs, tmp_path: Path, layout: str) -> None:
    path = settled_capsule(tmp_path / "m.capsule", layout)
    assert runs.load(path) == (1, 1)
    assert runs.load(path) == (0, 0)
    assert runs.load(path, recheck=True) == (1, 1)


def test_a_file_changed_recently_is_not_vouched_for(runs: Runs, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(check_cache, "SETTLE_SECONDS", 3600)
    path = settled_capsule(tmp_path / "m.capsule")
    assert runs.load(path) == (1, 1)
    assert runs.load(path) == (1, 1)


def flip_last_byte_of_payload(path: Path) -> None:
    """Change one byte of the model member in place, keeping size and modification time."""
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    at = data.index(b"model/") + 200
    data[at] ^= 0xFF
    with open(path, "r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_editing_the_file_in_place_after_a_recorded_check_is_caught(runs: Runs, tmp_path: Path) -> None:
    path = settled_capsule(tmp_path / "m.capsule")
    runs.load(path)
    flip_last_byte_of_payload(path)
    with pytest.raises((IntegrityError, mc.CapsuleFormatError)):
        mc.load(path)


def test_swapping_in_another_file_after_a_recorded_check_is_caught(runs: Runs, tmp_path: Path) -> None:
    path = settled_capsule(tmp_path / "m.capsule")
    runs.load(path)
    evil = tmp_path / "evil.capsule"
    shutil.copy2(path, evil)
    flip_last_byte_of_payload(evil)
    os.replace(evil, path)
    with pytest.raises((IntegrityError, mc.CapsuleFormatError)):
        mc.load(path)


def test_a_tampered_member_of_a_directory_capsule_is_caught(runs: Runs, tmp_path: Path) -> None:
    path = settled_capsule(tmp_path / "m", layout="dir")
    runs.load(path)
    sample = next(p for p in sorted((path / "sample").rglob("*")) if p.is_file())
    data = bytearray(sample.read_bytes())
    data[-1] ^= 0x01
    sample.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sample"):
        mc.load(path)


def test_new_software_runs_the_golden_sample_again(runs: Runs, tmp_path: Path, monkeypatch) -> None:
    path = settled_capsule(tmp_path / "m.capsule")
    assert runs.load(path) == (1, 1)
    monkeypatch.setattr(check_cache, "_software", lambda packages: ["another scikit-learn build"])
    assert runs.load(path) == (0, 1)


def test_a_failed_sample_is_never_recorded(runs: Runs, tmp_path: Path, monkeypatch) -> None:
    path = settled_capsule(tmp_path / "m.capsule")
    real_call = mc.frameworks.sklearn.SklearnFramework.call  # type: ignore[attr-defined]
    monkeypatch.setattr(mc.frameworks.sklearn.SklearnFramework, "call",  # type: ignore[attr-defined]
                        lambda self, m, method, x: np.asarray(real_call(self, m, method, x)) * 0 + 7)
    for _ in range(2):
        with pytest.raises(VerificationError):
            mc.load(path)
    assert runs.sample == 2


def test_switched_off_it_records_nothing(runs: Runs, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MODELCAPSULE_CHECK_CACHE", "off")
    path = settled_capsule(tmp_path / "m.capsule")
    assert runs.load(path) == (1, 1)
    assert runs.load(path) == (1, 1)
    assert not (tmp_path / "cache").exists()


def test_a_cache_folder_others_may_write_to_is_ignored(runs: Runs, tmp_path: Path) -> None:
    path = settled_capsule(tmp_path / "m.capsule")
    runs.load(path)
    os.chmod(tmp_path / "cache" / "checks", 0o777)
    assert check_cache.check_cache() is None
    assert runs.load(path) == (1, 1)


def test_editable_installs_are_never_pinned(tmp_path: Path, monkeypatch) -> None:
    info = tmp_path / "scikit_learn-9.9.dist-info"
    info.mkdir()
    (info / "RECORD").write_text("")
    (info / "direct_url.json").write_text('{"url": "file:///src", "dir_info": {"editable": true}}')
    monkeypatch.setattr(check_cache.environment, "installed_distribution", lambda name: ("9.9", info))
    assert check_cache._software.__wrapped__(("scikit-learn",)) is None
    (info / "direct_url.json").unlink()
    assert check_cache._software.__wrapped__(("scikit-learn",)) is not None


def test_the_record_keeps_its_newest_entries_when_it_grows_past_its_cap(runs: Runs, tmp_path: Path,
                                                                        monkeypatch) -> None:
    monkeypatch.setattr(check_cache, "MAX_RECORDS", 6)
    folder = tmp_path / "cache" / "checks"
    folder.mkdir(parents=True, mode=0o700)
    for i in range(6):
        (folder / f"old{i}").touch()
        os.utime(folder / f"old{i}", ns=(1, 1 + i))
    path = settled_capsule(tmp_path / "m.capsule")
    runs.load(path)  # records its hashes and sample: 8 records, over the cap of 6
    left = sorted(p.name for p in folder.iterdir())
    assert len(left) <= 6 and not any(name.startswith("old0") for name in left)
    assert runs.load(path) == (0, 0)  # the newest records, this capsule's, were kept
