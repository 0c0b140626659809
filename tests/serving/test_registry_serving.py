"""``capsule serve models:/NAME@ALIAS``: a server that follows the registry.

Every test runs a real ``capsule serve`` process against a real registry (an embedded one in a temp
directory), moves aliases with the registry's own API while the server answers, and reads back the
events the server recorded.
"""

from __future__ import annotations

import json
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression

import modelcapsule as mc
from modelcapsule.registry import Registry

from .conftest import Models, Server, start_server

X = np.array([[0.0], [1.0], [2.0], [4.0]])
SLOPES = {1: 0.5, 2: 2.0, 3: -1.0}
"""Version N of `line` predicts slope*x: each version's answers tell which version served them."""
SWAP_TIMEOUT = 30.0


def line_capsule(root: Path, slope: float) -> Path:
    path = root / f"line-{slope}.capsule"
    mc.save(LinearRegression().fit(X, slope * X[:, 0]), path, sample=X, name="line", source=False)
    return path


@pytest.fixture
def registry_dir(tmp_path: Path) -> Iterator[Path]:
    """A registry with three versions of `line` and `champion` on version 1."""
    root = tmp_path / "registry"
    with Registry(root) as reg:
        for version, slope in SLOPES.items():
            assert reg.register("line", line_capsule(tmp_path, slope)).version == version
        reg.set_alias("line", "champion", 1, reason="first release")
    yield root


def serve_registry(tmp_path: Path, registry: Path, capsule_cmd: list[str], env: dict[str, str], *args: str) -> Server:
    return start_server(capsule_cmd, env, tmp_path / "server", "models:/line@champion", "--registry", str(registry),
                        "--poll-seconds", "0.2", *args)


def served_version(server: Server, model: str = "line") -> int:
    """Which version answered the unversioned /predict (from its slope)."""
    r = requests.post(f"{server.url}/predict?model={model}", json={"inputs": [[1.0]]}, timeout=10)
    assert r.status_code == 200, r.text
    slope = r.json()["prediction"][0]
    return next(v for v, s in SLOPES.items() if np.isclose(s, slope))


def wait_until(condition: object, what: str, timeout: float = SWAP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def test_every_version_is_addressable_and_aliases_are_labels(
    tmp_path: Path, registry_dir: Path, capsule_cmd: list[str], subprocess_env: dict[str, str], models: Models
) -> None:
    """Served beside a plain capsule path, in one process."""
    server = serve_registry(tmp_path, registry_dir, capsule_cmd, subprocess_env, str(models.iris_path))
    try:
        r = requests.post(f"{server.url}/predict?model=iris", json={"inputs": models.X[:2].tolist()}, timeout=10)
        assert r.json() == {"prediction": models.iris.predict(models.X[:2]).tolist()}
        r = requests.post(f"{server.url}/predict?model=line", json={"inputs": [[1.0]]}, timeout=10)
        assert np.isclose(r.json()["prediction"][0], SLOPES[1])  # the unversioned routes follow champion
        for version, slope in SLOPES.items():
            body = {"inputs": [{"name": "input", "shape": [1, 1], "datatype": "FP64", "data": [1.0]}]}
            r = requests.post(f"{server.url}/v2/models/line/versions/{version}/infer", json=body, timeout=10)
            assert r.status_code == 200, r.text
            assert np.isclose(r.json()["outputs"][0]["data"][0], slope)
        label = requests.get(f"{server.url}/v1/models/line/labels/champion", timeout=10).json()
        assert [s["version"] for s in label["model_version_status"]] == ["1"]
        r = requests.post(f"{server.url}/v1/models/line/labels/champion:predict", json={"instances": [[1.0]]},
                          timeout=10)
        assert np.isclose(r.json()["predictions"][0], SLOPES[1])
    finally:
        assert server.stop() == 0


def test_alias_moves_are_followed_under_load_with_no_failed_request(
    tmp_path: Path, registry_dir: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    server = serve_registry(tmp_path, registry_dir, capsule_cmd, subprocess_env, "--workers", "2")
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                r = session.post(f"{server.url}/predict", json={"inputs": [[1.0]]}, timeout=10)
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")
                answered[0] += 1

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        with Registry(registry_dir) as reg:
            for target in (2, 1, 3, 1, 2):
                reg.set_alias("line", "champion", target, reason=f"move to {target}")
                # both workers follow: a run of answers all from the new target
                wait_until(lambda t=target: all(served_version(server) == t for _ in range(8)),  # type: ignore[misc]
                           f"champion serves version {target}")
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=30)
        code = server.stop()
    assert failures == []
    assert answered[0] > 100
    assert code == 0


def untrusted_capsule(tmp_path: Path) -> tuple[Path, str]:
    """A capsule holding a class of the user's own: registered with trusted=[it], unknown to the server."""
    module = tmp_path / "mc_test_custom_line.py"
    module.write_text(textwrap.dedent('''
        from sklearn.linear_model import LinearRegression

        class SteepLine(LinearRegression):
            """A LinearRegression subclass: a name the default trust policy does not know."""
    '''))
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        from mc_test_custom_line import SteepLine  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    path = tmp_path / "steep.capsule"
    name = "mc_test_custom_line.SteepLine"
    mc.save(SteepLine().fit(X, 9.0 * X[:, 0]), path, sample=X, name="line", source=False, trusted=[name])
    return path, name


@pytest.mark.parametrize("rollback", [False, True], ids=["kept-out", "rolled-back"])
def test_a_target_the_server_refuses_never_serves_and_is_recorded(
    tmp_path: Path,
    registry_dir: Path,
    capsule_cmd: list[str],
    subprocess_env: dict[str, str],
    rollback: bool,
) -> None:
    capsule, name = untrusted_capsule(tmp_path)
    env = {**subprocess_env, "PYTHONPATH": f"{tmp_path}:{subprocess_env['PYTHONPATH']}"}  # importable, untrusted
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        with Registry(registry_dir) as reg:
            bad = reg.register("line", capsule, trusted=[name])
    finally:
        sys.path.remove(str(tmp_path))
    extra = ("--rollback-on-failure",) if rollback else ()
    server = serve_registry(tmp_path, registry_dir, capsule_cmd, env, *extra)
    try:
        with Registry(registry_dir) as reg:
            reg.set_alias("line", "champion", bad.version, reason="try the steep one")

            def recorded() -> bool:
                return any(e.kind == "serving_failure" for e in reg.history("line", "champion"))

            wait_until(recorded, "the server records the failure")
            failure = next(e for e in reg.history("line", "champion") if e.kind == "serving_failure")
            assert failure.to_version == bad.version and failure.from_version == 1
            assert name in failure.reason and "pid" in failure.reason
            for _ in range(20):
                assert served_version(server) == 1  # never replaced the serving version
            if rollback:
                wait_until(lambda: reg.model("line").aliases["champion"] == 1, "the alias is moved back")
                assert reg.history("line", "champion")[-1].kind == "alias_rollback"
            else:
                assert reg.model("line").aliases["champion"] == bad.version
        status = requests.get(f"{server.url}/v1/models/line/versions/{bad.version}", timeout=10).json()
        assert status["model_version_status"][0]["state"] == "END"
        assert name in status["model_version_status"][0]["status"]["error_message"]
    finally:
        assert server.stop() == 0


def test_a_pinned_version_or_unknown_alias_is_a_usage_error(
    tmp_path: Path, registry_dir: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    import subprocess

    for source, expected in (("models:/line/2", "follows a model, not one version"),
                             ("models:/line@nosuch", "has no alias 'nosuch'")):
        done = subprocess.run([*capsule_cmd, "serve", source, "--registry", str(registry_dir)], env=subprocess_env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2, done.stderr
        assert expected in done.stderr


def nan_request(server: Server, model: str) -> requests.Response:
    """One V2 request whose single value is missing (NaN), sent as a binary tensor."""
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, 1], "datatype": "FP64",
                                     "parameters": {"binary_data_size": 8}}]}).encode()
    return requests.post(f"{server.url}/v2/models/{model}/infer", data=header + np.array([np.nan]).tobytes(),
                         headers={"Inference-Header-Content-Length": str(len(header))}, timeout=10)


def test_a_new_version_failing_its_first_calls_is_swapped_out_and_rolled_back(
    tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    """Version 2 cannot take the missing values production sends (version 1 can): after the swap, its
    failed calls exceed the limit, so it is swapped back out and the alias moved back."""
    root = tmp_path / "registry"
    robust = tmp_path / "robust.capsule"
    mc.save(HistGradientBoostingRegressor(max_iter=5).fit(X, X[:, 0]), robust, sample=X, source=False)
    with Registry(root) as reg:
        reg.register("scores", robust)
        reg.register("scores", line_capsule(tmp_path, 2.0))
        reg.set_alias("scores", "champion", 1)
    server = start_server(capsule_cmd, subprocess_env, tmp_path / "server", "models:/scores@champion", "--registry",
                          str(root), "--poll-seconds", "0.2", "--watch-calls", "5", "--max-error-rate", "0.2",
                          "--rollback-on-failure")
    try:
        assert nan_request(server, "scores").status_code == 200
        with Registry(root) as reg:
            reg.set_alias("scores", "champion", 2, reason="a linear model")
            wait_until(lambda: nan_request(server, "scores").status_code == 500, "version 2 serves (and fails)")
            wait_until(lambda: nan_request(server, "scores").status_code == 200, "version 2 is swapped out")
            events = reg.history("scores", "champion")
            judged = next(e for e in events if e.kind == "serving_error_rate")
            assert judged.to_version == 2 and judged.from_version == 1
            assert "of its first" in judged.reason and "above the 20% limit" in judged.reason
            wait_until(lambda: reg.model("scores").aliases["champion"] == 1, "the alias is moved back")
        status = requests.get(f"{server.url}/v2/models/scores/versions/2/ready", timeout=10)
        assert status.status_code != 200  # out of service until the server restarts
    finally:
        assert server.stop() == 0


def test_postgresql_registry_changes_reach_the_server_without_polling(
    tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    """On PostgreSQL every committed event is announced (NOTIFY); with a poll of an hour, only that can
    bring the server the alias move."""
    from registry.postgres import PostgresServer, find_bindir

    bindir, why = find_bindir()
    if bindir is None:
        pytest.skip(why)
    postgres = PostgresServer(bindir).start()
    try:
        url, store = postgres.create_database(), tmp_path / "blobs"
        with Registry(url, store=store) as reg:
            for version, slope in SLOPES.items():
                assert reg.register("line", line_capsule(tmp_path, slope)).version == version
            reg.set_alias("line", "champion", 1)
        server = start_server(capsule_cmd, subprocess_env, tmp_path / "server", "models:/line@champion",
                              "--registry", url, "--store", str(store), "--poll-seconds", "3600")
        try:
            assert served_version(server) == 1
            with Registry(url, store=store) as reg:
                for target in (3, 2):
                    moved = time.monotonic()
                    reg.set_alias("line", "champion", target)
                    wait_until(lambda t=target: served_version(server) == t,  # type: ignore[misc]
                               f"champion serves version {target}", timeout=20)
                    assert time.monotonic() - moved < 20
            events = postgres.psql("SELECT kind, to_version FROM events WHERE alias = 'champion' ORDER BY id",
                                   database=url.rsplit("/", 1)[1])
            assert events.split() == ["alias_set|1", "alias_set|3", "alias_set|2"]
        finally:
            assert server.stop() == 0
    finally:
        postgres.stop()
