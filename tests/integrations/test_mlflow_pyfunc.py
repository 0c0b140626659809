"""A capsule handed to MLflow users: ``save_model``/``log_model`` and ``mlflow.pyfunc.load_model``, which
loads the capsule with every modelcapsule check and takes trust only from the loading side."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import modelcapsule as mc
from modelcapsule.integrations.mlflow import log_model, save_model
from modelcapsule.integrations.mlflow.pyfunc import TRUST_ENV

from .mlflow_helpers import iris, mlflow, quiet, rewrite_mlmodel

COLUMNS = ["sepal_l", "sepal_w", "petal_l", "petal_w"]


class Halver(TransformerMixin, BaseEstimator):
    """A user's own transformer: loading a capsule that holds it needs its name trusted."""

    def fit(self, x: object, y: object = None) -> Halver:
        return self

    def transform(self, x: object) -> object:
        return np.asarray(x) / 2


@pytest.fixture(scope="module")
def frame_and_model() -> tuple[pd.DataFrame, LogisticRegression]:
    x, y = iris()
    frame = pd.DataFrame(x, columns=COLUMNS)
    return frame, LogisticRegression(max_iter=500).fit(frame, y)


@pytest.fixture(scope="module")
def capsule(tmp_path_factory: pytest.TempPathFactory, frame_and_model: tuple) -> Path:
    frame, model = frame_and_model
    path = tmp_path_factory.mktemp("capsule") / "iris.capsule"
    mc.save(model, path, sample=frame.iloc[:6], source=False)
    return path


def load_pyfunc(path: Path) -> object:
    with quiet():
        return mlflow.pyfunc.load_model(str(path))


def test_mlflow_pyfunc_loads_the_capsule_and_predicts(capsule: Path, frame_and_model: tuple, tmp_path: Path) -> None:
    frame, model = frame_and_model
    save_model(capsule, tmp_path / "wrapped")
    pyfunc = load_pyfunc(tmp_path / "wrapped")
    np.testing.assert_array_equal(pyfunc.predict(frame), model.predict(frame))
    proba = pyfunc.predict(frame, params={"outputs": ["predict_proba"]})
    np.testing.assert_allclose(proba, model.predict_proba(frame))
    inputs = pyfunc.metadata.signature.inputs
    assert inputs.input_names() == COLUMNS
    assert {spec.type.name for spec in inputs.inputs} == {"double"}
    assert pyfunc.metadata.flavors["modelcapsule"]["capsule_name"] == "iris"
    assert (tmp_path / "wrapped" / "data" / "iris.capsule").read_bytes() == capsule.read_bytes()


def test_a_tampered_capsule_inside_the_mlflow_model_does_not_load(capsule: Path, tmp_path: Path) -> None:
    save_model(capsule, tmp_path / "wrapped")
    inner = tmp_path / "wrapped" / "data" / "iris.capsule"
    with zipfile.ZipFile(inner) as zf:
        info = next(i for i in zf.infolist() if i.filename.startswith("model/"))
        offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size // 2
    data = bytearray(inner.read_bytes())
    data[offset] ^= 0xFF
    inner.write_bytes(bytes(data))
    with pytest.raises((mc.IntegrityError, mc.CapsuleFormatError)):
        load_pyfunc(tmp_path / "wrapped")


def test_trust_comes_from_the_loading_environment_never_from_the_mlflow_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = iris()
    name = f"{Halver.__module__}.{Halver.__qualname__}"
    model = make_pipeline(Halver(), LogisticRegression(max_iter=500)).fit(x, y)
    mc.save(model, tmp_path / "halver.capsule", sample=x[:4], trusted=[name], source=False)
    save_model(tmp_path / "halver.capsule", tmp_path / "wrapped")
    rewrite_mlmodel(tmp_path / "wrapped", flavors__python_function__config={"trusted": [name]})
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(mc.UntrustedTypesError, match="Halver"):  # the config written in the model is no trust
        load_pyfunc(tmp_path / "wrapped")

    monkeypatch.setenv(TRUST_ENV, name)
    np.testing.assert_array_equal(load_pyfunc(tmp_path / "wrapped").predict(x), model.predict(x))


def test_save_model_refuses_an_existing_directory_and_a_corrupt_capsule(capsule: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError):
        save_model(capsule, tmp_path / "taken")
    (tmp_path / "bad.capsule").write_bytes(b"not a zip")
    with pytest.raises(mc.CapsuleFormatError):
        save_model(tmp_path / "bad.capsule", tmp_path / "bad")


@pytest.mark.slow
def test_log_model_registers_the_capsule_in_mlflow(capsule: Path, frame_and_model: tuple, tmp_path: Path) -> None:
    frame, model = frame_and_model
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        with quiet():
            experiment = mlflow.create_experiment("capsules", artifact_location=(tmp_path / "artifacts").as_uri())
            with mlflow.start_run(experiment_id=experiment):
                info = log_model(capsule, name="iris", registered_model_name="iris-capsule")
        assert info.registered_model_version == 1
        pyfunc = load_pyfunc("models:/iris-capsule/1")
        np.testing.assert_array_equal(pyfunc.predict(frame), model.predict(frame))
    finally:
        mlflow.set_tracking_uri(None)


@pytest.mark.slow
def test_mlflow_models_serve_answers_with_the_capsule(capsule: Path, frame_and_model: tuple, tmp_path: Path,
                                                      subprocess_env: dict) -> None:
    import json
    import os
    import shutil
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    executable = shutil.which("mlflow")
    if executable is None:
        pytest.skip("the mlflow command is not on PATH")
    frame, model = frame_and_model
    save_model(capsule, tmp_path / "wrapped")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**subprocess_env, "MLFLOW_DISABLE_TELEMETRY": "true"}
    server = subprocess.Popen([executable, "models", "serve", "-m", str(tmp_path / "wrapped"), "--env-manager",
                               "local", "-h", "127.0.0.1", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "mlflow models serve did not start"
                time.sleep(0.3)
        body = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": frame.iloc[:3].to_numpy().tolist()}})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        assert answer == {"predictions": model.predict(frame.iloc[:3]).tolist()}
    finally:  # mlflow starts uvicorn as a child: stop the whole session this test started
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_import_mlflow_gives_back_a_wrapped_capsule_unchanged_after_its_checks(capsule: Path, tmp_path: Path) -> None:
    from modelcapsule.integrations.mlflow import import_mlflow

    save_model(capsule, tmp_path / "wrapped")
    report = import_mlflow(tmp_path / "wrapped", tmp_path / "back.capsule")
    assert (report.flavor, report.reader) == ("modelcapsule", "capsule")
    assert (tmp_path / "back.capsule").read_bytes() == capsule.read_bytes()
