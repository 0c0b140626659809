"""Atomic file writes: the destination holds the old file or the whole new one, never a mix."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from modelcapsule.core.atomic import OWNER_ONLY, PLAIN_MODE, AtomicFile, fsync_dir, write_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_new_bytes_replace_the_old_file_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with AtomicFile(target) as fh:
        fh.write(b"new ")
        fh.write(b"bytes")
    assert target.read_bytes() == b"new bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_crash_before_the_rename_leaves_the_old_file_intact(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    with pytest.raises(KeyboardInterrupt), AtomicFile(target) as fh:
        fh.write(b"half of the new")
        fh.flush()
        assert target.read_bytes() == b"old"  # nothing visible while writing
        raise KeyboardInterrupt

    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_failed_first_write_leaves_no_file_at_all(tmp_path: Path) -> None:
    target = tmp_path / "new.bin"
    with pytest.raises(ValueError, match="bad row"), AtomicFile(target) as fh:
        fh.write(b"partial")
        raise ValueError("bad row")
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_file_is_a_hidden_sibling_of_the_destination(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with AtomicFile(target) as fh:
        fh.write(b"abc")
        fh.flush()
        siblings = list(tmp_path.iterdir())
        assert len(siblings) == 1 and siblings[0].name.startswith(".out.bin.tmp-")
        assert siblings[0].read_bytes() == b"abc"


def test_the_file_is_owner_only_unless_a_mode_is_given(tmp_path: Path) -> None:
    write_atomic(tmp_path / "secret", b"k")
    write_atomic(tmp_path / "public", b"p", mode=0o644)
    write_atomic(tmp_path / "plain", b"x", mode=PLAIN_MODE)
    assert _mode(tmp_path / "secret") == OWNER_ONLY == 0o600
    assert _mode(tmp_path / "public") == 0o644
    umask = os.umask(0)
    os.umask(umask)
    assert _mode(tmp_path / "plain") == 0o666 & ~umask


def test_the_owner_only_mode_holds_from_the_first_byte(tmp_path: Path) -> None:
    with AtomicFile(tmp_path / "secret") as fh:
        assert stat.S_IMODE(os.fstat(fh.fileno()).st_mode) == 0o600
        fh.write(b"private key")
    assert _mode(tmp_path / "secret") == 0o600


def test_replacing_a_file_gives_it_the_new_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    write_atomic(target, b"new", mode=0o644)
    assert target.read_bytes() == b"new" and _mode(target) == 0o644


def test_a_missing_directory_is_an_error_not_a_silent_mkdir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "absent" / "out.bin", b"x")
    assert list(tmp_path.iterdir()) == []


def test_fsync_dir_accepts_a_directory_and_refuses_a_missing_one(tmp_path: Path) -> None:
    fsync_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        fsync_dir(tmp_path / "absent")


@pytest.mark.parametrize("layout", ["zip", "dir"])
def test_a_saved_capsule_gets_the_mode_a_plain_file_or_folder_would(tmp_path: Path, layout: str) -> None:
    """Capsules are shared artefacts (a server running as another user reads them): the umask decides."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    import modelcapsule as mc
    from modelcapsule.core.atomic import PLAIN_DIR_MODE

    x = np.arange(12.0).reshape(6, 2)
    path = tmp_path / ("m.capsule" if layout == "zip" else "m.capsule.d")
    mc.save(LinearRegression().fit(x, x.sum(axis=1)), path, layout=layout)
    assert _mode(path) == (PLAIN_MODE if layout == "zip" else PLAIN_DIR_MODE)
