"""The Ray integration's builders and command-line checks, without starting a cluster."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LinearRegression

import modelcapsule as mc
from modelcapsule.cli import cli

pytest.importorskip("ray.serve", reason="needs the ray extra")

from modelcapsule.integrations.ray import app_builder, capsule_deployment, resolve_sources
from modelcapsule.integrations.ray.autoscaling import IN_FLIGHT_METRIC, direct_ingress_policy
from modelcapsule.integrations.ray.serve import deployment_settings
from modelcapsule.serving import ServerOptions, ServeSettings

# Ray Serve's own models use a pydantic feature pydantic deprecates; that is Ray's noise, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")


@pytest.fixture(scope="module")
def capsule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x = np.arange(30.0).reshape(15, 2)
    path = tmp_path_factory.mktemp("ray") / "line.capsule"
    mc.save(LinearRegression().fit(x, x.sum(axis=1)), path, sample=x[:3])
    return path


def test_a_replica_takes_enough_requests_to_fill_its_batches() -> None:
    settings = deployment_settings(ServerOptions(batch_size=256), replicas=3)
    assert settings["num_replicas"] == 3
    assert settings["max_ongoing_requests"] == 512  # Ray's default of 5 would cap every batch at 5 rows
    assert settings["ray_actor_options"] == {"num_cpus": 1}
    assert "autoscaling_config" not in settings


def test_auto_replicas_pass_the_users_autoscaling_settings_through() -> None:
    settings = deployment_settings(
        ServerOptions(batch_size=32), replicas="auto", autoscaling_config={"max_replicas": 8, "min_replicas": 2}
    )
    assert settings["num_replicas"] == "auto"
    assert settings["autoscaling_config"] == {"target_ongoing_requests": 32, "max_replicas": 8, "min_replicas": 2}
    override = deployment_settings(ServerOptions(batch_size=32), replicas="auto",
                                   autoscaling_config={"target_ongoing_requests": 4})
    assert override["autoscaling_config"] == {"target_ongoing_requests": 4}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"replicas": 0}, "positive integer or 'auto'"),
        ({"replicas": "many"}, "positive integer or 'auto'"),
        ({"replicas": 2, "autoscaling_config": {"max_replicas": 3}}, "replicas='auto' only"),
    ],
)
def test_impossible_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        deployment_settings(ServerOptions(), **kwargs)


def test_the_deployment_carries_the_settings(capsule: Path) -> None:
    deployment = capsule_deployment([capsule], replicas=2, options=ServerOptions(batch_size=64))
    assert deployment.num_replicas == 2
    assert deployment.max_ongoing_requests == 128
    assert deployment.name == "ModelCapsule"


def test_direct_ingress_is_a_deployment_of_its_own(capsule: Path) -> None:
    deployment = capsule_deployment([capsule], replicas=2, ingress="direct", direct=ServeSettings(port=9090))
    assert deployment.num_replicas == 2 and deployment.name == "ModelCapsule"
    capsule_deployment([capsule], replicas="auto", ingress="direct")  # Ray takes the policy below
    settings = deployment_settings(ServerOptions(batch_size=8), replicas="auto", ingress="direct")
    assert settings["autoscaling_config"] == {  # scales on the requests the replicas serve themselves
        "target_ongoing_requests": 8, "policy": {"policy_function": direct_ingress_policy}}
    with pytest.raises(ValueError, match="ingress must be one of"):
        capsule_deployment([capsule], ingress="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="with ingress='direct' only"):
        capsule_deployment([capsule], direct=ServeSettings(port=9090))


class _Config:
    def get_target_ongoing_requests(self) -> float:
        return 8.0


class _Context:  # the fields of Ray's AutoscalingContext the policy reads
    def __init__(self, running: int, in_flight: list[float], routed: float) -> None:
        self.current_num_replicas = running
        self.target_num_replicas = running
        self.aggregated_metrics = {IN_FLIGHT_METRIC: dict(enumerate(in_flight))}
        self.total_num_requests = routed
        self.config = _Config()


def test_the_direct_ingress_policy_applies_rays_rule_to_what_the_replicas_serve() -> None:
    assert direct_ingress_policy(_Context(2, [16.0, 16.0], 0.0))[0] == pytest.approx(4.0)  # twice the target
    assert direct_ingress_policy(_Context(2, [4.0, 4.0], 0.0))[0] == pytest.approx(1.0)  # half of it
    assert direct_ingress_policy(_Context(1, [8.0], 8.0))[0] == pytest.approx(2.0)  # plus what Ray routes


def test_config_files_set_the_replicas_own_server_with_direct_ingress_only(capsule: Path) -> None:
    app_builder({"capsules": [str(capsule)], "ingress": "direct", "port": 9090, "host": "0.0.0.0",
                 "read_timeout": 5, "replicas": 2})
    with pytest.raises(ValueError, match="need ingress: direct"):
        app_builder({"capsules": [str(capsule)], "port": 9090})


def test_sources_are_resolved_once_to_absolute_paths(capsule: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(capsule.parent)
    (source,) = resolve_sources([capsule.name])
    assert source.path == str(capsule.resolve())
    with pytest.raises(FileNotFoundError, match="missing.capsule"):
        resolve_sources(["missing.capsule"])


def test_registry_models_are_resolved_once_to_a_repository_of_fetched_versions(capsule: Path, tmp_path: Path) -> None:
    """Every replica serves the version the alias named when the driver resolved it, under its registry name."""
    from modelcapsule.registry import Registry
    from modelcapsule.serving import Repository, ServerOptions

    with Registry(tmp_path / "registry") as registry:
        registry.register("line", capsule, alias="champion")
        (source,) = resolve_sources(["models:/line@champion"], registry)
        fetched = registry.fetch("line/1")
    found, _ = Repository([Path(source.path)], ServerOptions()).scan()
    assert list(found) == ["line"] and list(found["line"]) == [1]
    assert found["line"][1].path.resolve() == fetched.resolve()
    assert "models:/line@champion = models:/line/1 (sha256:" in (source.uri or "")


def test_config_file_arguments_are_checked(capsule: Path) -> None:
    with pytest.raises(ValueError, match="batchsize"):
        app_builder({"capsules": [str(capsule)], "batchsize": 32})
    with pytest.raises(ValueError, match="capsules must be a list"):
        app_builder({"capsules": str(capsule)})
    app_builder({"capsules": [str(capsule)], "batch_size": 32, "trusted": ["a.B"], "replicas": "auto"})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replicas", "2"], "apply with --ray only"),
        (["--ray", "--workers", "2"], "--replicas"),
        (["--ray", "--replicas", "zero"], "positive number or 'auto'"),
        (["--ray-ingress", "direct"], "apply with --ray only"),
        (["--ray", "--ray-proxy-port", "9000"], "--ray-proxy-port applies with --ray-ingress direct"),
        (["--ray", "--ray-ingress", "sideways"], "'sideways' is not one of"),
    ],
)
def test_serve_refuses_options_that_do_not_fit_ray(capsule: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["serve", str(capsule), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_predict_takes_several_inputs_with_ray_only(capsule: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for f in (a, b):
        f.write_text("x0,x1\n1,2\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["predict", str(capsule), str(a), str(b), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 2
    assert "--ray" in result.output


def test_help_never_imports_ray(capsule_cmd: list[str], subprocess_env: dict) -> None:
    code = (
        "import sys\nfrom modelcapsule.cli import main\n"
        "for name in ('serve', 'predict', 'kserve'):\n"
        "    try:\n        main([name, '--help'])\n    except SystemExit:\n        pass\n"
        "print('RAY', 'ray' in sys.modules)"
    )
    out = subprocess.run([capsule_cmd[0], "-c", code], env=subprocess_env, capture_output=True, text=True, check=True)
    assert "RAY False" in out.stdout
