"""Real MLflow model directories for the MLflow interop tests, written by MLflow itself.

MLflow is imported with its own import-time warnings silenced (they are MLflow's, not ours) and with
telemetry off: the tests reach no network. Each builder passes ``pip_requirements`` so MLflow does not
spend seconds inferring them in a child process.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    pytest.importorskip("mlflow")
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn

REQUIREMENTS = ["scikit-learn==1.9.1", "numpy==2.4.6"]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """MLflow's own warnings while it saves (deprecations, advice) are not under test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x, y


def sklearn_dir(path: Path, model: Any, fmt: str, example: Any, **kwargs: Any) -> Path:
    with quiet():
        mlflow.sklearn.save_model(model, str(path), serialization_format=fmt, input_example=example,
                                  pip_requirements=REQUIREMENTS, **kwargs)
    return path


def rewrite_mlmodel(directory: Path, **changes: Any) -> None:
    """Edit an MLmodel file the way an attacker with write access to the artifact store would."""
    import yaml

    path = directory / "MLmodel"
    data = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    path.write_text(yaml.safe_dump(data))


def doubler() -> Any:
    """A custom pyfunc model, whose class travels by value in ``python_model.pkl``."""
    with quiet():
        class Doubler(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
            def predict(self, context: Any, model_input: list[Any], params: Any = None) -> list[Any]:
                return [v * 2 for v in model_input]

        return Doubler()
