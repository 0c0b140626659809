"""Readers and writers per file format, on plain files: chunking, round trips, corrupt files."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelcapsule.batch import BatchUsageError, InputFileError, all_table_formats, get_table_format
from modelcapsule.batch.registry import format_for_path, register_table_format


def _read_all(path: Path | io.BytesIO, fmt: str, batch_rows: int, columns: tuple[str, ...]) -> list[object]:
    reader = get_table_format(fmt).open_reader(path, str(path), batch_rows)
    try:
        return list(reader.chunks(columns))
    finally:
        reader.close()


def test_registry_maps_extensions_and_refuses_duplicates() -> None:
    assert set(all_table_formats()) == {"csv", "parquet", "jsonl", "npy"}
    assert format_for_path("scores.parquet").name == "parquet"
    assert format_for_path("big.csv.gz").name == "csv"
    assert format_for_path("rows.ndjson").name == "jsonl"
    assert format_for_path("anything", explicit="npy").name == "npy"
    with pytest.raises(BatchUsageError, match=r"cannot tell the file format of 'data.xlsx'"):
        format_for_path("data.xlsx")
    with pytest.raises(BatchUsageError, match="unknown file format 'xls'"):
        get_table_format("xls")
    with pytest.raises(ValueError, match="already registered"):
        register_table_format(get_table_format("csv"))


def test_a_format_claiming_a_suffix_another_format_owns_is_refused() -> None:
    csv = get_table_format("csv")

    class SecondCsv(type(csv)):  # type: ignore[misc]
        name = "csv2"

    with pytest.raises(ValueError, match="extension '.csv' already belongs to the 'csv' batch file format"):
        register_table_format(SecondCsv())
    assert "csv2" not in all_table_formats()
    assert format_for_path("in.csv") is csv


def test_csv_chunks_have_the_batch_size_and_text_values(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("id,x,y\n" + "".join(f"{i},{i / 2},{'abc' if i == 7 else i}\n" for i in range(25)))
    chunks = _read_all(path, "csv", 10, ("x", "y"))
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert chunks[0].rows.tolist() == list(range(1, 11))
    assert chunks[0].columns["x"].type == pa.string()
    assert chunks[0].columns["y"].to_pylist()[7] == "abc"
    assert "id" not in chunks[0].columns


def test_csv_header_is_read_from_gzip_and_stdin_like_streams(tmp_path: Path) -> None:
    data = b"a,b\n1,2\n3,4\n"
    gz = tmp_path / "in.csv.gz"
    gz.write_bytes(gzip.compress(data))
    reader = get_table_format("csv").open_reader(gz, str(gz), 100)
    assert reader.columns == ("a", "b")
    assert [c.columns["b"].to_pylist() for c in reader.chunks(("b",))] == [["2", "4"]]
    reader.close()
    stdin = io.BytesIO(data)
    stream = get_table_format("csv").open_reader(stdin, "<stdin>", 1)
    assert stream.columns == ("a", "b")
    assert [c.columns["a"].to_pylist() for c in stream.chunks(("a",))] == [["1"], ["3"]]
    stream.close()
    assert not stdin.closed  # standard input belongs to the caller


def test_csv_with_a_ragged_row_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(
        InputFileError, match=r"bad.csv is not a readable CSV file: .*Expected 2 columns, got 1"
    ) as exc:
        _read_all(path, "csv", 10, ("a", "b"))
    assert "\n" not in str(exc.value)


def test_csv_with_duplicate_or_missing_header_is_refused(tmp_path: Path) -> None:
    dup = tmp_path / "dup.csv"
    dup.write_text("a,a\n1,2\n")
    with pytest.raises(InputFileError, match="two columns named 'a'"):
        _read_all(dup, "csv", 10, ("a",))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputFileError, match="empty or has no header"):
        _read_all(empty, "csv", 10, ("a",))


def test_parquet_reads_only_the_asked_columns_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"x": np.arange(25.0), "s": [str(i) for i in range(25)]}), path, row_group_size=7)
    reader = get_table_format("parquet").open_reader(path, str(path), 10)
    assert reader.total_rows == 25
    assert reader.types["s"] == pa.string()
    chunks = list(reader.chunks(("x",)))
    reader.close()
    assert sum(len(c) for c in chunks) == 25 and max(len(c) for c in chunks) <= 10
    assert np.concatenate([c.rows for c in chunks]).tolist() == list(range(1, 26))
    assert list(chunks[0].columns) == ["x"]


def test_truncated_parquet_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.parquet"
    pq.write_table(pa.table({"x": np.arange(1000.0)}), path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputFileError, match=r"cut.parquet is not a readable Parquet file") as exc:
        _read_all(path, "parquet", 10, ("x",))
    assert "\n" not in str(exc.value)


def test_jsonl_rows_are_line_numbers_and_bad_lines_are_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"x": 1, "y": "a"}\n\n{"x": 2.5}\nnot json\n[1, 2]\n{"x": null, "y": "b"}\n')
    reader = get_table_format("jsonl").open_reader(path, str(path), 3)
    assert reader.columns == ("x", "y")
    chunks = list(reader.chunks(("x", "y")))
    reader.close()
    rows = [r for c in chunks for r in c.rows.tolist()]
    assert rows == [1, 3, 6]
    assert [v for c in chunks for v in c.columns["y"]] == ["a", None, "b"]
    rejected = {r.row: r.reason for c in chunks for r in c.rejected}
    assert set(rejected) == {4, 5}
    assert rejected[4].startswith("not valid JSON") and "not an object" in rejected[5]


def test_npy_reads_rows_in_chunks_and_refuses_object_arrays(tmp_path: Path) -> None:
    path = tmp_path / "in.npy"
    data = np.arange(60, dtype=np.float32).reshape(20, 3)
    np.save(path, data)
    reader = get_table_format("npy").open_reader(path, str(path), 8)
    assert reader.array_shape == (20, 3) and reader.array_dtype == np.float32
    chunks = list(reader.chunks(()))
    reader.close()
    assert [len(c) for c in chunks] == [8, 8, 4]
    np.testing.assert_array_equal(np.concatenate([c.array for c in chunks]), data)
    fortran = tmp_path / "f.npy"
    np.save(fortran, np.asfortranarray(data))
    reader = get_table_format("npy").open_reader(fortran, str(fortran), 8)
    np.testing.assert_array_equal(np.concatenate([c.array for c in reader.chunks(())]), data)
    reader.close()
    objects = tmp_path / "obj.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputFileError, match="holds Python objects"):
        get_table_format("npy").open_reader(objects, str(objects), 8)


def test_truncated_npy_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "cut.npy"
    np.save(path, np.zeros((100, 4)))
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(InputFileError, match=r"cut.npy is truncated"):
        get_table_format("npy").open_reader(path, str(path), 8)
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"PK\x03\x04 not numpy")
    with pytest.raises(InputFileError, match=r"garbage.npy is not a readable NPY file"):
        get_table_format("npy").open_reader(garbage, str(garbage), 8)


def test_npy_writer_rewrites_the_header_with_the_final_row_count(tmp_path: Path) -> None:
    out = io.BytesIO()
    writer = get_table_format("npy").open_writer(out, "out.npy")
    parts = [np.arange(6.0).reshape(3, 2), np.arange(6.0, 10.0).reshape(2, 2)]
    for part in parts:
        writer.write(part)
    writer.close()
    out.seek(0)
    np.testing.assert_array_equal(np.load(out), np.concatenate(parts))
    empty = io.BytesIO()
    get_table_format("npy").open_writer(empty, "e.npy").close()
    empty.seek(0)
    assert np.load(empty).shape == (0,)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_table_writers_append_chunks(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"out.{fmt}"
    parts = [pa.table({"id": ["a", "b"], "p": [0.1, float("nan")]}), pa.table({"id": ["c"], "p": [1 / 3]})]
    with open(path, "wb") as fh:
        writer = get_table_format(fmt).open_writer(fh, str(path))
        for part in parts:
            writer.write(part)
        writer.close()
    reader = get_table_format(fmt).open_reader(path, str(path), 100)
    chunks = list(reader.chunks(("id", "p")))  # Parquet: one per row group, so one per chunk written
    reader.close()
    got = [v for c in chunks for v in (c.columns["p"] if fmt == "jsonl" else c.columns["p"].to_pylist())]
    as_float = [None if v is None else float(v) for v in got]
    assert as_float[0] == 0.1 and as_float[2] == 1 / 3
    assert as_float[1] is None or np.isnan(as_float[1])
