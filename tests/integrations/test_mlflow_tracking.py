"""``import_mlflow`` against a real MLflow tracking server store (SQLite in a temporary directory):
``runs:/`` and ``models:/`` URIs, run metrics and experiment as provenance, registry versions and aliases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

import modelcapsule as mc
from modelcapsule.cli import cli
from modelcapsule.integrations.mlflow import import_mlflow

from .mlflow_helpers import REQUIREMENTS, iris, mlflow, quiet

pytestmark = [
    pytest.mark.slow,  # creating MLflow's schema in SQLite takes several seconds
    # MLflow's SQL store uses a loader strategy SQLAlchemy 2.1 deprecates: MLflow's noise, not ours
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tracking store with one run (params, metrics, a logged model) registered as ``iris`` version 1,
    aliased ``champion``. The global tracking URI is left as it was."""
    root = tmp_path_factory.mktemp("tracking")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    x, y = iris()
    model = LogisticRegression(max_iter=500).fit(x, y)
    with quiet():
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = client.create_experiment("fraud-team", artifact_location=(root / "artifacts").as_uri())
        mlflow.set_tracking_uri(uri)
        try:
            with mlflow.start_run(experiment_id=experiment, run_name="baseline") as run:
                mlflow.log_param("C", 1.0)
                mlflow.log_metric("cv_accuracy", 0.96)
                mlflow.sklearn.log_model(model, name="model", input_example=x[:3], pip_requirements=REQUIREMENTS,
                                         registered_model_name="iris")
        finally:
            mlflow.set_tracking_uri(None)
        client.set_registered_model_alias("iris", "champion", 1)
        client.update_model_version("iris", 1, description="first baseline")
    return {"uri": uri, "run_id": run.info.run_id, "model": model, "x": x}


def test_a_run_uri_carries_the_run_metrics_and_experiment(store: dict, tmp_path: Path) -> None:
    report = import_mlflow(f"runs:/{store['run_id']}/model", tmp_path / "run.capsule", tracking_uri=store["uri"])
    manifest = mc.inspect(tmp_path / "run.capsule")
    assert manifest.provenance["metrics"] == {"cv_accuracy": 0.96}
    run = manifest.provenance["mlflow"]["run"]
    assert (run["run_id"], run["run_name"], run["experiment_name"]) == (store["run_id"], "baseline", "fraud-team")
    assert run["params"] == {"C": "1.0"}
    assert report.metrics == {"cv_accuracy": 0.96}
    np.testing.assert_array_equal(mc.load(tmp_path / "run.capsule").predict(store["x"]),
                                  store["model"].predict(store["x"]))


def test_a_registry_alias_names_the_version_it_points_to(store: dict, tmp_path: Path) -> None:
    import_mlflow("models:/iris@champion", tmp_path / "champion.capsule", tracking_uri=store["uri"])
    manifest = mc.inspect(tmp_path / "champion.capsule")
    registered = manifest.provenance["mlflow"]["registered_model"]
    assert (registered["name"], registered["version"], registered["aliases"]) == ("iris", 1, ["champion"])
    assert registered["description"] == "first baseline"
    assert manifest.name == "iris"
    assert manifest.provenance["mlflow"]["run"]["run_id"] == store["run_id"]
    latest = import_mlflow("models:/iris/latest", tmp_path / "latest.capsule", tracking_uri=store["uri"])
    assert latest.manifest.provenance["mlflow"]["registered_model"]["version"] == 1


def test_cli_imports_a_registered_version_and_reports_unknown_ones(store: dict, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["import-mlflow", "models:/iris/1", str(tmp_path / "v1.capsule"),
                                 "--tracking-uri", store["uri"]])
    assert result.exit_code == 0, result.output
    assert f"provenance: run {store['run_id']} of experiment 'fraud-team', 1 metric(s)" in result.output

    result = runner.invoke(cli, ["import-mlflow", "models:/nope/1", str(tmp_path / "nope.capsule"),
                                 "--tracking-uri", store["uri"]])
    assert result.exit_code == 1
    assert "MLflow could not provide models:/nope/1" in result.output
    assert not (tmp_path / "nope.capsule").exists()
