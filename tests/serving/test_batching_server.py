"""Adaptive batching in the running server: concurrent clients share model calls, none fails."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sklearn.neighbors import KNeighborsRegressor

import modelcapsule as mc

from .conftest import start_server

CLIENTS, PER_CLIENT = 16, 15


def test_concurrent_requests_are_merged_and_all_answered(
    tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(20_000, 20)), rng.normal(size=20_000)
    model = KNeighborsRegressor(algorithm="brute").fit(X, y)  # a few milliseconds per call, whatever the rows
    mc.save(model, tmp_path / "knn.capsule", sample=X[:5], name="knn")
    server = start_server(
        capsule_cmd,
        subprocess_env,
        tmp_path / "logs",
        str(tmp_path / "knn.capsule"),
        "--batch-size",
        "64",
        "--batch-wait-ms",
        "5",
        "--no-access-log",
    )
    queries = rng.normal(size=(CLIENTS * PER_CLIENT, 20))
    answers: dict[int, float] = {}
    failures: list[str] = []

    def client(first: int) -> None:
        with requests.Session() as session:
            for i in range(first, first + PER_CLIENT):
                r = session.post(
                    f"{server.url}/v1/models/knn:predict", json={"instances": [queries[i].tolist()]}, timeout=30
                )
                if r.status_code == 200:
                    answers[i] = r.json()["predictions"][0]
                else:
                    failures.append(r.text)

    try:
        threads = [threading.Thread(target=client, args=(c * PER_CLIENT,)) for c in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    finally:
        server.stop()
    assert failures == []
    np.testing.assert_allclose([answers[i] for i in range(len(queries))], model.predict(queries))
    calls = rows = 0.0
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "modelcapsule_batch_rows_count":
                calls = sample.value
            if sample.name == "modelcapsule_batch_rows_sum":
                rows = sample.value
    assert rows == len(queries)
    assert calls < len(queries) / 2, f"{calls} model calls for {len(queries)} requests: not merged"


@pytest.mark.parametrize("flag", ["--batch-size=0", "--batch-wait-ms=-1"])
def test_batching_options_are_checked(flag: str, capsule_cmd: list[str], subprocess_env: dict[str, str]) -> None:
    import subprocess

    done = subprocess.run(
        [*capsule_cmd, "serve", ".", flag], env=subprocess_env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2 and flag.split("=", maxsplit=1)[0] in done.stderr
