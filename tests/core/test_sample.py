"""The golden sample's files: what ``write_sample`` stores under ``sample/`` (never a pickle), what
``read_sample`` gives back, the signature it implies, and how ``compare_outputs`` judges a re-run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelcapsule.core.members import MemoryMembers
from modelcapsule.core.sample import compare_outputs, infer_signature, normalize_inputs, read_sample, write_sample
from modelcapsule.errors import CapsuleFormatError
from modelcapsule.types import ColumnSpec, TensorSpec


def _round_trip(inputs: dict, outputs: dict) -> tuple[MemoryMembers, dict, tuple[dict, dict]]:
    members = MemoryMembers()
    section = write_sample(members, inputs, outputs)
    return members, section, read_sample(members, section)


def test_arrays_come_back_equal_with_their_dtypes() -> None:
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    labels = np.array([0, 1, 1, 0], dtype=np.int64)
    members, section, (inputs, outputs) = _round_trip({"input": X}, {"predict": labels})
    assert sorted(members.names()) == ["sample/inputs/0.npy", "sample/outputs/predict.npy"]
    assert section["inputs"]["input"]["kind"] == "array"
    np.testing.assert_array_equal(inputs["input"], X)
    assert inputs["input"].dtype == np.float32
    np.testing.assert_array_equal(outputs["predict"], labels)
    assert outputs["predict"].dtype == np.int64


def test_members_are_plain_npy_files_that_numpy_reads_without_pickle() -> None:
    members, _, _ = _round_trip({"input": np.ones((2, 2))}, {"predict": np.array(["a", "b"])})
    for name in members.names():
        assert members.read(name).startswith(b"\x93NUMPY")


def test_a_dataframe_is_stored_column_by_column_and_keeps_its_dtypes() -> None:
    frame = pd.DataFrame({
        "age": [31, 45, 27],
        "city": pd.Categorical(["Paris", "Lyon", "Paris"]),
        "note": pd.array(["x", None, "z"], dtype="string"),
    })
    members, section, (inputs, _) = _round_trip({"input": frame}, {"predict": np.array([1, 0, 1])})
    assert section["inputs"]["input"]["kind"] == "dataframe"
    assert [c["name"] for c in section["inputs"]["input"]["columns"]] == ["age", "city", "note"]
    assert "sample/inputs/0/2.npy.mask" in members.names()  # the missing note is a mask, not a string
    back = inputs["input"]
    assert list(back.columns) == ["age", "city", "note"]
    assert back["age"].tolist() == [31, 45, 27]
    assert isinstance(back["city"].dtype, pd.CategoricalDtype)
    assert back["city"].tolist() == ["Paris", "Lyon", "Paris"]
    assert back["note"].isna().tolist() == [False, True, False]


def test_object_values_are_stored_as_text_with_a_mask_for_missing_ones() -> None:
    labels = np.array(["spam", None, "ham"], dtype=object)
    members, section, (_, outputs) = _round_trip({"input": np.zeros((3, 1))}, {"predict": labels})
    entry = section["outputs"]["predict"]
    assert entry["stored_as"] == "text"
    assert entry["mask"] in members.names()
    assert outputs["predict"].tolist() == ["spam", None, "ham"]


def test_records_are_stored_as_json_never_pickled() -> None:
    records = np.array([{"a": 1}, {"a": 2, "b": [1, 2]}], dtype=object)
    members, section, (_, outputs) = _round_trip({"input": np.zeros((2, 1))}, {"predict": records})
    entry = section["outputs"]["predict"]
    assert entry == {"member": "sample/outputs/predict.json", "dtype": "object", "stored_as": "json"}
    assert members.read("sample/outputs/predict.json") == b'[{"a": 1}, {"a": 2, "b": [1, 2]}]'
    assert outputs["predict"].tolist() == [{"a": 1}, {"a": 2, "b": [1, 2]}]


def test_a_corrupt_member_is_a_format_error_naming_it() -> None:
    members, section, _ = _round_trip({"input": np.ones((2, 2))}, {"predict": np.array([1, 2])})
    members.members["sample/outputs/predict.npy"] = memoryview(b"not an npy file")
    with pytest.raises(CapsuleFormatError, match=r"'sample/outputs/predict.npy' is not a \w+ \.npy array"):
        read_sample(members, section)


def test_a_pickled_npy_member_is_refused() -> None:
    members, section, _ = _round_trip({"input": np.ones((2, 2))}, {"predict": np.array([1, 2])})
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
    members.members["sample/outputs/predict.npy"] = memoryview(buf.getvalue())
    with pytest.raises(CapsuleFormatError, match=r"'sample/outputs/predict.npy' is not a \w+ \.npy array"):
        read_sample(members, section)


def test_normalize_inputs_names_a_single_input_and_keeps_dataframes() -> None:
    frame = pd.DataFrame({"a": [1.0]})
    assert list(normalize_inputs([[1, 2]])) == ["input"]
    assert normalize_inputs(frame)["input"] is frame
    named = normalize_inputs({"x": [[1, 2]], "t": frame})
    assert isinstance(named["x"], np.ndarray) and named["t"] is frame


def test_the_signature_frees_the_first_dimension_and_lists_columns() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4]})
    signature = infer_signature(
        {"input": frame}, {"predict": np.array([0, 1]), "predict_proba": np.ones((2, 2))}, classes=np.array([0, 1])
    )
    assert signature.inputs == (
        TensorSpec("input", "object", (-1, 2), (ColumnSpec("a", "float64"), ColumnSpec("b", "int64"))),
    )
    assert signature.outputs == (TensorSpec("predict", "int64", (-1,)), TensorSpec("predict_proba", "float64", (-1, 2)))
    assert signature.classes == (0, 1)


# ------------------------------------------------------------------------------------------ compare


def test_equal_outputs_compare_as_none() -> None:
    expected = np.array([[0.25, 0.75], [np.nan, 1.0]])
    assert compare_outputs(expected, expected.copy()) is None
    assert compare_outputs(np.array(["a", "b"]), ["a", "b"]) is None


def test_floats_may_differ_within_tolerance_unless_exact() -> None:
    expected = np.array([1.0, 2.0])
    nearly = expected + 1e-12
    assert compare_outputs(expected, nearly) is None
    message = compare_outputs(expected, nearly, exact=True)
    assert message is not None and message.startswith("2 of 2 row(s) differ")


def test_a_difference_names_the_first_differing_rows() -> None:
    message = compare_outputs(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]))
    assert message == "1 of 4 row(s) differ; first ones:\n  row 2: expected np.int64(1), got np.int64(0)"


def test_a_different_shape_is_reported_as_such() -> None:
    assert compare_outputs(np.zeros((3, 2)), np.zeros((3,))) == "shape (3,) instead of (3, 2)"


def test_sparse_and_pandas_outputs_are_compared_as_arrays() -> None:
    from scipy import sparse

    expected = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert compare_outputs(expected, sparse.csr_matrix(expected)) is None
    assert compare_outputs(np.array([1, 2]), pd.Series([1, 2])) is None
