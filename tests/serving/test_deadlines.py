"""Deadlines are honoured: a request whose deadline (REST ``X-Request-Timeout``, the gRPC deadline) passes
while it waits for the model is answered 504 / DEADLINE_EXCEEDED and never computed."""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pytest
import requests
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from .conftest import Server, start_server
from .test_overload import ROW, WIDTH, metric, slow_model


@pytest.fixture(scope="module", params=["unbatched", "batched"])
def server(request: pytest.FixtureRequest, capsule_cmd: list[str], subprocess_env: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Server:
    root = tmp_path_factory.mktemp("deadlines")
    extra = ["--batch-size", "1"] if request.param == "unbatched" else ["--batch-size", "2", "--batch-wait-ms", "1"]
    srv = start_server(capsule_cmd, subprocess_env, root / "logs", str(slow_model(root)), *extra,
                       "--no-access-log")
    yield srv  # type: ignore[misc]
    srv.stop()


def model_calls(server: Server) -> float:
    return metric(server, "modelcapsule_batch_rows_sum", model="slow")


def test_expired_rest_requests_are_504_and_never_computed(server: Server) -> None:
    calls_before = model_calls(server)
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def one(timeout: str) -> None:
        answer = requests.post(f"{server.url}/v1/models/slow:predict", json={"instances": [ROW]},
                               headers={"X-Request-Timeout": timeout}, timeout=60)
        with lock:
            answers.append(answer)

    # a queue of patient requests, then impatient ones behind them
    threads = [threading.Thread(target=one, args=("60",)) for _ in range(6)]
    threads += [threading.Thread(target=one, args=("0.001",)) for _ in range(6)]
    for t in threads:
        t.start()
        time.sleep(0.002)
    for t in threads:
        t.join(120)
    statuses = Counter(a.status_code for a in answers)
    assert statuses[200] >= 6 and statuses[504] >= 1, statuses
    assert all("deadline" in a.json()["error"] for a in answers if a.status_code == 504)
    computed_rows = model_calls(server) - calls_before
    assert computed_rows == statuses[200]  # every row computed was answered; expired ones never ran


@pytest.mark.parametrize("value", ["soon", "-1", "0", "nan"])
def test_a_malformed_timeout_is_a_400(server: Server, value: str) -> None:
    answer = requests.post(f"{server.url}/invocations", json={"inputs": [ROW]},
                           headers={"X-Request-Timeout": value}, timeout=30)
    assert answer.status_code == 400 and "X-Request-Timeout" in answer.json()["message"]


def test_grpc_deadlines_are_honoured(server: Server) -> None:
    calls_before = model_calls(server)
    shed_before = metric(server, "modelcapsule_shed_requests_total", model="slow", reason="deadline")
    codes: list[str] = []
    lock = threading.Lock()

    def one(deadline: float | None) -> None:
        client = triton.InferenceServerClient(server.grpc_address)
        tensor = triton.InferInput("input", [1, WIDTH], "FP64")
        tensor.set_data_from_numpy(np.asarray([ROW]))
        try:
            client.infer("slow", [tensor], client_timeout=deadline)
            code = "OK"
        except InferenceServerException as exc:
            code = str(exc.status())
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=one, args=(None,)) for _ in range(6)]
    threads += [threading.Thread(target=one, args=(0.01,)) for _ in range(6)]
    for t in threads:
        t.start()
        time.sleep(0.002)
    for t in threads:
        t.join(120)
    seen = Counter(codes)
    assert seen["OK"] == 6 and seen["StatusCode.DEADLINE_EXCEEDED"] == 6, seen
    time.sleep(0.5)  # the server is done with the expired calls after their clients gave up
    # the expired calls still queued were dropped; one already merged into a running batch when its
    # client gave up was computed (a model call is not interrupted)
    assert 6 <= model_calls(server) - calls_before <= 9
    # expired on the server (counted) or cancelled with the client's call: either way never computed
    assert metric(server, "modelcapsule_shed_requests_total", model="slow", reason="deadline") >= shed_before
