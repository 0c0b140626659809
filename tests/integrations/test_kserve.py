"""``capsule kserve`` writes a ServingRuntime and an InferenceService that run ``capsule serve``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

import modelcapsule as mc
from modelcapsule.cli import cli
from modelcapsule.integrations.kserve import inference_service, serving_runtime, target_for, to_yaml

IMAGE = "registry.example.com/team/iris:1.0"


@pytest.fixture(scope="module")
def capsule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    path = tmp_path_factory.mktemp("kserve") / "Fraud_Model.capsule"
    mc.save(model, path, sample=x[:5])
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["kserve", *args])
    return result.exit_code, result.output


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_yaml_written_reads_back_as_the_objects(capsule: Path, tmp_path: Path) -> None:
    code, out = run(str(capsule), "--image", IMAGE, "--storage-uri", "s3://models/fraud.capsule", "-o", str(tmp_path))
    assert code == 0, out
    target = target_for(capsule, storage_uri="s3://models/fraud.capsule")
    assert load(tmp_path / "servingruntime.yaml") == serving_runtime(IMAGE)
    assert load(tmp_path / "inferenceservice.yaml") == inference_service(target)
    assert "kubectl apply -f" in out


def test_the_runtime_runs_capsule_serve_on_8080_and_8081_with_v2_health_probes() -> None:
    runtime = serving_runtime(IMAGE)
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert runtime["kind"] == "ServingRuntime"
    spec = runtime["spec"]
    assert {"v2", "v1"} <= set(spec["protocolVersions"])
    assert spec["supportedModelFormats"][0]["name"] == "modelcapsule"
    (container,) = spec["containers"]
    assert container["image"] == IMAGE
    assert container["command"] == ["capsule", "serve"]
    assert container["args"][container["args"].index("--port") + 1] == "8080"
    assert container["args"][container["args"].index("--grpc-port") + 1] == "8081"
    assert [p["containerPort"] for p in container["ports"]] == [8080, 8081]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    assert set(container["resources"]) == {"requests", "limits"}


def test_the_service_serves_the_fetched_capsule_under_its_own_name(capsule: Path, tmp_path: Path) -> None:
    code, out = run(
        str(capsule), "--image", IMAGE, "--storage-prefix", "gs://bucket/capsules/", "-o", str(tmp_path),
        "--namespace", "risk", "--cpu", "500m", "--memory", "512Mi",
    )
    assert code == 0, out
    service = load(tmp_path / "inferenceservice.yaml")
    assert service["kind"] == "InferenceService"
    assert service["metadata"]["name"] == "fraud-model"  # the manifest name made a DNS label
    assert service["metadata"]["namespace"] == "risk"
    model = service["spec"]["predictor"]["model"]
    assert model["storageUri"] == "gs://bucket/capsules/fraud-model/Fraud_Model.capsule"
    # KServe copies a file URI to /mnt/models/<file name> and appends these args to the runtime's
    assert model["args"] == ["/mnt/models/Fraud_Model.capsule", "--name", "fraud-model"]
    assert model["modelFormat"]["name"] == "modelcapsule"
    assert service["metadata"]["annotations"]["modelcapsule.io/sha256"] == _sha256(capsule)
    resources = load(tmp_path / "servingruntime.yaml")["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "500m", "memory": "512Mi"}
    assert resources["limits"]["cpu"] == "1000m"


def test_an_unpacked_capsule_is_served_from_the_mount_itself(tmp_path: Path) -> None:
    x = np.arange(20.0).reshape(10, 2)
    folder = tmp_path / "unpacked"
    mc.save(LogisticRegression().fit(x, np.arange(10) % 2), folder, sample=x[:3], layout="dir", name="scorer")
    target = target_for(folder, storage_uri="pvc://models/scorer/")
    assert target.model_path == "/mnt/models"
    assert inference_service(target)["spec"]["predictor"]["model"]["args"] == ["/mnt/models", "--name", "scorer"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "--storage-uri"),
        (("--storage-uri", "s3://x/y.capsule", "--name", "Not_A_Label"), "not a valid InferenceService name"),
    ],
)
def test_bad_requests_are_usage_errors_naming_the_fix(
    capsule: Path, tmp_path: Path, extra: tuple, message: str
) -> None:
    code, out = run(str(capsule), "--image", IMAGE, "-o", str(tmp_path), *extra)
    assert code == 2
    assert message in out
    assert not list(tmp_path.iterdir())


def test_a_registry_version_is_fetched_and_named_as_the_registry_names_it(
    capsule: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelcapsule.registry import Registry

    with Registry(tmp_path / "registry") as registry:
        registry.register("fraud", capsule, alias="champion")
        version = registry.get("fraud@champion")
    monkeypatch.setenv("MODELCAPSULE_REGISTRY", str(tmp_path / "registry"))
    out = tmp_path / "out"
    code, text = run("models:/fraud@champion", "--image", IMAGE, "--storage-prefix", "s3://models", "-o", str(out))
    assert code == 0, text
    service = load(out / "inferenceservice.yaml")
    assert service["metadata"]["name"] == "fraud"
    annotations = service["metadata"]["annotations"]
    assert annotations["modelcapsule.io/registry-version"] == "models:/fraud/1"
    assert "sha256:" + annotations["modelcapsule.io/sha256"] == version.digest
    assert service["spec"]["predictor"]["model"]["storageUri"] == "s3://models/fraud/fraud-1.capsule"


def test_existing_manifests_are_kept_unless_forced(capsule: Path, tmp_path: Path) -> None:
    args = [str(capsule), "--image", IMAGE, "--storage-uri", "s3://m/f.capsule", "-o", str(tmp_path)]
    assert run(*args)[0] == 0
    code, out = run(*args[:-2], "--image", "other:2", "-o", str(tmp_path))
    assert code == 2 and "--force" in out
    assert load(tmp_path / "servingruntime.yaml")["spec"]["containers"][0]["image"] == IMAGE
    assert run(*args[:-2], "--image", "other:2", "-o", str(tmp_path), "--force")[0] == 0
    assert load(tmp_path / "servingruntime.yaml")["spec"]["containers"][0]["image"] == "other:2"


def test_yaml_strings_never_change_type() -> None:
    document = {"a": ["yes", "8080", "1.0", "null", "~", "é: #x", ""], "b": {"c": 1, "d": True, "e": []}, "f g": {}}
    assert yaml.safe_load(to_yaml(document)) == document


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
