"""Finding versions on disk: capsule files, unpacked capsules, repositories, and what is ignored."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import modelcapsule as mc
from modelcapsule.serving import Repository, ServerOptions

from .conftest import Models


def test_repository_layouts(models: Models, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "iris" / "1").mkdir(parents=True)
    shutil.copyfile(models.iris_path, repo / "iris" / "1" / "model.capsule")
    mc.save(models.half, repo / "half" / "3", sample=models.X[:2, :1], name="half", layout="dir")  # unpacked
    (repo / "iris" / ".tmp-2").mkdir()  # being copied in: ignored until renamed
    (repo / "iris" / "notes").mkdir()  # not a version number: ignored
    (repo / "iris" / "4").mkdir()  # empty: no capsule yet
    (repo / "iris" / "5").mkdir()
    for name in ("a.capsule", "b.capsule"):  # ambiguous: ignored
        shutil.copyfile(models.iris_path, repo / "iris" / "5" / name)
    found, configs = Repository([repo], ServerOptions(batch_size=4)).scan()
    assert sorted(found) == ["half", "iris"]
    assert list(found["iris"]) == [1]
    assert found["iris"][1].path == repo / "iris" / "1" / "model.capsule"
    assert found["half"][3].path == repo / "half" / "3"
    assert configs["iris"].batch_size == 4


def test_single_capsules_are_version_one_under_their_manifest_name(models: Models) -> None:
    found, _ = Repository([models.iris_path, models.half_path], ServerOptions()).scan()
    assert {name: list(v) for name, v in found.items()} == {"iris": [1], "half_plus_three": [1]}
    renamed, _ = Repository([models.iris_path], ServerOptions(), name="flowers").scan()
    assert list(renamed) == ["flowers"]


def test_fingerprint_changes_when_files_change(models: Models, tmp_path: Path) -> None:
    path = tmp_path / "iris.capsule"
    shutil.copyfile(models.iris_path, path)
    before = Repository([path], ServerOptions()).scan()[0]["iris"][1].fingerprint
    shutil.copyfile(models.half_path, path)
    assert Repository([path], ServerOptions()).scan()[0]["half_plus_three"][1].fingerprint != before


def test_bad_arguments(models: Models, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such capsule or repository"):
        Repository([tmp_path / "missing"], ServerOptions())
    with pytest.raises(ValueError, match="--name applies to a single capsule"):
        Repository([models.iris_path, models.half_path], ServerOptions(), name="x")
