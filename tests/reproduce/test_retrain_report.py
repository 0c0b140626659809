"""The human form of the re-training report (the JSON form is checked end to end in test_cli_retrain)."""

from __future__ import annotations

from rich.console import Console

from modelcapsule.cli.retrain import render_report
from modelcapsule.reproduce.compare import (
    RetrainReport,
    compare_data,
    compare_metrics,
    compare_outputs,
    compare_packages,
)


def _report(now_scores: list[float]) -> RetrainReport:
    data = {"fingerprint": "sha256:ab", "n_samples": 150, "n_features": 4}
    return RetrainReport(
        name="iris",
        old="iris.capsule",
        new="iris.retrained.capsule",
        script="train.py",
        seconds=3.2,
        tolerance=2.0,
        python=("3.11.7", "3.12.1"),
        packages=compare_packages({"scikit-learn": "1.8.0"}, {"scikit-learn": "1.9.1"}),
        data=compare_data(data, data),
        metrics=compare_metrics({"cv_accuracy": [0.96, 1.0, 0.93]}, {"cv_accuracy": now_scores}),
        agreement=[compare_outputs("predict", [0, 1, 2, 2], [0, 1, 2, 1])],
    )


def _text(report: RetrainReport) -> str:
    console = Console(record=True, width=120, color_system=None)
    render_report(report, console)
    return console.export_text()


def test_within_range_shows_versions_then_and_now_data_metrics_and_agreement() -> None:
    text = _text(_report([0.97, 0.95, 0.96]))
    assert "scikit-learn │ 1.8.0  │ 1.9.1  │ changed" in text
    assert "python       │ 3.11.7 │ 3.12.1 │ changed" in text
    assert "Training data: same fingerprint  (then 150×4, now 150×4)" in text
    assert "cv_accuracy │ 0.9633 ± 0.0287 (3) │ [0.9060, 1.0207] │ 0.9600 (3) │ within" in text
    assert "Golden sample, predict(): 3/4 rows equal (75%)" in text
    assert text.rstrip().endswith("Within the saved range.")


def test_out_of_range_says_so_last() -> None:
    text = _text(_report([0.6, 0.7]))
    assert "│ outside" in text
    assert text.rstrip().endswith("Out of the saved range.")
