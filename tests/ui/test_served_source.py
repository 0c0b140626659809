"""capsule serve's view for the pages: versions with their serving state, a failed version's error."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from starlette.applications import Starlette

from modelcapsule.serving.config import ServerOptions
from modelcapsule.serving.dataplane import DataPlane
from modelcapsule.serving.repository import Repository
from modelcapsule.serving.ui_source import ServedSource
from modelcapsule.ui.pages import routes
from modelcapsule.ui.source import NotFound, PredictionError

from .conftest import AsgiClient


@pytest.fixture
def plane(capsules, tmp_path):
    for version in (1, 2):
        (tmp_path / "iris" / str(version)).mkdir(parents=True)
    shutil.copyfile(capsules["iris1"], tmp_path / "iris" / "1" / "model.capsule")
    (tmp_path / "iris" / "2" / "model.capsule").write_bytes(b"not a capsule")
    (tmp_path / "serving.toml").write_text('[models.iris]\nversion_policy = "all"\n')
    dataplane = DataPlane(Repository([tmp_path], ServerOptions()))
    asyncio.run(dataplane.reconcile())
    yield dataplane
    asyncio.run(dataplane.close())


def test_a_version_that_failed_to_load_is_listed_with_its_error(plane):
    source = ServedSource(plane)
    iris = source.model("iris")
    failed, good = iris.versions
    assert (failed.version, failed.state) == (2, "END") and failed.error
    assert (good.version, good.state) == (1, "AVAILABLE") and good.metrics["cv_accuracy"] > 0
    html = AsgiClient(Starlette(routes=routes(source))).get("/models/iris").text
    assert "END" in html and failed.error.split(":")[0] in html
    with pytest.raises(NotFound):
        source.card("iris", 2)


def test_predict_refuses_bad_rows_and_unserved_versions(plane):
    source = ServedSource(plane)
    with pytest.raises(PredictionError, match="expected rows of 4 values"):
        asyncio.run(source.predict("iris", 1, [[1, 2]]))
    with pytest.raises(NotFound):
        asyncio.run(source.predict("iris", 2, [[1, 2, 3, 4]]))
    with pytest.raises(NotFound):
        source.model("nope")
