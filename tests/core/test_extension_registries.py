"""Formats and frameworks share one registry shape: duplicates refused, lookups import only what they need,
listings keep module order (specific frameworks before scikit-learn)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from modelcapsule.formats import all_formats, get_format, register_format
from modelcapsule.frameworks import all_frameworks


def test_a_second_format_with_a_taken_name_is_refused() -> None:
    with pytest.raises(ValueError, match="a format named 'safepickle' is already registered"):
        register_format(get_format("safepickle"))


def test_objects_that_are_not_formats_are_refused() -> None:
    with pytest.raises(TypeError, match="does not implement the format protocol"):
        register_format(object())  # type: ignore[arg-type]


def test_formats_list_safest_first_and_frameworks_most_specific_first() -> None:
    safety = [f.safety for f in all_formats()]
    assert safety == sorted(safety)
    assert all_formats()[-1].name == "cloudpickle"
    names = [f.name for f in all_frameworks()]
    assert names.index("xgboost") < names.index("sklearn") and names.index("keras") < names.index("torch")


def test_looking_up_one_format_imports_only_what_it_needs(subprocess_env: dict[str, str]) -> None:
    code = ("import sys\nfrom modelcapsule.formats import get_format\nget_format('safepickle')\n"
            "print(sorted(m for m in sys.modules if m.startswith('modelcapsule.formats.')))")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert "modelcapsule.formats.safepickle" in out
    for other in ("skops", "cloudpickle", "safetensors", "torchexport", "keras", "xgboost", "lightgbm", "onnx"):
        assert f"modelcapsule.formats.{other}'" not in out
