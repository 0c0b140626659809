"""The MLflow files read as plain data, without MLflow: signatures, input examples and environment pins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import modelcapsule as mc
from modelcapsule.integrations.mlflow.environment import read_pins
from modelcapsule.integrations.mlflow.schema import capsule_signature, read_example


def test_column_signatures_keep_names_and_mlflow_types() -> None:
    columns = [{"type": "double", "name": "amount"}, {"type": "long", "name": "count"},
               {"type": "string", "name": "country"}, {"type": "boolean", "name": "flag"}]
    signature = capsule_signature({"inputs": json.dumps(columns),
                                   "outputs": json.dumps([{"type": "long"}])})
    spec = signature.inputs[0]
    assert (spec.name, spec.dtype, spec.shape) == ("input", "object", (-1, 4))
    assert [(c.name, c.dtype) for c in spec.columns] == [("amount", "float64"), ("count", "int64"),
                                                         ("country", "object"), ("flag", "bool")]
    assert [(o.name, o.dtype, o.shape) for o in signature.outputs] == [("predict", "int64", (-1,))]


def test_named_tensors_keep_their_names_and_a_broken_signature_is_refused() -> None:
    tensors = [{"type": "tensor", "name": "image", "tensor-spec": {"dtype": "float32", "shape": [-1, 28, 28]}},
               {"type": "tensor", "name": "mask", "tensor-spec": {"dtype": "bool", "shape": [-1, 28, 28]}}]
    signature = capsule_signature({"inputs": json.dumps(tensors)})
    assert [(t.name, t.dtype, t.shape) for t in signature.inputs] == [("image", "float32", (-1, 28, 28)),
                                                                       ("mask", "bool", (-1, 28, 28))]
    with pytest.raises(mc.CapsuleFormatError):
        capsule_signature({"inputs": "[{not json"})


def test_a_dataframe_example_is_cast_to_the_signature(tmp_path: Path) -> None:
    (tmp_path / "input_example.json").write_text(json.dumps({"columns": ["a", "n"], "data": [[1, 2], [3, 4]]}))
    signature = capsule_signature({"inputs": json.dumps([{"type": "float", "name": "a"},
                                                         {"type": "integer", "name": "n"}])})
    frame, why = read_example(tmp_path, {"artifact_path": "input_example.json", "type": "dataframe"}, signature)
    assert why is None
    assert [str(t) for t in frame.dtypes] == ["float32", "int32"]


def test_an_example_outside_the_model_directory_or_of_another_kind_is_not_a_sample(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "secret.json").write_text("[1, 2]")
    sample, why = read_example(tmp_path / "model", {"artifact_path": "../secret.json", "type": "ndarray"}, None)
    assert sample is None and "not a file inside the model directory" in why
    (tmp_path / "model" / "chat.json").write_text(json.dumps({"messages": []}))
    sample, why = read_example(tmp_path / "model", {"artifact_path": "chat.json", "type": "json_object"}, None)
    assert sample is None and "json_object" in why
    (tmp_path / "model" / "ragged.json").write_text("[[1, 2], [3]]")
    with pytest.raises(mc.CapsuleFormatError, match="not a regular array"):
        read_example(tmp_path / "model", {"artifact_path": "ragged.json", "type": "ndarray"}, None)


def test_pins_are_exact_versions_without_mlflow_itself(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        "mlflow==3.17.2\nscikit-learn==1.9.1\ntorch==2.13.0+cpu\npandas>=2\n-r extra.txt\n"
        "git+https://example.invalid/pkg.git\nnumpy == 2.4.6  # pinned\n")
    (tmp_path / "python_env.yaml").write_text("python: 3.11.7\ndependencies:\n- -r requirements.txt\n")
    pins = read_pins(tmp_path)
    assert pins.requirements == ["numpy==2.4.6", "scikit-learn==1.9.1", "torch==2.13.0"]
    assert pins.left_behind == ["pandas>=2", "git+https://example.invalid/pkg.git"]
    assert pins.python == "3.11.7"
    assert pins.files == ["requirements.txt", "python_env.yaml"]


def test_conda_pins_are_used_when_there_is_no_requirements_file(tmp_path: Path) -> None:
    (tmp_path / "conda.yaml").write_text(
        "dependencies:\n- python=3.10.4\n- pip:\n  - xgboost==2.1.0\n  - mlflow-skinny==3.1.0\n")
    pins = read_pins(tmp_path)
    assert (pins.requirements, pins.python) == (["xgboost==2.1.0"], "3.10.4")
