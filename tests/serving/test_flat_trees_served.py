"""``capsule serve`` (its default runtime) answers a tree ensemble saved with stored flat trees from those
trees alone: the REST answers are scikit-learn's, an input the model refuses (a value infinite in float32,
to a gradient-boosting model) is a 400 naming the problem, and after answering the server process has
mapped no extension module of scikit-learn or SciPy (``/proc/PID/maps``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

import modelcapsule as mc

from .conftest import start_server
from .test_onnx_served_lean import mapped_packages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/maps")


def test_a_forest_is_served_from_its_stored_trees_without_scikit_learn(tmp_path: Path, capsule_cmd: list[str],
                                                                        subprocess_env: dict[str, str]) -> None:
    x = np.random.default_rng(0).normal(size=(400, 6))
    forest = RandomForestClassifier(12, max_depth=6, random_state=0).fit(x, (x[:, 0] > 0) + (x[:, 1] > 1))
    boosted = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x, x[:, 2] > 0)
    mc.save(forest, tmp_path / "forest.capsule", sample=x[:10])
    mc.save(boosted, tmp_path / "boosted.capsule", sample=x[:10])
    server = start_server(capsule_cmd, subprocess_env, tmp_path / "logs", str(tmp_path / "forest.capsule"),
                          str(tmp_path / "boosted.capsule"), "--no-access-log")
    rows = x[100:140]
    try:
        def infer(model: str, data: list[list[float]], output: str) -> requests.Response:
            tensor = {"name": "input", "shape": [len(data), 6], "datatype": "FP64", "data": data}
            body: dict[str, Any] = {"inputs": [tensor], "outputs": [{"name": output}]}
            return requests.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=30)

        proba = infer("forest", rows.tolist(), "predict_proba").json()["outputs"][0]
        assert np.array_equal(np.asarray(proba["data"]).reshape(proba["shape"]), forest.predict_proba(rows))
        labels = infer("boosted", rows.tolist(), "predict").json()["outputs"][0]["data"]
        assert labels == boosted.predict(rows).tolist()
        refused = infer("boosted", [[1e300] * 6], "predict")  # infinite once cast to float32, as scikit-learn does
        assert refused.status_code == 400, refused.text
        assert "infinity" in refused.json()["error"]
        with pytest.raises(ValueError, match="infinity"), np.errstate(over="ignore"):
            boosted.predict([[1e300] * 6])
        assert requests.get(f"{server.url}/v2/models/boosted/ready", timeout=30).status_code == 200
        mapped = mapped_packages(server.process.pid)
        assert "numpy" in mapped  # the check sees packages that are there
        assert not mapped & {"sklearn", "scipy"}, sorted(mapped & {"sklearn", "scipy"})
    finally:
        assert server.stop() == 0


def test_the_default_runtime_is_flat_and_python_forces_the_object(tmp_path: Path) -> None:
    from modelcapsule.frameworks.tree_predictor import FlatTreePredictor
    from modelcapsule.serving.config import ServerOptions
    from modelcapsule.serving.loader import load_for_serving

    x = np.random.default_rng(1).normal(size=(200, 4))
    mc.save(RandomForestClassifier(4, max_depth=3, random_state=0).fit(x, x[:, 0] > 0), tmp_path / "f.capsule",
            sample=x[:5])
    assert ServerOptions().runtime == "flat"
    assert isinstance(load_for_serving(tmp_path / "f.capsule")[1], FlatTreePredictor)
    assert not isinstance(load_for_serving(tmp_path / "f.capsule", runtime="python")[1], FlatTreePredictor)
