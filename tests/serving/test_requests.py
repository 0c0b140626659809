"""Compiled signature checks: dtypes convert only without loss, shapes and columns are named in errors."""

from __future__ import annotations

import numpy as np
import pytest

from modelcapsule.serving.errors import InvalidRequestError
from modelcapsule.serving.requests import RequestValidator, Table
from modelcapsule.types import ColumnSpec, Signature, TensorSpec

ARRAY = Signature(inputs=(TensorSpec("input", "float64", (-1, 3)),), outputs=(TensorSpec("predict", "int64", (-1,)),))
TABLE = Signature(
    inputs=(TensorSpec("input", "object", (-1, 2), (ColumnSpec("age", "int64"), ColumnSpec("city", "object"))),),
    outputs=(TensorSpec("predict", "float64", (-1,)),),
)


def test_lossless_conversions_pass_and_lossy_ones_are_refused() -> None:
    v = RequestValidator(ARRAY)
    assert v.check_inputs({"input": [[1, 2, 3]]})["input"].dtype == np.float64  # type: ignore[union-attr]
    assert v.check_inputs({"input": np.ones((2, 3), np.float32)})["input"].dtype == np.float64  # type: ignore[union-attr]
    view = np.ones((2, 3))
    assert v.check_inputs({"input": view})["input"] is view  # no copy when the dtype already matches
    with pytest.raises(InvalidRequestError, match="expected float64"):
        v.check_inputs({"input": np.array([["a", "b", "c"]], dtype=object)})
    ints = RequestValidator(Signature(inputs=(TensorSpec("x", "int64", (-1, 1)),), outputs=()))
    with pytest.raises(InvalidRequestError, match="floating-point values; expected integers"):
        ints.check_inputs({"x": [[1.5]]})


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ([1, 2, 3], "Wrap a single row"),
        ([[1, 2]], "dimension 1 must be 3"),
        ([[1, 2, 3], [1, 2]], "rectangular"),
        ([], "shape [0]"),
        ([["x", 1, 2]], "string values"),
    ],
)
def test_shape_and_type_errors_say_what_was_expected(value: object, words: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        RequestValidator(ARRAY).check_inputs({"input": value})
    assert words in str(err.value)


def test_names_are_checked() -> None:
    v = RequestValidator(ARRAY)
    with pytest.raises(InvalidRequestError, match=r"unknown input name\(s\) \['x'\]; this model takes \['input'\]"):
        v.check_inputs({"x": [[1, 2, 3]]})
    with pytest.raises(InvalidRequestError, match="unknown output 'proba'"):
        v.check_outputs(["proba"])
    assert v.check_outputs(None) == ("predict",)


def test_tables_by_rows_or_columns() -> None:
    v = RequestValidator(TABLE)
    by_rows = v.check_inputs({"input": [[31, "Oslo"], [45, "Lima"]]})["input"]
    by_cols = v.check_inputs({"input": {"age": [31, 45], "city": ["Oslo", "Lima"]}})["input"]
    assert isinstance(by_rows, Table) and isinstance(by_cols, Table)
    assert by_rows.columns["age"].tolist() == by_cols.columns["age"].tolist() == [31, 45]
    assert by_rows.to_frame()["city"].tolist() == ["Oslo", "Lima"]
    with pytest.raises(InvalidRequestError, match=r"missing column\(s\) \['city'\]"):
        v.check_inputs({"input": {"age": [1]}})
    with pytest.raises(InvalidRequestError, match="column 'age'"):
        v.check_inputs({"input": [["old", "Oslo"]]})
