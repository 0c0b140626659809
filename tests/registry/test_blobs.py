"""Staging blobs: counted, hashed and fsynced on the way in; nothing left behind when refused."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from modelcapsule.registry.blobs import BlobStore, TooLargeError, hash_file


def test_a_staged_stream_has_the_digest_and_size_of_its_bytes(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    data = b"capsule bytes " * 100_000
    staged = store.stage_stream(io.BytesIO(data))
    assert staged.size == len(data)
    assert staged.digest == f"sha256:{hashlib.sha256(data).hexdigest()}" == hash_file(staged.path)
    assert store.commit(staged) == store.path(staged.digest) and store.check(staged.digest) is None


def test_a_stream_past_the_limit_is_refused_and_its_temp_file_removed(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(TooLargeError, match="larger than the limit of 10 bytes"):
        store.stage_stream(io.BytesIO(b"x" * 11), max_bytes=10)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert store.stage_stream(io.BytesIO(b"x" * 10), max_bytes=10).size == 10


def test_a_sink_fed_chunk_by_chunk_is_kept_only_once_finished(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with store.sink(prefix="upload-") as sink:
        sink.write(b"ab")
        sink.write(b"cd")
        staged = sink.finish()
    assert staged.path.name.startswith("upload-") and staged.path.read_bytes() == b"abcd"
    with store.sink() as unfinished:
        unfinished.write(b"abandoned")
    assert not unfinished.path.exists()
    with pytest.raises(RuntimeError), store.sink() as failed:
        failed.write(b"half")
        raise RuntimeError("the client went away")
    assert sorted((tmp_path / "tmp").iterdir()) == [staged.path]
