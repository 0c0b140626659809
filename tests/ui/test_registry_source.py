"""The registry's pages: models with search and tags, versions, aliases, the history timeline, cards.

It drives the real embedded registry (SQLite + blobs in a temporary directory) through the pages' JSON
twins and HTML.
"""

from __future__ import annotations

import pytest
from starlette.applications import Starlette

import modelcapsule.registry as registry_pkg
from modelcapsule.ui.pages import routes
from modelcapsule.ui.registry_source import RegistrySource

from .conftest import AsgiClient


@pytest.fixture
def client(capsules, tmp_path):
    reg = registry_pkg.Registry(str(tmp_path / "reg"))
    reg.register("iris", capsules["iris1"], tags={"team": "plants"}, alias="staging")
    reg.register("iris", capsules["iris2"], tags={"team": "plants"})
    reg.set_alias("iris", "champion", 1, reason="first one")
    reg.set_alias("iris", "champion", 2, reason="accuracy +0.04")
    reg.record_event("iris", "serving_failure", alias="champion", to_version=2, reason="golden sample differs")
    reg.register("diabetes", capsules["diabetes"], tags={"team": "health"})
    yield AsgiClient(Starlette(routes=routes(RegistrySource(reg))))
    reg.close()


def test_models_list_searches_names_and_filters_by_tag(client):
    every = client.get("/models.json").json()
    assert [m["name"] for m in every["models"]] == ["diabetes", "iris"]
    assert [m["name"] for m in client.get("/models.json", params={"q": "ir*"}).json()["models"]] == ["iris"]
    tagged = client.get("/models.json", params=[("tag", "team=health")]).json()
    assert [m["name"] for m in tagged["models"]] == ["diabetes"]
    page = client.get("/", params={"q": "iris"}).text
    assert "/models/iris" in page and "/models/diabetes\"" not in page


def test_model_page_has_versions_aliases_and_the_history_timeline(client):
    doc = client.get("/models/iris.json").json()
    assert [v["version"] for v in doc["model"]["versions"]] == [2, 1]
    assert doc["model"]["aliases"] == {"staging": 1, "champion": 2}
    assert all(v["digest"].startswith("sha256:") for v in doc["model"]["versions"])
    kinds = [e["kind"] for e in doc["history"]]
    assert kinds[0] == "serving_failure" and doc["history"][0]["failure"]
    moves = [e for e in doc["history"] if e["alias"] == "champion" and e["to_version"] == 2 and not e["failure"]]
    assert moves and moves[0]["reason"] == "accuracy +0.04"
    html = client.get("/models/iris").text
    assert 'class="timeline"' in html and "golden sample differs" in html and 'class="failure"' in html


def test_version_page_is_the_card_with_registry_facts_and_no_try_it_form(client):
    card = client.get("/models/iris/versions/2.json").json()
    assert card["registry"]["digest"].startswith("sha256:") and "champion" in card["registry"]["aliases"]
    assert card["charts"] and card["evaluation"]["n_samples"] == 75
    html = client.get("/models/iris/versions/2").text
    assert "Try it" not in html and "Confusion matrix" in html
    assert client.post("/models/iris/versions/2/predict", json={"rows": [[1, 2, 3, 4]]}).status_code == 400


def test_compare_and_missing_things(client):
    doc = client.get("/models/iris/compare.json", params={"a": 1, "b": 2}).json()
    params = next(s for s in doc["sections"] if s["title"] == "Parameters")
    assert next(r for r in params["rows"] if r["key"] == "C")["differs"]
    assert client.get("/models/nope").status_code == 404
    assert client.get("/models/iris/versions/7.json").status_code == 404


def test_capsule_card_takes_a_models_uri(capsules, tmp_path):
    from click.testing import CliRunner

    from modelcapsule.cli import cli

    location = str(tmp_path / "reg")
    reg = registry_pkg.Registry(location)
    reg.register("iris", capsules["iris1"], alias="champion")
    reg.close()
    result = CliRunner().invoke(cli, ["card", "models:/iris@champion", "--registry", location])
    assert result.exit_code == 0, result.output
    assert "Registry: version 1 of `iris`, digest `sha256:" in result.output and "aliases champion" in result.output
