"""Verify exactly the bytes you use: what was hashed (and signed) is what is parsed, whatever a racer
does to the file or its path meanwhile; a write through a shared mapping that leaves ``stat`` unchanged
is still caught by a default load; a capsule truncated under a loaded model cannot kill the process.

The mapped fast path (``MODELCAPSULE_MAP_FILES=1``) is shown too, with what it assumes.
"""

from __future__ import annotations

import mmap
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

import modelcapsule as mc
from modelcapsule.core import checks_on_record, container
from modelcapsule.core.container import CapsuleReader, open_capsule
from modelcapsule.core.members import PlainFile
from modelcapsule.errors import CapsuleFormatError, IntegrityError
from modelcapsule.security.signing import generate_key, sign_capsule

from helpers import iris_forest


def forest_capsule(path: Path, layout: str = "zip") -> tuple[Any, np.ndarray]:
    model, x, _y = iris_forest()
    mc.save(model, path, sample=x[::15], layout=layout, source=False)
    return model, x


def overwrite_in_place(path: Path, marker: bytes, value: int = 0) -> None:
    """Overwrite every byte of ``path`` after the first ``marker`` (same size, same inode)."""
    data = bytearray(path.read_bytes())
    at = data.index(marker) + len(marker)
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(bytes([value]) * (len(data) - at))


def copies_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read members into private copies, as where no read lease is granted (see test_file_lease.py)."""
    monkeypatch.setattr(container, "take_lease", lambda fd, size: None)


@pytest.mark.parametrize("layout", ["zip", "dir"])
def test_a_signed_load_parses_the_bytes_it_hashed_not_what_a_racer_wrote_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str) -> None:
    copies_only(monkeypatch)  # the racer writes from this very thread: a lease would hold it back
    path = tmp_path / "m.capsule"
    model, x = forest_capsule(path, layout)
    key = generate_key()
    sign_capsule(path, key)
    check_hashes = CapsuleReader.check_hashes
    raced: list[str] = []

    def hash_then_race(reader: CapsuleReader, names: list[str] | None = None) -> None:
        check_hashes(reader, names)
        payload = reader.manifest.format["member"]
        if layout == "zip":  # rewrite the payload's bytes in the very file being loaded
            overwrite_in_place(path, payload.encode())
        else:  # or put another file under the member's name
            evil = tmp_path / "evil"
            evil.write_bytes(b"\x80\x05cos\nsystem\n." + b"\0" * (reader.size(payload) - 14))
            os.replace(evil, path / payload)
        raced.append(payload)

    monkeypatch.setattr(CapsuleReader, "check_hashes", hash_then_race)
    loaded = mc.load(path, public_key=key.public_key())
    assert raced, "the race did not happen"
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_a_directory_member_moved_behind_a_link_after_the_scan_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m"
    forest_capsule(path, layout="dir")
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(path / "model", elsewhere)
    with open_capsule(path) as reader:
        shutil.rmtree(path / "model")
        os.symlink(elsewhere, path / "model")
        member = reader.manifest.format["member"]
        with pytest.raises(CapsuleFormatError, match="moved or replaced by a link|replaced"):
            reader.read(member)


def test_a_directory_member_replaced_after_the_scan_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m"
    forest_capsule(path, layout="dir")
    with open_capsule(path) as reader:
        member = reader.manifest.format["member"]
        copy = tmp_path / "same-bytes-new-inode"
        shutil.copy(path / member, copy)
        os.replace(copy, path / member)
        with pytest.raises(CapsuleFormatError, match="was replaced while the capsule was being read"):
            reader.read(member)


def write_through_shared_mapping(path: Path, marker: bytes) -> None:
    """Flip one byte of the array data of the member named ``marker`` the way another process would:
    through a shared writable mapping."""
    with open(path, "r+b") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_WRITE) as shared:
        at = shared.find(b"\x93NUMPY", shared.find(marker)) + 128 + 3  # past the .npy header
        shared[at] ^= 0x01
        shared.flush()


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELCAPSULE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(checks_on_record, "SETTLE_SECONDS", 0.05)
    return tmp_path


def test_a_write_through_a_shared_mapping_is_caught_by_a_default_load_even_if_stat_stays(
        record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = record / "m.capsule"
    forest_capsule(path)
    time.sleep(0.1)
    mc.load(path)  # the checks pass and are recorded
    before = os.stat(path)
    write_through_shared_mapping(path, b"sample/inputs/0.npy")
    # The worst case the issue describes: the content changed, the file's identity did not.
    monkeypatch.setattr(CapsuleReader, "file_stats", lambda self: [("", before)])
    with pytest.raises(IntegrityError, match="sample/inputs/0.npy"):
        mc.load(path)
    # The opt-in fast path trusts the record: that is exactly its documented assumption.
    monkeypatch.setenv("MODELCAPSULE_MAP_FILES", "1")
    mc.load(path)


def test_the_fast_path_is_ignored_for_files_others_can_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.capsule"
    forest_capsule(path)
    monkeypatch.setenv("MODELCAPSULE_MAP_FILES", "1")
    os.chmod(path, 0o644)
    with open_capsule(path) as reader:
        assert reader.mapped
    os.chmod(path, 0o664)  # a team's shared folder: a colleague could write through a mapping
    with open_capsule(path) as reader:
        assert not reader.mapped
    monkeypatch.delenv("MODELCAPSULE_MAP_FILES")
    os.chmod(path, 0o644)
    with open_capsule(path) as reader:
        assert not reader.mapped  # the default
    with open_capsule(path, mc.Limits(map_files=True)) as reader:
        assert reader.mapped


TRUNCATE_AND_PREDICT = """
import os, sys
import numpy as np
import modelcapsule as mc
path = sys.argv[1]
model = mc.load(path)
x = np.load(sys.argv[2])
expected = model.predict(x)
os.truncate(path, 0)  # another process cuts the capsule under the loaded model
assert (model.predict(x) == expected).all()
print("alive")
"""


def test_a_capsule_truncated_under_a_loaded_model_does_not_kill_the_process(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40_000, 16)).astype(np.float32)  # a 2.5 MB array: stored out of band
    model = KNeighborsClassifier(algorithm="brute").fit(x, (x[:, 0] > 0).astype(int))
    path = tmp_path / "knn.capsule"
    mc.save(model, path, sample=x[:5], source=False)
    assert any(m.startswith("model/") and mc.inspect(path).files[m].size > 2_000_000 for m in mc.inspect(path).files)
    np.save(tmp_path / "x.npy", x[:50])
    done = subprocess.run([sys.executable, "-c", TRUNCATE_AND_PREDICT, str(path), str(tmp_path / "x.npy")],
                          check=False, env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "alive"


def test_a_plain_model_file_is_read_once(tmp_path: Path) -> None:
    """The audit and the parse of a plain ``.pkl`` see one copy of its bytes, not two reads of a path."""
    path = tmp_path / "m.pkl"
    path.write_bytes(b"\x80\x05K\x01.")
    source = PlainFile(path, "model/m.pkl")
    path.write_bytes(b"\x80\x05K\x02.")
    assert bytes(source.view("model/m.pkl")) == b"\x80\x05K\x01."
    assert source.read("model/m.pkl") == b"\x80\x05K\x01."


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_members_private_copy_is_not_shared_with_a_forked_child(tmp_path: Path) -> None:
    """The copy a member is read into is private: a forked worker writing into it (an array built on it)
    changes its own copy only, never the parent's model."""
    from modelcapsule.core.exact_bytes import read_private

    path = tmp_path / "member.bin"
    path.write_bytes(bytes(range(256)) * (32 << 10))  # 8 MiB: the anonymous-memory path
    fd = os.open(path, os.O_RDONLY)
    try:
        view = read_private(fd, 0, path.stat().st_size, "member.bin")
    finally:
        os.close(fd)
    pid = os.fork()
    if pid == 0:  # the child writes through its view and leaves at once
        view[: 1 << 20] = b"\xff" * (1 << 20)
        os._exit(0)
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert view[:256].tobytes() == bytes(range(256))
    assert view.tobytes() == path.read_bytes()


def test_a_member_being_read_hands_out_its_front_only_once_it_has_arrived(tmp_path: Path) -> None:
    """The parser may take an array while the hash thread still reads the rest of the member: ``wait``
    returns only once the span is in, the bytes are the file's, and a truncated file fails every waiter."""
    import threading

    from modelcapsule.core.exact_bytes import PendingBytes

    data = bytes(range(256)) * (96 << 10)  # 24 MiB: three parts of 8 MiB
    path = tmp_path / "member.bin"
    path.write_bytes(data)
    pending = PendingBytes(len(data), "member.bin")
    fd = os.open(path, os.O_RDONLY)
    try:
        reader = threading.Thread(target=pending.fill, args=(fd, 0))
        reader.start()
        pending.wait(1 << 20)
        assert bytes(pending.view[: 1 << 20]) == data[: 1 << 20]
        pending.wait(len(data))
        reader.join()
        assert bytes(pending.view) == data
    finally:
        os.close(fd)

    short = PendingBytes(len(data) + 1, "member.bin")  # the file ends one byte before the member does
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(CapsuleFormatError, match="truncated"):
            short.fill(fd, 0)
        with pytest.raises(CapsuleFormatError, match="truncated"):
            short.wait(len(data) + 1)
        short.wait(len(data))  # what did arrive is still there
    finally:
        os.close(fd)


def test_the_onnx_runtime_also_hashes_the_bytes_it_reads_whatever_the_record_says(
        record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``runtime="onnx"`` loads the export without the Python model; its hash check follows the same rule."""
    pytest.importorskip("onnxruntime")
    path = record / "m.capsule"
    model, x, _y = iris_forest()
    mc.save(model, path, sample=x[::15], source=False, onnx=True)
    time.sleep(0.1)
    mc.load_capsule(path, runtime="onnx")  # the checks pass and are recorded
    before = os.stat(path)
    write_through_shared_mapping(path, b"sample/inputs/0.npy")
    monkeypatch.setattr(CapsuleReader, "file_stats", lambda self: [("", before)])
    with pytest.raises(IntegrityError, match="sample/inputs/0.npy"):
        mc.load_capsule(path, runtime="onnx")
