"""The model card: everything a reviewer needs to decide on a model, built without loading it.

A card is read from the manifest and the capsule's plain-data members only (the evaluation JSON and
the golden sample's ``.npy`` arrays, read with ``allow_pickle=False``); every member it reads is
checked against its recorded SHA-256 first. Nothing the payload names is imported. The card is a
JSON-ready dict: the web page, the ``.json`` twin of that page and ``capsule card`` all render it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.container import open_capsule
from ..core.environment import compare_environment
from ..core.evaluation import read_evaluation
from ..core.manifest import Manifest, parse_manifest
from ..core.sample import plain, read_sample
from ..errors import CapsuleError
from ..security.policy import TrustPolicy
from .charts import evaluation_charts

__all__ = ["CARD_VERSION", "GOLDEN_ROWS", "build_card", "card_from_path", "metric_summary"]

CARD_VERSION = 1
GOLDEN_ROWS = 5
"""Rows of the golden sample shown on the card."""

_OWNER_KEYS = ("owner", "owners", "team", "contact", "maintainer", "maintainers")
_USE_KEYS = ("intended_use", "description", "purpose", "use")
_LIMIT_KEYS = ("limitations", "out_of_scope", "caveats")


def metric_summary(name: str, value: Any) -> dict[str, Any]:
    """One metric as the card shows it: a value, or the spread of its cross-validation folds."""
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        folds = [float(v) for v in value]
        return {"name": name, "kind": "folds", "n": len(folds), "mean": statistics.fmean(folds),
                "std": statistics.stdev(folds) if len(folds) > 1 else 0.0, "min": min(folds), "max": max(folds),
                "values": folds}
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
        return {"name": name, "kind": "value", "value": float(value)}
    return {"name": name, "kind": "other", "value": value}


def _pick(metadata: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if metadata.get(key) not in (None, "", []):
            return metadata[key]
    return None


def _environment(saved: Mapping[str, Any]) -> dict[str, Any]:
    drifts = {d.name: d.installed for d in compare_environment(saved)}
    packages = [{"name": name, "saved": str(version), "here": drifts.get(name, str(version)),
                 "drift": name in drifts}
                for name, version in sorted((saved.get("packages") or {}).items())]
    return {"python": saved.get("python"), "implementation": saved.get("implementation"),
            "platform": saved.get("platform"), "machine": saved.get("machine"),
            "python_drift": drifts.get("python"), "packages": packages,
            "drifted": sorted(drifts), "requirements": list(saved.get("requirements") or [])}


def _cell(value: Any) -> Any:
    value = plain(value)
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else str(value)
    return value if isinstance(value, (int, str, bool, type(None))) else str(value)


def _golden(reader: Any, section: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not section:
        return None
    members = [str(e["member"]) for e in _sample_entries(section)]
    reader.check_hashes(members)
    inputs, outputs = read_sample(reader, section)
    shown: dict[str, Any] = {}
    total = 0
    for name, value in inputs.items():
        if hasattr(value, "columns"):
            total = len(value)
            head = value.head(GOLDEN_ROWS)
            shown[name] = {"columns": [str(c) for c in head.columns],
                           "rows": [[_cell(v) for v in row] for row in head.itertuples(index=False)]}
        else:
            array = np.asarray(value)
            total = int(array.shape[0]) if array.ndim else 1
            rows = array[:GOLDEN_ROWS]
            shown[name] = {"columns": None,
                           "rows": [[_cell(v) for v in np.atleast_1d(r)] for r in rows]}
    outs = {m: [_cell(v) if np.ndim(v) == 0 else [_cell(x) for x in np.ravel(v)] for v in np.asarray(o)[:GOLDEN_ROWS]]
            for m, o in outputs.items()}
    return {"rows": total, "shown": min(total, GOLDEN_ROWS), "inputs": shown, "outputs": outs}


def _sample_entries(section: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    entries: list[Mapping[str, Any]] = []
    for entry in section.get("inputs", {}).values():
        entries.extend(entry.get("columns", [entry]) if entry.get("kind") == "dataframe" else [entry])
    entries.extend(section.get("outputs", {}).values())
    masks = [{"member": e["mask"]} for e in entries if "mask" in e]
    return entries + masks


def build_card(manifest: Manifest, *, evaluation: Mapping[str, Any] | None = None,
               golden: Mapping[str, Any] | None = None, registry: Mapping[str, Any] | None = None,
               problems: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The card of one capsule from its manifest and the plain data already read from it.

    ``registry`` adds what a registry knows (version number, digest, who registered it, aliases, tags);
    ``problems`` names sections that could not be read and why.
    """
    meta = dict(manifest.metadata)
    prov = manifest.provenance
    metrics = [metric_summary(str(k), v) for k, v in (prov.get("metrics") or {}).items()]
    missing: list[str] = []
    if evaluation is None:
        missing.append("evaluation: saved without evaluation=(X_val, y_val), so there are no evaluation charts")
    if not prov.get("training_data"):
        missing.append("training data fingerprint: saved without training_data=")
    if not metrics:
        missing.append("metrics: saved without metrics=")
    if golden is None:
        missing.append("golden sample: saved without sample=")
    if not prov.get("source"):
        missing.append("provenance: no training script recorded")
    policy = TrustPolicy()
    card: dict[str, Any] = {
        "card_version": CARD_VERSION,
        "name": manifest.name,
        "created_at": manifest.created_at,
        "capsule_version": manifest.capsule_version,
        "model": {"framework": manifest.framework, "class": manifest.model.get("class"),
                  "task": manifest.model.get("task"), "methods": manifest.model.get("methods", []),
                  "params": manifest.model.get("params", {})},
        "format": {"name": manifest.format_name, "version": manifest.format.get("version"),
                   "chosen_by": manifest.format.get("chosen_by")},
        "intended_use": _pick(meta, _USE_KEYS),
        "limitations": _pick(meta, _LIMIT_KEYS),
        "owners": _pick(meta, _OWNER_KEYS),
        "license": meta.get("license"),
        "tags": meta.get("tags") if isinstance(meta.get("tags"), (list, dict)) else None,
        "metadata": meta,
        "metrics": metrics,
        "evaluation": dict(evaluation) if evaluation is not None else None,
        "charts": evaluation_charts(evaluation) if evaluation is not None else [],
        "signature": None if manifest.signature is None else manifest.signature.to_dict(),
        "training_data": prov.get("training_data"),
        "environment": _environment(manifest.environment),
        "provenance": {"source": prov.get("source")},
        "audit": [{"name": n, "trusted_by_default": policy.admits(n)} for n in manifest.types],
        "golden_sample": dict(golden) if golden is not None else None,
        "onnx": manifest.onnx is not None,
        "files": [{"member": m, "size": f.size, "sha256": f.sha256} for m, f in sorted(manifest.files.items())],
        "registry": dict(registry) if registry is not None else None,
        "missing": missing,
        "problems": dict(problems or {}),
    }
    return card


def card_from_path(path: str | Path, *, registry: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Open a capsule (ZIP or directory), check the members the card reads, and build its card.

    A damaged evaluation or sample member does not hide the rest of the card: the section is marked
    as a problem instead. A damaged manifest raises, as every reader does.
    """
    problems: dict[str, str] = {}
    with open_capsule(path) as reader:
        manifest = reader.manifest
        evaluation = golden = None
        if manifest.evaluation:
            try:
                reader.check_hashes([str(manifest.evaluation.get("member", ""))])
                evaluation = read_evaluation(reader, manifest.evaluation)
            except CapsuleError as exc:
                problems["evaluation"] = str(exc)
        try:
            golden = _golden(reader, manifest.sample)
        except (CapsuleError, KeyError, ImportError) as exc:
            problems["golden_sample"] = str(exc)
    return build_card(manifest, evaluation=evaluation, golden=golden, registry=registry, problems=problems)


def card_from_manifest_bytes(raw: bytes) -> dict[str, Any]:
    """A card from ``capsule.json`` alone (no evaluation or sample): what a registry row can show."""
    return build_card(parse_manifest(raw))
