"""Several processes registering under one name at the same moment: every registration succeeds (nobody
sees "database is locked"), and the versions are exactly 1..N, on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

import modelcapsule as mc

from .postgres import PostgresServer

WRITERS, EACH = 4, 3

CHILD = """
import sys, time
from modelcapsule.registry import Registry
url, store, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
reg = Registry(url, store=store)
while time.time() < start:
    time.sleep(0.005)
for path in sys.argv[4:]:
    v = reg.register("shared", path)
    reg.set_alias("shared", "latest-" + str(v.version % 2), v.version)
    print(v.version, flush=True)
reg.close()
"""


@pytest.fixture(scope="module")
def distinct_capsules(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("distinct")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    paths = []
    for i in range(WRITERS * EACH):
        path = root / f"m{i}.capsule"
        mc.save(LinearRegression().fit(x, x @ [1.0, 2.0, float(i)]), path, sample=x[:3])
        paths.append(path)
    return paths


def run_writers(url: str, store: Path, capsules: list[Path], env: dict[str, str]) -> list[int]:
    from modelcapsule.registry import Registry

    Registry(url, store=store).close()  # created once, before the race
    start = time.time() + 4.0
    children = [subprocess.Popen([sys.executable, "-c", CHILD, url, str(store), str(start),
                                  *map(str, capsules[i * EACH:(i + 1) * EACH])],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for i in range(WRITERS)]
    numbers = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        assert "locked" not in err
        numbers += [int(line) for line in out.split()]
    return numbers


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_writers_get_gap_free_unique_versions(backend: str, tmp_path: Path, distinct_capsules: list[Path],
                                                         subprocess_env: dict[str, str],
                                                         request: pytest.FixtureRequest) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database()
    numbers = run_writers(url, tmp_path / "blobs", distinct_capsules, subprocess_env)
    assert sorted(numbers) == list(range(1, WRITERS * EACH + 1))
    from modelcapsule.registry import Registry

    with Registry(url, store=tmp_path / "blobs") as reg:
        assert [v.version for v in reg.versions("shared")] == list(range(WRITERS * EACH, 0, -1))
        moves = [e for e in reg.history("shared") if e.kind == "alias_set"]
        assert len(moves) == WRITERS * EACH
        for alias in ("latest-0", "latest-1"):  # each move's "from" is the target the previous move left
            chain = [e for e in moves if e.alias == alias]
            assert [e.from_version for e in chain[1:]] == [e.to_version for e in chain[:-1]]
