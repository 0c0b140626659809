"""``capsule predict``: exit codes, one-line errors, standard input and output, progress, interruption."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from batchdata import FEATURES, Saved, make_frame
from click.testing import CliRunner, Result

from modelcapsule.cli import cli


def _run(*args: object, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, ["predict", *map(str, args)], input=stdin, catch_exceptions=False)


def _error_line(result: Result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def csv_input(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "in.csv"
    frame.to_csv(path, index=False)
    return path


def test_help_lists_options_and_exit_codes() -> None:
    result = _run("--help")
    assert result.exit_code == 0
    for text in (
        "--batch-rows",
        "--id-column",
        "--rejects",
        "--trust",
        "--on-mismatch",
        "Exit codes:",
        "3  finished, but some rows went to the --rejects file",
    ):
        assert text in result.output


def test_scores_a_file_and_reports_on_stderr(
    tmp_path: Path, csv_input: Path, frame: pd.DataFrame, classifier: Saved
) -> None:
    out = tmp_path / "out.parquet"
    result = _run(
        classifier.path,
        csv_input,
        "-o",
        out,
        "--id-column",
        "id",
        "--method",
        "predict",
        "--method",
        "predict_proba",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stderr.strip().splitlines()[-1])
    assert "scoring" not in result.stderr  # no progress bar: standard error is not a terminal
    assert (summary["rows"], summary["scored"], summary["rejected"]) == (200, 200, 0)
    assert summary["rows_per_second"] > 0
    scored = pq.read_table(out).to_pandas()
    assert scored["predict"].tolist() == classifier.model.predict(frame[FEATURES]).tolist()
    assert "rows/s" not in _run(classifier.path, csv_input, "-o", out, "--id-column", "id", "-q").stderr


def test_standard_input_to_standard_output(csv_input: Path, frame: pd.DataFrame, array_model: Saved) -> None:
    data = frame[FEATURES].to_csv(index=False).encode()
    result = _run(array_model.path, "-", "--format", "csv", "-o", "-", "--output-format", "jsonl", stdin=data)
    assert result.exit_code == 0, result.stderr
    got = [json.loads(line)["predict"] for line in result.stdout.splitlines()]
    np.testing.assert_array_equal(got, array_model.model.predict(frame[FEATURES].to_numpy()))


def test_progress_bar_shows_rows_per_second_when_asked(
    tmp_path: Path, csv_input: Path, classifier: Saved
) -> None:
    result = _run(classifier.path, csv_input, "-o", tmp_path / "o.csv", "--id-column", "id", "--progress")
    assert result.exit_code == 0
    assert "rows/s" in result.stderr and "scoring" in result.stderr


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda p, f: f.drop(columns=["c"]).to_csv(p / "in.csv", index=False),
            r"error: .*in.csv lacks column\(s\) 'c' that the model takes; it expects 'a', 'b', 'c', 'd'\.$",
        ),
        (
            lambda p, f: f.assign(c=f["c"].astype(str)).to_parquet(p / "in.parquet"),
            r"error: column .c. of .*in.parquet holds (large_)?string values but the model expects float64",
        ),
        (
            lambda p, f: (p / "in.parquet").write_bytes(b"PAR1 this is not a parquet file"),
            r"error: .*in.parquet is not a readable Parquet file: .*",
        ),
        (
            lambda p, f: (
                f.astype({"b": object})
                .assign(b=lambda d: d["b"].where(d.index != 9, "x"))
                .to_csv(p / "in.csv", index=False)
            ),
            r"error: .*in.csv, row 10: column 'b': 'x' is not a number \(the model expects float64\)\. .*",
        ),
    ],
    ids=["missing-column", "wrong-dtype", "corrupt-file", "bad-row"],
)
def test_problems_exit_1_with_one_line_naming_them(
    tmp_path: Path, frame: pd.DataFrame, classifier: Saved, make: object, expected: str
) -> None:
    make(tmp_path, frame)  # type: ignore[operator]
    source = next(tmp_path.glob("in.*"))
    result = _run(classifier.path, source, "-o", tmp_path / "out.csv", "--id-column", "id")
    assert result.exit_code == 1
    assert pd.Series([_error_line(result)]).str.match(expected).all(), _error_line(result)
    assert not (tmp_path / "out.csv").exists()


def test_rejected_rows_exit_3(tmp_path: Path, frame: pd.DataFrame, classifier: Saved) -> None:
    frame.astype({"d": object}).assign(d=lambda d: d["d"].where(d.index != 0, "?")).to_csv(
        tmp_path / "in.csv", index=False
    )
    result = _run(
        classifier.path,
        tmp_path / "in.csv",
        "-o",
        tmp_path / "out.csv",
        "--id-column",
        "id",
        "--rejects",
        tmp_path / "rejects.csv",
    )
    assert result.exit_code == 3, result.stderr
    assert "1 rejected" in result.stderr
    assert pd.read_csv(tmp_path / "rejects.csv")["row"].tolist() == [1]
    assert len(pd.read_csv(tmp_path / "out.csv")) == 199


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--method", "transform"], "the model has no output 'transform'"),
        (["--format", "xlsx"], "unknown file format 'xlsx'"),
        (["--batch-rows", "0"], "Invalid value for '--batch-rows'"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, csv_input: Path, classifier: Saved, args: list[str], expected: str
) -> None:
    result = _run(classifier.path, csv_input, "-o", tmp_path / "o.csv", "--id-column", "id", *args)
    assert result.exit_code == 2
    assert expected in result.stderr


def test_sigterm_mid_run_leaves_no_output(
    tmp_path: Path, array_model: Saved, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    source = tmp_path / "in.csv"
    make_frame(300_000)[FEATURES].to_csv(source, index=False)
    out = tmp_path / "out.csv"
    proc = subprocess.Popen(
        [*capsule_cmd, "predict", str(array_model.path), str(source), "-o", str(out), "--batch-rows", "500"],
        env=subprocess_env,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.csv.tmp-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert list(tmp_path.glob(".out.csv.tmp-*")), "the run never started writing"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_trust_flags_reach_the_safe_loader(
    tmp_path: Path, csv_input: Path, frame: pd.DataFrame, custom_code: Saved
) -> None:
    refused = _run(custom_code.path, csv_input, "-o", tmp_path / "o.csv", "--id-column", "id")
    assert refused.exit_code == 1
    assert "batchdata.log1p_abs" in refused.stderr and "--trust batchdata.log1p_abs" in refused.stderr
    assert not (tmp_path / "o.csv").exists()
    trusted = _run(
        custom_code.path,
        csv_input,
        "-o",
        tmp_path / "o.csv",
        "--id-column",
        "id",
        "--trust",
        "batchdata.log1p_abs",
    )
    assert trusted.exit_code == 0, trusted.stderr
    scored = pacsv.read_csv(tmp_path / "o.csv").to_pandas()
    np.testing.assert_array_equal(scored["predict"], custom_code.model.predict(frame[FEATURES]))
