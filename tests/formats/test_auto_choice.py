"""``format="auto"``: safepickle, then skops; never a format that runs code; the choice is recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import modelcapsule as mc
from modelcapsule.formats import all_formats
from modelcapsule.frameworks import framework_for


def test_auto_tries_safepickle_then_skops(forest: object) -> None:
    assert framework_for(forest).formats(forest)[:2] == ["safepickle", "skops"]


def test_registry_orders_formats_safest_first_and_code_last() -> None:
    names = [f.name for f in all_formats()]
    for safer, riskier in (("safepickle", "skops"), ("skops", "pickle"), ("pickle", "joblib"),
                           ("joblib", "cloudpickle")):
        assert names.index(safer) < names.index(riskier)
    assert all_formats()[-1].runs_code or not any(f.runs_code for f in all_formats())


def test_auto_records_its_choice_and_inspect_shows_it(tmp_path: Path, pipeline: object, data: tuple) -> None:
    manifest = mc.save(pipeline, tmp_path / "m.capsule", sample=data[0][:5], source=False)
    assert manifest.format_name == "safepickle"
    assert manifest.format["chosen_by"] == "auto" and manifest.format["passed_over"] == {}
    again = mc.inspect(tmp_path / "m.capsule")
    assert again.format["chosen_by"] == "auto"
    np.testing.assert_array_equal(mc.load(tmp_path / "m.capsule").predict(data[0]), pipeline.predict(data[0]))  # type: ignore[attr-defined]
