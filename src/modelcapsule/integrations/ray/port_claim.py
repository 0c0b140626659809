"""One direct-ingress application per port: replicas of the same application share it, others are refused.

Why: replicas bind their port with ``SO_REUSEPORT`` so that siblings share it, but the kernel would just
as gladly let the replicas of a *second* application bind the same port and then split connections
between two different sets of models, silently. Each replica therefore claims ``(host, port)`` for its
application before binding: a claim file in the temporary folder holds the application's identity
(Ray's application and deployment names, stable across redeployments, so a rolling update shares the
port), and every live holder keeps a shared ``flock`` on it. A replica of another application finds the
file held under another identity and is refused with a message naming both; once every holder has
exited (their locks go with them), the next application may take the port over.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

__all__ = ["PortClaim", "PortTakenError"]


class PortTakenError(OSError):
    """The port is served by replicas of another application."""


class PortClaim:
    """A shared claim on ``host:port`` for ``identity``, held until :meth:`release` (or the process ends)."""

    def __init__(self, host: str, port: int, identity: str, folder: Path | None = None) -> None:
        self.identity = identity
        folder = folder or Path(tempfile.gettempdir()) / "modelcapsule-direct-ingress"
        folder.mkdir(mode=0o700, exist_ok=True)
        self.path = folder / f"{host.replace(':', '_')}-{port}.claim"
        self._fd: int | None = None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._take(fd, host, port)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _take(self, fd: int, host: str, port: int) -> None:
        try:  # nobody holds it: write our identity, then keep a shared lock like every sibling
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fcntl.flock(fd, fcntl.LOCK_SH)  # live holders: read who they are under their lock
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            if holder != self.identity:
                raise PortTakenError(
                    f"{host}:{port} is served by the replicas of {holder!r}; {self.identity!r} cannot share it "
                    "(each direct-ingress application needs a port of its own)"
                ) from None
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, self.identity.encode("utf-8"), 0)
        fcntl.flock(fd, fcntl.LOCK_SH)  # downgrade: siblings may join

    def release(self) -> None:
        """Give the claim up (the last holder's release frees the port for any application)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
