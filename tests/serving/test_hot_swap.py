"""Versions in a repository: a new version is served within the poll interval with no failed request,
a corrupt one is refused while the good one keeps serving, labels and policies come from serving.toml."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import requests
from sklearn.linear_model import LogisticRegression

import modelcapsule as mc

from .conftest import Models, add_version, start_server

POLL = 0.2


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def status(url: str, model: str) -> dict[str, tuple[str, str]]:
    doc = requests.get(f"{url}/v1/models/{model}", timeout=10).json()
    return {s["version"]: (s["state"], s["status"]["error_message"]) for s in doc["model_version_status"]}


@pytest.fixture(scope="module")
def second_capsule(models: Models, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LogisticRegression]:
    """A different model of the same signature (strong regularisation changes its probabilities)."""
    model = LogisticRegression(C=0.01, max_iter=1000).fit(models.X, models.iris.predict(models.X))
    path = tmp_path_factory.mktemp("v2") / "iris.capsule"
    mc.save(model, path, sample=models.X[:10], name="iris")
    return path, model


def corrupt_copy(capsule: Path, dest: Path) -> Path:
    data = bytearray(capsule.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # payload bytes that no longer match their hash
    dest.write_bytes(bytes(data))
    return dest


def test_new_version_swapped_in_without_a_failed_request(
    models: Models,
    second_capsule: tuple[Path, LogisticRegression],
    tmp_path: Path,
    capsule_cmd: list[str],
    subprocess_env: dict[str, str],
) -> None:
    repo = tmp_path / "repo"
    add_version(repo, "iris", 1, models.iris_path)
    server = start_server(
        capsule_cmd,
        subprocess_env,
        tmp_path / "logs",
        str(repo),
        "--poll-seconds",
        str(POLL),
        "--batch-size",
        "16",
    )
    rows = models.X[:5].tolist()
    seen: Counter[str] = Counter()
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                r = session.post(f"{server.url}/v1/models/iris:predict", json={"instances": rows}, timeout=10)
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")
                meta = session.get(f"{server.url}/v1/models/iris", timeout=10).json()
                seen[meta["model_version_status"][-1]["version"]] += 1

    threads = [threading.Thread(target=client) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: seen["1"] > 5)
        dropped = time.monotonic()
        add_version(repo, "iris", 2, second_capsule[0])
        wait_for(lambda: status(server.url, "iris").get("2", ("",))[0] == "AVAILABLE")
        assert time.monotonic() - dropped < POLL + 5  # the poll interval plus the load and golden-sample check
        v2 = requests.post(
            f"{server.url}/v2/models/iris/infer",
            timeout=10,
            json={
                "inputs": [{"name": "input", "shape": [5, 4], "datatype": "FP64", "data": rows}],
                "outputs": [{"name": "predict_proba"}],
            },
        )
        assert v2.json()["model_version"] == "2"
        np.testing.assert_allclose(
            np.reshape(v2.json()["outputs"][0]["data"], (5, 3)), second_capsule[1].predict_proba(models.X[:5])
        )
        wait_for(lambda: status(server.url, "iris").get("1", ("",))[0] == "END")  # latest 1: version 1 unloaded

        version3 = repo / "iris" / ".tmp-3"
        version3.mkdir()
        corrupt_copy(second_capsule[0], version3 / "model.capsule")
        version3.rename(repo / "iris" / "3")
        wait_for(lambda: status(server.url, "iris").get("3", ("", ""))[1] != "")
        state, error = status(server.url, "iris")["3"]
        assert state == "END" and "Error" in error
        assert status(server.url, "iris")["2"][0] == "AVAILABLE"
        time.sleep(3 * POLL)  # several more polls: the refused version is not retried into service
        assert requests.get(f"{server.url}/v2/models/iris", timeout=10).json()["versions"] == ["2"]
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        server.stop()
    assert failures == []
    assert seen["2"] > 0
    assert "failed to load or verify" in server.stderr()


def test_labels_and_policy_from_serving_toml(
    models: Models,
    second_capsule: tuple[Path, LogisticRegression],
    tmp_path: Path,
    capsule_cmd: list[str],
    subprocess_env: dict[str, str],
) -> None:
    repo = tmp_path / "repo"
    add_version(repo, "iris", 1, models.iris_path)
    add_version(repo, "iris", 2, second_capsule[0])
    add_version(repo, "iris", 3, models.iris_path)
    (repo / "serving.toml").write_text(
        '[models.iris]\nversion_policy = "specific"\nversions = [1, 2]\nlabels = { stable = 1, canary = 2 }\n'
        "batch_size = 8\n"
    )
    server = start_server(capsule_cmd, subprocess_env, tmp_path / "logs", str(repo), "--poll-seconds", str(POLL))
    try:
        assert requests.get(f"{server.url}/v2/models/iris", timeout=10).json()["versions"] == ["1", "2"]
        body = {"signature_name": "predict_proba", "instances": models.X[:3].tolist()}
        stable = requests.post(f"{server.url}/v1/models/iris/labels/stable:predict", json=body, timeout=10).json()
        canary = requests.post(f"{server.url}/v1/models/iris/labels/canary:predict", json=body, timeout=10).json()
        np.testing.assert_allclose(stable["predictions"], models.iris.predict_proba(models.X[:3]))
        np.testing.assert_allclose(canary["predictions"], second_capsule[1].predict_proba(models.X[:3]))
        assert status(server.url, "iris")["3"][0] == "START"  # found, not selected by the policy
        shutil.rmtree(repo / "iris" / "1")
        wait_for(lambda: "1" not in status(server.url, "iris"))
        gone = requests.post(f"{server.url}/v1/models/iris/labels/stable:predict", json=body, timeout=10)
        assert gone.status_code == 404 and "not available" in gone.json()["error"]
    finally:
        server.stop()
