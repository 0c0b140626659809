"""save, load, inspect and verify: the public operations on capsules.

Loading always runs parse → audit → construct, in that order: the manifest and payload are parsed as
plain data, every name the payload would import is checked against the trust policy, and only then is
the object built. Member hashes are checked on a second thread while the payload is parsed and joined
before the model is handed back (or all of them first, when a signature is required).
"""

from __future__ import annotations

import datetime as _dt
import os
import pickle
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import environment, provenance
from .check_cache import CheckCache, Stats, check_cache
from .container import DEFAULT_LIMITS, CapsuleReader, CapsuleWriter, Limits, open_capsule
from .errors import (
    CapsuleError,
    CapsuleFormatError,
    EnvironmentMismatchError,
    PackageDrift,
    UnsupportedModelError,
    UntrustedCodeError,
    UntrustedTypesError,
    VerificationError,
    warn_drift,
)
from .formats import Format, LoadOptions, format_for_file, get_format
from .frameworks import framework_for, get_framework
from .manifest import Manifest
from .members import MemoryMembers, PlainFile
from .reproduce.redirect import redirected_target
from .sample import (
    compare_outputs,
    infer_signature,
    model_inputs,
    normalize_inputs,
    read_sample,
    write_sample,
)
from .trust import TrustPolicy
from .types import Predictor, Signature
from .validation import validate_model

__all__ = ["LoadedCapsule", "VerificationReport", "inspect", "load", "load_capsule", "save", "verify"]

OnMismatch = Literal["warn", "error", "ignore"]


# ----------------------------------------------------------------------------------------------- save


@dataclass
class _Payload:
    fmt: Format
    members: MemoryMembers
    details: dict[str, Any]
    types: list[str]


def _write_payload(fmt: Format, model: Any) -> _Payload:
    members = MemoryMembers()
    result = fmt.save(model, members)
    return _Payload(fmt, members, result.details, result.types)


def _round_trip(payload: _Payload, policy: TrustPolicy, framework: Any, inputs: Mapping[str, Any] | None,
                outputs: Mapping[str, Any]) -> str | None:
    """None if the payload loads back and reproduces the sample exactly; else why not."""
    options = LoadOptions(policy=policy)
    try:
        policy.check(payload.fmt.audit(payload.members, payload.details, options), "the saved model")
        clone = payload.fmt.load(payload.members, payload.details, options)
    except UntrustedTypesError as exc:
        return f"needs names outside the trust policy: {', '.join(exc.names)}"
    except CapsuleError as exc:
        return f"does not load back: {exc}"
    if inputs is None:
        return None
    for method, expected in outputs.items():
        try:
            got = framework.call(clone, method, model_inputs(inputs))
        except Exception as exc:
            return f"{method}() fails after reloading: {type(exc).__name__}: {exc}"
        if (diff := compare_outputs(expected, got, exact=True)) is not None:
            return f"{method}() differs after reloading ({diff.splitlines()[0]})"
    return None


def _choose_payload(model: Any, framework: Any, fmt_name: str, policy: TrustPolicy,
                    inputs: Mapping[str, Any] | None, outputs: Mapping[str, Any]) -> tuple[_Payload, dict[str, Any]]:
    if fmt_name != "auto":
        fmt = get_format(fmt_name)
        return _write_payload(fmt, model), {"chosen_by": "user"}
    passed_over: dict[str, str] = {}
    for name in framework.formats(model):
        try:
            fmt = get_format(name)
        except UnsupportedModelError:
            continue
        if fmt.runs_code or not fmt.supports(model):
            continue
        try:
            payload = _write_payload(fmt, model)
        except (TypeError, ValueError, AttributeError, NotImplementedError, RuntimeError,
                pickle.PicklingError) as exc:
            passed_over[name] = f"cannot write it: {type(exc).__name__}: {exc}"
            continue
        reason = _round_trip(payload, policy, framework, inputs, outputs)
        if reason is None:
            return payload, {"chosen_by": "auto", "passed_over": passed_over}
        passed_over[name] = reason
    lines = "\n".join(f"  - {n}: {r}" for n, r in passed_over.items())
    hint = ""
    if any("needs names outside the trust policy" in r for r in passed_over.values()):
        hint = ("\nIf you trust those types, pass trusted=[...] (the names listed) to save() and to load(). ")
    if any("lambda" in r or "local object" in r or "Can't pickle" in r or "Can't get" in r
           for r in passed_over.values()):
        hint += ("\nThe model holds code that only cloudpickle can store (a lambda or an interactively defined "
                 "function). If you accept that loading it will run that code, save with format='cloudpickle' "
                 "and load with trust_code=True.")
    raise UnsupportedModelError(f"no safe format reproduces this model:\n{lines}{hint}")


def save(
    model: Any,
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    sample: Any = None,
    training_data: Any = None,
    metrics: Mapping[str, Any] | None = None,
    source: str | os.PathLike[str] | bool | None = None,
    metadata: Mapping[str, Any] | None = None,
    name: str | None = None,
    onnx: bool = False,
    overwrite: bool = False,
    layout: Literal["zip", "dir"] = "zip",
    compress: bool = False,
    trusted: Iterable[str] = (),
) -> Manifest:
    """Save ``model`` into a capsule at ``path`` and return its manifest.

    ``format="auto"`` picks the safest format whose reloaded model reproduces ``sample`` exactly and
    records why safer ones were passed over. ``sample`` (rows of input) becomes the golden sample,
    stored with the outputs of every prediction method. ``training_data`` is fingerprinted, never
    stored. ``source`` is the training script (default: the calling script; False to leave it out).
    ``trusted`` names extra types the model holds (also needed later by ``load``). Saves are atomic.
    """
    target, overwrite = redirected_target(path, overwrite)  # `capsule retrain` sends the save elsewhere
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it.")
    framework = framework_for(model)
    policy = TrustPolicy(trusted)
    inputs = normalize_inputs(sample) if sample is not None else None
    outputs: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    if inputs is not None:
        for method in framework.methods(model):
            try:
                outputs[method] = framework.call(model, method, model_inputs(inputs))
            except Exception as exc:
                skipped[method] = f"{type(exc).__name__}: {exc}"
    payload, choice = _choose_payload(model, framework, format, policy, inputs, outputs)

    description = framework.describe(model)
    if skipped:
        description["skipped_methods"] = skipped
    modules = [t.split(".")[0] for t in payload.types] + framework.packages(model)
    script = source if source is None or isinstance(source, bool) else Path(source)
    source_entry, source_text = provenance.describe_source(script)
    prov: dict[str, Any] = {"metrics": provenance.json_metrics(metrics)}
    if source_entry is not None:
        prov["source"] = source_entry
    if training_data is not None:
        prov["training_data"] = provenance.fingerprint_data(training_data)
    classes = getattr(model, "classes_", None)
    manifest = Manifest(
        name=name or Path(path).name.split(".")[0],
        created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        model=description,
        format={"name": payload.fmt.name, **payload.details, **choice},
        files={},
        signature=infer_signature(inputs, outputs, classes) if inputs is not None else None,
        environment=environment.capture_environment(modules),
        provenance=prov,
        types=sorted(set(payload.types)),
        metadata=dict(metadata or {}),
    )
    with CapsuleWriter(target, layout=layout, overwrite=overwrite, compress=compress) as writer:
        for member, data in payload.members.members.items():
            writer.add(member, data)
        if inputs is not None:
            manifest.sample = write_sample(writer, inputs, outputs)
        if source_text is not None:
            writer.add(provenance.SOURCE_MEMBER, source_text)
        if onnx:
            manifest.onnx = _export_onnx(model, framework, inputs, outputs, writer)
        writer.finish(manifest)
    return manifest


def _export_onnx(model: Any, framework: Any, inputs: Mapping[str, Any] | None, outputs: Mapping[str, Any],
                 writer: CapsuleWriter) -> dict[str, Any]:
    try:
        from .onnx_export import export_to_capsule
    except ImportError as exc:
        raise UnsupportedModelError(
            f"ONNX export needs the onnx extra: pip install 'modelcapsule[onnx]' ({exc})."
        ) from None
    section: dict[str, Any] = export_to_capsule(model, framework, inputs, outputs, writer)
    return section


# ----------------------------------------------------------------------------------------------- load


@dataclass
class LoadedCapsule:
    """A loaded capsule: the model, its manifest, the Predictor the server calls, and what load found."""

    model: Any
    manifest: Manifest
    predictor: Predictor
    path: Path
    drift: list[PackageDrift] = field(default_factory=list)


def _policy_for(trusted: Iterable[str] | TrustPolicy) -> TrustPolicy:
    return trusted if isinstance(trusted, TrustPolicy) else TrustPolicy(trusted)


def _apply_drift_policy(drifts: Sequence[PackageDrift], on_mismatch: OnMismatch) -> None:
    if on_mismatch not in ("warn", "error", "ignore"):
        raise ValueError(f"on_mismatch must be 'warn', 'error' or 'ignore', not {on_mismatch!r}")
    if not drifts or on_mismatch == "ignore":
        return
    if on_mismatch == "error":
        raise EnvironmentMismatchError(drifts)
    warn_drift(drifts)


def _construct(fmt: Format, source: Any, details: dict[str, Any], options: LoadOptions, what: str) -> tuple[
        Any, list[PackageDrift]]:
    """Audit, then construct; scikit-learn's version warnings are folded into drift entries."""
    if fmt.runs_code and not options.trust_code:
        raise UntrustedCodeError(fmt.name, what)
    options.policy.check(fmt.audit(source, details, options), what)
    folded: list[PackageDrift] = []
    with warnings.catch_warnings(record=True) as caught:
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
    """Load a capsule (or a plain model file) with every check; see :func:`load`."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no capsule or model file at {p}")
    options = LoadOptions(policy=_policy_for(trusted), trust_code=trust_code, limits=limits or DEFAULT_LIMITS,
                          device=device)
    if not _is_capsule(p):
        if public_key is not None:
            raise CapsuleFormatError(f"{p.name} is a plain model file; only capsules carry signatures.")
        return _load_plain(p, options)
    with open_capsule(p, options.limits) as reader:
        return _load_from_reader(reader, options, on_mismatch=on_mismatch, verify=verify, public_key=public_key,
                                 runtime=runtime, recheck=recheck)


def _load_from_reader(reader: CapsuleReader, options: LoadOptions, *, on_mismatch: OnMismatch, verify: bool,
                      public_key: Any, runtime: str, recheck: bool = False) -> LoadedCapsule:
    manifest = reader.manifest
    what = str(reader.path)
    checks = _PassedChecks(reader, None if recheck else check_cache(), options.device)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="capsule-hash")
    try:
        if public_key is not None:
            from .signing import check_signature

            check_signature(reader, public_key)
        if checks.passed("hashes"):
            hashed = None
        elif public_key is not None:
            reader.check_hashes()
            checks.record("hashes")
            hashed = None
        else:
            hashed = reader.check_hashes_async(pool)
        drifts = environment.compare_environment(manifest.environment)
        if on_mismatch == "error":
            _apply_drift_policy(drifts, on_mismatch)
        fmt = get_format(manifest.format_name)
        framework = get_framework(manifest.framework)
        try:
            model, folded = _construct(fmt, reader, dict(manifest.format), options, what)
        except CapsuleError as exc:
            if hashed is not None:  # a payload that was altered is reported as such, whatever broke first
                hashed_error = hashed.exception()
                if hashed_error is not None:
                    raise hashed_error from exc
            raise
        if hashed is not None:
            hashed.result()
            checks.record("hashes")
    finally:
        pool.shutdown(wait=True)
    drifts += [d for d in folded if d.name not in {x.name for x in drifts}]
    _apply_drift_policy(drifts, on_mismatch)
    if verify and manifest.sample and not checks.passed("sample"):
        _check_sample(reader, manifest, framework, model)
        checks.record("sample")
    signature = manifest.signature or infer_signature({}, {})
    predictor = framework.predictor(model, signature)
    if runtime != "python":
        predictor = _runtime_predictor(reader, manifest, predictor, runtime, options)
    return LoadedCapsule(model, manifest, predictor, reader.path, list(drifts))


class _PassedChecks:
    """The record of this capsule's checks that passed before (see :mod:`modelcapsule.check_cache`).

    The files' identity is taken when the capsule is opened, before any check runs, and a check is
    recorded only if the files are still exactly as they were then."""

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
        from .onnx_runtime import select_predictor
    except ImportError as exc:
        raise UnsupportedModelError(f"runtime={runtime!r} needs the onnx extra ({exc}).") from None
    chosen: Predictor = select_predictor(reader, manifest, predictor, runtime, options)
    return chosen


def _sample_differences(reader: CapsuleReader, manifest: Manifest, framework: Any,
                        model: Any) -> Iterator[tuple[str, str | None, Exception | None]]:
    """Re-run the golden sample one method at a time: ``(method, difference or None, error raised)``."""
    assert manifest.sample is not None
    inputs, outputs = read_sample(reader, manifest.sample)
    for method, expected in outputs.items():
        try:
            got = framework.call(model, method, model_inputs(inputs))
        except Exception as exc:
            yield method, f"calling it raised {type(exc).__name__}: {exc}", exc
            continue
        yield method, compare_outputs(expected, got), None


def _check_sample(reader: CapsuleReader, manifest: Manifest, framework: Any, model: Any) -> None:
    for method, diff, error in _sample_differences(reader, manifest, framework, model):
        if diff is not None:
            raise VerificationError(method, diff) from error


def _load_plain(path: Path, options: LoadOptions) -> LoadedCapsule:
    fmt = format_for_file(path)
    details = {"member": "model/" + path.name}
    source = PlainFile(path, details["member"], options.limits)
    model, folded = _construct(fmt, source, details, options, str(path))
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
    see :mod:`modelcapsule.check_cache`. ``recheck=True`` runs every check regardless.
    """
    return load_capsule(path, trusted=trusted, on_mismatch=on_mismatch, verify=verify, trust_code=trust_code,
                        public_key=public_key, device=device, limits=limits, recheck=recheck).model


# ------------------------------------------------------------------------------------ inspect, verify


def inspect(path: str | os.PathLike[str]) -> Manifest:
    """The manifest of a capsule, read without touching the payload."""
    with open_capsule(path) as reader:
        return reader.manifest


@dataclass
class VerificationReport:
    """What ``verify`` checked: hashes, signature, environment drift, golden sample."""

    path: str
    hashes: str = "not checked"
    signature: str = "absent"
    drift: list[PackageDrift] = field(default_factory=list)
    sample: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed (drift alone is reported, not a failure)."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "hashes": self.hashes, "signature": self.signature,
                "drift": [{"package": d.name, "saved": d.saved, "installed": d.installed} for d in self.drift],
                "sample": self.sample, "problems": self.problems}


def verify(path: str | os.PathLike[str], *, trusted: Iterable[str] | TrustPolicy = (), public_key: Any = None,
           trust_code: bool = False, limits: Limits | None = None) -> VerificationReport:
    """Check a capsule without raising: hashes, signature, drift and golden sample, all reported."""
    report = VerificationReport(str(path))
    options = LoadOptions(policy=_policy_for(trusted), trust_code=trust_code, limits=limits or DEFAULT_LIMITS)
    try:
        reader = open_capsule(path, options.limits)
    except (CapsuleError, OSError) as exc:
        report.problems.append(str(exc))
        return report
    with reader:
        manifest = reader.manifest
        report.drift = environment.compare_environment(manifest.environment)
        if public_key is not None or "capsule.sig" in reader:
            report.signature = "present, not checked (pass a public key)" if public_key is None else "valid"
            if public_key is not None:
                from .signing import check_signature

                try:
                    check_signature(reader, public_key)
                except CapsuleError as exc:
                    report.signature = "invalid"
                    report.problems.append(str(exc))
                    return report
        try:
            reader.check_hashes()
            report.hashes = f"ok ({len(manifest.files)} members)"
        except CapsuleError as exc:
            report.hashes = "mismatch"
            report.problems.append(str(exc))
            return report
        try:
            fmt = get_format(manifest.format_name)
            framework = get_framework(manifest.framework)
            model, folded = _construct(fmt, reader, dict(manifest.format), options, str(path))
        except CapsuleError as exc:
            report.problems.append(str(exc))
            return report
        report.drift += [d for d in folded if d.name not in {x.name for x in report.drift}]
        if not manifest.sample:
            report.sample["-"] = "no golden sample stored"
            return report
        for method, diff, _error in _sample_differences(reader, manifest, framework, model):
            report.sample[method] = "ok" if diff is None else "differs"
            if diff is not None:
                report.problems.append(f"{method}(): {diff}")
    return report
