"""The model card as Markdown with Hugging Face YAML front matter (``capsule card -o README.md``).

The front matter carries ``library_name``, ``tags``, ``license`` (only when the metadata gives one)
and ``model-index`` with the metrics and the fingerprint of the data they were measured on. Charts
are given as their numbers (Markdown cannot run the page's chart library). Plain Python, no template
engine, so ``capsule card`` needs no optional dependency.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["card_markdown", "front_matter"]

_LIBRARY = {"sklearn": "sklearn", "scikit-learn": "sklearn", "torch": "pytorch", "pytorch": "pytorch",
            "keras": "keras", "xgboost": "xgboost", "lightgbm": "lightgbm", "onnx": "onnx"}
_MAX_TABLE_ROWS = 25


def _yaml(value: Any, indent: int = 0) -> list[str]:
    """Block-style YAML whose scalars are JSON (valid YAML 1.2), so no string needs YAML escaping."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, (Mapping, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(_yaml(item, indent + (0 if isinstance(item, list) else 2)))
            else:
                lines.append(f"{pad}{key}: {json.dumps(item, ensure_ascii=False)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (Mapping, list)) and item:
                sub = _yaml(item, indent + 2)
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {json.dumps(item, ensure_ascii=False)}")
    return lines


def _task_type(card: Mapping[str, Any]) -> str:
    task = str(card["model"].get("task") or "other")
    tabular = card.get("signature") and any(i.get("columns") or len(i.get("shape", [])) == 2
                                           for i in card["signature"]["inputs"])
    if tabular and task in ("classification", "regression"):
        return f"tabular-{task}"
    return task


def _metric_entries(metrics: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in metrics:
        if m["kind"] == "folds":
            out.append({"type": m["name"], "value": round(m["mean"], 6),
                        "name": f"{m['name']} (mean of {m['n']} folds, std {m['std']:.4f})"})
        elif m["kind"] == "value":
            out.append({"type": m["name"], "value": round(m["value"], 6), "name": m["name"]})
    return out


def front_matter(card: Mapping[str, Any]) -> dict[str, Any]:
    """The Hugging Face metadata of the card, as a dict (rendered as YAML by :func:`card_markdown`)."""
    framework = str(card["model"].get("framework") or "")
    tags = ["modelcapsule", framework, str(card["model"].get("task") or "")]
    extra = card.get("tags")
    tags += [str(t) for t in extra] if isinstance(extra, list) else [f"{k}:{v}" for k, v in (extra or {}).items()]
    fm: dict[str, Any] = {"library_name": _LIBRARY.get(framework, framework or "other"),
                          "tags": list(dict.fromkeys(t for t in tags if t))}
    if card.get("license"):
        fm["license"] = str(card["license"])
    task = {"type": _task_type(card), "name": str(card["model"].get("task") or "")}
    results = []
    evaluation = card.get("evaluation")
    if evaluation and evaluation.get("metrics"):
        data = evaluation.get("data") or {}
        results.append({"task": task, "dataset": {
            "name": "validation data", "type": "tabular", "revision": data.get("fingerprint", "unknown"),
            "split": f"{evaluation.get('n_samples')} rows"},
            "metrics": _metric_entries([{"name": k, "kind": "value", "value": v}
                                        for k, v in evaluation["metrics"].items()])})
    trained = card.get("training_data") or {}
    if metrics := _metric_entries(card.get("metrics") or []):
        results.append({"task": task, "dataset": {
            "name": "training data (cross-validation)", "type": "tabular",
            "revision": trained.get("fingerprint", "unknown")}, "metrics": metrics})
    if results:
        fm["model-index"] = [{"name": card["name"], "results": results}]
    return fm


def _esc(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(columns: Sequence[Any], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_esc(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_esc(c) for c in row) + " |" for row in rows[:_MAX_TABLE_ROWS]]
    if len(rows) > _MAX_TABLE_ROWS:
        lines.append(f"\n({len(rows) - _MAX_TABLE_ROWS} more rows in the card's JSON.)")
    return lines


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else _esc(x)


def card_markdown(card: Mapping[str, Any]) -> str:
    """The whole card as Markdown, front matter first."""
    model = card["model"]
    out = ["---", *_yaml(front_matter(card)), "---", "", f"# {card['name']}", ""]
    out.append(f"A {model.get('task') or 'model'} model: `{model.get('class')}` ({model.get('framework')}), "
               f"saved {card['created_at']} in the `{card['format']['name']}` format.")
    if reg := card.get("registry"):
        out.append(f"Registry: version {reg.get('version')} of `{reg.get('name')}`, digest `{reg.get('digest')}`"
                   + (f", aliases {', '.join(reg.get('aliases') or [])}" if reg.get("aliases") else "") + ".")
    out += ["", "## Intended use", "", _esc(card.get("intended_use") or "Not stated (metadata has no intended_use).")]
    if card.get("limitations"):
        out += ["", f"Limitations: {_esc(card['limitations'])}"]
    if card.get("owners"):
        out += ["", f"Owners: {_esc(card['owners'])}"]
    out += ["", "## Metrics", ""]
    if card["metrics"]:
        rows = [[m["name"], _fmt(m["mean"]), _fmt(m["std"]), _fmt(m["min"]), _fmt(m["max"]), m["n"]]
                if m["kind"] == "folds" else [m["name"], _fmt(m.get("value")), "", "", "", 1] for m in card["metrics"]]
        out += _table(["metric", "mean", "std", "min", "max", "folds"], rows)
    else:
        out.append("No metrics were recorded.")
    out += ["", "## Evaluation", ""]
    evaluation = card.get("evaluation")
    if evaluation:
        data = evaluation.get("data") or {}
        out.append(f"On {evaluation['n_samples']} held-out rows (fingerprint `{data.get('fingerprint')}`).")
        out += ["", *_table(["metric", "value"], [[k, _fmt(v)] for k, v in evaluation.get("metrics", {}).items()])]
        for chart in card.get("charts", []):
            out += ["", f"### {chart['title']}", "", chart["summary"]]
            rows = chart["table"]["rows"]
            if len(rows) <= _MAX_TABLE_ROWS:  # curves and scatter points stay in the JSON card
                out += ["", *_table(chart["table"]["columns"], rows)]
    else:
        out.append("No evaluation was stored (save with `evaluation=(X_val, y_val)`).")
    out += ["", "## Parameters", "", *_table(["parameter", "value"], sorted(
        [[k, v] for k, v in (model.get("params") or {}).items()]))]
    out += ["", "## Signature", ""]
    sig = card.get("signature")
    if sig:
        for spec in sig["inputs"]:
            cols = spec.get("columns")
            names = ", ".join(f"`{c['name']}` ({c['dtype']})" for c in cols) if cols else ""
            out.append(f"- input `{spec['name']}`: {spec['dtype']} {spec['shape']}"
                       + (f"; columns {names}" if names else ""))
        out += [f"- output `{s['name']}`: {s['dtype']} {s['shape']}" for s in sig["outputs"]]
        if sig.get("classes") is not None:
            out.append(f"- classes: {', '.join(map(str, sig['classes']))}")
    else:
        out.append("No signature (saved without a sample).")
    out += ["", "## Training data", ""]
    td = card.get("training_data")
    out.append(f"Fingerprint `{td.get('fingerprint')}`: {td.get('n_samples')} rows × {td.get('n_features')} "
               "features (the data itself is not stored)."
               if td else "Not fingerprinted (saved without training_data=).")
    env = card["environment"]
    out += ["", "## Environment", "", f"Python {env.get('python')} ({env.get('implementation')}) on "
            f"{env.get('platform')} {env.get('machine')}.", ""]
    out += _table(["package", "saved", "here"], [[p["name"], p["saved"], p["here"] or "not installed"]
                                                 for p in env["packages"]])
    if env["drifted"]:
        out += ["", f"Differs here: {', '.join(env['drifted'])}."]
    out += ["", "## Provenance", ""]
    src = (card.get("provenance") or {}).get("source")
    out.append(f"Training script `{src.get('path')}`, sha256 `{src.get('sha256')}`"
               + (f", git commit `{src['git_commit']}`" if src.get("git_commit") else "") + "."
               if src else "No training script recorded.")
    out += ["", "## Audit", "", "Every name the payload imports when loaded:", ""]
    out += [f"- `{a['name']}`" + ("" if a["trusted_by_default"] else " (not in the default trust policy)")
            for a in card["audit"]] or ["- (none)"]
    out += ["", "## Golden sample", ""]
    golden = card.get("golden_sample")
    if golden:
        out.append(f"{golden['shown']} of {golden['rows']} stored rows; `capsule verify` re-runs them all.")
        for name, table in golden["inputs"].items():
            cols = table["columns"] or [f"{name}[{i}]" for i in range(len(table["rows"][0]) if table["rows"] else 0)]
            outs = list(golden["outputs"])
            rows = [[*r, *(_esc(golden["outputs"][m][i]) for m in outs)] for i, r in enumerate(table["rows"])]
            out += ["", *_table([*cols, *outs], rows)]
    else:
        out.append("No golden sample stored.")
    if card.get("missing"):
        out += ["", "## Missing from this capsule", "", *[f"- {m}" for m in card["missing"]]]
    if card.get("problems"):
        out += ["", "## Problems reading this capsule", "", *[f"- {k}: {v}" for k, v in card["problems"].items()]]
    out += ["", "---", "", "Card written by [modelcapsule](https://pypi.org/project/modelcapsule/) from the capsule's "
            "manifest; nothing was loaded."]
    return "\n".join(out) + "\n"
