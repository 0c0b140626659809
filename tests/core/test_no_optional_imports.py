"""Importing any module of the core or of security imports no optional dependency.

The import contracts (``lint-imports``) see every import statement, including those inside functions,
so they let the core import pandas lazily (for DataFrame samples and fingerprints). This test checks the
other half of the rule: at import time, nothing optional is loaded.
"""

from __future__ import annotations

import subprocess
import sys

OPTIONAL = ("pandas", "pyarrow", "torch", "safetensors", "keras", "h5py", "onnx", "onnxruntime", "skl2onnx",
            "onnxmltools", "xgboost", "lightgbm", "starlette", "uvicorn", "grpc", "orjson", "sqlalchemy", "jinja2",
            "mlflow", "ray")

SCRIPT = f"""
import importlib, pkgutil, sys
import modelcapsule.core, modelcapsule.security

for package in (modelcapsule.core, modelcapsule.security):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
print(sorted(name for name in {OPTIONAL!r} if name in sys.modules))
"""


def test_core_and_security_modules_import_no_optional_dependency(subprocess_env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=subprocess_env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
