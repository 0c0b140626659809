"""A compact evaluation of a model on held-out data, stored in the capsule for its model card.

``save(..., evaluation=(X_val, y_val))`` runs the model on the validation rows once and keeps only
what a reviewer needs to judge it: the metrics, and the summaries the card charts (a confusion
matrix, ROC and precision-recall curves per class, calibration bins for classifiers; a residual
histogram and a bounded predicted-vs-actual sample for regressors). The validation inputs are never
stored; curves are thinned to a bounded number of points, so the member stays small whatever the
size of the validation set.

The member is plain JSON (``evaluation/evaluation.json``), hashed like every other member; the
manifest's ``evaluation`` field names it and repeats the headline metrics.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from ..errors import CapsuleFormatError
from .provenance import fingerprint_data

__all__ = ["EVALUATION_MEMBER", "EVALUATION_VERSION", "check_evaluation", "evaluate", "read_evaluation",
           "write_evaluation"]

EVALUATION_MEMBER = "evaluation/evaluation.json"
EVALUATION_VERSION = 1
"""Version of the evaluation member's layout; a reader shows what it knows of a newer one and says so."""

MAX_CURVE_POINTS = 101
"""Points kept per ROC or precision-recall curve (the ends are always kept)."""
MAX_CURVE_CLASSES = 20
"""Classes that get one-vs-rest curves and calibration bins; more would not be readable anyway."""
MAX_CONFUSION_CLASSES = 50
"""Largest confusion matrix stored (classes beyond this are left out and the card says so)."""
MAX_SCATTER_POINTS = 300
"""Rows kept in a regressor's predicted-vs-actual sample (targets and predictions only, never inputs)."""
CALIBRATION_BINS = 10
RESIDUAL_BINS = 30



class _Sink(Protocol):
    def add(self, name: str, data: bytes | memoryview) -> Any: ...


class _Source(Protocol):
    def read(self, name: str) -> bytes: ...


Predict = Callable[[str, Any], Any]
"""``predict(method, X)``: run one prediction method of the model on ``X``."""


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _thin(*columns: np.ndarray[Any, Any]) -> list[list[float]]:
    """At most MAX_CURVE_POINTS points of parallel curve arrays, evenly spread, ends kept."""
    n = len(columns[0])
    keep = np.unique(np.linspace(0, n - 1, min(n, MAX_CURVE_POINTS)).round().astype(int)) if n else np.array([], int)
    return [[round(float(c[i]), 6) for i in keep] for c in columns]


def _label(value: Any) -> Any:
    item = value.item() if isinstance(value, np.generic) else value
    return item if isinstance(item, (int, float, str, bool)) else str(item)


def _class_scores(predict: Predict, methods: Sequence[str], x: Any, n_classes: int) -> tuple[str, np.ndarray] | None:
    """Per-class scores, ``(method, array of shape (n, n_classes))``: probabilities when the model has
    them, else decision values (which still give ROC and PR curves, not calibration)."""
    for method in ("predict_proba", "decision_function"):
        if method not in methods:
            continue
        scores = np.asarray(predict(method, x), dtype=float)
        if scores.ndim == 1 and n_classes == 2:
            scores = np.column_stack([-scores, scores]) if method == "decision_function" else np.column_stack(
                [1 - scores, scores])
        if scores.ndim == 2 and scores.shape[1] == n_classes:
            return method, scores
    return None


def _classification(predict: Predict, methods: Sequence[str], x: Any, y: np.ndarray[Any, Any],
                    classes: Sequence[Any] | None) -> dict[str, Any]:
    from sklearn import metrics as skm

    y_pred = np.asarray(predict("predict", x))
    labels = np.asarray(list(classes) if classes is not None else np.unique(np.concatenate([y, y_pred])))
    out: dict[str, Any] = {"classes": [_label(c) for c in labels]}
    m: dict[str, float | None] = {
        "accuracy": _finite(skm.accuracy_score(y, y_pred)),
        "balanced_accuracy": _finite(skm.balanced_accuracy_score(y, y_pred)) if len(np.unique(y)) > 1 else None,
        "f1_macro": _finite(skm.f1_score(y, y_pred, labels=labels, average="macro", zero_division=0)),
    }
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, y_pred, labels=labels, zero_division=0)
    out["per_class"] = [
        {"class": _label(c), "precision": round(float(p), 6), "recall": round(float(r), 6),
         "f1": round(float(f), 6), "support": int(s)}
        for c, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    ]
    if len(labels) <= MAX_CONFUSION_CLASSES:
        matrix = skm.confusion_matrix(y, y_pred, labels=labels)
        out["confusion_matrix"] = {"labels": out["classes"], "matrix": matrix.astype(int).tolist()}
    scored = _class_scores(predict, methods, x, len(labels))
    if scored is not None:
        method, scores = scored
        out["scores_from"] = method
        if method == "predict_proba":
            m["log_loss"] = _finite(skm.log_loss(y, np.clip(scores, 1e-15, 1), labels=labels))
        curve_classes = [1] if len(labels) == 2 else list(range(min(len(labels), MAX_CURVE_CLASSES)))
        out["roc"], out["pr"], out["calibration"] = [], [], []
        aucs = []
        for k in curve_classes:
            positive = y == labels[k]
            if positive.all() or not positive.any():
                continue  # a class absent from (or alone in) the validation data has no curve
            fpr, tpr, _ = skm.roc_curve(positive, scores[:, k])
            auc = float(skm.auc(fpr, tpr))
            aucs.append(auc)
            fpr_t, tpr_t = _thin(fpr, tpr)
            out["roc"].append({"class": _label(labels[k]), "auc": round(auc, 6), "fpr": fpr_t, "tpr": tpr_t})
            prec, rec, _ = skm.precision_recall_curve(positive, scores[:, k])
            ap = float(skm.average_precision_score(positive, scores[:, k]))
            rec_t, prec_t = _thin(rec[::-1], prec[::-1])
            out["pr"].append({"class": _label(labels[k]), "average_precision": round(ap, 6),
                              "recall": rec_t, "precision": prec_t})
            if method == "predict_proba":
                out["calibration"].append({"class": _label(labels[k]), "bins": _calibration(positive, scores[:, k])})
        if aucs:
            m["roc_auc" if len(labels) == 2 else "roc_auc_ovr_macro"] = round(float(np.mean(aucs)), 6)
    out["metrics"] = {k: v for k, v in m.items() if v is not None}
    return out


def _calibration(positive: np.ndarray[Any, Any], prob: np.ndarray[Any, Any]) -> list[dict[str, Any]]:
    """Equal-width probability bins: mean predicted probability, observed fraction, count."""
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    index = np.clip(np.digitize(prob, edges[1:-1]), 0, CALIBRATION_BINS - 1)
    bins = []
    for b in range(CALIBRATION_BINS):
        chosen = index == b
        count = int(chosen.sum())
        if count:
            bins.append({"lower": round(float(edges[b]), 6), "upper": round(float(edges[b + 1]), 6),
                         "mean_predicted": round(float(prob[chosen].mean()), 6),
                         "fraction_positive": round(float(positive[chosen].mean()), 6), "count": count})
    return bins


def _regression(predict: Predict, x: Any, y: np.ndarray[Any, Any]) -> dict[str, Any]:
    from sklearn import metrics as skm

    y_true = y.astype(float)
    y_pred = np.asarray(predict("predict", x), dtype=float).reshape(y_true.shape)
    if y_true.ndim != 1:
        raise ValueError(f"evaluation= supports one regression target; y has shape {y.shape}.")
    residuals = y_true - y_pred
    m = {
        "r2": _finite(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else None,
        "mae": _finite(skm.mean_absolute_error(y_true, y_pred)),
        "rmse": _finite(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "median_absolute_error": _finite(skm.median_absolute_error(y_true, y_pred)),
        "max_error": _finite(np.max(np.abs(residuals))),
    }
    counts, edges = np.histogram(residuals, bins=RESIDUAL_BINS)
    rng = np.random.default_rng(0)
    keep = np.sort(rng.choice(len(y_true), size=min(len(y_true), MAX_SCATTER_POINTS), replace=False))
    return {
        "metrics": {k: v for k, v in m.items() if v is not None},
        "residuals": {"bin_edges": [round(float(e), 6) for e in edges], "counts": counts.astype(int).tolist()},
        "predicted_vs_actual": {"actual": [round(float(v), 6) for v in y_true[keep]],
                                "predicted": [round(float(v), 6) for v in y_pred[keep]],
                                "rows_kept": len(keep)},
    }


def evaluate(predict: Predict, methods: Sequence[str], task: str, data: Any,
             classes: Sequence[Any] | None = None) -> dict[str, Any]:
    """The evaluation of a model on ``data = (X_val, y_val)`` as a JSON-ready dict.

    ``predict(method, X)`` calls the model; ``methods`` are the prediction methods it has; ``task`` is
    the manifest's (``classification`` or ``regression``); ``classes`` the classifier's labels in the
    order of its probability columns.
    """
    if not (isinstance(data, tuple) and len(data) == 2):
        raise TypeError("evaluation= takes a pair (X_val, y_val) of validation inputs and their true targets.")
    x, y_raw = data
    y = np.asarray(y_raw.to_numpy() if hasattr(y_raw, "to_numpy") else y_raw)
    n = len(y)
    if n == 0 or (hasattr(x, "__len__") and len(x) != n):
        raise ValueError(f"evaluation= needs as many targets as input rows and at least one row (got {n} targets).")
    if task == "classification":
        body = _classification(predict, methods, x, y.ravel() if y.ndim > 1 and y.shape[1] == 1 else y, classes)
    elif task == "regression":
        body = _regression(predict, x, y.ravel() if y.ndim > 1 and y.shape[1] == 1 else y)
    else:
        raise ValueError(f"evaluation= supports classifiers and regressors; this model's task is {task!r}.")
    data_print = fingerprint_data((x, y_raw))
    return {"evaluation_version": EVALUATION_VERSION, "task": task, "n_samples": n,
            "data": {k: v for k, v in data_print.items() if k in ("fingerprint", "n_samples", "n_features", "columns")},
            **body}


def write_evaluation(sink: _Sink, report: Mapping[str, Any]) -> dict[str, Any]:
    """Store ``report`` as the evaluation member; returns the manifest's ``evaluation`` field."""
    sink.add(EVALUATION_MEMBER, json.dumps(report, allow_nan=False, separators=(",", ":")).encode())
    return {"member": EVALUATION_MEMBER, "task": report["task"], "n_samples": report["n_samples"],
            "metrics": dict(report.get("metrics", {}))}


def read_evaluation(source: _Source, field: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The stored evaluation, or None when the capsule has none (saved without ``evaluation=``)."""
    if not field:
        return None
    member = str(field.get("member", EVALUATION_MEMBER))
    try:
        data = json.loads(source.read(member))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CapsuleFormatError(f"evaluation member {member!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CapsuleFormatError(f"evaluation member {member!r} should hold a JSON object.")
    return check_evaluation(data)


# ------------------------------------------------------------------------------------------ checking

_SCALAR = (str, int, float, bool)


def _numbers(value: Any, where: str, kind: type | tuple[type, ...] = (int, float)) -> list[Any]:
    if not isinstance(value, list) or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
        raise CapsuleFormatError(f"evaluation field {where} should be a list of numbers.")
    return value


def _number(value: Any, where: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise CapsuleFormatError(f"evaluation field {where} should be a number, not {type(value).__name__}.")


def _records(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise CapsuleFormatError(f"evaluation field {where} should be a list of objects.")
    return value


def check_evaluation(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` if every part a card reads has the type it should; else :class:`CapsuleFormatError`.

    The card charts these numbers and puts the labels in pages: a hand-made or altered member (its hash
    is checked first, but a capsule may be hostile from the start) must not smuggle anything else in.
    """
    if data.get("task") not in ("classification", "regression") or not isinstance(data.get("n_samples"), int):
        raise CapsuleFormatError("evaluation member has no valid task and n_samples.")
    metrics = data.get("metrics", {})
    if not isinstance(metrics, dict):
        raise CapsuleFormatError("evaluation field metrics should be an object.")
    for key, value in metrics.items():
        _number(value, f"metrics.{key}")
    info = data.get("data", {})
    if not isinstance(info, dict) or not isinstance(info.get("fingerprint", ""), str):
        raise CapsuleFormatError("evaluation field data should be an object with a fingerprint string.")
    if not isinstance(data.get("scores_from", ""), str):
        raise CapsuleFormatError("evaluation field scores_from should be a string.")
    classes = data.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, _SCALAR) for c in classes):
        raise CapsuleFormatError("evaluation field classes should be a list of labels.")
    if (cm := data.get("confusion_matrix")) is not None:
        labels = cm.get("labels") if isinstance(cm, dict) else None
        matrix = cm.get("matrix") if isinstance(cm, dict) else None
        if not isinstance(labels, list) or not all(isinstance(c, _SCALAR) for c in labels) or not isinstance(
                matrix, list) or len(matrix) != len(labels):
            raise CapsuleFormatError("evaluation field confusion_matrix should hold labels and a square matrix.")
        for row in matrix:
            if len(_numbers(row, "confusion_matrix.matrix", int)) != len(labels):
                raise CapsuleFormatError("evaluation field confusion_matrix.matrix should be square.")
    for key, xs, ys, score in (("roc", "fpr", "tpr", "auc"), ("pr", "recall", "precision", "average_precision")):
        for curve in _records(data.get(key, []), key):
            if not isinstance(curve.get("class"), _SCALAR):
                raise CapsuleFormatError(f"evaluation field {key}.class should be a label.")
            _number(curve.get(score), f"{key}.{score}")
            if len(_numbers(curve.get(xs), f"{key}.{xs}")) != len(_numbers(curve.get(ys), f"{key}.{ys}")):
                raise CapsuleFormatError(f"evaluation field {key} has curves of unequal lengths.")
    for curve in _records(data.get("calibration", []), "calibration"):
        if not isinstance(curve.get("class"), _SCALAR):
            raise CapsuleFormatError("evaluation field calibration.class should be a label.")
        for b in _records(curve.get("bins"), "calibration.bins"):
            for k in ("lower", "upper", "mean_predicted", "fraction_positive", "count"):
                _number(b.get(k), f"calibration.bins.{k}")
    for row in _records(data.get("per_class", []), "per_class"):
        if not isinstance(row.get("class"), _SCALAR):
            raise CapsuleFormatError("evaluation field per_class.class should be a label.")
        for k in ("precision", "recall", "f1", "support"):
            _number(row.get(k), f"per_class.{k}")
    hist = data.get("residuals", {"bin_edges": [0], "counts": []})
    pairs = data.get("predicted_vs_actual", {"actual": [], "predicted": []})
    if not isinstance(hist, dict) or len(_numbers(hist.get("bin_edges"), "residuals.bin_edges")) != len(
            _numbers(hist.get("counts"), "residuals.counts", int)) + 1:
        raise CapsuleFormatError("evaluation field residuals should hold counts and one more bin edge.")
    if not isinstance(pairs, dict) or len(_numbers(pairs.get("actual"), "predicted_vs_actual.actual")) != len(
            _numbers(pairs.get("predicted"), "predicted_vs_actual.predicted")):
        raise CapsuleFormatError("evaluation field predicted_vs_actual should hold two lists of equal length.")
    return data
