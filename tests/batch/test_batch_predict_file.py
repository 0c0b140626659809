"""``predict_file`` end to end with real capsules: exact predictions in every format, column matching,
rejected rows, and outputs that appear only when complete."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from batchdata import FEATURES, Saved

import modelcapsule as mc
from modelcapsule.batch import (
    BatchSummary,
    BatchUsageError,
    InputFileError,
    InputSchemaError,
    RejectedRowError,
    ScoringError,
)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    suffix = path.suffix
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=64)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, double_precision=15)
    elif suffix == ".npy":
        np.save(path, frame.to_numpy())
    return path


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pandas()
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True, precise_float=True)
    return pacsv.read_csv(path).to_pandas()


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_tables_score_exactly_like_one_predict_call(
    tmp_path: Path, frame: pd.DataFrame, classifier: Saved, fmt: str
) -> None:
    source = _write(frame, tmp_path / f"in.{fmt}")
    out = tmp_path / f"out.{fmt}"
    summary = mc.predict_file(
        classifier.path, source, out, batch_rows=37, id_column="id", method=["predict", "predict_proba"]
    )
    assert isinstance(summary, BatchSummary)
    assert (summary.rows, summary.scored, summary.rejected) == (200, 200, 0)
    assert summary.seconds > 0 and summary.rows_per_second > 0
    got = _read(out)
    classes = classifier.model.classes_
    assert list(got.columns) == ["id", "predict", *(f"predict_proba_{c}" for c in classes)]
    assert got["id"].astype(int).tolist() == frame["id"].tolist()
    assert got["predict"].tolist() == classifier.model.predict(frame[FEATURES]).tolist()
    proba = got[[f"predict_proba_{c}" for c in classes]].to_numpy(dtype=float)
    np.testing.assert_array_equal(proba, classifier.model.predict_proba(frame[FEATURES]))


def test_npy_in_and_out_for_a_model_fitted_on_an_array(tmp_path: Path, frame: pd.DataFrame, array_model: Saved) -> None:
    source = _write(frame[FEATURES], tmp_path / "in.npy")
    summary = mc.predict_file(array_model.path, source, tmp_path / "out.npy", batch_rows=16)
    assert summary.rows == 200
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), array_model.model.predict(frame[FEATURES].to_numpy()))


def test_default_output_sits_beside_the_input(tmp_path: Path, frame: pd.DataFrame, array_model: Saved) -> None:
    source = _write(frame[FEATURES], tmp_path / "day.csv")
    summary = mc.predict_file(array_model.path, source)
    assert summary.output == str(tmp_path / "day.predictions.csv")
    assert len(_read(tmp_path / "day.predictions.csv")) == 200


def test_columns_pick_and_order_features_for_a_model_without_names(
    tmp_path: Path, frame: pd.DataFrame, array_model: Saved
) -> None:
    shuffled = frame[["d", "id", "b", "a", "c"]].rename(columns={"a": "A"})
    source = _write(shuffled, tmp_path / "in.parquet")
    mc.predict_file(array_model.path, source, tmp_path / "out.parquet", columns=["A", "b", "c", "d"])
    expected = array_model.model.predict(frame[FEATURES].to_numpy())
    np.testing.assert_array_equal(_read(tmp_path / "out.parquet")["predict"].to_numpy(), expected)
    with pytest.raises(InputSchemaError, match=r"the model takes 4 feature columns but .*in.parquet gives 5"):
        mc.predict_file(array_model.path, source, tmp_path / "x.parquet")


def test_missing_and_extra_columns_are_named(tmp_path: Path, frame: pd.DataFrame, classifier: Saved) -> None:
    lacking = _write(frame.drop(columns=["b", "d"]), tmp_path / "lacking.csv")
    with pytest.raises(InputSchemaError, match=r"lacking.csv lacks column\(s\) 'b', 'd' that the model takes") as e:
        mc.predict_file(classifier.path, lacking, tmp_path / "o.csv")
    assert "\n" not in str(e.value)
    extra = _write(frame.assign(label=1), tmp_path / "extra.csv")
    with pytest.raises(InputSchemaError, match=r"extra.csv has column\(s\) 'id', 'label' that the model does not"):
        mc.predict_file(classifier.path, extra, tmp_path / "o.csv")
    summary = mc.predict_file(classifier.path, extra, tmp_path / "o.csv", columns=FEATURES, id_column="id")
    assert summary.scored == 200
    assert not (tmp_path / "o.csv.tmp").exists()


def test_a_typed_column_of_the_wrong_dtype_is_named(tmp_path: Path, frame: pd.DataFrame, classifier: Saved) -> None:
    source = _write(frame.assign(c=frame["c"].astype(str)), tmp_path / "strings.parquet")
    with pytest.raises(
        InputSchemaError,
        match=r"column 'c' of .*strings.parquet holds (large_)?string values but the model expects float64",
    ) as e:
        mc.predict_file(classifier.path, source, tmp_path / "o.parquet", id_column="id")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "o.parquet").exists()


def test_npy_of_the_wrong_shape_is_refused(tmp_path: Path, array_model: Saved) -> None:
    source = tmp_path / "wide.npy"
    np.save(source, np.zeros((5, 7)))
    with pytest.raises(InputSchemaError, match=r"holds an array of shape \(5, 7\), but the model takes \(n, 4\)"):
        mc.predict_file(array_model.path, source, tmp_path / "o.npy")


def test_a_non_number_rejects_its_row_by_number(tmp_path: Path, frame: pd.DataFrame, classifier: Saved) -> None:
    text = frame.astype({"b": object})
    text.loc[57, "b"] = "oops"
    source = _write(text, tmp_path / "in.csv")
    out = tmp_path / "out.csv"
    with pytest.raises(RejectedRowError, match=r"in.csv, row 58: column 'b': 'oops' is not a number") as e:
        mc.predict_file(classifier.path, source, out, id_column="id", batch_rows=50)
    assert e.value.row == 58 and "\n" not in str(e.value)
    assert not out.exists() and list(tmp_path.iterdir()) == [source]


def test_rejects_file_collects_bad_rows_and_the_rest_is_scored(
    tmp_path: Path, frame: pd.DataFrame, classifier: Saved
) -> None:
    text = frame.astype({"b": object, "c": object})
    text.loc[3, "b"] = "n/a?"
    text.loc[120, "c"] = "1,5"
    source = _write(text, tmp_path / "in.csv")
    summary = mc.predict_file(
        classifier.path,
        source,
        tmp_path / "out.csv",
        id_column="id",
        batch_rows=50,
        rejects=tmp_path / "rejects.csv",
    )
    assert (summary.rows, summary.scored, summary.rejected) == (200, 198, 2)
    rejects = _read(tmp_path / "rejects.csv")
    assert rejects["row"].tolist() == [4, 121]
    assert rejects["reason"].tolist() == [
        "column 'b': 'n/a?' is not a number (the model expects float64)",
        "column 'c': '1,5' is not a number (the model expects float64)",
    ]
    assert json.loads(rejects["input"][0])["id"] == str(frame["id"][3])
    scored = _read(tmp_path / "out.csv")
    kept = frame.drop(index=[3, 120])
    assert scored["id"].tolist() == kept["id"].tolist()
    assert scored["predict"].tolist() == classifier.model.predict(kept[FEATURES]).tolist()


def test_missing_values_reach_models_that_take_them(tmp_path: Path, frame: pd.DataFrame, nan_tolerant: Saved) -> None:
    holes = frame.copy()
    holes.loc[[5, 150], "a"] = np.nan
    source = _write(holes, tmp_path / "in.parquet")
    summary = mc.predict_file(nan_tolerant.path, source, tmp_path / "out.parquet", id_column="id")
    assert summary.rejected == 0
    np.testing.assert_array_equal(
        _read(tmp_path / "out.parquet")["predict"], nan_tolerant.model.predict(holes[FEATURES])
    )


def test_missing_values_reject_their_rows_when_the_model_refuses_them(
    tmp_path: Path, frame: pd.DataFrame, linear: Saved
) -> None:
    holes = frame.copy()
    holes.loc[[5, 150], "d"] = np.nan
    source = _write(holes, tmp_path / "in.csv")
    with pytest.raises(RejectedRowError, match=r"row 6: missing value in column 'd', which the model does not take"):
        mc.predict_file(linear.path, source, tmp_path / "out.csv", id_column="id")
    summary = mc.predict_file(
        linear.path, source, tmp_path / "out.csv", id_column="id", rejects=tmp_path / "rejects.jsonl"
    )
    assert (summary.scored, summary.rejected) == (198, 2)
    assert pd.read_json(tmp_path / "rejects.jsonl", lines=True)["row"].tolist() == [6, 151]
    kept = holes.dropna()
    np.testing.assert_array_equal(_read(tmp_path / "out.csv")["predict"], linear.model.predict(kept[FEATURES]))


def test_integer_columns_parse_whole_numbers_and_reject_the_rest(tmp_path: Path, counts_model: Saved) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"n": 3, "x": 0.5}\n{"n": 2.0, "x": 1}\n{"n": 2.5, "x": 1}\n{"n": null, "x": 1}\n{"n": "7", "x": 1}\n'
    )
    summary = mc.predict_file(counts_model.path, source, tmp_path / "out.jsonl", rejects=tmp_path / "r.csv")
    assert (summary.scored, summary.rejected) == (2, 3)
    reasons = _read(tmp_path / "r.csv")["reason"].tolist()
    assert reasons == [
        "column 'n': 2.5 is not an integer (the model expects int64)",
        "column 'n': missing value, but the model expects int64, which cannot be missing",
        "column 'n': '7' is not an integer (the model expects int64)",
    ]
    expected = counts_model.model.predict(pd.DataFrame({"n": [3, 2], "x": [0.5, 1.0]}))
    np.testing.assert_array_equal(_read(tmp_path / "out.jsonl")["predict"], expected)


def test_a_failure_mid_run_leaves_no_output_and_keeps_the_previous_one(
    tmp_path: Path, frame: pd.DataFrame, classifier: Saved
) -> None:
    out = tmp_path / "out.csv"
    out.write_text("yesterday's scores\n")
    good = frame.copy()
    source = tmp_path / "in.csv"
    pacsv.write_csv(pa.Table.from_pandas(good, preserve_index=False), source)
    with open(source, "a") as fh:
        fh.write("1,2\n")  # a ragged last row: the reader fails after several chunks were written
    with pytest.raises(InputFileError, match=r"in.csv is not a readable CSV file"):
        mc.predict_file(classifier.path, source, out, id_column="id", batch_rows=20)
    assert out.read_text() == "yesterday's scores\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_usage_errors_name_the_fix(tmp_path: Path, frame: pd.DataFrame, classifier: Saved) -> None:
    source = _write(frame, tmp_path / "in.parquet")
    with pytest.raises(BatchUsageError, match="no output 'transform'; it offers predict, predict_proba"):
        mc.predict_file(classifier.path, source, tmp_path / "o.csv", method="transform", id_column="id")
    with pytest.raises(BatchUsageError, match="parquet cannot stream through '-' as output"):
        mc.predict_file(classifier.path, source, "-", output_format="parquet", id_column="id")
    with pytest.raises(BatchUsageError, match="an NPY output holds one method's predictions and no id column"):
        mc.predict_file(classifier.path, source, tmp_path / "o.npy", id_column="id")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mc.predict_file(classifier.path, tmp_path / "absent.csv", tmp_path / "o.csv")


def test_a_model_failure_not_explained_by_a_row_stops_the_run(
    tmp_path: Path, frame: pd.DataFrame, classifier: Saved
) -> None:
    strings = tmp_path / "in.npy"
    np.save(strings, np.full((10, 4), np.inf))
    with pytest.raises(ScoringError, match=r"the model failed on rows 1–10 of .*in.npy: Input .*contains infinity"):
        mc.predict_file(classifier.path, strings, tmp_path / "o.csv")


@pytest.mark.parametrize("fmt", ["csv", "parquet", "npy"])
def test_an_input_without_rows_gives_a_valid_empty_output(tmp_path: Path, classifier: Saved, fmt: str) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,a,b,c,d\n")
    out = tmp_path / f"out.{fmt}"
    if fmt == "npy":
        summary = mc.predict_file(classifier.path, source, out, columns=FEATURES, method="predict_proba")
        assert np.load(out).shape == (0, 2)
        return
    summary = mc.predict_file(classifier.path, source, out, id_column="id", method=["predict", "predict_proba"])
    assert summary.rows == 0
    table = _read(out) if fmt == "parquet" else pacsv.read_csv(out).to_pandas()
    assert len(table) == 0
    assert list(table.columns) == ["id", "predict", "predict_proba_down", "predict_proba_up"]
