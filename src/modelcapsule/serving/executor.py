"""A small fixed set of threads that run model calls for the event loop.

Why not ``loop.run_in_executor`` with a ``ThreadPoolExecutor``: each call there allocates a
``concurrent.futures.Future`` (with its own lock and condition) and chains it to an asyncio future,
tens of microseconds per request that a 15 µs ONNX model would spend mostly waiting on. Here a call is
one tuple on a ``SimpleQueue`` and one ``call_soon_threadsafe`` back; the threads are started once and
never grow, so numeric libraries are never oversubscribed by a pool that scales with load.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["ModelExecutor", "running_loop"]

T = TypeVar("T")
_Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]", float | None] | None


class _LoopOfThread(threading.local):
    loop: asyncio.AbstractEventLoop | None = None


_found = _LoopOfThread()
if hasattr(os, "register_at_fork"):  # a forked child runs none of its parent's loops
    os.register_at_fork(after_in_child=lambda: setattr(_found, "loop", None))


def running_loop() -> asyncio.AbstractEventLoop:
    """``asyncio.get_running_loop()`` without a system call per request.

    On Python 3.11 ``get_running_loop`` asks the kernel for the process id on every call (to notice a
    fork): measured ~2 µs of a served request here, one call for every batched request. The loop found
    last on this thread is kept and returned while it is running: a loop running on this thread is the
    one running this code (loops do not nest), and a forked child forgets it."""
    loop = _found.loop
    if loop is None or not loop.is_running():
        loop = _found.loop = asyncio.get_running_loop()
    return loop


def _deliver(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the request was cancelled (client gone) meanwhile
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _expired() -> Exception:
    from .errors import DeadlineExceededError

    return DeadlineExceededError("the request's deadline passed while it waited for the model; it was not computed.")


class ModelExecutor:
    """Runs functions on ``threads`` dedicated threads and hands results back to the calling event loop."""

    def __init__(self, threads: int = 1, name: str = "capsule-predict") -> None:
        if threads < 1:
            raise ValueError("threads must be >= 1")
        self._threads_wanted = threads
        self._name = name
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _start(self) -> None:
        with self._lock:
            if self._threads:
                return
            for i in range(self._threads_wanted):
                thread = threading.Thread(target=self._work, name=f"{self._name}-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args, loop, future, deadline = job
            if future.done() or (deadline is not None and time.monotonic() >= deadline):
                # cancelled, or expired while queued: never computed
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_deliver, future, False, _expired())
                continue
            try:
                result: Any = fn(*args)
                ok = True
            except Exception as exc:
                result, ok = exc, False
            with contextlib.suppress(RuntimeError):  # the loop closed while the call ran: nobody waits
                loop.call_soon_threadsafe(_deliver, future, ok, result)

    async def run(self, fn: Callable[..., T], *args: Any, deadline: float | None = None) -> T:
        """``fn(*args)`` on one of the threads, awaited without blocking the event loop; not called at all
        when ``deadline`` (``time.monotonic()``) has passed by the time a thread takes it."""
        if not self._threads:
            self._start()
        loop = running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, args, loop, future, deadline))
        return await future

    def shutdown(self, wait: bool = True) -> None:
        """Stop the threads after the calls already queued (they finish first)."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)
        if wait:
            for thread in threads:
                thread.join()
