"""``check`` and ``gc``: every row against its blob and every blob against its hash; blobs no row names
are a warning that ``gc`` clears; a writer that dies mid-registration leaves no row without its blob."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelcapsule.errors import IntegrityError, UntrustedTypesError
from modelcapsule.registry import Registry
from modelcapsule.registry.local import LocalRegistry

from .conftest import Capsules


def local(reg: Registry) -> LocalRegistry:
    backend = reg.backend
    assert isinstance(backend, LocalRegistry)
    return backend


def test_a_healthy_registry_checks_clean(tmp_path: Path, capsules: Capsules) -> None:
    with Registry(tmp_path / "reg") as reg:
        reg.register("fraud", capsules.a)
        reg.register("churn", capsules.a)  # the same bytes: one blob, named twice
        report = local(reg).check()
        assert report.ok and report.checked == 1 and report.warnings == []
        assert len(list(local(reg).blobs.digests())) == 1


def test_an_altered_or_missing_blob_is_an_error_and_fetch_refuses_it(tmp_path: Path, capsules: Capsules) -> None:
    with Registry(tmp_path / "reg") as reg:
        a, b = reg.register("fraud", capsules.a), reg.register("fraud", capsules.b)
        blob = local(reg).blobs.path(a.digest)
        os.chmod(blob, 0o644)
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
        local(reg).blobs.path(b.digest).unlink()
        report = local(reg).check()
        assert not report.ok
        assert any("fraud/1" in e and "altered" in e for e in report.errors)
        assert any("fraud/2" in e and "missing" in e for e in report.errors)
        with pytest.raises(IntegrityError, match="capsule registry check"):
            reg.fetch("fraud/1")


def test_a_writer_killed_after_its_blob_leaves_an_orphan_that_gc_removes(tmp_path: Path, capsules: Capsules) -> None:
    with Registry(tmp_path / "reg") as reg:
        reg.register("fraud", capsules.a)
        store = local(reg).blobs
        orphan = store.commit(store.stage_file(capsules.b))  # a blob renamed into place, its row never committed
        stale = store.root / "tmp" / "blob-dead.capsule"
        stale.write_bytes(b"half a capsule")
        os.utime(stale, (0, 0))
        report = local(reg).check()
        assert report.ok and report.orphans == [f"sha256:{orphan.name}"]
        assert "capsule registry gc" in report.warnings[0]
        assert local(reg).gc() == []  # too recent: it could be a registration about to commit
        assert local(reg).gc(grace_s=0) == [f"sha256:{orphan.name}"]
        assert not orphan.exists() and not stale.exists()
        assert local(reg).check().orphans == [] and reg.fetch("fraud/1").exists()


def test_a_registration_that_fails_its_checks_leaves_no_blob(tmp_path: Path, capsules: Capsules) -> None:
    with Registry(tmp_path / "reg") as reg:
        with pytest.raises(UntrustedTypesError, match="(?s)registered as 'scaled'.*trusted=.*to Registry.register"):
            reg.register("scaled", capsules.needs_trust)
        assert list(local(reg).blobs.digests()) == []
        assert list((local(reg).blobs.root / "tmp").iterdir()) == []
