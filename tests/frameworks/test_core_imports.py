"""The core never imports a framework it does not need: saving and loading a scikit-learn model, or
asking the CLI for help, leaves torch, Keras, XGBoost, LightGBM and onnxruntime unimported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ["torch", "keras", "xgboost", "lightgbm", "onnxruntime", "onnx", "safetensors", "skl2onnx", "onnxmltools"]


def test_sklearn_round_trip_imports_no_framework(tmp_path: Path, fresh_python) -> None:
    out = fresh_python(f"""
        import sys
        import modelcapsule as mc
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        from modelcapsule.formats import all_formats
        from modelcapsule.frameworks import all_frameworks

        x, y = load_iris(return_X_y=True)
        mc.save(LogisticRegression(max_iter=500).fit(x, y), {str(tmp_path / "lr.capsule")!r}, sample=x[:5])
        mc.load({str(tmp_path / "lr.capsule")!r})
        assert {{"torch", "keras", "xgboost", "lightgbm", "onnx"}} <= {{f.name for f in all_frameworks()}}
        assert {{"safetensors", "keras", "xgboost", "lightgbm", "onnx"}} <= {{f.name for f in all_formats()}}
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    assert out.strip() == "[]"


def test_cli_help_imports_no_framework(subprocess_env: dict[str, str], capsule_cmd: list[str]) -> None:
    code = ("import sys, runpy; sys.argv = ['capsule', '--help']\n"
            "try:\n    runpy.run_module('modelcapsule', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                          timeout=60, check=True)
    assert "Usage" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == "[]"
