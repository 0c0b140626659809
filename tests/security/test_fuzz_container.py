"""Fuzzing the container reader: whatever bytes it is given, only modelcapsule's typed errors escape.

Hypothesis mutates real capsules (flipped, inserted, deleted and spliced bytes, truncations) and builds
ZIPs from arbitrary member names and contents. The reader must either read every member consistently or
raise a :class:`CapsuleError`; any other exception, a crash or a hang is a bug. Bounded so the whole file
runs in well under a minute.
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest
from hostile_corpus import build_capsule, raw_capsule_zip, raw_zip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelcapsule.core.container import Limits, open_capsule
from modelcapsule.errors import CapsuleError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MEMBERS = {"model/model.pkl": b"\x80\x05K\x01." * 40, "sample/inputs.json": b"[[1, 2, 3]]" * 200,
           "model/buffers/0.bin": bytes(range(256)) * 8}
_counter = itertools.count()


@functools.cache
def seed(kind: str) -> bytes:
    """A valid capsule to mutate: members stored, or deflated."""
    with tempfile.TemporaryDirectory() as root:
        return build_capsule(Path(root) / "seed.capsule", MEMBERS, compress=kind == "deflated").read_bytes()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def read_everything(path: Path, limits: Limits | None = None) -> None:
    """What a loader does with a container: open strictly, check hashes, read every member."""
    try:
        with open_capsule(path, limits or Limits(max_total_size=64 << 20)) as reader:
            reader.check_hashes()
            for name in reader.names():
                assert len(reader.read(name)) == reader.size(name)
                assert len(reader.view(name)) == reader.size(name)
    except CapsuleError:
        pass
    finally:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _write(scratch: Path, blob: bytes) -> Path:
    path = scratch / f"{next(_counter)}.capsule"
    path.write_bytes(blob)
    return path


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(1, 255)),
    st.tuples(st.just("set"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 64)),
)


def mutate(blob: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(blob)
    for kind, where, value in edits:
        if not out:
            break
        pos = where % len(out)
        if kind == "flip":
            out[pos] ^= value
        elif kind == "set":
            out[pos] = value
        elif kind == "truncate":
            del out[pos:]
        elif kind == "insert":
            out[pos:pos] = bytes([value])
        else:
            del out[pos : pos + value]
    return bytes(out)


@FUZZ
@given(kind=st.sampled_from(["stored", "deflated"]), edits=st.lists(mutation, min_size=1, max_size=6))
def test_mutated_capsules_raise_only_typed_errors(scratch: Path, kind: str,
                                                  edits: list[tuple[str, int, int]]) -> None:
    read_everything(_write(scratch, mutate(seed(kind), edits)))


@FUZZ
@given(kind=st.sampled_from(["stored", "deflated"]), start=st.integers(0, 1 << 16),
       length=st.integers(1, 512), filler=st.binary(min_size=1, max_size=512))
def test_spliced_capsules_raise_only_typed_errors(scratch: Path, kind: str, start: int,
                                                  length: int, filler: bytes) -> None:
    blob = seed(kind)
    pos = start % len(blob)
    read_everything(_write(scratch, blob[:pos] + filler + blob[pos + length :]))


member_name = st.lists(st.sampled_from(["a", "b", "/", ".", "..", "\\", ":", " ", "\x00", "é", "model/",
                                         "capsule.json"]), max_size=8).map("".join)


@FUZZ
@given(entries=st.lists(st.tuples(member_name, st.binary(max_size=300)), max_size=6), deflate=st.booleans(),
       with_manifest=st.booleans())
def test_zips_with_arbitrary_member_names_raise_only_typed_errors(
    scratch: Path, entries: list[tuple[str, bytes]], deflate: bool, with_manifest: bool
) -> None:
    path = scratch / f"{next(_counter)}.capsule"
    try:
        if with_manifest:
            raw_capsule_zip(path, dict(entries), deflate=deflate)
        else:
            raw_zip(path, entries, deflate=deflate)
    except (ValueError, UnicodeEncodeError, zipfile.LargeZipFile):
        return  # zipfile itself refused to write it; nothing to read
    read_everything(path)


@FUZZ
@given(blob=st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_typed_errors(scratch: Path, blob: bytes) -> None:
    read_everything(_write(scratch, blob))


@FUZZ
@given(limits=st.builds(Limits, max_member_size=st.integers(0, 4096), max_total_size=st.integers(0, 8192),
                        max_members=st.integers(0, 5), max_compression_ratio=st.integers(1, 300),
                        max_manifest_size=st.integers(0, 4096)),
       kind=st.sampled_from(["stored", "deflated"]))
def test_any_limits_give_a_typed_refusal_or_a_full_read(scratch: Path, limits: Limits,
                                                        kind: str) -> None:
    read_everything(_write(scratch, seed(kind)), limits)


@settings(FUZZ, max_examples=80)
@given(files=st.dictionaries(st.sampled_from(["model/a", "model/b/c", "sample/x", "capsule.json", "capsule.sig"]),
                             st.binary(max_size=64), max_size=4),
       link=st.sampled_from([None, "model/a", "model/b", "sample/x", "capsule.json"]))
def test_directory_capsules_raise_only_typed_errors(scratch: Path, files: dict[str, bytes], link: str | None) -> None:
    root = scratch / f"dir{next(_counter)}"
    build_capsule(root, {k: v for k, v in files.items() if not k.startswith("capsule.")}, layout="dir")
    for name, blob in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if not (root / name).is_dir():
            (root / name).write_bytes(blob)
    if link is not None:
        target = root / link
        if target.is_dir():
            os.rename(target, scratch / f"moved{next(_counter)}")
        else:
            target.unlink(missing_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(scratch, target)
    read_everything(root)
