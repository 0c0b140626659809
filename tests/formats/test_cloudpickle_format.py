"""``cloudpickle``: stores code by value, so it loads only with trust_code=True and is never automatic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import modelcapsule as mc
from modelcapsule.formats import get_format


@pytest.fixture
def lambda_model(data: tuple) -> object:
    return make_pipeline(FunctionTransformer(lambda x: x * 2.0 + 1.0)).fit(data[0])


def test_cloudpickle_capsule_loads_only_with_trust_code(tmp_path: Path, lambda_model: object,
                                                         data: tuple) -> None:
    path = tmp_path / "m.capsule"
    mc.save(lambda_model, path, format="cloudpickle", sample=data[0][:5], source=False)
    with pytest.raises(mc.UntrustedCodeError, match="trust_code=True"):
        mc.load(path)
    loaded = mc.load(path, trust_code=True)
    np.testing.assert_array_equal(loaded.transform(data[0]), data[0] * 2.0 + 1.0)  # type: ignore[attr-defined]


def test_auto_never_picks_cloudpickle_and_says_how_to_use_it(tmp_path: Path, lambda_model: object,
                                                              data: tuple) -> None:
    with pytest.raises(mc.UnsupportedModelError) as info:
        mc.save(lambda_model, tmp_path / "m.capsule", sample=data[0][:5], source=False)
    message = str(info.value)
    assert "format='cloudpickle'" in message and "trust_code=True" in message
    assert "safepickle" in message and "skops" in message  # each safer format says why it was passed over
    assert not (tmp_path / "m.capsule").exists()


def test_cloudpickle_is_marked_as_running_code() -> None:
    fmt = get_format("cloudpickle")
    assert fmt.runs_code and fmt.safety >= 100 and fmt.extensions == ()


def test_audit_of_a_cloudpickle_capsule_lists_names_and_flags_code(tmp_path: Path, lambda_model: object) -> None:
    path = tmp_path / "m.capsule"
    mc.save(lambda_model, path, format="cloudpickle", source=False)
    report = mc.audit(path)
    assert report.runs_code and not report.ok
    assert any(name.startswith("cloudpickle.") for name in report.globals)
