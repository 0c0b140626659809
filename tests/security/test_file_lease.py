"""A capsule read in place under a read lease: writers wait, nothing built stays tied to the file.

``mc.load`` of a ZIP capsule takes a kernel read lease where the system grants one, and parses the members
where they lie instead of copying them (see ``modelcapsule.core.file_lease``). These tests use real
writer processes: the lease must hold them back until the load is done, a model that keeps arrays must
not depend on the file afterwards, and a load the lease no longer vouches for is done again from copies.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

import modelcapsule as mc
from modelcapsule.core import container, file_lease
from modelcapsule.core.container import open_capsule

from helpers import iris_forest

pytestmark = pytest.mark.skipif(file_lease._break_seconds() < file_lease.MIN_BREAK_SECONDS,
                                reason="no usable file leases on this system")

WRITER = """
import sys, time
path, marker, value = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
print("knocking", flush=True)
with open(path, "r+b") as fh:  # blocks while a reader holds its lease
    opened = time.time()
    data = fh.read()
    at = data.index(marker) + len(marker)
    fh.seek(at)
    fh.write(bytes([value]) * 64 if value >= 0 else data[at : at + 64])
print(opened, flush=True)
"""


def knocking_writer(path: Path, marker: bytes, value: int = 0) -> subprocess.Popen[str]:
    """A process that opens ``path`` for writing and overwrites 64 bytes after ``marker`` (value -1: with
    the same bytes); it prints when it starts knocking and, once through, the time its open returned."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), marker.decode(), str(value)],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "knocking"
    time.sleep(0.3)  # let its open() reach the kernel
    return writer


def while_loading(monkeypatch: pytest.MonkeyPatch, action: Any) -> None:
    """Run ``action()`` once, in the middle of the next load (after the model is built, before its checks)."""
    load_module = sys.modules["modelcapsule.load"]
    validate = load_module.validate_model
    done: list[bool] = []

    def validate_then_act(*args: Any, **kwargs: Any) -> None:
        validate(*args, **kwargs)
        if not done:
            done.append(True)
            action()

    monkeypatch.setattr(load_module, "validate_model", validate_then_act)


def forest_capsule(path: Path) -> tuple[Any, np.ndarray]:
    model, x, _y = iris_forest()
    mc.save(model, path, sample=x[::15], source=False)
    return model, x


def test_a_zip_capsule_is_read_in_place_under_a_lease_and_let_go_after(tmp_path: Path) -> None:
    path = tmp_path / "m.capsule"
    forest_capsule(path)
    with open_capsule(path, lease=True) as reader:
        assert reader.leased
        assert reader.release_file()
        assert not reader.leased
    with open(path, "r+b"):  # nothing is held any more: a writer gets through at once
        pass
    directory = tmp_path / "d.capsule"
    model, x, _y = iris_forest()
    mc.save(model, directory, sample=x[::15], source=False, layout="dir")
    with open_capsule(directory, lease=True) as reader:
        assert not reader.leased  # one lease per file: directories keep the private copies


def test_a_writer_waits_until_the_load_is_done_and_the_model_is_the_files_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.capsule"
    model, x = forest_capsule(path)
    payload = mc.inspect(path).format["member"]
    writers: list[subprocess.Popen[str]] = []
    while_loading(monkeypatch, lambda: writers.append(knocking_writer(path, payload.encode())))
    loaded = mc.load(path)
    returned = time.time()
    assert writers, "the writer did not run"
    out, _ = writers[0].communicate(timeout=60)
    assert float(out.strip()) >= returned - 0.05, "the writer got through while the capsule was being read"
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    with pytest.raises(mc.IntegrityError):  # the writer did change the file, once it was let through
        mc.load(path, recheck=True)


def test_a_file_someone_has_open_for_writing_is_read_from_private_copies(tmp_path: Path) -> None:
    path = tmp_path / "m.capsule"
    model, x = forest_capsule(path)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; f = open(sys.argv[1], 'r+b'); "
                               "print('open', flush=True); time.sleep(30)", str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with open_capsule(path, lease=True) as reader:
            assert not reader.leased  # the kernel refuses a lease while a writer has the file open
        np.testing.assert_array_equal(mc.load(path).predict(x), model.predict(x))
    finally:
        holder.kill()
        holder.communicate()


def test_a_model_that_keeps_its_arrays_no_longer_depends_on_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 8)).astype(np.float32)  # 640 KB: an out-of-band array the model keeps
    model = KNeighborsClassifier(algorithm="brute").fit(x, (x[:, 0] > 0).astype(int))
    path = tmp_path / "knn.capsule"
    mc.save(model, path, sample=x[:5], source=False)
    loaded = mc.load(path)
    kept = loaded._fit_X.copy()
    with open(path, "r+b") as fh:  # the lease is gone: a writer rewrites the whole file in place
        fh.write(b"\xff" * path.stat().st_size)
    np.testing.assert_array_equal(loaded._fit_X, kept)  # the model's array kept its bytes
    os.truncate(path, 0)  # and a truncation cannot reach it (SIGBUS would end this test run)
    np.testing.assert_array_equal(loaded.predict(x[:50]), model.predict(x[:50]))


def test_a_load_the_lease_no_longer_vouches_for_is_done_again_from_copies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer knocked and the kernel could have let it through by now (here: a lease-break time made
    to look already spent): the model built in place is dropped and the capsule read again from copies."""
    path = tmp_path / "m.capsule"
    model, x = forest_capsule(path)
    monkeypatch.setattr(file_lease, "_MARGIN_SECONDS", 10_000.0)
    payload = mc.inspect(path).format["member"]
    writers: list[subprocess.Popen[str]] = []
    while_loading(monkeypatch, lambda: writers.append(knocking_writer(path, payload.encode(), value=-1)))
    opened: list[bool] = []
    real_open = container.open_capsule

    def spy(*args: Any, **kwargs: Any) -> container.CapsuleReader:
        reader = real_open(*args, **kwargs)
        opened.append(reader.leased)
        return reader

    monkeypatch.setattr(sys.modules["modelcapsule.load"], "open_capsule", spy)
    loaded = mc.load(path, recheck=True)
    writers[0].communicate(timeout=60)
    assert opened == [True, False]  # in place under the lease, then again from private copies
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
