"""A capsule as one file: a ZIP capsule as it is, a directory capsule packed for the block only."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

import modelcapsule as mc
from modelcapsule.registry.packing import capsule_file


@pytest.fixture
def model() -> LinearRegression:
    x = np.arange(12.0).reshape(6, 2)
    return LinearRegression().fit(x, x.sum(axis=1))


def test_a_zip_capsule_is_used_as_it_is(tmp_path: Path, model: LinearRegression) -> None:
    mc.save(model, tmp_path / "m.capsule", sample=np.ones((2, 2)))
    with capsule_file(tmp_path / "m.capsule") as path:
        assert path == tmp_path / "m.capsule"
    assert path.is_file()


def test_a_directory_capsule_is_packed_into_a_temporary_zip_removed_afterwards(
    tmp_path: Path, model: LinearRegression
) -> None:
    mc.save(model, tmp_path / "m", sample=np.ones((2, 2)), layout="dir")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with capsule_file(tmp_path / "m", tmp_dir=scratch) as path:
        assert path.is_relative_to(scratch) and zipfile.is_zipfile(path)
        assert mc.verify(path).ok
    assert list(scratch.iterdir()) == []


def test_a_missing_capsule_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no capsule at .*absent"), capsule_file(tmp_path / "absent"):
        pass
