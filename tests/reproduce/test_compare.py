"""Judging a re-trained model: metrics against mean ± K·std of the saved folds, data, predictions."""

from __future__ import annotations

import numpy as np
import pytest

from modelcapsule.reproduce.compare import (
    RetrainReport,
    compare_data,
    compare_metrics,
    compare_outputs,
    compare_packages,
)

FOLDS = [0.96, 1.0, 0.93, 0.97, 1.0]  # mean 0.972, std ≈ 0.0264


def _verdicts(then: dict[str, object], now: dict[str, object], k: float = 2.0) -> dict[str, str]:
    return {m.name: m.verdict for m in compare_metrics(then, now, k)}


def test_a_score_inside_mean_plus_minus_two_std_is_within_range() -> None:
    assert _verdicts({"acc": FOLDS}, {"acc": [0.95, 0.97, 0.96, 0.93, 0.99]}) == {"acc": "within"}


def test_a_score_outside_the_range_is_outside() -> None:
    assert _verdicts({"acc": FOLDS}, {"acc": [0.70, 0.66, 0.68, 0.70, 0.66]}) == {"acc": "outside"}


def test_the_tolerance_k_widens_or_narrows_the_range() -> None:
    now = {"acc": 0.93}  # 1.6 std below the mean
    assert _verdicts({"acc": FOLDS}, now, k=2.0) == {"acc": "within"}
    assert _verdicts({"acc": FOLDS}, now, k=1.0) == {"acc": "outside"}


def test_the_range_is_mean_plus_minus_k_population_std() -> None:
    (check,) = compare_metrics({"acc": FOLDS}, {"acc": FOLDS}, 2.0)
    mean, std = float(np.mean(FOLDS)), float(np.std(FOLDS))
    assert check.low == pytest.approx(mean - 2 * std)
    assert check.high == pytest.approx(mean + 2 * std)
    assert (check.then_mean, check.now_mean) == (pytest.approx(mean), pytest.approx(mean))


def test_a_single_saved_value_has_no_spread_so_only_the_same_value_is_within() -> None:
    assert _verdicts({"rmse": 0.5}, {"rmse": 0.5}) == {"rmse": "within"}
    assert _verdicts({"rmse": 0.5}, {"rmse": 0.5001}) == {"rmse": "outside"}


def test_missing_new_and_non_numeric_metrics() -> None:
    verdicts = _verdicts({"acc": FOLDS, "note": "baseline"}, {"f1": [0.9]})
    assert verdicts == {"acc": "missing", "f1": "new", "note": "not numeric"}


def test_the_report_is_within_range_only_when_every_judged_metric_is() -> None:
    def report(metrics: list) -> RetrainReport:  # type: ignore[type-arg]
        return RetrainReport(
            "m", "a", "b", "s", 1.0, 2.0, ("3.11.7", "3.11.7"), [], compare_data(None, None), metrics
        )

    assert report(compare_metrics({"acc": FOLDS}, {"acc": FOLDS})).within_range
    assert not report(compare_metrics({"acc": FOLDS}, {"acc": [0.5]})).within_range
    assert not report(compare_metrics({"acc": FOLDS}, {})).within_range
    assert not report([]).within_range, "no saved metric means nothing was checked"
    assert not report(compare_metrics({"note": "x"}, {"note": "x"})).within_range


def test_a_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        compare_metrics({"acc": FOLDS}, {"acc": FOLDS}, -1.0)


def test_packages_then_and_now() -> None:
    rows = compare_packages(
        {"numpy": "2.4.6", "scikit-learn": "1.8.0"},
        {"numpy": "2.4.6", "scikit-learn": "1.9.1", "scipy": "1.17.1"},
    )
    assert [(r.name, r.then, r.now, r.changed) for r in rows] == [
        ("numpy", "2.4.6", "2.4.6", False),
        ("scikit-learn", "1.8.0", "1.9.1", True),
        ("scipy", None, "1.17.1", True),
    ]


def test_training_data_is_the_same_only_when_both_fingerprints_match() -> None:
    a = {"fingerprint": "sha256:aa", "n_samples": 150, "n_features": 4}
    assert compare_data(a, dict(a)).same is True
    assert compare_data(a, {**a, "fingerprint": "sha256:bb"}).same is False
    assert compare_data(a, None).same is None
    assert compare_data(a, a).then_shape == (150, 4)


def test_agreement_counts_equal_rows_exactly_for_labels_and_closely_for_floats() -> None:
    labels = compare_outputs("predict", np.array(["a", "b", "c", "a"]), np.array(["a", "b", "a", "a"]))
    assert (labels.rows, labels.equal, labels.fraction) == (4, 3, 0.75)
    proba = np.array([[0.2, 0.8], [0.6, 0.4]])
    assert compare_outputs("predict_proba", proba, proba + 1e-12).equal == 2
    assert compare_outputs("predict_proba", proba, proba[::-1]).equal == 0
    assert compare_outputs("predict", np.arange(3), np.arange(4)).equal == 0
