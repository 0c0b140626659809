"""Connecting to a Ray cluster, or starting a local one that lives exactly as long as the command.

``capsule serve --ray`` and ``capsule predict --ray`` without ``--ray-address`` start a private local
cluster (``ray.init(address="local")``, never silently joining whatever ``RAY_ADDRESS`` names) and stop it
on the way out, on success, error or Ctrl-C alike, so no raylet, GCS or worker process is left behind.
With an address (``auto``, ``ray://host:10001``, ``host:6379``) they join that cluster and only
disconnect.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

__all__ = ["ray_session"]


@contextlib.contextmanager
def ray_session(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    log_to_driver: bool = True,
    runtime_env: dict[str, Any] | None = None,
) -> Iterator[bool]:
    """Connect to ``address`` or start a local cluster with ``num_cpus`` CPUs (default: all of them).

    Yields ``True`` when this call started the cluster (and will stop it on exit). When Ray is already
    initialised in this process (a user's own session), it is used as it is and left running.
    """
    import ray

    if ray.is_initialized():
        yield False
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": log_to_driver,
        "runtime_env": runtime_env,
    }
    if address is None:
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
    else:
        if num_cpus is not None:
            raise ValueError("num_cpus sizes a local cluster; an existing cluster keeps its own size")
        ray.init(address=address, **kwargs)
    try:
        yield address is None
    finally:
        ray.shutdown()
