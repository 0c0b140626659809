"""Hostile containers: every malformed or malicious capsule is refused by the strict reader, with the
exact error type and a message naming the offending member or cap, and the payload inside (a pickle
that would create a canary file) never runs.

Each builder returns the path to open and the limits to open it with. The payload is the same live
``os.system`` pickle in every case, so a reader that let any of them through would have to go on to
the pickle stage to be stopped.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hostile_corpus import (
    build_capsule,
    canary_path,
    manifest_for,
    overlapping_zip,
    patch_central,
    raw_capsule_zip,
    raw_zip,
    touch_payload,
)

from modelcapsule.core.container import DEFAULT_LIMITS, Limits, open_capsule
from modelcapsule.core.manifest import MANIFEST_NAME
from modelcapsule.errors import CapsuleError, CapsuleFormatError, IntegrityError, LimitExceededError

Built = tuple[Path, Limits]
Builder = Callable[[Path], Built]
PAYLOAD = "model/model.pkl"


def read_strictly(path: Path, limits: Limits) -> None:
    """Open the capsule with the strict reader and check every member's hash, as the loader does."""
    with open_capsule(path, limits) as reader:
        reader.check_hashes()


def _members(tmp: Path) -> dict[str, bytes]:
    return {PAYLOAD: touch_payload(tmp), "sample/inputs.json": b"[[1, 2, 3]]"}


# ------------------------------------------------------------------------------------------ builders


def dotdot(tmp: Path) -> Built:
    return raw_capsule_zip(tmp / "c.capsule", _members(tmp), extra_entries=[("model/../../evil.pkl", b"x")]), \
        DEFAULT_LIMITS


def absolute(tmp: Path) -> Built:
    return raw_capsule_zip(tmp / "c.capsule", _members(tmp), extra_entries=[("/etc/evil.pkl", b"x")]), \
        DEFAULT_LIMITS


def backslash(tmp: Path) -> Built:
    return raw_capsule_zip(tmp / "c.capsule", _members(tmp), extra_entries=[("model\\..\\evil.pkl", b"x")]), \
        DEFAULT_LIMITS


def drive_letter(tmp: Path) -> Built:
    return raw_capsule_zip(tmp / "c.capsule", _members(tmp), extra_entries=[("C:/evil.pkl", b"x")]), \
        DEFAULT_LIMITS


def duplicate(tmp: Path) -> Built:
    members = _members(tmp)
    # The manifest hashes the harmless copy; a reader taking the last copy would get the payload.
    harmless = {**members, PAYLOAD: b"\x80\x05K\x01."}
    return raw_capsule_zip(tmp / "c.capsule", harmless, extra_entries=[(PAYLOAD, members[PAYLOAD])]), \
        DEFAULT_LIMITS


def unlisted(tmp: Path) -> Built:
    return raw_capsule_zip(tmp / "c.capsule", {"sample/inputs.json": b"[]"}, manifest=manifest_for(
        {"sample/inputs.json": b"[]"}), extra_entries=[(PAYLOAD, touch_payload(tmp))]), DEFAULT_LIMITS


def listed_but_missing(tmp: Path) -> Built:
    doc = manifest_for(_members(tmp))
    return raw_zip(tmp / "c.capsule", [("sample/inputs.json", b"[[1, 2, 3]]"),
                                       (MANIFEST_NAME, json.dumps(doc).encode())]), DEFAULT_LIMITS


def hash_mismatch(tmp: Path) -> Built:
    members = _members(tmp)
    doc = manifest_for({**members, PAYLOAD: members[PAYLOAD].replace(b"touch", b"TOUCH")})
    return raw_capsule_zip(tmp / "c.capsule", members, manifest=doc), DEFAULT_LIMITS


def size_mismatch(tmp: Path) -> Built:
    members = _members(tmp)
    doc = manifest_for(members)
    doc["files"][PAYLOAD]["size"] += 1
    return raw_capsule_zip(tmp / "c.capsule", members, manifest=doc), DEFAULT_LIMITS


def newer_version(tmp: Path) -> Built:
    return raw_capsule_zip(tmp / "c.capsule", _members(tmp), manifest=manifest_for(_members(tmp), version=99)), \
        DEFAULT_LIMITS


def no_manifest(tmp: Path) -> Built:
    return raw_zip(tmp / "c.capsule", _members(tmp).items()), DEFAULT_LIMITS


def manifest_duplicate_keys(tmp: Path) -> Built:
    members = _members(tmp)
    honest = json.dumps(manifest_for(members))
    # Two "files" keys: parsers that keep the first and parsers that keep the last would disagree.
    raw = honest[:-1] + ', "files": {}}'
    return raw_zip(tmp / "c.capsule", [*members.items(), (MANIFEST_NAME, raw.encode())]), DEFAULT_LIMITS


def manifest_nan(tmp: Path) -> Built:
    members = _members(tmp)
    raw = json.dumps(manifest_for(members))[:-1] + ', "x": NaN}'
    return raw_zip(tmp / "c.capsule", [*members.items(), (MANIFEST_NAME, raw.encode())]), DEFAULT_LIMITS


def manifest_deep(tmp: Path) -> Built:
    members = _members(tmp)
    raw = json.dumps(manifest_for(members))[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    return raw_zip(tmp / "c.capsule", [*members.items(), (MANIFEST_NAME, raw.encode())]), DEFAULT_LIMITS


def manifest_not_json(tmp: Path) -> Built:
    members = _members(tmp)
    return raw_zip(tmp / "c.capsule", [*members.items(), (MANIFEST_NAME, touch_payload(tmp))]), DEFAULT_LIMITS


def huge_manifest(tmp: Path) -> Built:
    members = _members(tmp)
    doc = manifest_for(members, metadata={"padding": "x" * (DEFAULT_LIMITS.max_manifest_size + 1)})
    return raw_capsule_zip(tmp / "c.capsule", members, manifest=doc), DEFAULT_LIMITS


def bomb_by_ratio(tmp: Path) -> Built:
    members = {**_members(tmp), "sample/zeros.npy": b"\0" * (8 << 20)}
    return raw_capsule_zip(tmp / "c.capsule", members, deflate=True), DEFAULT_LIMITS


def bomb_by_total_size(tmp: Path) -> Built:
    """Ten deflated members, each declaring 199x its compressed size (under the ratio cap), together
    over the total cap: the check uses declared sizes, before anything is decompressed."""
    bulk = {f"sample/part{i}.bin": os.urandom(16 << 10) for i in range(10)}
    path = raw_capsule_zip(tmp / "c.capsule", {**_members(tmp), **bulk}, deflate=True)
    with zipfile.ZipFile(path) as zf:
        csizes = {i.filename: i.compress_size for i in zf.infolist()}
    for name in bulk:
        patch_central(path, name, size=csizes[name] * 199)
    return path, Limits(max_total_size=10 * 199 * (16 << 10) // 2)


def overlapping_members(tmp: Path) -> Built:
    return overlapping_zip(tmp / "c.capsule", {"sample/inputs.json": b"[]"}, "model/outer.bin", PAYLOAD,
                           touch_payload(tmp)), DEFAULT_LIMITS


def stored_member_declared_huge(tmp: Path) -> Built:
    """A stored member whose declared size (both sizes) runs far past the end of the file."""
    path = raw_capsule_zip(tmp / "c.capsule", _members(tmp))
    patch_central(path, PAYLOAD, size=0xFFFFFFF0, csize=0xFFFFFFF0)
    return path, DEFAULT_LIMITS


def bomb_by_total_size_real(tmp: Path) -> Built:
    """Real data, within the ratio cap per member, over a lowered total cap."""
    bulk = {f"sample/part{i}.bin": os.urandom(64 << 10) for i in range(8)}
    return raw_capsule_zip(tmp / "c.capsule", {**_members(tmp), **bulk}), Limits(max_total_size=256 << 10)


def huge_member(tmp: Path) -> Built:
    members = _members(tmp)
    path = raw_capsule_zip(tmp / "c.capsule", members)
    patch_central(path, PAYLOAD, size=0xFFFFFFF0)
    return path, Limits(max_member_size=1 << 30)


def too_many_members(tmp: Path) -> Built:
    many = {f"sample/{i}.json": b"[]" for i in range(50)}
    return raw_capsule_zip(tmp / "c.capsule", {**_members(tmp), **many}), Limits(max_members=20)


def truncated(tmp: Path) -> Built:
    path = build_capsule(tmp / "c.capsule", _members(tmp))
    path.write_bytes(path.read_bytes()[:-30])
    return path, DEFAULT_LIMITS


def truncated_in_payload(tmp: Path) -> Built:
    path = build_capsule(tmp / "c.capsule", _members(tmp))
    blob = path.read_bytes()
    cut = blob.index(b"touch") + 3
    path.write_bytes(blob[:cut])
    return path, DEFAULT_LIMITS


def bit_flipped_payload(tmp: Path) -> Built:
    path = build_capsule(tmp / "c.capsule", _members(tmp))
    blob = bytearray(path.read_bytes())
    blob[blob.index(b"touch")] ^= 0x20  # "touch" -> "Touch": the hash no longer matches
    path.write_bytes(bytes(blob))
    return path, DEFAULT_LIMITS


def encrypted_flag(tmp: Path) -> Built:
    path = raw_capsule_zip(tmp / "c.capsule", _members(tmp))
    patch_central(path, PAYLOAD, flags=0x1)
    return path, DEFAULT_LIMITS


def unknown_compression(tmp: Path) -> Built:
    path = raw_capsule_zip(tmp / "c.capsule", _members(tmp))
    patch_central(path, PAYLOAD, method=zipfile.ZIP_BZIP2)
    return path, DEFAULT_LIMITS


def two_names(tmp: Path) -> Built:
    """The central directory says one name, the local header another (a classic scanner evasion)."""
    path = raw_capsule_zip(tmp / "c.capsule", _members(tmp))
    patch_central(path, PAYLOAD, rename="model/model.pkX")
    return path, DEFAULT_LIMITS


def prepended_pickle(tmp: Path) -> Built:
    """A polyglot: a pickle in front of a valid capsule. pickle.load runs it, zipfile skips it."""
    path = build_capsule(tmp / "c.capsule", _members(tmp))
    path.write_bytes(touch_payload(tmp) + path.read_bytes())
    return path, DEFAULT_LIMITS


def pickle_named_capsule(tmp: Path) -> Built:
    path = tmp / "c.capsule"
    path.write_bytes(touch_payload(tmp))
    return path, DEFAULT_LIMITS


def dir_symlink_member(tmp: Path) -> Built:
    path = build_capsule(tmp / "c.capsule", {"sample/inputs.json": b"[]"}, layout="dir")
    outside = tmp / "outside.pkl"
    outside.write_bytes(touch_payload(tmp))
    (path / "model").mkdir()
    os.symlink(outside, path / PAYLOAD)
    return path, DEFAULT_LIMITS


def dir_symlinked_directory(tmp: Path) -> Built:
    path = build_capsule(tmp / "c.capsule", {"sample/inputs.json": b"[]"}, layout="dir")
    outside = tmp / "outside"
    outside.mkdir()
    (outside / "model.pkl").write_bytes(touch_payload(tmp))
    os.symlink(outside, path / "model")
    return path, DEFAULT_LIMITS


def dir_symlinked_manifest(tmp: Path) -> Built:
    path = build_capsule(tmp / "c.capsule", _members(tmp), layout="dir")
    real = tmp / "real.json"
    (path / MANIFEST_NAME).rename(real)
    os.symlink(real, path / MANIFEST_NAME)
    return path, DEFAULT_LIMITS


def dir_fifo(tmp: Path) -> Built:
    path = build_capsule(tmp / "c.capsule", _members(tmp), layout="dir")
    os.mkfifo(path / "model" / "pipe")
    return path, DEFAULT_LIMITS


def dir_hash_mismatch(tmp: Path) -> Built:
    path = build_capsule(tmp / "c.capsule", _members(tmp), layout="dir")
    payload = path / PAYLOAD
    payload.write_bytes(payload.read_bytes().replace(b"touch", b"TOUCH"))
    return path, DEFAULT_LIMITS


# (builder, exact error type, text the message must contain)
CASES: dict[str, tuple[Builder, type[CapsuleError], str]] = {
    "dotdot-member": (dotdot, CapsuleFormatError, "'model/../../evil.pkl'"),
    "absolute-member": (absolute, CapsuleFormatError, "'/etc/evil.pkl'"),
    "backslash-member": (backslash, CapsuleFormatError, "evil.pkl"),
    "drive-letter-member": (drive_letter, CapsuleFormatError, "'C:/evil.pkl'"),
    "duplicate-member": (duplicate, CapsuleFormatError, f"{PAYLOAD!r} appears twice"),
    "unlisted-member": (unlisted, CapsuleFormatError, f"{PAYLOAD!r} are not listed"),
    "listed-but-missing": (listed_but_missing, CapsuleFormatError, f"{PAYLOAD!r} are listed in the manifest"),
    "hash-mismatch": (hash_mismatch, IntegrityError, f"member {PAYLOAD!r}"),
    "size-mismatch": (size_mismatch, IntegrityError, f"member {PAYLOAD!r}"),
    "newer-capsule-version": (newer_version, CapsuleFormatError, "capsule_version 99"),
    "no-manifest": (no_manifest, CapsuleFormatError, "no capsule.json"),
    "manifest-duplicate-keys": (manifest_duplicate_keys, CapsuleFormatError, "'files' appears twice"),
    "manifest-nan": (manifest_nan, CapsuleFormatError, "NaN"),
    "manifest-deeply-nested": (manifest_deep, CapsuleFormatError, "capsule.json is not valid JSON"),
    "manifest-is-a-pickle": (manifest_not_json, CapsuleFormatError, "capsule.json is not valid JSON"),
    "huge-manifest": (huge_manifest, LimitExceededError, "max_manifest_size"),
    "zip-bomb-ratio": (bomb_by_ratio, LimitExceededError, "'sample/zeros.npy'"),
    "zip-bomb-total-declared-sizes": (bomb_by_total_size, LimitExceededError, "max_total_size"),
    "zip-bomb-total-real": (bomb_by_total_size_real, LimitExceededError, "max_total_size"),
    "overlapping-members": (overlapping_members, CapsuleFormatError, f"{PAYLOAD!r} overlap"),
    "stored-member-past-end": (stored_member_declared_huge, CapsuleFormatError, f"{PAYLOAD!r} runs past the end"),
    "huge-member": (huge_member, LimitExceededError, f"{PAYLOAD!r}"),
    "too-many-members": (too_many_members, LimitExceededError, "max_members"),
    "truncated-end": (truncated, CapsuleFormatError, "truncated or corrupt"),
    "truncated-in-payload": (truncated_in_payload, CapsuleFormatError, "truncated or corrupt"),
    "bit-flipped-payload": (bit_flipped_payload, IntegrityError, f"member {PAYLOAD!r}"),
    "encrypted-member": (encrypted_flag, CapsuleFormatError, f"{PAYLOAD!r} is encrypted"),
    "unknown-compression": (unknown_compression, CapsuleFormatError, f"{PAYLOAD!r} uses compression method 12"),
    "local-and-central-names-differ": (two_names, CapsuleFormatError, "'model/model.pkX' is named differently"),
    "pickle-prepended-to-zip": (prepended_pickle, CapsuleFormatError, "starts with"),
    "pickle-named-capsule": (pickle_named_capsule, CapsuleFormatError, "not a readable capsule"),
    "dir-symlinked-member": (dir_symlink_member, CapsuleFormatError, f"{PAYLOAD!r} is a symlink"),
    "dir-symlinked-directory": (dir_symlinked_directory, CapsuleFormatError, "'model' is a symlink"),
    "dir-symlinked-manifest": (dir_symlinked_manifest, CapsuleFormatError, "'capsule.json' is a symlink"),
    "dir-fifo-member": (dir_fifo, CapsuleFormatError, "'model/pipe' is not a regular file"),
    "dir-hash-mismatch": (dir_hash_mismatch, IntegrityError, f"member {PAYLOAD!r}"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_container_is_refused_by_name_and_runs_nothing(tmp_path: Path, case: str) -> None:
    builder, error, needle = CASES[case]
    path, limits = builder(tmp_path)
    with pytest.raises(CapsuleError) as info:
        read_strictly(path, limits)
    assert type(info.value) is error, f"{case}: {type(info.value).__name__}: {info.value}"
    assert needle in str(info.value), f"{case}: {info.value}"
    assert not canary_path(tmp_path).exists()


def test_limit_errors_name_the_cap_and_how_to_raise_it(tmp_path: Path) -> None:
    path, limits = bomb_by_ratio(tmp_path)
    with pytest.raises(LimitExceededError) as info:
        read_strictly(path, limits)
    assert info.value.knob == "max_compression_ratio" and info.value.value > info.value.limit
    assert "limits=modelcapsule.Limits(max_compression_ratio=...)" in str(info.value)
    read_strictly(path, Limits(max_compression_ratio=100_000))  # raising the cap lets a trusted file through


def test_the_payload_is_live_so_the_refusals_mean_something(tmp_path: Path) -> None:
    """The pickle inside every hostile capsule really runs code when loaded by plain pickle."""
    import subprocess
    import sys

    payload = tmp_path / "payload.pkl"
    payload.write_bytes(touch_payload(tmp_path))
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.loads(open({str(payload)!r}, 'rb').read())"],
                   check=True, timeout=60)
    assert canary_path(tmp_path).exists()
