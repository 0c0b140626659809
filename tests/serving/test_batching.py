"""Adaptive batching: concurrent requests merged into one model call and split back exactly."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelcapsule.serving.batching import Batcher, merge_inputs, split_outputs
from modelcapsule.serving.executor import ModelExecutor
from modelcapsule.serving.requests import Inputs, Table

X, Y = load_iris(return_X_y=True)
MODEL = LogisticRegression(max_iter=1000).fit(X, Y)


class Recorder:
    """A model call that records the rows of every call and refuses rows holding a negative value."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[int] = []
        self.threads: set[str] = set()
        self.delay = delay

    def __call__(self, inputs: Inputs, outputs: tuple[str, ...]) -> dict[str, np.ndarray[Any, Any]]:
        x = inputs["input"]
        assert isinstance(x, np.ndarray)
        self.calls.append(len(x))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if (x < 0).any():
            raise ValueError("negative measurements")
        return {name: getattr(MODEL, name)(x) for name in outputs}


@pytest.fixture
def pool() -> Iterator[ModelExecutor]:
    executor = ModelExecutor(1)
    yield executor
    executor.shutdown()


async def submit_all(batcher: Batcher, requests: list[np.ndarray[Any, Any]]) -> list[Any]:
    return await asyncio.gather(
        *(batcher.submit({"input": r}, ("predict", "predict_proba")) for r in requests),
        return_exceptions=True,
    )


def test_concurrent_requests_share_calls_and_get_their_own_rows(pool: ModelExecutor) -> None:
    call = Recorder(delay=0.01)
    requests = [X[i : i + 1 + i % 3] for i in range(40)]
    batcher = Batcher(call, pool, max_batch_size=32, max_wait=0.005)
    results = asyncio.run(submit_all(batcher, requests))
    for rows, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result["predict"], MODEL.predict(rows))
        np.testing.assert_allclose(result["predict_proba"], MODEL.predict_proba(rows))
    assert sum(call.calls) == sum(len(r) for r in requests)
    assert len(call.calls) < len(requests) / 3  # merged
    assert max(call.calls) <= 32


def test_a_bad_request_fails_alone(pool: ModelExecutor) -> None:
    call = Recorder()
    requests = [X[:2], -X[2:3], X[3:5]]
    batcher = Batcher(call, pool, max_batch_size=16, max_wait=0.01)
    results = asyncio.run(submit_all(batcher, requests))
    assert isinstance(results[1], ValueError)
    np.testing.assert_array_equal(results[0]["predict"], MODEL.predict(X[:2]))
    np.testing.assert_array_equal(results[2]["predict"], MODEL.predict(X[3:5]))


def test_a_lone_request_does_not_wait_and_no_request_waits_past_max_wait(pool: ModelExecutor) -> None:
    async def run() -> tuple[float, float]:
        batcher = Batcher(Recorder(), pool, max_batch_size=64, max_wait=0.2)
        start = time.perf_counter()
        await batcher.submit({"input": X[:1]}, ("predict",))
        lone = time.perf_counter() - start
        batcher._expected = 64.0  # as after a burst of concurrent load: it would like to wait for more
        start = time.perf_counter()
        await batcher.submit({"input": X[:1]}, ("predict",))
        return lone, time.perf_counter() - start

    lone, waited = asyncio.run(run())
    assert lone < 0.1
    assert waited < 0.2 + 0.1


def test_different_outputs_are_not_merged(pool: ModelExecutor) -> None:
    call = Recorder(delay=0.01)

    async def run() -> list[Any]:
        batcher = Batcher(call, pool, max_batch_size=32, max_wait=0.005)
        return await asyncio.gather(
            batcher.submit({"input": X[:1]}, ("predict",)),
            batcher.submit({"input": X[1:2]}, ("predict_proba",)),
            batcher.submit({"input": X[2:3]}, ("predict",)),
        )

    first, second, third = asyncio.run(run())
    assert set(first) == {"predict"} and set(second) == {"predict_proba"} and set(third) == {"predict"}


def test_merge_and_split_tables_and_arrays() -> None:
    a = {"input": Table({"x": np.array([1.0, 2.0]), "y": np.array([3, 4])})}
    b = {"input": Table({"x": np.array([5.0]), "y": np.array([6])})}
    merged = merge_inputs([a, b])["input"]
    assert isinstance(merged, Table) and merged.columns["y"].tolist() == [3, 4, 6]
    parts = split_outputs({"out": np.arange(3)}, [2, 1])
    assert [p["out"].tolist() for p in parts] == [[0, 1], [2]]


def test_invalid_settings_are_refused(pool: ModelExecutor) -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        Batcher(Recorder(), pool, max_batch_size=0, max_wait=0.0)


def test_a_fast_model_is_called_on_the_loop_and_a_slow_or_waiting_one_on_the_executor(pool: ModelExecutor) -> None:
    """A call the model's recent calls say takes under the inline budget runs on the event loop (no hand-off
    to a thread); one that sleeps costs no CPU but is judged by its elapsed time too, and stays on the
    executor, as does every call when the budget is 0."""

    loop_thread = threading.current_thread().name  # asyncio.run's loop runs on this thread

    async def calls(call: Recorder, inline_seconds: float | None = None, most: int = 30) -> None:
        kw = {} if inline_seconds is None else {"inline_seconds": inline_seconds}
        batcher = Batcher(call, pool, max_batch_size=32, max_wait=0.0, **kw)  # type: ignore[arg-type]
        for i in range(most):  # the first calls, on the executor, time the model
            result = await batcher.submit({"input": X[i % len(X) : i % len(X) + 1]}, ("predict",))
            np.testing.assert_array_equal(result["predict"], MODEL.predict(X[i % len(X) : i % len(X) + 1]))
            if i >= 30 and loop_thread in call.threads:
                return

    fast, sleeping, never = Recorder(), Recorder(delay=0.01), Recorder()
    # a busy machine (other processes on the cores) slows some timed calls: the estimate, an average,
    # comes down within a few more calls
    asyncio.run(calls(fast, most=300))
    asyncio.run(calls(sleeping))
    asyncio.run(calls(never, inline_seconds=0.0))
    assert loop_thread in fast.threads and any(t.startswith("capsule-predict") for t in fast.threads)
    assert loop_thread not in sleeping.threads
    assert loop_thread not in never.threads
