"""What every transport (each REST protocol, gRPC) hands to the data plane and gets back from it.

An adapter turns its wire format into a :class:`Decoded` request (through a :data:`Decoder`, which sees
the resolved model version, because some wire formats are read by the model's signature: rows map
onto DataFrame columns, TF Serving's ``signature_name`` picks an output), calls
:meth:`~modelcapsule.serving.dataplane.DataPlane.infer` once, and turns the :class:`Inference` it
gets back into its wire format. Nothing here knows about HTTP or gRPC.
"""

from __future__ import annotations

import functools
import itertools
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .batching import Outputs
from .models import LoadedVersion

__all__ = ["Call", "Decoded", "Decoder", "Inference", "new_request_id", "server_version"]


class _RequestIds:
    """Request ids unique across workers and restarts: a random per-process prefix and a counter.

    Cheaper than ``uuid4`` (no ``os.urandom`` call per request, which costs tens of microseconds and
    more under load), and no system call at all per request: the prefix is drawn again in a forked
    child (``os.register_at_fork``) so that workers never share ids."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._prefix = os.urandom(4).hex()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._redraw)

    def _redraw(self) -> None:
        self._prefix = os.urandom(4).hex()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):08x}"


new_request_id = _RequestIds().next
"""A fresh request id (used when the client sent none)."""


@dataclass(slots=True)
class Call:
    """One request as the server tracks it, whatever its transport.

    ``protocol`` is the metrics label (``v2``, ``tfserving``, ``seldon``, ``plain``, ``mlflow``,
    ``grpc``); ``model`` and ``version`` are filled in as the request reaches them; ``counted`` is set
    once the request has been counted in the metrics, so that it never is twice; ``deadline`` comes from
    the gRPC deadline or REST's ``X-Request-Timeout``."""

    protocol: str
    request_id: str
    model: str = ""
    version: str = ""
    counted: bool = False
    start: float = field(default_factory=time.perf_counter)
    deadline: float | None = None
    """``time.monotonic()`` past which the request is not computed any more (None: no deadline)."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """A request as an adapter read it off the wire, before the signature checks.

    ``inputs``: input name → nested lists, an array, or for a tabular input a column mapping;
    ``outputs``: the output names asked for (``None`` or empty: every output of the signature);
    ``where``: how error messages name the inputs (``"input"``, ``"instances"``, ``"CSV"``...)."""

    inputs: Mapping[str, Any]
    outputs: Sequence[str] | None = None
    where: str = "input"


Decoder = Callable[[LoadedVersion], Awaitable[Decoded]]
"""Reads one request for the version it resolved to (awaited inside the data plane's call)."""


@dataclass(frozen=True, slots=True)
class Inference:
    """What the data plane answers: the version that ran and its checked outputs, in the order asked."""

    loaded: LoadedVersion
    outputs: Outputs

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.outputs)


@functools.cache
def server_version() -> str:
    """modelcapsule's version as the server reports it (``/v2``, MLflow's ``/version``, OpenAPI)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelcapsule")
    except PackageNotFoundError:
        return "0"
