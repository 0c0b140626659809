"""Overload is bounded: past a model's queue limit a request is refused at once, in each protocol's own
shape (REST 503 with Retry-After, gRPC UNAVAILABLE), and counted; the requests admitted are answered."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as triton
from prometheus_client.parser import text_string_to_metric_families
from sklearn.neighbors import KNeighborsRegressor
from tritonclient.utils import InferenceServerException

import modelcapsule as mc

from .conftest import Server, start_server

WIDTH = 16


def metric(server: Server, name: str, **labels: str) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def slow_model(root: Path) -> Path:
    """A brute-force KNN: tens of milliseconds per call, so that concurrent requests queue."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300_000, WIDTH))
    path = root / "slow.capsule"
    mc.save(KNeighborsRegressor(algorithm="brute").fit(X, rng.normal(size=len(X))), path, sample=X[:3], name="slow")
    return path


@pytest.fixture(scope="module")
def slow_capsule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return slow_model(tmp_path_factory.mktemp("slow"))


@pytest.fixture(scope="module")
def limited(slow_capsule: Path, capsule_cmd: list[str], subprocess_env: dict[str, str],
            tmp_path_factory: pytest.TempPathFactory) -> Server:
    srv = start_server(capsule_cmd, subprocess_env, tmp_path_factory.mktemp("limited"), str(slow_capsule),
                       "--max-queue", "2", "--no-access-log")
    yield srv  # type: ignore[misc]
    srv.stop()


def burst(url: str, body: dict[str, object], n: int) -> list[requests.Response]:
    answers: list[requests.Response] = []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def one() -> None:
        start.wait()
        answer = requests.post(url, json=body, timeout=60)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return answers


ROW = [0.5] * WIDTH


@pytest.mark.parametrize(
    ("path", "body", "error_field"),
    [
        ("/v2/models/slow/infer", {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, WIDTH],
                                               "data": ROW}]}, "error"),
        ("/v1/models/slow:predict", {"instances": [ROW]}, "error"),
        ("/invocations", {"inputs": [ROW]}, "message"),
        ("/api/v1.0/predictions", {"data": {"ndarray": [ROW]}}, "status"),
    ],
)
def test_past_the_queue_limit_requests_get_503_with_retry_after(
    limited: Server, path: str, body: dict[str, object], error_field: str
) -> None:
    before = metric(limited, "modelcapsule_shed_requests_total", model="slow", reason="overloaded")
    answers = burst(limited.url + path, body, 12)
    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) <= {200, 503} and statuses[200] >= 2 and statuses[503] >= 1, statuses
    for refused in (a for a in answers if a.status_code == 503):
        assert refused.headers["retry-after"] == "1"
        assert error_field in refused.json()  # the protocol's own error shape
    shed = metric(limited, "modelcapsule_shed_requests_total", model="slow", reason="overloaded") - before
    assert shed == statuses[503]


def test_grpc_past_the_queue_limit_is_unavailable(limited: Server) -> None:
    codes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(10)

    def one() -> None:
        client = triton.InferenceServerClient(limited.grpc_address)
        tensor = triton.InferInput("input", [1, WIDTH], "FP64")
        tensor.set_data_from_numpy(np.asarray([ROW]))
        start.wait()
        try:
            client.infer("slow", [tensor])
            code = "OK"
        except InferenceServerException as exc:
            code = str(exc.status())
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=one) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    seen = Counter(codes)
    assert set(seen) <= {"OK", "StatusCode.UNAVAILABLE"} and seen["OK"] >= 2 and seen["StatusCode.UNAVAILABLE"] >= 1
    assert metric(limited, "modelcapsule_requests_total", model="slow", protocol="grpc", status="503") >= 1


def test_the_limit_comes_from_serving_toml_per_model(
    slow_capsule: Path, capsule_cmd: list[str], subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / "slow" / "1").mkdir(parents=True)
    (repo / "slow" / "1" / "model.capsule").write_bytes(slow_capsule.read_bytes())
    (repo / "serving.toml").write_text("[models.slow]\nmax_queue = 1\n")
    srv = start_server(capsule_cmd, subprocess_env, tmp_path / "logs", str(repo), "--no-access-log")
    try:
        answers = burst(f"{srv.url}/v1/models/slow:predict", {"instances": [ROW]}, 8)
    finally:
        srv.stop()
    statuses = Counter(a.status_code for a in answers)
    assert statuses[503] >= 1 and statuses[200] >= 1, statuses


@pytest.mark.parametrize("value", ["-1", "1.5", "true", '"8"'])
def test_a_wrong_max_queue_in_serving_toml_is_refused_by_name(tmp_path: Path, value: str) -> None:
    from modelcapsule.errors import CapsuleFormatError
    from modelcapsule.serving.config import ServerOptions, load_repository_config

    (tmp_path / "serving.toml").write_text(f"[models.slow]\nmax_queue = {value}\n")
    with pytest.raises(CapsuleFormatError, match="max_queue"):
        load_repository_config(tmp_path, ServerOptions())
    (tmp_path / "serving.toml").write_text("[defaults]\nmax_queue = 4\n")
    assert load_repository_config(tmp_path, ServerOptions()).for_model("any").max_queue == 4
