"""``capsule serve`` as a user runs it: help, the start-up banner's curl line, workers, graceful shutdown."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
import requests
from click.testing import CliRunner
from sklearn.neighbors import KNeighborsClassifier

import modelcapsule as mc
from modelcapsule.cli import cli
from modelcapsule.core.threads import NUMERIC_THREAD_VARIABLES

from .conftest import Models, start_server


def test_help_lists_the_options(capsule_cmd: list[str], subprocess_env: dict[str, str]) -> None:
    out = subprocess.run(
        [*capsule_cmd, "serve", "--help"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for option in (
        "--port",
        "--grpc-port",
        "--workers",
        "--batch-size",
        "--batch-wait-ms",
        "--poll-seconds",
        "--name",
        "--max-body-bytes",
    ):
        assert option in out


def test_missing_source_is_a_usage_error(capsule_cmd: list[str], subprocess_env: dict[str, str]) -> None:
    done = subprocess.run(
        [*capsule_cmd, "serve", "no/such.capsule"],
        check=False,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_banner_prints_a_working_curl_line(
    models: Models, tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    server = start_server(
        capsule_cmd, subprocess_env, tmp_path, str(models.iris_path), "--name", "flowers", "--no-access-log"
    )
    try:
        assert "serving flowers (versions: 1)" in server.stdout()
        line = next(x for x in server.stdout().splitlines() if x.startswith("try: ")).removeprefix("try: ")
        answer = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=30, check=True).stdout
        assert json.loads(answer) == {"prediction": models.iris.predict(np.zeros((1, 4))).tolist()}
    finally:
        assert server.stop() == 0


def test_two_workers_answer_on_one_port(
    models: Models, tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    server = start_server(capsule_cmd, subprocess_env, tmp_path, str(models.iris_path), "--workers", "2")
    try:
        for _ in range(20):
            r = requests.post(f"{server.url}/predict", json={"inputs": models.X[:2].tolist()}, timeout=10)
            assert r.json() == {"prediction": models.iris.predict(models.X[:2]).tolist()}
        import tritonclient.grpc as triton

        tensor = triton.InferInput("input", [2, 4], "FP64")
        tensor.set_data_from_numpy(models.X[:2])
        result = triton.InferenceServerClient(server.grpc_address).infer("iris", [tensor])
        assert result.as_numpy("predict").tolist() == models.iris.predict(models.X[:2]).tolist()
    finally:
        assert server.stop() == 0


@pytest.fixture
def slow_capsule(models: Models, tmp_path: Path) -> tuple[Path, KNeighborsClassifier]:
    """Brute-force neighbours: a call on 150,000 rows takes a few hundred milliseconds."""
    knn = KNeighborsClassifier(algorithm="brute").fit(models.X, models.iris.predict(models.X))
    path = tmp_path / "knn.capsule"
    mc.save(knn, path, sample=models.X[:10], name="knn")
    return path, knn


def test_shutdown_drains_in_flight_requests(
    models: Models,
    slow_capsule: tuple[Path, KNeighborsClassifier],
    tmp_path: Path,
    capsule_cmd: list[str],
    subprocess_env: dict[str, str],
) -> None:
    server = start_server(capsule_cmd, subprocess_env, tmp_path / "logs", str(slow_capsule[0]))
    rows = np.tile(models.X, (1000, 1))
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(rows.shape),
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": rows.nbytes},
                }
            ],
            "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
        }
    )
    answers: list[requests.Response | requests.RequestException] = []

    def call() -> None:
        try:
            answers.append(
                requests.post(
                    f"{server.url}/v2/models/knn/infer",
                    data=header + rows.tobytes(),
                    timeout=60,
                    headers={"Inference-Header-Content-Length": str(len(header))},
                )
            )
        except requests.RequestException as exc:
            answers.append(exc)

    client = threading.Thread(target=call)
    client.start()
    deadline = time.monotonic() + 30
    in_flight = 'modelcapsule_requests_in_flight{protocol="v2"} 1.0'
    while in_flight not in requests.get(f"{server.url}/metrics", timeout=10).text:
        assert time.monotonic() < deadline, "the request never reached the server"
        time.sleep(0.01)
    exit_code = server.stop()
    client.join(60)
    log = server.stderr()[-3000:]
    assert exit_code == 0, log
    assert answers and isinstance(answers[0], requests.Response), (answers, log)
    assert answers[0].status_code == 200, (answers[0].text, log)
    split = int(answers[0].headers["Inference-Header-Content-Length"])
    predicted = np.frombuffer(answers[0].content[split:], dtype="<i8")
    np.testing.assert_array_equal(predicted, slow_capsule[1].predict(rows))


def test_serve_says_how_many_numeric_threads_before_anything_loads_numpy(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    # the variables are set first thing, so even a command that fails at once has them; the user's own stay
    for variable in NUMERIC_THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "4")
    result = CliRunner().invoke(cli, ["serve", str(tmp_path / "missing.capsule"), "--threads", "2"])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert (os.environ["OMP_NUM_THREADS"], os.environ["OPENBLAS_NUM_THREADS"], os.environ["MKL_NUM_THREADS"]) == (
        "2", "2", "4")
