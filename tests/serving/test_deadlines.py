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
    codes: list[str] = []
    lock = threading.Lock()
    busy_rows = 40  # each call without a deadline keeps the model busy for a while

    def one(client: triton.InferenceServerClient, rows: int, deadline: float | None) -> None:
        tensor = triton.InferInput("input", [rows, WIDTH], "FP64")
        tensor.set_data_from_numpy(np.asarray([ROW] * rows))
        try:
            client.infer("slow", [tensor], client_timeout=deadline)
            code = "OK"
        except InferenceServerException as exc:
            code = str(exc.status())
        with lock:
            codes.append(code)

    clients = [triton.InferenceServerClient(server.grpc_address) for _ in range(12)]
    assert all(client.is_server_live() for client in clients)  # connected before the clock matters
    busy = [threading.Thread(target=one, args=(client, busy_rows, None)) for client in clients[:6]]
    hurried = [threading.Thread(target=one, args=(client, 1, 0.01)) for client in clients[6:]]
    for t in busy:
        t.start()
    time.sleep(0.05)  # the model is busy with the first calls; the hurried ones queue behind them
    for t in hurried:
        t.start()
    for t in busy + hurried:
        t.join(120)
    seen = Counter(codes)
    assert seen["OK"] == 6 and seen["StatusCode.DEADLINE_EXCEEDED"] == 6, seen
    time.sleep(0.5)  # the server is done with the expired calls after their clients gave up
    # every expired call was dropped from the queue (by the server's deadline, or cancelled with the
    # client's call), never computed
    assert model_calls(server) - calls_before == 6 * busy_rows
