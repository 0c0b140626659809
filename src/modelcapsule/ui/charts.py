"""Vega-Lite specifications of a stored evaluation, each with the numbers as a table.

Why Vega-Lite: a chart is then plain JSON, so the card's JSON twin carries the very chart the page
draws, the page renders it with vega-embed (shipped as package data, no CDN), and a reader without
JavaScript (or a screen reader) gets the same numbers from the table beside it. No SVG is built here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["evaluation_charts"]

_WIDTH = 320
_HEIGHT = 260


def _spec(title: str, data: list[dict[str, Any]], layers: list[dict[str, Any]], *, width: int = _WIDTH,
          height: int = _HEIGHT) -> dict[str, Any]:
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "description": title,
        "width": width,
        "height": height,
        "data": {"values": data},
        "layer": layers,
        "config": {"font": "system-ui, sans-serif", "view": {"stroke": "#d0d7de"}},
    }


def _diagonal() -> dict[str, Any]:
    return {"data": {"values": [{"x": 0, "y": 0}, {"x": 1, "y": 1}]},
            "mark": {"type": "line", "strokeDash": [4, 4], "color": "#8c959f"},
            "encoding": {"x": {"field": "x", "type": "quantitative"}, "y": {"field": "y", "type": "quantitative"}}}


def _chart(chart_id: str, title: str, summary: str, spec: dict[str, Any], columns: list[str],
           rows: list[list[Any]]) -> dict[str, Any]:
    return {"id": chart_id, "title": title, "summary": summary, "spec": spec,
            "table": {"columns": columns, "rows": rows}}


def _confusion(cm: Mapping[str, Any]) -> dict[str, Any]:
    labels = [str(x) for x in cm["labels"]]
    matrix = cm["matrix"]
    data = [{"actual": a, "predicted": p, "count": matrix[i][j]}
            for i, a in enumerate(labels) for j, p in enumerate(labels)]
    side = max(160, min(420, 48 * len(labels)))
    enc = {"x": {"field": "predicted", "type": "nominal", "sort": labels, "title": "predicted"},
           "y": {"field": "actual", "type": "nominal", "sort": labels, "title": "actual"}}
    spec = _spec("Confusion matrix", data, [
        {"mark": "rect", "encoding": {**enc, "color": {"field": "count", "type": "quantitative",
                                                       "scale": {"scheme": "blues"}}}},
        {"mark": {"type": "text", "fontSize": 12},
         "encoding": {**enc, "text": {"field": "count", "type": "quantitative"},
                      "color": {"condition": {"test": f"datum.count > {float(max(max(r) for r in matrix)) / 2:g}",
                                              "value": "white"}, "value": "black"}}},
    ], width=side, height=side)
    correct = sum(matrix[i][i] for i in range(len(labels)))
    total = sum(sum(r) for r in matrix)
    rows = [[a, *matrix[i]] for i, a in enumerate(labels)]
    return _chart("confusion-matrix", "Confusion matrix",
                  f"{correct} of {total} validation rows on the diagonal (rows: actual class, columns: predicted).",
                  spec, ["actual \\ predicted", *labels], rows)


def _curves(kind: str, curves: list[Mapping[str, Any]]) -> dict[str, Any]:
    roc = kind == "roc"
    xs, ys = ("fpr", "tpr") if roc else ("recall", "precision")
    score = "auc" if roc else "average_precision"
    data = [{"class": str(c["class"]), xs: x, ys: y} for c in curves for x, y in zip(c[xs], c[ys], strict=True)]
    line = {"mark": {"type": "line", "interpolate": "step-after" if roc else "step-before"},
            "encoding": {"x": {"field": xs, "type": "quantitative", "scale": {"domain": [0, 1]},
                               "title": "false positive rate" if roc else "recall"},
                         "y": {"field": ys, "type": "quantitative", "scale": {"domain": [0, 1]},
                               "title": "true positive rate" if roc else "precision"},
                         "color": {"field": "class", "type": "nominal", "title": "class"}}}
    layers = [_diagonal(), line] if roc else [line]
    title = "ROC curve" if roc else "Precision-recall curve"
    per_class = ", ".join(f"class {c['class']}: {c[score]:.3f}" for c in curves)
    title += "s, one-vs-rest" if len(curves) > 1 else ""
    spec = _spec(title, data, layers)
    rows = [[str(c["class"]), round(float(c[score]), 4), x, y]
            for c in curves for x, y in zip(c[xs], c[ys], strict=True)]
    return _chart(kind, title, f"{'AUC' if roc else 'Average precision'} {per_class}.", spec,
                  ["class", "AUC" if roc else "average precision", xs, ys], rows)


def _calibration(curves: list[Mapping[str, Any]]) -> dict[str, Any]:
    data = [{"class": str(c["class"]), **b} for c in curves for b in c["bins"]]
    enc = {"x": {"field": "mean_predicted", "type": "quantitative", "scale": {"domain": [0, 1]},
                 "title": "mean predicted probability"},
           "y": {"field": "fraction_positive", "type": "quantitative", "scale": {"domain": [0, 1]},
                 "title": "observed fraction"},
           "color": {"field": "class", "type": "nominal", "title": "class"}}
    spec = _spec("Calibration", data, [_diagonal(), {"mark": {"type": "line", "point": True}, "encoding": enc}])
    rows = [[str(c["class"]), b["lower"], b["upper"], b["mean_predicted"], b["fraction_positive"], b["count"]]
            for c in curves for b in c["bins"]]
    return _chart("calibration", "Calibration",
                  "Predicted probability against the observed fraction per bin; a calibrated model follows the "
                  "dashed diagonal.", spec,
                  ["class", "bin from", "bin to", "mean predicted", "observed fraction", "rows"], rows)


def _residuals(hist: Mapping[str, Any]) -> dict[str, Any]:
    edges, counts = hist["bin_edges"], hist["counts"]
    data = [{"from": edges[i], "to": edges[i + 1], "count": c} for i, c in enumerate(counts)]
    spec = _spec("Residuals (actual − predicted)", data, [{
        "mark": {"type": "bar", "color": "#4c78a8"},
        "encoding": {"x": {"field": "from", "type": "quantitative", "bin": {"binned": True}, "title": "residual"},
                     "x2": {"field": "to"}, "y": {"field": "count", "type": "quantitative", "title": "rows"}}}])
    rows = [[round(d["from"], 4), round(d["to"], 4), d["count"]] for d in data]
    return _chart("residuals", "Residuals", f"{sum(counts)} validation rows in {len(counts)} bins of residual.",
                  spec, ["from", "to", "rows"], rows)


def _scatter(points: Mapping[str, Any]) -> dict[str, Any]:
    actual, predicted = points["actual"], points["predicted"]
    data = [{"actual": a, "predicted": p} for a, p in zip(actual, predicted, strict=True)]
    low = min([*actual, *predicted], default=0.0)
    high = max([*actual, *predicted], default=1.0)
    identity = {"data": {"values": [{"actual": low, "predicted": low}, {"actual": high, "predicted": high}]},
                "mark": {"type": "line", "strokeDash": [4, 4], "color": "#8c959f"},
                "encoding": {"x": {"field": "actual", "type": "quantitative"},
                             "y": {"field": "predicted", "type": "quantitative"}}}
    dots = {"mark": {"type": "point", "filled": True, "opacity": 0.6, "size": 24},
            "encoding": {"x": {"field": "actual", "type": "quantitative", "scale": {"zero": False}},
                         "y": {"field": "predicted", "type": "quantitative", "scale": {"zero": False}}}}
    spec = _spec("Predicted against actual", data, [identity, dots])
    return _chart("predicted-vs-actual", "Predicted against actual",
                  f"A sample of {len(data)} validation rows; a perfect model lies on the dashed line.", spec,
                  ["actual", "predicted"], [[a, p] for a, p in zip(actual, predicted, strict=True)])


def evaluation_charts(evaluation: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every chart the stored evaluation supports, in reading order; unknown parts are skipped."""
    charts: list[dict[str, Any]] = []
    if evaluation.get("confusion_matrix"):
        charts.append(_confusion(evaluation["confusion_matrix"]))
    if evaluation.get("roc"):
        charts.append(_curves("roc", evaluation["roc"]))
    if evaluation.get("pr"):
        charts.append(_curves("pr", evaluation["pr"]))
    if evaluation.get("calibration"):
        charts.append(_calibration(evaluation["calibration"]))
    if evaluation.get("residuals"):
        charts.append(_residuals(evaluation["residuals"]))
    if evaluation.get("predicted_vs_actual"):
        charts.append(_scatter(evaluation["predicted_vs_actual"]))
    return charts
