"""What a batch run computes, decided once for the local path and the Ray Data path."""

from __future__ import annotations

import pytest

from modelcapsule.batch import BatchUsageError
from modelcapsule.batch.request import choose_methods, model_input, rejects_format
from modelcapsule.types import Signature, TensorSpec

X = TensorSpec("X", "float64", (-1, 4))


def _signature(*inputs: TensorSpec) -> Signature:
    return Signature(inputs=inputs, outputs=(TensorSpec("predict", "int64", (-1,)),))


def test_the_one_input_is_fed_and_several_are_refused_by_name() -> None:
    assert model_input(_signature(X)) is X
    with pytest.raises(BatchUsageError, match=r"takes 2 inputs \(X, mask\); batch scoring feeds one"):
        model_input(_signature(X, TensorSpec("mask", "bool", (-1, 4))))


def test_the_primary_output_by_default_and_only_outputs_the_model_offers() -> None:
    offered = ("predict", "predict_proba")
    assert choose_methods(None, offered) == ("predict",)
    assert choose_methods(None, ()) == ("predict",)
    assert choose_methods("predict_proba", offered) == ("predict_proba",)
    assert choose_methods(["predict_proba", "predict"], offered) == ("predict_proba", "predict")
    with pytest.raises(BatchUsageError, match="no output 'transform'; it offers predict, predict_proba"):
        choose_methods(["predict", "transform"], offered)


def test_rejects_are_a_table_csv_unless_the_extension_says_otherwise() -> None:
    assert rejects_format("bad.parquet").name == "parquet"
    assert rejects_format("bad-rows").name == "csv"
    with pytest.raises(BatchUsageError, match="rejects file bad.npy must be CSV, Parquet or JSON Lines"):
        rejects_format("bad.npy")
