"""save: a model into a capsule, in the safest format that reproduces its golden sample.

``format="auto"`` tries the framework's formats from safest to least safe, writes each, loads it back
through the same restricted readers a later load uses, and keeps the first that reproduces the sample
exactly. The capsule is written atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import datetime as _dt
import os
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .core import environment, provenance
from .core.container import CapsuleWriter
from .core.evaluation import evaluate, write_evaluation
from .core.manifest import Manifest
from .core.members import MemoryMembers
from .core.sample import compare_sample, describe_error, infer_signature, normalize_inputs, record_outputs, write_sample
from .core.save_redirect import redirected_target
from .errors import (
    CapsuleError,
    UnsupportedModelError,
    UntrustedTypesError,
)
from .formats import Format, LoadOptions, get_format
from .frameworks import framework_for
from .security.policy import TrustPolicy
from .types import Signature

__all__ = ["save"]



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
    try:
        checks = compare_sample(framework, clone, inputs, outputs, exact=True)
    except CapsuleError as exc:
        return f"the reloaded model cannot be checked: {exc}"
    for check in checks:
        if check.error is not None:
            return f"{check.method}() fails after reloading: {describe_error(check.error)}"
        if check.difference is not None:
            return f"{check.method}() differs after reloading ({check.difference.splitlines()[0]})"
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
    evaluation: Any = None,
    signature: Signature | None = None,
    extra_provenance: Mapping[str, Any] | None = None,
    requirements: Iterable[str] | None = None,
) -> Manifest:
    """Save ``model`` into a capsule at ``path`` and return its manifest.

    ``format="auto"`` picks the safest format whose reloaded model reproduces ``sample`` exactly and
    records why safer ones were passed over. ``sample`` (rows of input) becomes the golden sample,
    stored with the outputs of every prediction method. ``training_data`` is fingerprinted, never
    stored. ``source`` is the training script (default: the calling script; False to leave it out).
    ``trusted`` names extra types the model holds (also needed later by ``load``). ``evaluation=(X_val,
    y_val)`` stores a compact evaluation (metrics, curves, never the inputs) for the model card. Saves
    are atomic.

    For models brought from another tool (MLflow): ``signature`` is recorded instead of the one inferred
    from the sample, ``extra_provenance`` adds entries to the manifest's provenance (``{"mlflow": {...}}``), and
    ``requirements`` (``name==version`` pins) replaces the environment's captured requirements.
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
        outputs, skipped = record_outputs(framework, model, inputs)
    payload, choice = _choose_payload(model, framework, format, policy, inputs, outputs)

    description = framework.describe(model)
    if skipped:
        description["skipped_methods"] = skipped
    modules = [t.split(".")[0] for t in payload.types] + framework.packages(model)
    script = source if source is None or isinstance(source, bool) else Path(source)
    source_entry, source_text = provenance.describe_source(script)
    prov: dict[str, Any] = {**dict(extra_provenance or {}), "metrics": provenance.json_metrics(metrics)}
    if source_entry is not None:
        prov["source"] = source_entry
    if training_data is not None:
        prov["training_data"] = provenance.fingerprint_data(training_data)
    classes = getattr(model, "classes_", None)
    env = environment.capture_environment(modules)
    if requirements is not None:
        env["requirements"] = sorted(str(r) for r in requirements)
    report = None if evaluation is None else evaluate(
        lambda method, x: framework.call(model, method, x), framework.methods(model),
        str(description.get("task", "")), evaluation, classes)
    manifest = Manifest(
        name=name or Path(path).name.split(".")[0],
        created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        model=description,
        format={"name": payload.fmt.name, **payload.details, **choice},
        files={},
        signature=signature if signature is not None or inputs is None else infer_signature(inputs, outputs, classes),
        environment=env,
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
        if report is not None:
            manifest.evaluation = write_evaluation(writer, report)
        if onnx:
            manifest.onnx = _export_onnx(model, framework, inputs, outputs, writer)
        if framework.name == "sklearn":
            manifest.trees = _store_trees(model, framework, inputs, writer)
        writer.finish(manifest)
    return manifest


def _export_onnx(model: Any, framework: Any, inputs: Mapping[str, Any] | None, outputs: Mapping[str, Any],
                 writer: CapsuleWriter) -> dict[str, Any]:
    try:
        from .onnx.export import export_to_capsule
    except ImportError as exc:
        raise UnsupportedModelError(
            f"ONNX export needs the onnx extra: pip install 'modelcapsule[onnx]' ({exc})."
        ) from None
    section: dict[str, Any] = export_to_capsule(model, framework, inputs, outputs, writer)
    return section




def _store_trees(model: Any, framework: Any, inputs: Mapping[str, Any] | None,
                 writer: CapsuleWriter) -> dict[str, Any] | None:
    """The stored flat trees of a supported tree ensemble, proven bit-identical first (else None)."""
    from .frameworks.sklearn_trees import family

    if family(model) is None:
        return None
    from .frameworks.tree_export import export_trees

    stored = export_trees(model, framework.call, list(framework.methods(model)), inputs)
    if stored is None:
        return None
    section, members = stored
    for member, data in members.items():
        writer.add(member, data)
    return section
