"""Worker processes of ``capsule serve --workers N``: forked after loading, supervised, replaced when they die.

The parent loads every model, binds the listening socket, then forks the workers, so they share the
loaded models' memory copy-on-write. It then only supervises: a worker that dies while the server is
not stopping (SIGKILL from the OOM killer, a segfault in a native library, an uncaught error) is logged
with how it ended and replaced at once by a new fork of the parent, which holds the models as loaded at
start; the replacement re-scans the repository before it accepts requests, so it serves the same
versions as its siblings. A crash loop is not retried forever: past ``RestartPolicy.max_restarts``
replacements within ``window_seconds`` the supervisor stops every worker and the server exits with 1
and an error that says what happened.

A stop signal (SIGTERM, SIGINT) is passed on to every worker, which drains its in-flight requests; a
worker still running ``grace_seconds`` later prints its threads' stacks (SIGUSR1) and is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CrashLoopError", "RestartPolicy", "Supervisor", "describe_exit"]

log = logging.getLogger("modelcapsule.serving")

POLL_SECONDS = 0.05
"""How often the supervisor looks for ended workers: a dead worker is replaced within this much time."""


@dataclass(frozen=True)
class RestartPolicy:
    """How many unexpected worker deaths are tolerated: ``max_restarts`` within ``window_seconds``."""

    max_restarts: int = 5
    window_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0 or self.window_seconds <= 0:
            raise ValueError("max_restarts must be >= 0 and window_seconds > 0")


class CrashLoopError(RuntimeError):
    """Workers died more often than the restart policy allows; the server stopped instead of spinning."""


def describe_exit(status: int) -> str:
    """How a process ended, from its ``waitpid`` status: ``exit code 1`` or ``killed by signal 9 (SIGKILL)``."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {number} ({name})"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


class Supervisor:
    """Forks ``count`` workers running ``work(replacement)`` and keeps that many alive until stopped.

    ``work`` runs in the child and should return only when the worker stops; ``replacement`` is False
    for the workers started with the server and True for those that replace a dead one.
    """

    def __init__(
        self,
        work: Callable[[bool], None],
        count: int,
        *,
        policy: RestartPolicy | None = None,
        grace_seconds: float = 20.0,
    ) -> None:
        if count < 1:
            raise ValueError("a supervisor needs at least one worker")
        self._work, self._count = work, count
        self.policy = policy or RestartPolicy()
        self._grace = grace_seconds
        self._children: set[int] = set()
        self._restarts: deque[float] = deque()
        self._stopping_since: float | None = None
        self._failed = 0

    @property
    def pids(self) -> set[int]:
        """The workers running now."""
        return set(self._children)

    def run(self) -> int:
        """Start the workers and supervise them until they have all stopped; the server's exit code.

        Raises :class:`CrashLoopError` (after stopping every worker) when they keep dying."""
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        for _ in range(self._count):
            self._spawn(replacement=False)
        crash: str | None = None
        while self._children:
            for pid, status in self._reap():
                self._children.discard(pid)
                if self._stopping_since is not None:
                    self._failed += int(os.waitstatus_to_exitcode(status) != 0)
                    continue
                how = describe_exit(status)
                if not self._may_restart():
                    crash = (
                        f"workers died {len(self._restarts) + 1} times within {self.policy.window_seconds:g} s "
                        f"(the last, pid {pid}, {how}); stopping the server instead of restarting them in a loop. "
                        "The log above shows how each worker ended: fix the cause (memory limits, a crashing "
                        "native library, a model that fails in every worker) and start the server again."
                    )
                    log.error("%s", crash)
                    self._forward(signal.SIGTERM, None)
                    continue
                log.error("worker %d died (%s); starting a replacement", pid, how)
                self._spawn(replacement=True)
            self._kill_stragglers()
            time.sleep(POLL_SECONDS)
        if crash is not None:
            raise CrashLoopError(crash)
        return 1 if self._failed else 0

    def _spawn(self, *, replacement: bool) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the supervisor's code
            code = 0
            try:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(signum, signal.SIG_DFL)
                self._work(replacement)
            except BaseException:
                log.exception("worker %d failed", os.getpid())
                code = 1
            finally:
                log.info("worker %d stopped", os.getpid())
                logging.shutdown()
                os._exit(code)
        self._children.add(pid)
        if replacement:
            log.info("worker %d started in place of a dead one", pid)

    def _reap(self) -> list[tuple[int, int]]:
        ended: list[tuple[int, int]] = []
        for pid in list(self._children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # already reaped elsewhere: count it as a clean exit
                ended.append((pid, 0))
                continue
            if done:
                ended.append((pid, status))
        return ended

    def _may_restart(self) -> bool:
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > self.policy.window_seconds:
            self._restarts.popleft()
        if len(self._restarts) >= self.policy.max_restarts:
            return False
        self._restarts.append(now)
        return True

    def _forward(self, signum: int, _frame: Any) -> None:
        if self._stopping_since is None:
            self._stopping_since = time.monotonic()
        for pid in self._children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _kill_stragglers(self) -> None:
        if self._stopping_since is None or time.monotonic() - self._stopping_since <= self._grace:
            return
        for pid in list(self._children):
            log.error("worker %d did not stop in time; its stacks follow, then it is killed", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
                time.sleep(0.5)
                os.kill(pid, signal.SIGKILL)
        self._stopping_since = time.monotonic()  # look again after another grace period
