"""Hostile MLflow model directories: payloads that would run code, MLmodel files whose trust lists name
dangerous functions. Nothing runs (the canary file never appears) and the refusal says what to do."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modelcapsule as mc
from modelcapsule.integrations.mlflow import import_mlflow
from modelcapsule.integrations.mlflow.refusals import MLflowCodeRefusedError, MLflowUntrustedError

from .mlflow_helpers import iris, rewrite_mlmodel, sklearn_dir


class _RunsAShellCommand:
    """Unpickling this calls os.system: the classic malicious pickle."""

    def __init__(self, canary: Path) -> None:
        self.command = f"touch {canary}"

    def __reduce__(self) -> tuple:
        return (os.system, (self.command,))


@pytest.fixture
def genuine(tmp_path: Path) -> Path:
    """A real MLflow scikit-learn model (pickle format) to be tampered with."""
    x, y = iris()
    return sklearn_dir(tmp_path / "genuine", LogisticRegression(max_iter=300).fit(x, y), "pickle", x[:3])


def test_a_pickle_that_runs_a_command_is_refused_before_anything_runs(genuine: Path, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    (genuine / "model.pkl").write_bytes(pickle.dumps(_RunsAShellCommand(canary)))
    with pytest.raises(MLflowUntrustedError) as refused:
        import_mlflow(genuine, tmp_path / "out.capsule")
    assert refused.value.names == ["posix.system"]
    message = str(refused.value)
    assert "Nothing was imported or run" in message
    assert "--trust posix.system" in message and "capsule audit" in message
    assert not canary.exists()
    assert not (tmp_path / "out.capsule").exists()


def test_a_trust_list_in_mlmodel_naming_the_dangerous_function_changes_nothing(
        genuine: Path, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    (genuine / "model.pkl").write_bytes(pickle.dumps(_RunsAShellCommand(canary)))
    rewrite_mlmodel(genuine, flavors__sklearn__skops_trusted_types=["posix.system", "builtins.exec"])
    with pytest.raises(MLflowUntrustedError) as refused:
        import_mlflow(genuine, tmp_path / "out.capsule")
    assert "sklearn.skops_trusted_types: posix.system, builtins.exec" in str(refused.value)
    assert "it was ignored" in str(refused.value)
    assert not canary.exists()


def test_a_cloudpickle_payload_carrying_code_is_refused_even_when_its_names_are_trusted(
        genuine: Path, tmp_path: Path) -> None:
    cloudpickle = pytest.importorskip("cloudpickle")
    canary = tmp_path / "canary"

    def plant() -> None:  # defined here, so cloudpickle stores it by value
        canary.write_text("code from the model ran")

    class Planter:
        def __reduce__(self) -> tuple:
            return (plant, ())

    (genuine / "model.pkl").write_bytes(cloudpickle.dumps(Planter()))
    rewrite_mlmodel(genuine, flavors__sklearn__serialization_format="cloudpickle")
    with pytest.raises(MLflowCodeRefusedError) as refused:
        import_mlflow(genuine, tmp_path / "out.capsule")
    assert any(n.startswith("cloudpickle.") for n in refused.value.names)
    assert "serialization_format='skops'" in str(refused.value)

    with pytest.raises(MLflowCodeRefusedError):  # trusting the names cannot admit code carried by the file
        import_mlflow(genuine, tmp_path / "out.capsule", trusted=[n for n in refused.value.names if "<" not in n])
    assert not canary.exists()


def test_a_skops_file_with_a_shell_function_and_a_trust_list_for_it_is_refused(tmp_path: Path) -> None:
    skops_io = pytest.importorskip("skops.io")
    from sklearn.preprocessing import FunctionTransformer

    x, y = iris()
    source = sklearn_dir(tmp_path / "skops", LogisticRegression(max_iter=300).fit(x, y), "skops", x[:3])
    skops_io.dump(FunctionTransformer(func=os.system), source / "model.skops")
    rewrite_mlmodel(source, flavors__sklearn__skops_trusted_types=["posix.system", "builtins.exec"])
    with pytest.raises(MLflowUntrustedError) as refused:
        import_mlflow(source, tmp_path / "out.capsule")
    assert "posix.system" in refused.value.names
    assert refused.value.ignored_trust_lists == {"sklearn.skops_trusted_types": ["posix.system", "builtins.exec"]}


def test_a_pickled_pytorch_module_is_refused_with_its_classes_and_a_safer_way(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import mlflow.pytorch

    from .mlflow_helpers import quiet

    with quiet():
        mlflow.pytorch.save_model(torch.nn.Linear(4, 2), str(tmp_path / "torch"), serialization_format="pickle",
                                  pip_requirements=["torch"])
    with pytest.raises(MLflowUntrustedError) as refused:
        import_mlflow(tmp_path / "torch", tmp_path / "torch.capsule")
    assert "torch.nn.modules.linear.Linear" in refused.value.names
    assert "serialization_format='pt2'" in str(refused.value)


def test_a_capsule_is_written_only_when_everything_passed(genuine: Path, tmp_path: Path) -> None:
    (genuine / "model.pkl").write_bytes(b"\x80\x05garbage")
    with pytest.raises(mc.CapsuleFormatError):
        import_mlflow(genuine, tmp_path / "out.capsule")
    assert not (tmp_path / "out.capsule").exists()
    assert np.array_equal(np.array([1]), np.array([1]))
