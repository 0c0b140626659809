"""Adaptive batching: concurrent requests to one model version merged into one model call.

Why: a scikit-learn ``predict`` costs milliseconds of fixed overhead whatever the number of rows, so a
server answering one call per request is bound by that overhead. The batcher keeps at most ``slots``
model calls in flight; requests that arrive meanwhile queue up and go together into the next call,
then the outputs are split back by row ranges.

The policy adapts to load and never adds more than ``max_wait`` seconds of waiting:
- a free slot takes what is queued at once when the recent batches were single requests (a lone
  client never waits);
- under concurrent load it waits for about as many requests as recent batches held, but never past
  the oldest queued request's arrival plus ``max_wait``;
- a batch never holds more than ``max_batch_size`` rows, except a single request larger than that,
  which goes alone.
If a merged call fails, each request of it is retried alone, so an error reaches only the request that
caused it. The batcher itself refuses nothing; the data plane bounds each model's queue (``max_queue``)
and a request whose deadline passes while queued is dropped here, never computed.

Where a call runs: on the executor's thread, except a call the model's recent calls say will take under
``inline_seconds`` (a quarter of a millisecond by default), which runs on the event loop itself. Handing
a call to a thread and its answer back costs both threads a wake-up and the GIL changing hands twice,
measured at 10-17 µs of server CPU per request on a 100-tree forest answering in tens of microseconds
(and 3-27% more requests per second); a call that short holds the loop no longer than the hand-off
would. The estimate is the model's CPU time per row over recent calls (a wait for the GIL does not
inflate it) times the batch's rows; only batches within ``max_batch_size`` qualify, and only while the
elapsed time per row, averaged the same way, keeps the call within four times the budget, so that a
model that sleeps or waits on its own threads is not judged by its CPU time alone.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .executor import ModelExecutor, running_loop
from .requests import Inputs, Table, rows_of

__all__ = ["INLINE_SECONDS", "Batcher", "ModelCall", "merge_inputs", "split_outputs"]

INLINE_SECONDS = 0.00025
"""A model call estimated under this many seconds runs on the event loop (see the module docstring)."""

Outputs = dict[str, np.ndarray[Any, Any]]
ModelCall = Callable[[Inputs, tuple[str, ...]], Outputs]
"""Runs the model on checked inputs for the named outputs (on an executor thread, or on the loop for a
short call)."""


def _key(inputs: Inputs, outputs: tuple[str, ...]) -> Hashable:
    parts: list[Hashable] = [outputs]
    for name, value in inputs.items():
        if isinstance(value, Table):
            parts.append((name, tuple((c, a.dtype.str) for c, a in value.columns.items())))
        else:
            parts.append((name, value.dtype.str, value.shape[1:]))
    return tuple(parts)


def merge_inputs(requests: list[Inputs]) -> Inputs:
    """Concatenate the rows of several checked requests with the same input names, dtypes and shapes."""
    if len(requests) == 1:
        return requests[0]
    merged: Inputs = {}
    for name, first in requests[0].items():
        if isinstance(first, Table):
            tables = [r[name] for r in requests]
            merged[name] = Table(
                {c: np.concatenate([t.columns[c] for t in tables if isinstance(t, Table)]) for c in first.columns}
            )
        else:
            merged[name] = np.concatenate([r[name] for r in requests])  # type: ignore[misc]
    return merged


def split_outputs(outputs: Outputs, sizes: list[int]) -> list[Outputs]:
    """Split the outputs of a merged call back into one mapping per request, by row counts."""
    if len(sizes) == 1:
        return [outputs]
    parts: list[Outputs] = []
    start = 0
    for size in sizes:
        parts.append({name: arr[start : start + size] for name, arr in outputs.items()})
        start += size
    return parts


@dataclass
class _Item:
    inputs: Inputs
    outputs: tuple[str, ...]
    rows: int
    key: Hashable
    arrival: float
    future: asyncio.Future[Outputs] = field(repr=False)
    deadline: float | None = None


class Batcher:
    """Merges concurrent requests to one model version (see the module docstring for the policy)."""

    def __init__(
        self,
        call: ModelCall,
        executor: ModelExecutor,
        *,
        max_batch_size: int,
        max_wait: float,
        slots: int = 1,
        on_batch: Callable[[int], None] | None = None,
        inline_seconds: float = INLINE_SECONDS,
    ) -> None:
        if max_batch_size < 1 or max_wait < 0 or slots < 1:
            raise ValueError("max_batch_size and slots must be >= 1 and max_wait >= 0")
        self._call = call
        self._executor = executor
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self._slots = slots
        self._on_batch = on_batch
        self._queue: deque[_Item] = deque()
        self._busy = 0
        self._expected = 1.0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._inline_seconds = inline_seconds
        self._row_seconds: float | None = None
        """Seconds per row of recent model calls (None until one was timed)."""
        self._row_wall = 0.0
        """Elapsed seconds per row of recent model calls."""

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def submit(self, inputs: Inputs, outputs: tuple[str, ...], deadline: float | None = None) -> Outputs:
        """Run the model on one request's inputs, merged with whatever else is queued; a request whose
        ``deadline`` (``time.monotonic()``) passes while it is queued is dropped, never computed."""
        loop = running_loop()
        future: asyncio.Future[Outputs] = loop.create_future()
        self._queue.append(
            _Item(inputs, outputs, rows_of(inputs), _key(inputs, outputs), time.monotonic(), future, deadline)
        )
        self._kick()
        return await future

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued and running call has finished (used before a version is dropped)."""
        deadline = time.monotonic() + timeout
        while (self._queue or self._busy) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    def _kick(self) -> None:
        while self._busy < self._slots and self._queue:
            wait_until = self._should_wait()
            if wait_until is not None:
                if self._timer is None:
                    self._timer = running_loop().call_at(_loop_time(wait_until), self._on_timer)
                return
            batch = self._take()
            if batch:
                self._busy += 1
                task = running_loop().create_task(self._run(batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _on_timer(self) -> None:
        self._timer = None
        self._kick()

    def _should_wait(self) -> float | None:
        """The monotonic time to wait until for more requests, or None to dispatch now."""
        if self.max_wait <= 0:
            return None
        target = min(self.max_batch_size, round(self._expected))
        queued_rows = sum(item.rows for item in self._queue)
        if queued_rows >= target or len(self._queue) >= target:
            return None
        deadline = self._queue[0].arrival + self.max_wait
        return deadline if deadline > time.monotonic() else None

    def _take(self) -> list[_Item]:
        first = self._queue.popleft()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = time.monotonic()
        if _gone(first, now):  # the client went away, or its deadline passed
            return []
        batch, rows, keep = [first], first.rows, deque[_Item]()
        while self._queue and rows < self.max_batch_size:
            item = self._queue.popleft()
            if _gone(item, now):
                continue
            if item.key == first.key and rows + item.rows <= self.max_batch_size:
                batch.append(item)
                rows += item.rows
            else:
                keep.append(item)
        keep.extend(self._queue)
        self._queue = keep
        return batch

    def _inline(self, batch: list[_Item]) -> bool:
        """Whether ``batch`` is estimated to take under the inline budget (see the module docstring)."""
        per_row, budget = self._row_seconds, self._inline_seconds
        if per_row is None or budget <= 0:
            return False
        rows = sum(item.rows for item in batch)
        return rows <= self.max_batch_size and per_row * rows <= budget and self._row_wall * rows <= 4 * budget

    def _timed(self, batch: list[_Item]) -> list[Outputs | Exception]:
        """:meth:`_compute`, its CPU time (on the calling thread) and elapsed time per row folded into the
        estimates: on the executor's thread the elapsed time includes waits for the GIL, so the CPU time
        is the estimate, and the elapsed time only keeps a model that sleeps or waits on its own
        threads off the loop; averaged, so that one preempted call moves neither much."""
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return self._compute(batch)
        finally:
            spent, wall = time.thread_time() - cpu, time.perf_counter() - start
            rows = max(1, sum(item.rows for item in batch))
            if self._row_seconds is None:
                self._row_seconds, self._row_wall = spent / rows, wall / rows
            else:
                self._row_seconds = 0.7 * self._row_seconds + 0.3 * spent / rows
                self._row_wall = 0.7 * self._row_wall + 0.3 * wall / rows

    async def _run(self, batch: list[_Item]) -> None:
        try:
            if self._inline(batch):
                results = self._timed(batch)
            else:
                results = await self._executor.run(self._timed, batch)
            for item, result in zip(batch, results, strict=True):
                if item.future.done():
                    continue
                if isinstance(result, BaseException):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)
        except BaseException as exc:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._busy -= 1
            self._expected = 0.7 * self._expected + 0.3 * len(batch)
            if self._on_batch is not None:
                self._on_batch(sum(item.rows for item in batch))
            self._kick()

    def _compute(self, batch: list[_Item]) -> list[Outputs | Exception]:
        """One merged call, or one call per request if the merged one fails (on the executor or the loop)."""
        outputs = batch[0].outputs
        try:
            merged = self._call(merge_inputs([item.inputs for item in batch]), outputs)
            return list(split_outputs(merged, [item.rows for item in batch]))
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
        results: list[Outputs | Exception] = []
        for item in batch:
            try:
                results.append(self._call(item.inputs, outputs))
            except Exception as exc:
                results.append(exc)
        return results


def _gone(item: _Item, now: float) -> bool:
    """The request left (its future is done) or expired (then it is failed here, never computed)."""
    if item.future.done():
        return True
    if item.deadline is not None and now >= item.deadline:
        from .errors import DeadlineExceededError

        item.future.set_exception(
            DeadlineExceededError("the request's deadline passed while it was queued; it was not computed.")
        )
        return True
    return False


def _loop_time(monotonic_deadline: float) -> float:
    """Convert a ``time.monotonic`` deadline to the running loop's clock."""
    loop = running_loop()
    return loop.time() + max(0.0, monotonic_deadline - time.monotonic())
