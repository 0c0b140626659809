"""The one data plane every protocol adapter calls: models, versions, validation and model calls.

:meth:`DataPlane.infer` is the one inference call of every transport (each REST protocol and gRPC):
it resolves the model version, has the adapter decode its request for that version, checks inputs and
requested outputs against the signature, runs the model (batched or not), checks its outputs, and
counts the request in the metrics with the same labels whatever the transport. Adapters only convert
their wire format to and from that call and map its typed errors to their protocol's error shape.

It owns the registry of loaded versions (kept in step with the repository by :meth:`DataPlane.reconcile`,
run at start and on every poll), the executor that runs model calls off the event loop (a small fixed
number of threads, so requests never thrash a large pool; the batcher keeps calls shorter than the
hand-off on the loop, see :mod:`.batching`), and per version the adaptive batcher.

Swapping is done on the event loop: a new version is loaded and verified on a thread, and only then
published; a request holds the :class:`LoadedVersion` it resolved, so in-flight requests finish on the
version they started with even if it is dropped meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial

from ..core.manifest import Manifest
from ..types import Predictor
from . import heap
from .batching import Batcher, Outputs
from .config import ServerOptions
from .errors import (
    DeadlineExceededError,
    InvalidRequestError,
    ModelFailedError,
    ModelNotFoundError,
    ModelNotReadyError,
    OverloadedError,
    ServingError,
)
from .executor import ModelExecutor
from .loader import Loader, load_for_serving
from .metrics import ServingMetrics
from .models import LoadedVersion, ModelEntry, State, VersionStatus
from .repository import FoundVersion, Repository
from .requests import Inputs
from .transport import Call, Decoder, Inference

__all__ = ["DataPlane"]

log = logging.getLogger("modelcapsule.serving")


class DataPlane:
    """Models, versions and model calls, shared by the REST and gRPC adapters of one process."""

    def __init__(
        self,
        repository: Repository,
        *,
        options: ServerOptions | None = None,
        metrics: ServingMetrics | None = None,
        loader: Loader | None = None,
    ) -> None:
        self.repository = repository
        self.options = options or repository.options
        self.metrics = metrics or ServingMetrics()
        self.loader: Loader = loader or partial(
            load_for_serving, trusted=self.options.trusted, verify=self.options.verify, runtime=self.options.runtime
        )
        self.models: dict[str, ModelEntry] = {}
        self._executor: ModelExecutor | None = None
        self._reconcile_lock: asyncio.Lock | None = None
        self._changed: asyncio.Event | None = None
        self._loaded_since_freeze = False

    # -- model calls

    @property
    def executor(self) -> ModelExecutor:
        """The threads that run model calls (started on the first call, so after any fork)."""
        if self._executor is None:
            self._executor = ModelExecutor(max(1, self.options.predict_threads))
        return self._executor

    async def infer(
        self,
        call: Call,
        decode: Decoder,
        model: str | None,
        version: str | None = None,
        label: str | None = None,
    ) -> Inference:
        """Answer one inference request, whatever its transport.

        ``model`` ``None`` means the only served model; ``version`` (a number) or ``label`` picks a
        version, neither the newest available one. ``decode`` reads the request for the
        resolved version. Every failure is a :class:`ServingError` (anything unexpected is logged with
        the request id and becomes :class:`ModelFailedError`); the request is counted once, with
        ``call``'s protocol and the HTTP status its outcome maps to."""
        in_flight = self.metrics.in_flight_of(call.protocol)
        in_flight.inc()
        status = 0
        try:
            call.model = self.default_model(None) if model is None else model
            loaded = self.resolve(call.model, version, label)
            call.version = loaded.version_text
            request = await decode(loaded)
            names = loaded.validator.check_outputs(request.outputs)
            inputs = loaded.validator.check_inputs(request.inputs, request.where)
            if call.deadline is not None and time.monotonic() >= call.deadline:
                raise DeadlineExceededError("the request's deadline passed before the model could run it.")
            entry = self.models.get(loaded.name)
            limit = entry.config.max_queue if entry is not None else 0
            if limit:
                outputs = _asked(await self._run_queued(entry, limit, loaded, inputs, names, call), names)  # type: ignore[arg-type]
            elif loaded.batcher is not None:  # what _run does, awaited here directly: one coroutine less
                outputs = _asked(await loaded.batcher.submit(inputs, names, call.deadline), names)
            else:
                outputs = _asked(await self._run(loaded, inputs, names, call.deadline), names)
            status = 200
            return Inference(loaded, outputs)
        except ServingError as exc:
            status = exc.status.http_status
            if isinstance(exc, DeadlineExceededError) and call.model in self.models:
                self.metrics.shed.labels(call.model, "deadline").inc()
            raise
        except Exception as exc:
            status = 500
            log.exception(
                "request %s (%s, model %r, version %r) failed", call.request_id, call.protocol, call.model, call.version
            )
            raise ModelFailedError(call.request_id) from exc
        finally:
            in_flight.dec()
            if status:
                self.record(call, status)

    def record(self, call: Call, status: int) -> None:
        """Count an answered request, once, by model, version, protocol and HTTP status (requests for a
        model this server does not serve are not counted, so names made up in URLs create no series)."""
        if call.counted or call.model not in self.models:
            return
        call.counted = True
        self.metrics.count(call.model, call.version, call.protocol, status, time.perf_counter() - call.start)

    async def _run_queued(self, entry: ModelEntry, limit: int, loaded: LoadedVersion, inputs: Inputs,
                          outputs: tuple[str, ...], call: Call) -> Outputs:
        """:meth:`_run` under the model's queue limit: past ``limit`` waiting requests, refuse at once
        (nothing queued, nothing computed) with :class:`OverloadedError`."""
        if entry.pending >= limit:
            self.metrics.shed.labels(entry.name, "overloaded").inc()
            raise OverloadedError(
                f"model {entry.name!r} has {entry.pending} requests waiting, its limit (max_queue {limit}); "
                f"retry after {self.options.retry_after_seconds} s.",
                self.options.retry_after_seconds,
            )
        entry.pending += 1
        gauge = self.metrics.queued.labels(entry.name)
        gauge.set(entry.pending)
        try:
            return await self._run(loaded, inputs, outputs, call.deadline)
        finally:
            entry.pending -= 1
            gauge.set(entry.pending)

    async def _run(self, loaded: LoadedVersion, inputs: Inputs, outputs: tuple[str, ...],
                   deadline: float | None = None) -> Outputs:
        """Run checked inputs through ``loaded`` (batched with other requests when batching is on); a
        request whose ``deadline`` (``time.monotonic()``) passes while it waits is never computed."""
        if loaded.batcher is not None:
            return await loaded.batcher.submit(inputs, outputs, deadline)
        result = await self.executor.run(loaded.predict, inputs, outputs, deadline=deadline)
        self.metrics.batch_rows.labels(loaded.name, loaded.version_text).observe(
            len(next(iter(result.values()))) if result else 0
        )
        return result

    # -- lookup

    def entry(self, name: str) -> ModelEntry:
        try:
            return self.models[name]
        except KeyError:
            raise ModelNotFoundError(
                f"no model named {name!r}; this server serves {sorted(self.models) or 'no models'}."
            ) from None

    def resolve(self, name: str, version: str | None = None, label: str | None = None) -> LoadedVersion:
        """The loaded version a request addresses: a number, a label, or (neither) the newest available."""
        entry = self.entry(name)
        number: int | None = None
        if version not in (None, ""):
            if not str(version).isdigit() or int(str(version)) < 1:
                raise ModelNotFoundError(
                    f"model {name!r} has no version {version!r}; versions are positive integers: "
                    f"{self.version_list(entry)}."
                )
            number = int(str(version))
        loaded = entry.get(number, label)
        if loaded is None:
            if number is None and label is None:
                raise ModelNotReadyError(f"model {name!r} has no available version yet; {self.why(entry)}")
            what = f"version {number}" if label is None else f"label {label!r} (version {entry.config.labels[label]})"
            raise ModelNotFoundError(
                f"model {name!r} {what} is not available; available versions: {self.version_list(entry)}."
            )
        return loaded

    def default_model(self, requested: str | None) -> str:
        """The model a route without a model in its path serves: ``requested`` or the only one."""
        if requested:
            return requested
        if len(self.models) == 1:
            return next(iter(self.models))
        raise InvalidRequestError(
            f"this server serves several models {sorted(self.models)}; name one with ?model=NAME."
        )

    @staticmethod
    def version_list(entry: ModelEntry) -> list[int]:
        return sorted(v.version for v in entry.available())

    @staticmethod
    def why(entry: ModelEntry) -> str:
        errors = [f"version {v}: {s.error}" for v, s in sorted(entry.versions.items()) if s.error]
        return "; ".join(errors) if errors else "it is still loading."

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        """Every model has at least one available version."""
        return bool(self.models) and all(entry.available() for entry in self.models.values())

    # -- keeping in step with the repository

    async def reconcile(self) -> None:
        """Scan the repository; load, verify and publish new versions; drop removed or unwanted ones."""
        if self._reconcile_lock is None:
            self._reconcile_lock = asyncio.Lock()
        async with self._reconcile_lock:
            found, configs = await asyncio.to_thread(self.repository.scan)
            for name in [n for n in self.models if n not in found]:
                for status in self.models[name].versions.values():
                    self._unload(self.models[name], status)
                del self.models[name]
            for name, versions in found.items():
                entry = self.models.setdefault(name, ModelEntry(name, configs[name]))
                entry.config = configs[name]
                await self._reconcile_model(entry, versions)
            if self._loaded_since_freeze:  # once per scan, however many versions it loaded
                heap.freeze_loaded()
                self._loaded_since_freeze = False

    async def _reconcile_model(self, entry: ModelEntry, versions: dict[int, FoundVersion]) -> None:
        for number in [v for v in entry.versions if v not in versions]:
            self._unload(entry, entry.versions.pop(number))
        for number, found in versions.items():
            status = entry.versions.get(number)
            if status is None or (status.fingerprint != found.fingerprint and status.state is not State.AVAILABLE):
                entry.versions[number] = VersionStatus(number, found.path, found.fingerprint, found.fetch)
        chosen: list[int] = []
        config = entry.config
        for number in config.select(list(versions)):
            if config.version_policy == "latest" and len(chosen) >= config.latest:
                break
            status = entry.versions[number]
            if status.state is State.END and status.error:
                continue  # failed with these very files; looked at again when they change
            if status.state is not State.AVAILABLE:
                await self._load(entry, status)
            if status.state is State.AVAILABLE:
                chosen.append(number)
        for number, status in entry.versions.items():
            if number not in chosen and status.state is State.AVAILABLE:
                self._unload(entry, status)
        self._judge_watched(entry)
        self._move_labels(entry)
        self.metrics.loaded.labels(entry.name).set(len(entry.available()))

    def _move_labels(self, entry: ModelEntry) -> None:
        """Point each label at its configured target once that target is available; a target that failed
        leaves the label on the version it served, and is reported to the repository (the registry)."""
        for label in [x for x in entry.labels if x not in entry.config.labels]:
            del entry.labels[label]
            entry.watched.pop(label, None)
        for label, target in entry.config.labels.items():
            serving = entry.labels.get(label)
            if serving == target:
                continue
            status = entry.versions.get(target)
            if status is not None and status.state is State.AVAILABLE:
                entry.labels[label] = target
                if serving is not None:  # a swap: judge the new version on its first calls
                    entry.watched[label] = (target, serving)
                log.info("model %s label %s now serves version %d (was %s)", entry.name, label, target, serving)
                continue
            if serving is not None and not self._available(entry, serving):
                del entry.labels[label]  # what it served is gone too
            if status is not None and status.state is State.END and status.error:
                self.repository.report_failure(entry.name, target, dict(entry.config.labels),
                                               {label: entry.labels.get(label)}, status.error)

    def _judge_watched(self, entry: ModelEntry) -> None:
        """Swap a version out again when too many of its first calls after a swap failed."""
        watch, limit = self.options.watch_calls, self.options.max_error_rate
        for label, (version, previous) in list(entry.watched.items()):
            status = entry.versions.get(version)
            if status is None or status.loaded is None:
                del entry.watched[label]
                continue
            loaded = status.loaded
            if loaded.calls < watch and loaded.failed_calls <= limit * watch:
                continue  # not judged yet (and not already beyond the limit)
            del entry.watched[label]
            rate = loaded.failed_calls / max(loaded.calls, 1)
            if loaded.failed_calls <= limit * watch:
                log.info("model %s version %d passed its first %d calls after the swap", entry.name, version, watch)
                continue
            reason = (f"{loaded.failed_calls} of its first {loaded.calls} calls failed after it became "
                      f"{label!r} ({rate:.0%}, above the {limit:.0%} limit); swapped back to version {previous}")
            log.error("model %s version %d: %s", entry.name, version, reason)
            self._unload(entry, status)
            status.state, status.error = State.END, reason
            if previous is not None and self._available(entry, previous):
                entry.labels[label] = previous
            else:
                entry.labels.pop(label, None)
            self.repository.report_failure(entry.name, version, {label: version}, {label: previous}, reason,
                                           kind="serving_error_rate")

    @staticmethod
    def _available(entry: ModelEntry, version: int) -> bool:
        status = entry.versions.get(version)
        return status is not None and status.state is State.AVAILABLE

    async def _load(self, entry: ModelEntry, status: VersionStatus) -> None:
        status.state, status.error = State.LOADING, ""
        try:
            manifest, predictor = await asyncio.to_thread(self._fetch_and_load, status)
            loaded = LoadedVersion(entry.name, status.version, status.path, manifest, predictor)
        except Exception as exc:
            status.state, status.error = State.END, f"{type(exc).__name__}: {exc}"
            self.metrics.load_failures.labels(entry.name).inc()
            log.error("model %s version %d failed to load or verify: %s", entry.name, status.version, status.error)
            return
        config = entry.config
        if config.batching:
            labels = self.metrics.batch_rows.labels(entry.name, loaded.version_text)
            loaded.batcher = Batcher(
                loaded.predict,
                self.executor,
                max_batch_size=config.batch_size,
                max_wait=config.batch_wait_ms / 1000.0,
                on_batch=labels.observe,
            )
        status.loaded, status.state = loaded, State.AVAILABLE
        self._loaded_since_freeze = True
        log.info("model %s version %d is available (%s)", entry.name, status.version, status.path)

    def _fetch_and_load(self, status: VersionStatus) -> tuple[Manifest, Predictor]:
        """Fetch a registry version's capsule (by digest, hash-checked), then load it with every check."""
        path = status.fetch() if status.fetch is not None else status.path
        return self.loader(path)

    def _unload(self, entry: ModelEntry, status: VersionStatus) -> None:
        loaded, status.loaded = status.loaded, None
        if status.state is State.AVAILABLE:
            status.state = State.END
        if loaded is not None:
            log.info("model %s version %d unloaded", entry.name, status.version)
            asyncio.get_running_loop().create_task(_release(loaded))

    def reset_loop_state(self) -> None:
        """Forget objects bound to an event loop (after the start-up load, before workers fork)."""
        self._reconcile_lock = None
        self._changed = None

    def watch_repository(self) -> Callable[[], None] | None:
        """Wake :meth:`wait_for_change` whenever the repository announces a change (on the running loop);
        the function that stops watching, or None when the repository only can be polled."""
        loop = asyncio.get_running_loop()
        changed = self._changed = asyncio.Event()

        def announce() -> None:  # on the listener's thread
            loop.call_soon_threadsafe(changed.set)

        return self.repository.watch(announce)

    async def wait_for_change(self, timeout: float) -> None:
        """Return after ``timeout`` seconds, or earlier when the repository announced a change."""
        changed = self._changed
        if changed is None:
            await asyncio.sleep(timeout)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)
        changed.clear()

    async def close(self) -> None:
        """Finish queued calls and stop the executor (graceful shutdown)."""
        for entry in self.models.values():
            for loaded in entry.available():
                if loaded.batcher is not None:
                    await loaded.batcher.drain()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def statuses(self, name: str) -> Sequence[VersionStatus]:
        return [s for _, s in sorted(self.entry(name).versions.items())]


def _asked(result: Outputs, names: tuple[str, ...]) -> Outputs:
    """The outputs asked for, in the order asked (all of them when the signature names none); a model
    that did not give one of them failed."""
    if not names or tuple(result) == names:
        return result
    try:
        return {name: result[name] for name in names}
    except KeyError as exc:
        raise RuntimeError(f"the model gave no output {exc.args[0]!r}; it gave {sorted(result)}") from None


async def _release(loaded: LoadedVersion) -> None:
    """Let in-flight calls on a dropped version finish, then give its memory back to the system."""
    if loaded.batcher is not None:
        await loaded.batcher.drain()
    del loaded
    await asyncio.sleep(0)
    heap.release_dropped()
