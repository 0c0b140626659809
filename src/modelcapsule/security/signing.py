"""Ed25519 signatures over a capsule's manifest.

The manifest (``capsule.json``) records the SHA-256 and size of every other member, so one detached
signature over its exact bytes covers the whole capsule: changing any member changes its hash, which no
longer matches the signed manifest. The signature lives in the member ``capsule.sig`` as a small JSON
document::

    {"signature_version": 1, "algorithm": "ed25519", "key_id": "<sha256 of the raw public key>",
     "signature": "<base64 of the 64-byte Ed25519 signature>"}

``key_id`` only makes "signed with another key" errors readable; verification never trusts it and always
checks the signature itself. Keys come from ``cryptography`` (Ed25519, RFC 8032); private keys are
written as unencrypted PKCS#8 PEM readable by their owner only (mode 0600), public keys as
SubjectPublicKeyInfo PEM.

The loader calls :func:`check_signature` before it parses anything under ``model/``, then checks every
member's hash against the (now authenticated) manifest, also before parsing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..core.atomic import write_atomic
from ..core.container import DEFAULT_LIMITS, CapsuleReader, CapsuleWriter, Limits, open_capsule
from ..core.manifest import MANIFEST_NAME, SIGNATURE_NAME, parse_manifest
from ..errors import SignatureError

__all__ = [
    "MAX_SIGNATURE_SIZE",
    "SIGNATURE_VERSION",
    "PrivateKeyLike",
    "PublicKeyLike",
    "check_signature",
    "generate_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "sign_capsule",
    "sign_manifest",
    "verify_signed",
    "write_keypair",
]

SIGNATURE_VERSION = 1
"""Version of the ``capsule.sig`` document. Bump it (and keep the old reader) if its fields change."""

ALGORITHM = "ed25519"

MAX_SIGNATURE_SIZE = 64 << 10
"""A ``capsule.sig`` larger than this is refused unread: a real one is about 200 bytes."""

PrivateKeyLike = str | os.PathLike[str] | bytes | Ed25519PrivateKey
"""A private key: a path to a PEM file, PEM bytes, or a key object."""

PublicKeyLike = str | os.PathLike[str] | bytes | Ed25519PublicKey | Ed25519PrivateKey
"""A public key: a path to a PEM (or OpenSSH ``ssh-ed25519``) file, its bytes, or a key object."""


# ----------------------------------------------------------------------------------------------- keys


def generate_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """Hex SHA-256 of the raw 32-byte public key: a short, stable name for the key in messages."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _key_bytes(key: str | os.PathLike[str] | bytes, what: str) -> tuple[bytes, str]:
    """The bytes of a key given as PEM text/bytes or as a path, and a description for messages."""
    if isinstance(key, bytes):
        return key, f"the {what} given as bytes"
    if isinstance(key, str) and key.lstrip().startswith(("-----BEGIN", "ssh-ed25519 ")):
        return key.encode(), f"the {what} given as text"
    path = Path(key)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} file at {path}; create a key pair with `capsule keygen -o KEY`.")
    if path.stat().st_size > MAX_SIGNATURE_SIZE:
        raise SignatureError(f"{path} is too large to be an Ed25519 {what}; check the path.")
    return path.read_bytes(), str(path)


def load_private_key(key: PrivateKeyLike, password: bytes | None = None) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file path, PEM bytes or a key object."""
    if isinstance(key, Ed25519PrivateKey):
        return key
    data, where = _key_bytes(key, "private key")
    try:
        loaded = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SignatureError(
            f"{where} is not a readable PEM private key ({exc}). Use a key written by `capsule keygen`."
        ) from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SignatureError(
            f"{where} is a {type(loaded).__name__}, not an Ed25519 key; capsules are signed with Ed25519 "
            "only. Create a key pair with `capsule keygen -o KEY`."
        )
    return loaded


def load_public_key(key: PublicKeyLike) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM or OpenSSH file path, its bytes, or a key object.

    A private key object is accepted too (its public half is used), which keeps tests and scripts short.
    """
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    data, where = _key_bytes(key, "public key")
    loaded: Any
    try:
        if data.lstrip().startswith(b"ssh-"):
            loaded = serialization.load_ssh_public_key(data)
        else:
            loaded = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        hint = " (this looks like a private key: pass KEY.pub)" if b"PRIVATE KEY" in data else ""
        raise SignatureError(
            f"{where} is not a readable PEM or OpenSSH public key{hint} ({exc})."
        ) from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise SignatureError(
            f"{where} is a {type(loaded).__name__}, not an Ed25519 public key; capsules are signed with "
            "Ed25519 only."
        )
    return loaded


def write_keypair(path: str | os.PathLike[str], *, overwrite: bool = False,
                  key: Ed25519PrivateKey | None = None) -> tuple[Path, Path]:
    """Write a new (or the given) private key to ``path`` (PEM, mode 0600) and its public key to
    ``path + ".pub"``. Returns both paths. Refuses to replace existing files unless ``overwrite``."""
    private_path = Path(path)
    public_path = private_path.with_name(private_path.name + ".pub")
    for p in (private_path, public_path):
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} already exists; choose another name or pass overwrite=True.")
    private_path.parent.mkdir(parents=True, exist_ok=True)
    key = key or generate_key()
    write_atomic(private_path, key.private_bytes(  # owner only from the first byte
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    write_atomic(public_path, public_pem, mode=0o644)
    return private_path, public_path


# ------------------------------------------------------------------------------------------ signatures


def sign_manifest(manifest_bytes: bytes, key: PrivateKeyLike) -> bytes:
    """The ``capsule.sig`` document signing these exact manifest bytes."""
    private = load_private_key(key)
    document = {
        "signature_version": SIGNATURE_VERSION,
        "algorithm": ALGORITHM,
        "key_id": key_id(private),
        "signature": base64.b64encode(private.sign(manifest_bytes)).decode("ascii"),
    }
    return json.dumps(document, indent=2).encode() + b"\n"


def _parse_signature(raw: bytes, where: str) -> tuple[bytes, str]:
    """The raw signature and key id from a ``capsule.sig`` document; refuses anything malformed."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise SignatureError(f"{where} is not a valid signature document (not JSON); re-sign the capsule.") \
            from None
    if not isinstance(doc, dict):
        raise SignatureError(f"{where} should hold a JSON object; re-sign the capsule.")
    version = doc.get("signature_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SignatureError(f"{where} has no valid signature_version (got {version!r}).")
    if version > SIGNATURE_VERSION:
        raise SignatureError(
            f"{where} has signature_version {version}, newer than this modelcapsule reads "
            f"(up to {SIGNATURE_VERSION}). Upgrade modelcapsule to verify it."
        )
    if doc.get("algorithm") != ALGORITHM:
        raise SignatureError(
            f"{where} uses algorithm {doc.get('algorithm')!r}; only {ALGORITHM!r} is accepted.")
    sig_b64, kid = doc.get("signature"), doc.get("key_id")
    if not isinstance(sig_b64, str) or not isinstance(kid, str):
        raise SignatureError(f"{where} lacks a 'signature' or 'key_id' string; re-sign the capsule.")
    try:
        signature = base64.b64decode(sig_b64, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{where} holds a signature that is not valid base64.") from None
    if len(signature) != 64:
        raise SignatureError(
            f"{where} holds a {len(signature)}-byte signature; Ed25519 signatures are 64 bytes.")
    return signature, kid


def check_signature(reader: CapsuleReader, public_key: PublicKeyLike) -> None:
    """Raise :class:`SignatureError` unless ``capsule.sig`` is a valid signature by ``public_key`` over the
    exact bytes of the manifest that ``reader`` parsed.

    Reads only ``capsule.json`` and ``capsule.sig``; nothing under ``model/`` is touched. The caller must
    still check every member's hash against ``reader.manifest`` before parsing the payload.
    """
    key = load_public_key(public_key)
    where = f"the signature of {reader.path}"
    if SIGNATURE_NAME not in reader:
        raise SignatureError(
            f"{reader.path} is not signed (it has no {SIGNATURE_NAME}) but a public key was given; refusing "
            "to load it. Ask its publisher for a signed capsule, or sign it yourself with "
            "`capsule sign PATH --key KEY` if you built it."
        )
    if reader.size(SIGNATURE_NAME) > MAX_SIGNATURE_SIZE:
        raise SignatureError(f"{where} ({SIGNATURE_NAME}) is {reader.size(SIGNATURE_NAME):,} bytes; a real "
                             "one is a few hundred bytes. Refusing it.")
    signature, kid = _parse_signature(reader.read(SIGNATURE_NAME), where)
    manifest_bytes = reader.read(MANIFEST_NAME)
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        expected = key_id(key)
        if kid != expected:
            reason = (f"it was made with another key (key id {kid[:16]}…, expected {expected[:16]}…). Check "
                      "that you have the right public key for this publisher")
        else:
            reason = ("the manifest (capsule.json) was changed after signing. Do not load it; get a fresh "
                      "copy from its source")
        raise SignatureError(f"{where} does not verify: {reason}.") from None
    # The reader parsed capsule.json once already; make sure the manifest it will use is the one signed
    # (a directory member could be swapped between the two reads).
    if parse_manifest(manifest_bytes).to_dict() != reader.manifest.to_dict():
        raise SignatureError(f"{reader.path}'s capsule.json changed while it was being read; refusing it.")


# ---------------------------------------------------------------------------------------- signing files


class _ResigningWriter(CapsuleWriter):
    """A :class:`CapsuleWriter` that keeps the manifest's exact bytes instead of re-serialising it."""

    def finish_exact(self, manifest_bytes: bytes, signature: bytes) -> None:
        self._write(MANIFEST_NAME, memoryview(manifest_bytes))
        self._write(SIGNATURE_NAME, memoryview(signature))


def sign_capsule(path: str | os.PathLike[str], key: PrivateKeyLike, *, limits: Limits | None = None) -> str:
    """Sign the capsule at ``path`` in place (replacing any earlier signature) and return the key id.

    Every member's hash is checked first, so a capsule that was altered is never signed. A ZIP capsule
    is rewritten to a temporary sibling, fsynced and renamed over the original; in a directory capsule
    only ``capsule.sig`` is written (atomically). The manifest bytes are kept exactly.
    """
    private = load_private_key(key)
    target = Path(path)
    with open_capsule(target, limits or DEFAULT_LIMITS) as reader:
        reader.check_hashes()
        manifest_bytes = reader.read(MANIFEST_NAME)
        signature = sign_manifest(manifest_bytes, private)
        if reader.is_dir:
            write_atomic(target / SIGNATURE_NAME, signature, mode=0o644)
            return key_id(private)
        with zipfile.ZipFile(target) as zf:
            compress = any(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
        writer = _ResigningWriter(target, layout="zip", overwrite=True, compress=compress)
        with writer:
            for name in sorted(reader.manifest.files):
                writer.add(name, reader.view(name))
            writer.finish_exact(manifest_bytes, signature)
    return key_id(private)


def verify_signed(path: str | os.PathLike[str], public_key: PublicKeyLike, *,
                  limits: Limits | None = None) -> str:
    """Check the signature of the capsule at ``path`` and then every member's hash; return the key id.

    Raises :class:`SignatureError` (unsigned, other key, altered manifest) or
    :class:`~modelcapsule.errors.IntegrityError` (a member changed after signing). Parses no payload.
    """
    with open_capsule(path, limits or DEFAULT_LIMITS) as reader:
        check_signature(reader, public_key)
        reader.check_hashes()
    return key_id(load_public_key(public_key))
