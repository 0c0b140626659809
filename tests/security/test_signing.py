"""Signed capsules: a signature made with one key fails with another, and after any member changes."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hostile_corpus import build_capsule, raw_zip

from modelcapsule.core.container import open_capsule
from modelcapsule.core.manifest import MANIFEST_NAME, SIGNATURE_NAME
from modelcapsule.errors import CapsuleError, IntegrityError, SignatureError
from modelcapsule.security.signing import (
    check_signature,
    generate_key,
    key_id,
    load_public_key,
    sign_capsule,
    sign_manifest,
    verify_signed,
    write_keypair,
)

MEMBERS = {"model/model.pkl": b"\x80\x05K\x01.", "sample/inputs.npy": b"x" * 1000}


@pytest.fixture(params=["zip", "dir"])
def capsule(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return build_capsule(tmp_path / "m.capsule", MEMBERS, layout=request.param)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return write_keypair(tmp_path / "keys" / "signer")


def _zip_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _replace_member(path: Path, name: str, data: bytes) -> None:
    """Change one member in place, keeping every other byte (manifest and signature) as it was."""
    if path.is_dir():
        (path / name).write_bytes(data)
        return
    members = _zip_members(path)
    members[name] = data
    raw_zip(path, members.items())


def test_keygen_writes_a_private_key_only_its_owner_can_read(keys: tuple[Path, Path]) -> None:
    private, public = keys
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.name == "signer.pub"
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        write_keypair(private)


def test_a_signed_capsule_verifies_with_its_public_key(capsule: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    with open_capsule(capsule) as reader:
        manifest_before = reader.read(MANIFEST_NAME)
    kid = sign_capsule(capsule, private)
    assert verify_signed(capsule, public) == kid
    with open_capsule(capsule) as reader:
        assert reader.read(MANIFEST_NAME) == manifest_before  # the signed bytes are the saved bytes
        assert {n: reader.read(n) for n in MEMBERS} == MEMBERS
        check_signature(reader, public)


@pytest.mark.parametrize("form", ["path", "str path", "pem bytes", "pem text", "object", "openssh"])
def test_a_public_key_is_accepted_in_every_form(tmp_path: Path, keys: tuple[Path, Path], form: str) -> None:
    private, public = keys
    capsule = build_capsule(tmp_path / "k.capsule", MEMBERS)
    sign_capsule(capsule, private.read_bytes())
    pub = load_public_key(public)
    given: object = {
        "path": public,
        "str path": str(public),
        "pem bytes": public.read_bytes(),
        "pem text": public.read_text(),
        "object": pub,
        "openssh": pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    }[form]
    assert verify_signed(capsule, given) == key_id(pub)  # type: ignore[arg-type]


def test_another_key_fails_and_the_message_names_both_keys(capsule: Path, keys: tuple[Path, Path]) -> None:
    sign_capsule(capsule, keys[0])
    other = generate_key()
    with pytest.raises(SignatureError, match="another key") as info:
        verify_signed(capsule, other.public_key())
    assert key_id(other)[:16] in str(info.value) and key_id(load_public_key(keys[1]))[:16] in str(info.value)


def test_an_unsigned_capsule_is_refused_when_a_key_is_given(capsule: Path, keys: tuple[Path, Path]) -> None:
    with pytest.raises(SignatureError, match="not signed"):
        verify_signed(capsule, keys[1])


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_changing_any_member_after_signing_fails_verification(
    capsule: Path, keys: tuple[Path, Path], member: str
) -> None:
    sign_capsule(capsule, keys[0])
    original = MEMBERS[member]
    _replace_member(capsule, member, bytes([original[0] ^ 1]) + original[1:])
    with pytest.raises(IntegrityError, match=member):
        verify_signed(capsule, keys[1])


def test_a_manifest_rewritten_to_match_changed_members_fails_the_signature(
    capsule: Path, keys: tuple[Path, Path]
) -> None:
    sign_capsule(capsule, keys[0])
    with open_capsule(capsule) as reader:
        doc = json.loads(reader.read(MANIFEST_NAME))
    doc["metadata"] = {"owner": "someone else"}
    _replace_member(capsule, MANIFEST_NAME, json.dumps(doc).encode())
    with pytest.raises(SignatureError, match=r"capsule.json\) was changed after signing"):
        verify_signed(capsule, keys[1])


def _signature_doc(capsule: Path) -> dict[str, object]:
    with open_capsule(capsule) as reader:
        return dict(json.loads(reader.read(SIGNATURE_NAME)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: b"not json", "not JSON"),
        (lambda d: b"[1, 2]", "JSON object"),
        (lambda d: json.dumps({**d, "signature_version": 99}).encode(), "newer than this modelcapsule"),
        (lambda d: json.dumps({**d, "signature_version": "1"}).encode(), "signature_version"),
        (lambda d: json.dumps({**d, "algorithm": "rsa"}).encode(), "algorithm 'rsa'"),
        (lambda d: json.dumps({**d, "signature": "@@@"}).encode(), "not valid base64"),
        (lambda d: json.dumps({**d, "signature": base64.b64encode(b"x" * 10).decode()}).encode(), "10-byte"),
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "key_id"}).encode(), "key_id"),
        (lambda d: b" " * (70 << 10), "bytes; a real one"),
    ],
    ids=["not-json", "not-object", "newer", "bad-version", "algorithm", "base64", "length", "no-key-id",
         "huge"],
)
def test_a_malformed_signature_is_refused_with_a_reason(
    tmp_path: Path, keys: tuple[Path, Path], change: object, message: str
) -> None:
    capsule = build_capsule(tmp_path / "s.capsule", MEMBERS)
    sign_capsule(capsule, keys[0])
    _replace_member(capsule, SIGNATURE_NAME, change(_signature_doc(capsule)))  # type: ignore[operator]
    with pytest.raises(SignatureError, match=message):
        verify_signed(capsule, keys[1])


def test_signing_refuses_a_capsule_whose_members_were_already_altered(tmp_path: Path,
                                                                      keys: tuple[Path, Path]) -> None:
    capsule = build_capsule(tmp_path / "t.capsule", MEMBERS)
    _replace_member(capsule, "model/model.pkl", b"\x80\x05K\x02.")
    with pytest.raises(IntegrityError, match=r"model/model\.pkl"):
        sign_capsule(capsule, keys[0])
    assert SIGNATURE_NAME not in _zip_members(capsule)


def test_resigning_replaces_the_signature_and_keeps_the_layout(tmp_path: Path,
                                                                keys: tuple[Path, Path]) -> None:
    capsule = build_capsule(tmp_path / "c.capsule", {**MEMBERS, "model/buffers/0.bin": b"\0" * 4096},
                            compress=True)
    sign_capsule(capsule, generate_key())
    sign_capsule(capsule, keys[0])
    verify_signed(capsule, keys[1])
    with zipfile.ZipFile(capsule) as zf:
        names = [i.filename for i in zf.infolist()]
        methods = {i.filename: i.compress_type for i in zf.infolist()}
    assert names.count(SIGNATURE_NAME) == 1
    assert methods["sample/inputs.npy"] == zipfile.ZIP_DEFLATED
    assert methods["model/buffers/0.bin"] == zipfile.ZIP_STORED
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".c.capsule.tmp")]


def test_keys_of_other_algorithms_and_unreadable_keys_are_refused(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pem = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    capsule = build_capsule(tmp_path / "r.capsule", MEMBERS)
    with pytest.raises(SignatureError, match="not an Ed25519 key"):
        sign_capsule(capsule, rsa_pem)
    with pytest.raises(SignatureError, match="not a readable PEM private key"):
        sign_capsule(capsule, b"garbage")
    private, _public = write_keypair(tmp_path / "k")
    with pytest.raises(SignatureError, match="looks like a private key"):
        load_public_key(private)
    with pytest.raises(FileNotFoundError, match="capsule keygen"):
        load_public_key(tmp_path / "missing.pub")


def test_a_signature_document_verifies_only_the_exact_bytes() -> None:
    key = generate_key()
    doc = json.loads(sign_manifest(b'{"a": 1}', key))
    raw = base64.b64decode(doc["signature"])
    key.public_key().verify(raw, b'{"a": 1}')
    assert doc["key_id"] == key_id(key)


def test_keygen_and_sign_on_the_command_line(tmp_path: Path, subprocess_env: dict[str, str],
                                             capsule_cmd: list[str]) -> None:
    capsule = build_capsule(tmp_path / "cli.capsule", MEMBERS)
    key = tmp_path / "cli-key"
    done = subprocess.run([*capsule_cmd, "keygen", "-o", str(key), "--json"], env=subprocess_env,
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and Path(info["public_key"]).is_file()
    again = subprocess.run([*capsule_cmd, "keygen", "-o", str(key)], env=subprocess_env, check=False,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "already exists" in again.stderr
    signed = subprocess.run([*capsule_cmd, "sign", str(capsule), "--key", str(key), "--json"],
                            env=subprocess_env, check=False, capture_output=True, text=True, timeout=60)
    assert signed.returncode == 0, signed.stderr
    assert json.loads(signed.stdout)["key_id"] == info["key_id"]
    assert verify_signed(capsule, Path(info["public_key"])) == info["key_id"]
    _replace_member(capsule, "model/model.pkl", b"\x80\x05K\x02.")
    refused = subprocess.run([*capsule_cmd, "sign", str(capsule), "--key", str(key)], env=subprocess_env,
                             check=False, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "model/model.pkl" in refused.stderr


def test_the_signature_reader_sees_only_manifest_and_signature(tmp_path: Path,
                                                                keys: tuple[Path, Path]) -> None:
    """check_signature runs before any payload parsing: it must not read model/ members at all."""
    capsule = build_capsule(tmp_path / "o.capsule", MEMBERS, layout="dir")
    sign_capsule(capsule, keys[0])
    with open_capsule(capsule) as reader:
        seen: list[str] = []
        original_read, original_view = reader.read, reader.view
        reader.read = lambda name: (seen.append(name), original_read(name))[1]  # type: ignore[method-assign]
        reader.view = lambda name: (seen.append(name), original_view(name))[1]  # type: ignore[method-assign]
        check_signature(reader, keys[1])
    assert set(seen) == {MANIFEST_NAME, SIGNATURE_NAME}


def test_a_bit_flipped_signed_zip_never_verifies(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    capsule = build_capsule(tmp_path / "f.capsule", MEMBERS)
    sign_capsule(capsule, keys[0])
    data = bytearray(capsule.read_bytes())
    for i in range(0, len(data), max(1, len(data) // 97)):
        flipped = bytearray(data)
        flipped[i] ^= 0x40
        capsule.write_bytes(bytes(flipped))
        try:
            verify_signed(capsule, keys[1])
        except CapsuleError:
            continue
        # A flip in bytes nobody reads (ZIP padding, timestamps) may leave the content intact.
        with open_capsule(capsule) as reader:
            assert {n: reader.read(n) for n in MEMBERS} == MEMBERS


def test_capsule_verify_checks_the_signature_on_the_command_line(tmp_path: Path, subprocess_env: dict[str, str],
                                                                 capsule_cmd: list[str]) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import modelcapsule as mc

    X, y = load_iris(return_X_y=True)
    capsule = tmp_path / "iris.capsule"
    mc.save(LogisticRegression(max_iter=500).fit(X, y), capsule, sample=X[:5], source=False)
    private, public = write_keypair(tmp_path / "k")
    _other_private, other_public = write_keypair(tmp_path / "other")
    sign_capsule(capsule, private)

    def verify(key: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*capsule_cmd, "verify", str(capsule), "--public-key", str(key), "--json"],
                              env=subprocess_env, check=False, capture_output=True, text=True, timeout=120)

    good, bad = verify(public), verify(other_public)
    assert good.returncode == 0, good.stdout + good.stderr
    assert json.loads(good.stdout)["signature"] == "valid"
    assert bad.returncode == 1 and "another key" in bad.stdout
    assert mc.load(capsule, public_key=public).predict(X[:5]).shape == (5,)
    with pytest.raises(SignatureError, match="another key"):
        mc.load(capsule, public_key=other_public)
