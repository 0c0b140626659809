"""Two versions side by side: metrics, parameters, environment and data, with the differences marked.

A reviewer deciding on a promotion reads this page top to bottom: which numbers moved (and by how
much against the spread of the cross-validation folds), which parameters changed, whether the
training data or the environment changed under the model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["compare_cards"]


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _row(key: str, a: Any, b: Any, **extra: Any) -> dict[str, Any]:
    return {"key": key, "a": _text(a), "b": _text(b), "differs": a != b, **extra}


def _short(value: Any) -> Any:
    """A hash cut to 12 hex digits (enough to tell two apart on a page; the JSON cards hold them whole)."""
    return value.split(":")[-1][:12] if isinstance(value, str) else value


def _metrics(card: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for m in card.get("metrics") or []:
        if m["kind"] == "folds":
            out[m["name"]] = {"value": m["mean"], "std": m["std"]}
        elif m["kind"] == "value":
            out[m["name"]] = {"value": m["value"], "std": None}
    for name, value in ((card.get("evaluation") or {}).get("metrics") or {}).items():
        out.setdefault(f"validation {name}", {"value": value, "std": None})
    return out


def compare_cards(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Sections of rows ``{key, a, b, differs}``; metric rows also carry ``delta`` (b − a) and whether the
    change is larger than the folds' spread (``beyond_spread``)."""
    ma, mb = _metrics(a), _metrics(b)
    metrics = []
    for name in sorted(set(ma) | set(mb)):
        va, vb = (ma.get(name) or {}).get("value"), (mb.get(name) or {}).get("value")
        delta = vb - va if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else None
        spread = max((s for s in ((ma.get(name) or {}).get("std"), (mb.get(name) or {}).get("std")) if s), default=None)
        metrics.append(_row(name, va, vb, delta=delta,
                            beyond_spread=None if delta is None or spread is None else abs(delta) > spread))
    pa, pb = a["model"].get("params") or {}, b["model"].get("params") or {}
    params = [_row(k, pa.get(k), pb.get(k)) for k in sorted(set(pa) | set(pb))]
    envs = {}
    for side, card in (("a", a), ("b", b)):
        env = card["environment"]
        envs[side] = {"python": env.get("python"), **{p["name"]: p["saved"] for p in env["packages"]}}
    environment = [_row(k, envs["a"].get(k), envs["b"].get(k)) for k in ["python", *sorted(
        (set(envs["a"]) | set(envs["b"])) - {"python"})]]
    ta, tb = a.get("training_data") or {}, b.get("training_data") or {}
    ea, eb = (a.get("evaluation") or {}).get("data") or {}, (b.get("evaluation") or {}).get("data") or {}
    sa, sb = (a.get("provenance") or {}).get("source") or {}, (b.get("provenance") or {}).get("source") or {}
    model = [
        _row("class", a["model"].get("class"), b["model"].get("class")),
        _row("format", a["format"]["name"], b["format"]["name"]),
        {**_row("saved", a.get("created_at"), b.get("created_at")), "differs": False},  # always differs: no news
        _row("training data", _short(ta.get("fingerprint")), _short(tb.get("fingerprint"))),
        _row("training rows", ta.get("n_samples"), tb.get("n_samples")),
        _row("validation data", _short(ea.get("fingerprint")), _short(eb.get("fingerprint"))),
        _row("script sha256", _short(sa.get("sha256")), _short(sb.get("sha256"))),
        _row("git commit", _short(sa.get("git_commit")), _short(sb.get("git_commit"))),
        _row("imported names", len(a.get("audit") or []), len(b.get("audit") or [])),
    ]
    sections = [("Metrics", metrics), ("Model and data", model), ("Parameters", params),
                ("Environment", environment)]
    return {"sections": [{"title": t, "rows": rows, "differences": sum(r["differs"] for r in rows)}
                         for t, rows in sections]}
