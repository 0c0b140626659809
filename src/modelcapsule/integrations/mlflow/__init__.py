"""MLflow interop: bring MLflow models in safely, and hand capsules to MLflow users.

* :func:`import_mlflow` (``capsule import-mlflow``) turns an MLflow model into a capsule through
  modelcapsule's own restricted readers; trust lists written inside the MLflow model are never honoured.
* :func:`save_model` / :func:`log_model` wrap a capsule as an MLflow model whose ``python_function``
  flavor loads it with every modelcapsule check (``mlflow.pyfunc.load_model``, ``mlflow models serve``).

Importing this package does not import MLflow; each function imports it when it needs it.
"""

from __future__ import annotations

from .importer import ImportReport, import_mlflow
from .pyfunc import log_model, save_model

__all__ = ["ImportReport", "import_mlflow", "log_model", "save_model"]
