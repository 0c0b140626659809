"""The data plane on its own: version policies, fallbacks past a broken version, resolution errors."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import numpy as np
import pytest

from modelcapsule.serving import DataPlane, Repository, ServerOptions, heap
from modelcapsule.serving.errors import ModelNotFoundError, ModelNotReadyError
from modelcapsule.serving.models import LoadedVersion, State
from modelcapsule.serving.transport import Call, Decoded

from .conftest import Models, add_version


def repository(models: Models, root: Path, versions: list[int], broken: tuple[int, ...] = ()) -> Path:
    for v in versions:
        add_version(root, "iris", v, models.iris_path)
        if v in broken:
            target = root / "iris" / str(v) / "model.capsule"
            data = bytearray(target.read_bytes())
            data[len(data) // 2 : len(data) // 2 + 32] = bytes(32)
            target.write_bytes(bytes(data))
    return root


def reconciled(root: Path, toml: str = "") -> DataPlane:
    if toml:
        (root / "serving.toml").write_text(toml)
    plane = DataPlane(Repository([root], ServerOptions()))
    asyncio.run(plane.reconcile())
    return plane


def states(plane: DataPlane) -> dict[int, str]:
    return {s.version: s.state.value for s in plane.statuses("iris")}


def test_latest_n_skips_a_broken_version(models: Models, tmp_path: Path) -> None:
    plane = reconciled(
        repository(models, tmp_path, [1, 2, 3, 4], broken=(4,)),
        '[models.iris]\nversion_policy = "latest"\nlatest = 2\n',
    )
    assert states(plane) == {1: "START", 2: "AVAILABLE", 3: "AVAILABLE", 4: "END"}
    error = plane.statuses("iris")[3].error
    assert error.split(":")[0].endswith("Error"), error  # the exception's type, then its message
    assert plane.resolve("iris").version == 3


def test_all_versions(models: Models, tmp_path: Path) -> None:
    plane = reconciled(repository(models, tmp_path, [1, 2]), '[models.iris]\nversion_policy = "all"\n')
    assert states(plane) == {1: "AVAILABLE", 2: "AVAILABLE"}
    assert plane.resolve("iris", "1").version == 1

    async def rows(loaded: LoadedVersion) -> Decoded:
        return Decoded({"input": models.X[:3]}, ["predict"])

    done = asyncio.run(plane.infer(Call("test", "request-1"), rows, "iris"))
    assert done.loaded.version == 2 and list(done.outputs) == ["predict"]
    np.testing.assert_array_equal(done.outputs["predict"], models.iris.predict(models.X[:3]))


def test_only_broken_versions_leave_the_model_not_ready(models: Models, tmp_path: Path) -> None:
    plane = reconciled(repository(models, tmp_path, [1], broken=(1,)))
    assert not plane.ready()
    assert plane.models["iris"].versions[1].state is State.END
    with pytest.raises(ModelNotReadyError, match="version 1: "):
        plane.resolve("iris")
    with pytest.raises(ModelNotFoundError, match="no model named 'nope'"):
        plane.resolve("nope")


def test_loaded_models_are_kept_out_of_the_collectors_passes(models: Models, tmp_path: Path) -> None:
    gc.unfreeze()
    reconciled(repository(models, tmp_path, [1]))
    assert gc.get_freeze_count() > 0  # the server's objects and the model: never walked per request


def test_a_dropped_version_is_collected_even_though_it_was_frozen() -> None:
    class Node:
        pass

    cycle = Node()
    cycle.myself = cycle  # type: ignore[attr-defined]  # only the collector can free a cycle
    alive = weakref.ref(cycle)
    heap.freeze_loaded()
    del cycle
    gc.collect()
    assert alive() is not None  # frozen: ordinary collections leave it alone
    heap.release_dropped()
    assert alive() is None


def test_old_garbage_is_frozen_by_a_load_and_collected_when_a_version_is_dropped() -> None:
    """``freeze_loaded`` collects only the young generations (a full pass over scikit-learn's objects
    costs a server's start ~0.1 s and frees almost nothing); a cycle already old when it became garbage
    waits for the next dropped version's full collection."""

    class Node:
        pass

    cycle = Node()
    cycle.myself = cycle  # type: ignore[attr-defined]
    alive = weakref.ref(cycle)
    gc.collect()  # survives a full pass: now in the oldest generation
    del cycle
    heap.freeze_loaded()
    assert alive() is not None
    heap.release_dropped()
    assert alive() is None
