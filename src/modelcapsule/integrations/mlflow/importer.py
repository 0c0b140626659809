"""``import_mlflow``: an MLflow model (a directory, ``runs:/…`` or ``models:/…``) becomes a capsule.

The payload is loaded only through modelcapsule's restricted readers (:mod:`.payload`) under
modelcapsule's trust policy plus ``trusted``; any trust list the MLflow model carries is ignored and
reported. What MLflow knew about the model is carried over: its signature, its input example as the
golden sample (outputs computed here, by the loaded model), its pinned requirements, the run, experiment
and source as provenance, and the run's metrics when a tracking server is reachable.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ...core.manifest import Manifest
from ...load import load_capsule
from ...save import save
from ...security.policy import TrustPolicy
from ...types import Signature
from .environment import read_pins
from .mlmodel import MLModel, read_mlmodel
from .payload import inside, load_payload
from .pyfunc import FLAVOR as CAPSULE_FLAVOR
from .schema import capsule_signature, read_example
from .tracking import locate, run_record

__all__ = ["ImportReport", "import_mlflow"]


@dataclass
class ImportReport:
    """What :func:`import_mlflow` wrote and everything it carried over, left behind or ignored."""

    path: Path
    manifest: Manifest
    flavor: str
    payload: str
    reader: str
    ignored_trust_lists: dict[str, list[str]] = field(default_factory=dict)
    ignored_code_paths: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    left_behind: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "name": self.manifest.name, "flavor": self.flavor, "payload": self.payload,
            "read_as": self.reader, "format": self.manifest.format_name,
            "golden_sample": self.manifest.sample is not None,
            "signature": None if self.manifest.signature is None else self.manifest.signature.to_dict(),
            "ignored_trust_lists": self.ignored_trust_lists, "ignored_code_paths": self.ignored_code_paths,
            "requirements": self.requirements, "left_behind": self.left_behind, "metrics": self.metrics,
            "provenance": self.manifest.provenance.get("mlflow", {}), "notes": self.notes,
        }


def _without_credentials(uri: str | None) -> str | None:
    """A tracking URI fit to be written into a manifest: any ``user:password@`` part removed."""
    return None if uri is None else re.sub(r"(?<=://)[^/@]*@", "", uri)


def _signature_note(mlflow_sig: Signature | None, recorded: Signature | None) -> str | None:
    if mlflow_sig is None or recorded is None:
        return None
    ours = [(t.name, t.dtype, t.columns) for t in recorded.inputs]
    theirs = [(t.name, t.dtype, t.columns) for t in mlflow_sig.inputs]
    if ours != theirs:
        return ("the inputs inferred from the input example differ from MLflow's signature "
                f"({theirs} in MLflow); the capsule records what the model was checked with")
    return None


def _extract_capsule(mlmodel: MLModel, policy: TrustPolicy, out: Path, notes: list[str]) -> ImportReport:
    """The capsule inside an MLflow model written by :func:`~.pyfunc.save_model`, loaded with every check
    (hashes, trust policy, golden sample) and then copied unchanged, atomically, to ``out``."""
    source = inside(mlmodel, mlmodel.flavors[CAPSULE_FLAVOR].get("capsule"), "capsule")
    loaded = load_capsule(source, trusted=policy)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.importing")
    if staging.is_dir():
        shutil.rmtree(staging)
    else:
        staging.unlink(missing_ok=True)
    if source.is_dir():
        shutil.copytree(source, staging)
        if out.is_dir():
            shutil.rmtree(out)
    else:
        shutil.copyfile(source, staging)
    os.replace(staging, out)
    notes = [*notes, "the MLflow model wraps a capsule: extracted unchanged after every load check"]
    return ImportReport(path=out, manifest=loaded.manifest, flavor=CAPSULE_FLAVOR, payload=source.name,
                        reader="capsule", notes=notes)


def import_mlflow(
    uri: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    trusted: Iterable[str] = (),
    tracking_uri: str | None = None,
    name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    format: str = "auto",
    overwrite: bool = False,
    layout: Literal["zip", "dir"] = "zip",
) -> ImportReport:
    """Turn the MLflow model at ``uri`` into a capsule at ``out`` and report what was carried over.

    ``uri`` is a local MLflow model directory, ``runs:/RUN_ID/PATH``, ``models:/NAME/VERSION`` or
    ``models:/NAME@ALIAS`` (the last three read from ``tracking_uri``, default ``$MLFLOW_TRACKING_URI``).
    The payload is read only by modelcapsule's restricted readers; names outside the default trust policy
    must be listed in ``trusted``: trust lists inside the MLflow model are ignored. Raises
    :class:`~modelcapsule.UntrustedTypesError` (nothing imported, nothing run) when the payload needs
    names not trusted, or holds code.
    """
    policy = TrustPolicy(trusted)  # malformed names are refused before anything is read
    if Path(out).exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it.")
    with tempfile.TemporaryDirectory(prefix="capsule-mlflow-") as workdir:
        located = locate(str(uri), tracking_uri, Path(workdir))
        mlmodel = read_mlmodel(located.directory)
        if CAPSULE_FLAVOR in mlmodel.flavors:  # a capsule wrapped by save_model/log_model: extracted as is
            return _extract_capsule(mlmodel, policy, Path(out), located.notes)
        mlflow_sig = capsule_signature(mlmodel.signature)
        payload = load_payload(mlmodel, policy)
        sample, no_sample = read_example(located.directory, mlmodel.example_info, mlflow_sig)
        pins = read_pins(located.directory)
        notes = list(located.notes)
        if no_sample:
            notes.append(f"no golden sample: {no_sample}")
        run_id = located.run_id or mlmodel.run_id
        run: dict[str, Any] | None = None
        metrics: dict[str, float] = {}
        if run_id and (tracking_uri is not None or located.run_id is not None):
            try:
                run, metrics = run_record(tracking_uri, run_id)
            except Exception as exc:  # the server may be gone or the run deleted: the model still imports
                notes.append(f"run {run_id} could not be read from the tracking server: {type(exc).__name__}: {exc}")
        elif run_id:
            notes.append(f"logged by run {run_id}; pass a tracking URI to carry its metrics and experiment")
        record: dict[str, Any] = {k: v for k, v in {
            "model_uri": str(uri), "tracking_uri": _without_credentials(tracking_uri), "run_id": run_id,
            "run": run, "registered_model": located.registered, "model_id": mlmodel.model_id,
            "model_uuid": mlmodel.model_uuid, "mlflow_version": mlmodel.mlflow_version,
            "created": mlmodel.created, "flavor": payload.flavor, "payload": payload.file,
            "serialization": payload.serialization, "signature": mlmodel.signature, "python": pins.python,
            "environment_files": pins.files, "ignored_trust_lists": mlmodel.ignored_trust_lists() or None,
            "ignored_code_paths": mlmodel.code_paths() or None,
        }.items() if v is not None}
        default_name = (located.registered or {}).get("name") or Path(str(uri).rstrip("/")).name or "model"
        manifest = save(
            payload.model, out, format=format, sample=sample, metrics=metrics or None, source=False,
            metadata={**mlmodel.metadata, **dict(metadata or {})}, name=name or str(default_name),
            overwrite=overwrite, layout=layout,
            trusted=sorted(policy.extra), signature=mlflow_sig if sample is None else None,
            extra_provenance={"mlflow": record}, requirements=pins.requirements or None,
        )
    if (note := _signature_note(mlflow_sig, manifest.signature)) is not None:
        notes.append(note)
    return ImportReport(
        path=Path(out), manifest=manifest, flavor=payload.flavor, payload=payload.file, reader=payload.reader,
        ignored_trust_lists=mlmodel.ignored_trust_lists(), ignored_code_paths=mlmodel.code_paths(),
        requirements=pins.requirements, left_behind=pins.left_behind, metrics=metrics, notes=notes,
    )
