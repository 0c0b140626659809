"""load, load_capsule and inspect: a capsule (or a plain model file) back into a model, with every check.

Loading always runs parse → audit → construct, in that order: the manifest and payload are parsed as
plain data, every name the payload would import is checked against the trust policy, and only then is
the object built. Member hashes are checked on a second thread while the payload is parsed, the model
built and its golden sample run, and their verdict is raised before anything else and before the model
is handed back (or all of them are checked first, when a signature is required).
"""

from __future__ import annotations

import contextlib
import os
import struct
import warnings
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from .core import environment
from .core.checks_on_record import CheckCache, Stats, check_cache
from .core.container import DEFAULT_LIMITS, CapsuleReader, Limits, open_capsule
from .core.manifest import Manifest
from .core.members import PlainFile
from .core.sample import MethodCheck, check_methods, describe_error, excerpt, infer_signature, verify_capsule_sample
from .core.uris import resolve_capsule_path
from .errors import (
    CapsuleError,
    CapsuleFormatError,
    EnvironmentMismatchError,
    PackageDrift,
    UnsupportedModelError,
    UntrustedCodeError,
    VerificationError,
    warn_drift,
)
from .formats import Format, LoadOptions, format_for_file, get_format
from .frameworks import Framework, framework_for
from .security.policy import TrustPolicy
from .security.state_checks import validate_model
from .types import Predictor, Signature

__all__ = ["LoadedCapsule", "OnMismatch", "inspect", "load", "load_capsule"]

OnMismatch = Literal["warn", "error", "ignore"]



@dataclass
class LoadedCapsule:
    """A loaded capsule: the model, its manifest, the Predictor the server calls, and what load found."""

    model: Any
    manifest: Manifest
    predictor: Predictor
    path: Path
    drift: list[PackageDrift] = field(default_factory=list)


def policy_for(trusted: Iterable[str] | TrustPolicy) -> TrustPolicy:
    return trusted if isinstance(trusted, TrustPolicy) else TrustPolicy(trusted)


def _apply_drift_policy(drifts: Sequence[PackageDrift], on_mismatch: OnMismatch) -> None:
    if on_mismatch not in ("warn", "error", "ignore"):
        raise ValueError(f"on_mismatch must be 'warn', 'error' or 'ignore', not {on_mismatch!r}")
    if not drifts or on_mismatch == "ignore":
        return
    if on_mismatch == "error":
        raise EnvironmentMismatchError(drifts)
    warn_drift(drifts)


def construct(fmt: Format, source: Any, details: dict[str, Any], options: LoadOptions, what: str) -> tuple[
        Any, list[PackageDrift]]:
    """Audit, then construct; scikit-learn's version warnings are folded into drift entries."""
    if fmt.runs_code and not options.trust_code:
        raise UntrustedCodeError(fmt.name, what)
    with typed_errors(fmt, what):
        names = fmt.audit(source, details, options)
    options.policy.check(names, what)
    folded: list[PackageDrift] = []
    with warnings.catch_warnings(record=True) as caught, typed_errors(fmt, what):
        warnings.simplefilter("always")
        model = fmt.load(source, details, options)
    validate_model(model, options.limits, source=what)  # native-backed state checked before any use
    for w in caught:
        saved = getattr(w.message, "original_sklearn_version", None)
        if saved is not None:
            folded.append(PackageDrift("scikit-learn", str(saved), environment.installed_version("scikit-learn")))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return model, folded


UNTRUSTED_INPUT_ERRORS: tuple[type[Exception], ...] = (
    LookupError, TypeError, ValueError, AttributeError, ArithmeticError, RecursionError, MemoryError, EOFError,
    struct.error, zlib.error,
)
"""Builtin exceptions a reader library may raise on a hostile payload. They never escape ``load``: each
becomes a :class:`CapsuleFormatError` with the original chained as its cause."""


@contextlib.contextmanager
def typed_errors(fmt: Format, what: str) -> Iterator[None]:
    try:
        yield
    except CapsuleError:
        raise
    except UNTRUSTED_INPUT_ERRORS as exc:
        raise CapsuleFormatError(
            f"{what}: the {fmt.name} payload is malformed or hostile ({describe_error(exc)})."
        ) from exc


CAPSULE_SUFFIX = ".capsule"


def _is_capsule(path: Path) -> bool:
    """Directories and files with no plain-format suffix are capsules; ``.pkl``, ``.skops``... are not."""
    if path.is_dir() or path.suffix.lower() == CAPSULE_SUFFIX:
        return True  # without importing every format to compare suffixes
    try:
        format_for_file(path)
    except UnsupportedModelError:
        return True
    return False


def load_capsule(
    path: str | os.PathLike[str],
    *,
    trusted: Iterable[str] | TrustPolicy = (),
    on_mismatch: OnMismatch = "warn",
    verify: bool = True,
    trust_code: bool = False,
    public_key: Any = None,
    device: str | None = None,
    limits: Limits | None = None,
    runtime: str = "python",
    recheck: bool = False,
) -> LoadedCapsule:
    """Load a capsule (or a plain model file) with every check; see :func:`load`.

    ``runtime`` says what serves predictions: ``"python"`` the saved object; ``"flat"`` the capsule's
    stored flat trees (a tree ensemble saved with them; ``model`` is then None and scikit-learn is not
    imported, see :mod:`modelcapsule.frameworks.tree_capsule`), else the saved object; ``"onnx"`` the
    ONNX export; ``"auto"`` the faster of the object and the ONNX export on the golden sample."""
    path = resolve_capsule_path(path)  # models:/NAME@ALIAS → a local, hash-checked copy
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no capsule or model file at {p}")
    options = LoadOptions(policy=policy_for(trusted), trust_code=trust_code, limits=limits or DEFAULT_LIMITS,
                          device=device)
    if not _is_capsule(p):
        if public_key is not None:
            raise CapsuleFormatError(f"{p.name} is a plain model file; only capsules carry signatures.")
        return _load_plain(p, options)

    def attempt(lease: bool) -> LoadedCapsule | None:
        with open_capsule(p, options.limits, lease=lease) as reader:
            loaded = _load_from_reader(reader, options, on_mismatch=on_mismatch, verify=verify,
                                       public_key=public_key, runtime=runtime, recheck=recheck)
            return loaded if reader.release_file() else None  # always True without a lease

    # Read in place under a read lease where one is granted (core/file_lease.py). If someone opened the
    # file for writing meanwhile and the kernel could have let them through by now, what was built is
    # dropped and the capsule is read again the default way, from private copies of its members.
    loaded = attempt(lease=True)
    return loaded if loaded is not None else cast(LoadedCapsule, attempt(lease=False))


def _load_from_reader(reader: CapsuleReader, options: LoadOptions, *, on_mismatch: OnMismatch, verify: bool,
                      public_key: Any, runtime: str, recheck: bool = False) -> LoadedCapsule:
    manifest = reader.manifest
    what = str(reader.path)
    checks = _PassedChecks(reader, None if recheck else check_cache(), options.device)
    # Another runtime may serve without the Python model: the ONNX export, or a tree ensemble's stored trees.
    without_model = runtime == "onnx" and manifest.onnx is not None and manifest.format_name != "onnx"
    if runtime == "flat":
        from .frameworks.tree_capsule import has_stored_trees  # no scikit-learn import

        without_model = has_stored_trees(manifest)
        if not without_model:
            runtime = "python"  # nothing stored (not a supported tree ensemble): the Python model serves
    if public_key is not None:
        from .security.signing import check_signature

        check_signature(reader, public_key)
    if without_model:
        python = lambda: load_capsule(reader.path, trusted=options.policy, on_mismatch=on_mismatch,  # noqa: E731
                                      verify=verify, public_key=public_key, device=options.device,
                                      limits=options.limits).predictor  # only for outputs the runtime lacks
        predictor: Predictor
        with _Hashing(reader, checks, public_key) as hashing:
            try:
                if runtime == "onnx":
                    from .onnx.runtime import onnx_only_predictor

                    predictor = onnx_only_predictor(reader, manifest, options, verify=verify, python=python)
                else:
                    from .frameworks.tree_capsule import stored_tree_predictor

                    predictor = stored_tree_predictor(reader, manifest, options.limits, verify=verify, python=python)
            except CapsuleError as exc:
                hashing.raise_if_altered(exc)
                raise
            hashing.verdict()
        return LoadedCapsule(None, manifest, predictor, reader.path)
    with _Hashing(reader, checks, public_key) as hashing:
        drifts = environment.compare_environment(manifest.environment)
        if on_mismatch == "error":
            _apply_drift_policy(drifts, on_mismatch)
        fmt = get_format(manifest.format_name)
        try:
            model, folded = construct(fmt, reader, dict(manifest.format), options, what)
        except CapsuleError as exc:
            hashing.raise_if_altered(exc)
            raise
        framework = framework_of(model, manifest)
        # The golden sample runs while the hash thread may still be hashing (see _Hashing).
        run_sample = bool(verify and manifest.sample and not checks.passed("sample"))
        sample_error: CapsuleError | None = None
        if run_sample:
            try:
                _check_sample(reader, manifest, framework, model)
            except CapsuleError as exc:
                sample_error = exc
        hashing.verdict()
    drifts += [d for d in folded if d.name not in {x.name for x in drifts}]
    _apply_drift_policy(drifts, on_mismatch)
    if sample_error is not None:
        raise sample_error
    if run_sample:
        checks.record("sample")
    signature = manifest.signature or infer_signature({}, {})
    predictor = (_NotCallable(signature, f"no framework can call a {type(model).__qualname__}")
                 if framework is None else framework.predictor(model, signature))
    if runtime != "python":
        predictor = _runtime_predictor(reader, manifest, predictor, runtime, options)
    return LoadedCapsule(model, manifest, predictor, reader.path, list(drifts))


class _Hashing:
    """Every member's hash checked on a second thread while the payload is parsed and run.

    The model is built under every check whatever its bytes say (a crafted capsule carries matching
    hashes anyway), the golden sample's inputs are held to the signature, and nothing leaves the load
    before :meth:`verdict`, which raises first. Overlapping the two took ~40 ms off a 300-tree forest's
    first load, and the hashing of the members an ONNX or stored-tree load does not read (the Python
    payload, ~8 MiB of a 100-tree forest's capsule) off its start. A signed capsule's members are hashed
    before anything is parsed, and a hash check on record (the opt-in mapped path) is not repeated."""

    def __init__(self, reader: CapsuleReader, checks: _PassedChecks, public_key: Any) -> None:
        self._checks = checks
        self._pool: ThreadPoolExecutor | None = None
        self._hashed: Future[None] | None = None
        if checks.hashes_on_record():
            return
        if public_key is not None:
            reader.check_hashes()
            checks.record("hashes")
            return
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="capsule-hash")
        self._hashed = reader.check_hashes_async(self._pool)

    def __enter__(self) -> _Hashing:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def raise_if_altered(self, exc: CapsuleError) -> None:
        """A payload that was altered is reported as such, whatever broke first."""
        if self._hashed is not None:
            altered = self._hashed.exception()
            if altered is not None:
                raise altered from exc

    def verdict(self) -> None:
        """Wait for the hashes; raise :class:`~modelcapsule.errors.IntegrityError` for an altered member."""
        if self._hashed is not None:
            self._hashed.result()
            self._checks.record("hashes")
            self._hashed = None


class _PassedChecks:
    """The record of this capsule's checks that passed before (see :mod:`modelcapsule.core.checks_on_record`).

    The files' identity is taken when the capsule is opened, before any check runs, and a check is
    recorded only if the files are still exactly as they were then. A recorded hash check is reused only
    on the opt-in mapped path (``Limits(map_files=True)``); by default every member is hashed in the very
    buffer it is parsed from, so only the golden sample's record (which those hashes then vouch for) is
    reused."""

    def __init__(self, reader: CapsuleReader, cache: CheckCache | None, device: str | None) -> None:
        self._reader, self._cache = reader, cache
        self._packages = sorted(reader.manifest.environment.get("packages") or {})
        self._kinds = {"hashes": "hashes", "sample": f"sample:{device or ''}"}
        self._keys: dict[str, str | None] = {}
        self._stats: Stats = []
        if cache is not None:
            try:
                self._stats = reader.file_stats()
            except OSError:
                self._cache = None

    def _key(self, check: str) -> str | None:
        if check not in self._keys and self._cache is not None:
            self._keys[check] = self._cache.key(self._kinds[check], self._stats, self._reader.manifest_bytes,
                                                self._packages)
        return self._keys.get(check)

    def passed(self, check: str) -> bool:
        return self._cache is not None and self._cache.passed(self._key(check))

    def hashes_on_record(self) -> bool:
        """Whether a recorded hash check may stand for hashing now: only on the opt-in mapped path, whose
        assumption is that nobody writes the file in place (see :mod:`modelcapsule.core.exact_bytes`)."""
        return self._reader.mapped and self.passed("hashes")

    def record(self, check: str) -> None:
        if self._cache is None:
            return
        try:
            stats = self._reader.file_stats()
        except OSError:
            return
        self._cache.record(self._key(check), self._kinds[check], stats, self._reader.manifest_bytes, self._packages)


def _runtime_predictor(reader: CapsuleReader, manifest: Manifest, predictor: Predictor, runtime: str,
                       options: LoadOptions) -> Predictor:
    try:
        from .onnx.runtime import select_predictor
    except ImportError as exc:
        raise UnsupportedModelError(f"runtime={runtime!r} needs the onnx extra ({exc}).") from None
    chosen: Predictor = select_predictor(reader, manifest, predictor, runtime, options)
    return chosen


def framework_of(model: Any, manifest: Manifest) -> Framework | None:
    """The framework that recognises the loaded object itself; the manifest's ``framework`` must agree.

    What may be called on a model (its golden sample, the outputs a server offers) follows from the
    object that was actually built, never from what the manifest says it is. The declared outputs of
    the signature are checked here too, since a server calls them by name. An object no framework
    recognises (plain data) gives None: it loads, but nothing may be called on it."""
    try:
        framework = framework_for(model)
    except UnsupportedModelError as exc:
        if manifest.sample or (manifest.signature is not None and manifest.signature.outputs):
            raise CapsuleFormatError(
                f"the capsule's payload is a {excerpt(type(model).__qualname__, text=True)}, which no framework "
                f"can call, yet its manifest names methods to run; the manifest claims framework "
                f"{excerpt(manifest.framework)}."
            ) from exc
        return None
    if framework.name != manifest.framework:
        raise CapsuleFormatError(
            f"the manifest says framework {excerpt(manifest.framework)} but the payload is a {framework.name} "
            "model; refusing a capsule whose manifest misdescribes its model."
        )
    if manifest.signature is not None and manifest.signature.outputs:
        check_methods(framework, model, manifest.signature.output_names, "the signature")
    return framework


def sample_differences(reader: CapsuleReader, manifest: Manifest, framework: Any, model: Any) -> list[MethodCheck]:
    """Re-run the golden sample one method at a time (see :func:`modelcapsule.core.sample.verify_capsule_sample`)."""
    return verify_capsule_sample(reader, manifest.sample, manifest.signature, framework, model)


def _check_sample(reader: CapsuleReader, manifest: Manifest, framework: Framework | None, model: Any) -> None:
    for check in sample_differences(reader, manifest, framework, model):
        if check.difference is not None:
            raise VerificationError(check.method, check.difference) from check.error


def _load_plain(path: Path, options: LoadOptions) -> LoadedCapsule:
    fmt = format_for_file(path)
    details = {"member": "model/" + path.name}
    source = PlainFile(path, details["member"], options.limits)
    model, folded = construct(fmt, source, details, options, str(path))
    if folded:
        warn_drift(folded)
    signature = infer_signature({}, {})
    try:
        framework = framework_for(model)
    except UnsupportedModelError as exc:  # plain data (a dict of weights, say): loadable, not callable
        description: dict[str, Any] = {"framework": "none", "class": f"{type(model).__module__}."
                                       f"{type(model).__qualname__}"}
        predictor: Predictor = _NotCallable(signature, str(exc))
    else:
        description, predictor = framework.describe(model), framework.predictor(model, signature)
    manifest = Manifest(name=path.stem, created_at="", model=description,
                        format={"name": fmt.name, **details}, files={}, signature=None, environment={})
    return LoadedCapsule(model, manifest, predictor, path, folded)


class _NotCallable:
    """The predictor of a loaded object that no framework knows how to call."""

    def __init__(self, signature: Signature, reason: str) -> None:
        self._signature, self._reason = signature, reason

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, Any]:
        raise UnsupportedModelError(self._reason)


def load(
    path: str | os.PathLike[str],
    *,
    trusted: Iterable[str] | TrustPolicy = (),
    on_mismatch: OnMismatch = "warn",
    verify: bool = True,
    trust_code: bool = False,
    public_key: Any = None,
    device: str | None = None,
    limits: Limits | None = None,
    recheck: bool = False,
) -> Any:
    """Load the model in a capsule (or a plain ``.pkl``/``.joblib``/``.skops`` file) safely.

    Nothing outside the trust policy (the defaults plus ``trusted``) is imported or run: such names
    raise :class:`UntrustedTypesError` before anything is built. Every member's hash is checked; with
    ``public_key`` the signature and every hash are checked before anything is parsed. Environment
    drift is handled per ``on_mismatch``; ``verify`` re-runs the golden sample.

    A hash check or golden-sample run that already passed on this very file (same inode, size and
    change time, unchanged since) and, for the sample, under this very software is not repeated:
    see :mod:`modelcapsule.core.checks_on_record`. ``recheck=True`` runs every check regardless.
    """
    return load_capsule(path, trusted=trusted, on_mismatch=on_mismatch, verify=verify, trust_code=trust_code,
                        public_key=public_key, device=device, limits=limits, recheck=recheck).model



def inspect(path: str | os.PathLike[str]) -> Manifest:
    """The manifest of a capsule, read without touching the payload."""
    path = resolve_capsule_path(path)  # models:/NAME@ALIAS → a local, hash-checked copy
    with open_capsule(path) as reader:
        return reader.manifest
