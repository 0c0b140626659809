"""The container: atomic writes, aligned stored members, and a strict reader."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from modelcapsule.core.container import ALIGNMENT, CapsuleWriter, Limits, open_capsule
from modelcapsule.core.manifest import Manifest
from modelcapsule.errors import CapsuleFormatError, IntegrityError, LimitExceededError


def _manifest() -> Manifest:
    return Manifest(name="t", created_at="2026-01-01T00:00:00+00:00", model={"framework": "sklearn"},
                    format={"name": "safepickle"}, files={}, signature=None, environment={})


def _write(path: Path, members: dict[str, bytes], **kw: object) -> None:
    with CapsuleWriter(path, **kw) as writer:  # type: ignore[arg-type]
        for name, data in members.items():
            writer.add(name, data)
        writer.finish(_manifest())


def test_stored_members_are_aligned_and_mapped_without_copy(tmp_path: Path) -> None:
    members = {"model/a.bin": b"x" * 7, "model/buffers/000000.bin": bytes(range(256)) * 40}
    _write(tmp_path / "c.capsule", members)
    with open_capsule(tmp_path / "c.capsule") as reader:
        for name, data in members.items():
            view = reader.view(name)
            assert bytes(view) == data
        offset = reader._entries["model/buffers/000000.bin"][0]
        assert offset % ALIGNMENT == 0
        reader.check_hashes()


def test_directory_form_holds_the_same_members(tmp_path: Path) -> None:
    _write(tmp_path / "c", {"model/a.bin": b"abc"}, layout="dir")
    with open_capsule(tmp_path / "c") as reader:
        assert reader.read("model/a.bin") == b"abc"
        assert sorted(reader.names()) == ["capsule.json", "model/a.bin"]


def test_an_error_while_writing_leaves_nothing_behind(tmp_path: Path) -> None:
    _write(tmp_path / "c.capsule", {"model/a.bin": b"old"})
    old = (tmp_path / "c.capsule").read_bytes()
    with pytest.raises(KeyboardInterrupt), CapsuleWriter(tmp_path / "c.capsule", overwrite=True) as writer:
        writer.add("model/a.bin", b"new")
        raise KeyboardInterrupt
    assert (tmp_path / "c.capsule").read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["c.capsule"]


def test_member_names_that_escape_are_refused_on_write(tmp_path: Path) -> None:
    with pytest.raises(CapsuleFormatError, match="absolute"), CapsuleWriter(tmp_path / "c.capsule") as writer:
        writer.add("/etc/passwd", b"")


def _raw_zip(path: Path, members: list[tuple[str, bytes]], files: dict[str, bytes] | None = None) -> None:
    import hashlib

    manifest = _manifest().to_dict()
    listed = files if files is not None else dict(members)
    manifest["files"] = {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in listed.items()}
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
        zf.writestr("capsule.json", json.dumps(manifest))


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_duplicates_traversal_and_unlisted_members_are_refused(tmp_path: Path) -> None:
    _raw_zip(tmp_path / "dup.capsule", [("model/a", b"1"), ("model/a", b"2")], {"model/a": b"1"})
    with pytest.raises(CapsuleFormatError, match="'model/a' appears twice"):
        open_capsule(tmp_path / "dup.capsule")
    _raw_zip(tmp_path / "up.capsule", [("../evil", b"1")])
    with pytest.raises(CapsuleFormatError, match=r"'\.\./evil'"):
        open_capsule(tmp_path / "up.capsule")
    _raw_zip(tmp_path / "extra.capsule", [("model/a", b"1"), ("model/hidden", b"2")], {"model/a": b"1"})
    with pytest.raises(CapsuleFormatError, match="'model/hidden' are not listed"):
        open_capsule(tmp_path / "extra.capsule")
    _raw_zip(tmp_path / "missing.capsule", [], {"model/a": b"1"})
    with pytest.raises(CapsuleFormatError, match="'model/a' are listed in the manifest but missing"):
        open_capsule(tmp_path / "missing.capsule")


def test_hash_mismatch_names_the_member(tmp_path: Path) -> None:
    _raw_zip(tmp_path / "c.capsule", [("model/a", b"2")], {"model/a": b"1"})
    with open_capsule(tmp_path / "c.capsule") as reader, pytest.raises(IntegrityError, match="'model/a'"):
        reader.check_hashes()


def test_caps_say_which_limit_and_how_to_raise_it(tmp_path: Path) -> None:
    _write(tmp_path / "c.capsule", {"model/a.bin": b"x" * 5000})
    with pytest.raises(LimitExceededError, match=r"'model/a\.bin'.*Limits\(max_member_size=\.\.\.\)"):
        open_capsule(tmp_path / "c.capsule", Limits(max_member_size=1000))


def test_truncated_files_are_format_errors(tmp_path: Path) -> None:
    _write(tmp_path / "c.capsule", {"model/a.bin": b"x" * 5000})
    data = (tmp_path / "c.capsule").read_bytes()
    (tmp_path / "t.capsule").write_bytes(data[: len(data) // 2])
    with pytest.raises(CapsuleFormatError, match="truncated or corrupt"):
        open_capsule(tmp_path / "t.capsule")
