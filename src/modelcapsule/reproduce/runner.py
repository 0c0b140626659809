"""Run a training script in a child process of the current interpreter, its saves redirected.

The script runs unchanged, as ``python SCRIPT`` in the given working directory, with
:data:`~modelcapsule.core.save_redirect.SAVE_REDIRECT_ENV` pointing every ``modelcapsule.save`` call at
the new capsule. Its output (stdout and stderr, merged) is read line by line, so a caller can show
progress, and the last lines are kept for the error message when the script fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.save_redirect import SAVE_REDIRECT_ENV
from ..errors import CapsuleError

__all__ = ["ScriptFailedError", "ScriptRun", "run_script"]

KEPT_LINES = 60


class ScriptFailedError(CapsuleError, RuntimeError):
    """The training script exited with an error, timed out, or never saved a capsule."""

    def __init__(self, message: str, output: str = "") -> None:
        self.output = output
        super().__init__(message)


@dataclass(frozen=True)
class ScriptRun:
    """A finished script run: its exit code, the end of its output and how long it took."""

    returncode: int
    output: str
    seconds: float


def run_script(
    script: Path,
    redirect_to: Path,
    *,
    cwd: Path | None = None,
    on_line: Callable[[str], None] | None = None,
    timeout: float | None = None,
) -> ScriptRun:
    """Run ``script`` with its saves going to ``redirect_to``; raise :class:`ScriptFailedError` on failure."""
    env = dict(os.environ)
    env[SAVE_REDIRECT_ENV] = str(redirect_to.resolve())
    env["PYTHONUNBUFFERED"] = "1"
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(script)], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
    )
    kept: deque[str] = deque(maxlen=KEPT_LINES)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            kept.append(line.rstrip("\n"))
            if on_line is not None:
                on_line(line.rstrip("\n"))

    reader = threading.Thread(target=pump, name="retrain-output", daemon=True)
    reader.start()
    try:
        returncode = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        reader.join(timeout=5)
        raise ScriptFailedError(
            f"{script.name} did not finish within {timeout:g} s and was stopped. Raise --timeout if training "
            "takes longer.",
            "\n".join(kept),
        ) from None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    reader.join(timeout=5)
    output = "\n".join(kept)
    if returncode != 0:
        raise ScriptFailedError(
            f"{script.name} failed with exit code {returncode}. Its last lines:\n{output}", output
        )
    return ScriptRun(returncode, output, time.monotonic() - start)
