"""``capsule registry import-mlflow``: MLflow's registry copied into modelcapsule's, version by version,
through the restricted readers; unsafe versions skipped and reported; re-running imports only what is new."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

pytest.importorskip("sqlalchemy")
registry_module = pytest.importorskip("modelcapsule.registry")

from modelcapsule.cli.import_mlflow import registry_command  # noqa: E402
from modelcapsule.integrations.mlflow.registry_import import import_registry  # noqa: E402

from .mlflow_helpers import REQUIREMENTS, doubler, iris, mlflow, quiet  # noqa: E402

pytestmark = [
    pytest.mark.slow,  # two SQLite schemas (MLflow's, the registry's) and three logged models
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
]


@pytest.fixture(scope="module")
def mlflow_registry(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``iris`` v1 and v3 are scikit-learn models; v2 is a custom pyfunc (code), which must be skipped.
    ``champion`` → v1, ``challenger`` → v2."""
    root = tmp_path_factory.mktemp("mlflow-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    x, y = iris()
    models = [LogisticRegression(max_iter=300, C=c).fit(x, y) for c in (1.0, 0.1)]
    with quiet():
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = client.create_experiment("registry", artifact_location=(root / "artifacts").as_uri())
        mlflow.set_tracking_uri(uri)
        try:
            with mlflow.start_run(experiment_id=experiment):
                mlflow.sklearn.log_model(models[0], name="m1", input_example=x[:3], pip_requirements=REQUIREMENTS,
                                         registered_model_name="iris")
                mlflow.pyfunc.log_model(name="m2", python_model=doubler(), pip_requirements=["numpy"],
                                        registered_model_name="iris")
                mlflow.sklearn.log_model(models[1], name="m3", input_example=x[:3], pip_requirements=REQUIREMENTS,
                                         registered_model_name="iris")
        finally:
            mlflow.set_tracking_uri(None)
        client.set_registered_model_alias("iris", "champion", 1)
        client.set_registered_model_alias("iris", "challenger", 2)
        client.update_model_version("iris", 1, description="baseline")
        client.set_model_version_tag("iris", 1, "team", "risk")
    return {"uri": uri, "models": models, "x": x}


def test_versions_tags_and_aliases_come_across_and_code_is_skipped(mlflow_registry: dict, tmp_path: Path) -> None:
    reg = registry_module.Registry(tmp_path / "reg")
    try:
        report = import_registry(mlflow_registry["uri"], reg)
        assert report.imported == {"iris": {1: 1, 3: 2}}
        assert list(report.skipped["iris"]) == [2]
        assert "code" in report.skipped["iris"][2]
        assert report.aliases == {"iris": {"champion": 1}}
        assert "challenger" in report.alias_problems[0]

        champion = reg.get("iris@champion")
        assert (champion.tags["mlflow.version"], champion.tags["team"], champion.description) == ("1", "risk",
                                                                                                   "baseline")
        x = mlflow_registry["x"]
        loaded = __import__("modelcapsule").load(reg.fetch("iris/2"))
        np.testing.assert_array_equal(loaded.predict(x), mlflow_registry["models"][1].predict(x))

        again = import_registry(mlflow_registry["uri"], reg)  # idempotent: nothing new to import
        assert again.imported == {}
        assert again.already == {"iris": {1: 1, 3: 2}}
        assert len(reg.versions("iris")) == 2
    finally:
        reg.close()


def test_cli_reports_skips_with_exit_code_1(mlflow_registry: dict, tmp_path: Path) -> None:
    result = CliRunner().invoke(registry_command, ["--tracking-uri", mlflow_registry["uri"], "--model", "iris",
                                                   "--registry", str(tmp_path / "reg")])
    assert result.exit_code == 1, result.output
    assert "imported iris: v1 → v1, v3 → v2" in result.output
    assert "skipped iris v2" in result.output
