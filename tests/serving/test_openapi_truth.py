"""/openapi.json tells the truth: each served model's routes carry that model's exact request and answer
schemas (input names, shapes, dtypes, column names), a wrong method is a 405 whose ``Allow`` names the
right one, and schemathesis (``--checks all``) finds nothing against a real server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import modelcapsule as mc

from .conftest import Models, Server, start_server


def test_each_model_version_has_its_own_exact_request_schema(server: Server) -> None:
    paths = requests.get(f"{server.url}/openapi.json", timeout=10).json()["paths"]
    v2 = paths["/v2/models/iris/versions/1/infer"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    (tensor,) = v2["properties"]["inputs"]["prefixItems"]
    assert tensor["properties"]["name"] == {"const": "input"}
    assert tensor["properties"]["datatype"] == {"const": "FP64"}
    assert tensor["properties"]["shape"] == {"const": [1, 4]}
    assert tensor["properties"]["data"]["minItems"] == tensor["properties"]["data"]["maxItems"] == 4

    tf = paths["/v1/models/mixed:predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    record = tf["properties"]["instances"]["items"]
    assert record["required"] == ["age", "city", "income"]
    assert record["properties"]["city"] == {"type": "string"}
    assert record["properties"]["income"] == {"type": ["number", "boolean"]}
    answer = paths["/v1/models/mixed:predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert "predictions" in answer["required"]
    # a regressor has :regress and no :classify; a classifier the other way round
    assert "/v1/models/half_plus_three:regress" in paths and "/v1/models/half_plus_three:classify" not in paths
    assert "/v1/models/iris:classify" in paths and "/v1/models/iris:regress" not in paths


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/models/iris:predict", "POST"),
        ("PUT", "/v1/models/iris/versions/1:classify", "POST"),
        ("POST", "/v1/models/iris/metadata", "GET, HEAD"),
        ("DELETE", "/v2/models/iris/infer", "POST"),
        ("POST", "/v2/health/ready", "GET, HEAD"),
        ("GET", "/invocations", "POST"),
    ],
)
def test_a_wrong_method_is_405_naming_the_right_one(server: Server, method: str, path: str, allowed: str) -> None:
    answer = requests.request(method, server.url + path, timeout=10)
    assert answer.status_code == 405
    assert set(answer.headers["allow"].split(", ")) == set(allowed.split(", "))


def test_whole_floats_are_integers_and_nothing_is_wrapped(server: Server) -> None:
    def predict(age: object) -> requests.Response:
        body = {"instances": [{"age": age, "city": "Oslo", "income": 50.0}]}
        return requests.post(f"{server.url}/v1/models/mixed:predict", json=body, timeout=10)

    assert predict(40.0).status_code == 200  # JSON Schema's integer 40.0 is the integer 40
    assert predict(40.5).status_code == 400
    refused = predict(2**63)  # one past int64: refused, not wrapped around
    assert refused.status_code == 400 and "outside the range of int64" in refused.json()["error"]
    assert predict(-(2**63)).status_code == 200


def test_model_query_is_given_once_and_not_empty(server: Server) -> None:
    body = {"inputs": [[5.1, 3.5, 1.4, 0.2]]}
    assert requests.post(f"{server.url}/predict?model=iris", json=body, timeout=10).status_code == 200
    for query in ("?model=", "?model=iris&model=iris"):
        answer = requests.post(f"{server.url}/predict{query}", json=body, timeout=10)
        assert answer.status_code == 400 and "?model=NAME" in answer.json()["error"]


@pytest.fixture(scope="module")
def tolerant_mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DataFrame pipeline that ignores unknown categories: its signature (column names and dtypes) says
    everything it accepts. (A model that refuses values its signature allows answers 500: the model
    failed, which schemathesis rightly reports.)"""
    rng = np.random.default_rng(0)
    people = pd.DataFrame(
        {"age": rng.integers(18, 80, 60), "city": rng.choice(["Oslo", "Lima", "Pune"], 60),
         "income": rng.normal(50, 10, 60)}
    )
    label = np.where(people["income"] > 50, "yes", "no")
    pipeline = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                           ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])]),
        LogisticRegression(),
    ).fit(people, label)
    path = tmp_path_factory.mktemp("tolerant") / "people.capsule"
    mc.save(pipeline, path, sample=people[:10], name="people")
    return path


# A request whose X-Request-Timeout (documented, any positive number) passes before the model runs it is
# answered 504, as documented; every other check keeps schemathesis' defaults.
CONFIG = """
[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "504"]
"""


def _schemathesis(server: Server, workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    (workdir / "schemathesis.toml").write_text(CONFIG)
    exe = shutil.which("schemathesis") or shutil.which("st")
    command = [exe] if exe else [sys.executable, "-m", "schemathesis.cli"]
    return subprocess.run(
        [*command, "run", f"{server.url}/openapi.json", "--checks", "all", "--max-examples", "8", "--seed", "7",
         "--generation-database", ":memory:", "--request-timeout", "10", "--no-color", *extra],
        cwd=workdir, capture_output=True, text=True, timeout=240, check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("setup", ["several-models", "one-model", "with-tokens"])
def test_schemathesis_finds_nothing(
    models: Models,
    tolerant_mixed: Path,
    capsule_cmd: list[str],
    subprocess_env: dict[str, str],
    tmp_path: Path,
    setup: str,
) -> None:
    """Every check (schema-valid requests accepted, invalid ones refused, statuses, content types and
    answers as documented, 405 and Allow for undocumented methods) over every served model's paths; with
    one model, also the routes that take ``?model=``; with tokens, also that no route ignores them."""
    sources = [models.iris_path, models.iris_df_path, models.half_path, tolerant_mixed]
    args, extra = [*map(str, sources if setup == "several-models" else sources[-1:]), "--no-access-log"], []
    if setup == "with-tokens":
        (tmp_path / "tokens.txt").write_text("truth-token\n")
        args += ["--token-file", str(tmp_path / "tokens.txt")]
        extra = ["-H", "Authorization: Bearer truth-token"]
    srv = start_server(capsule_cmd, subprocess_env, tmp_path / "server", *args)
    try:
        run = _schemathesis(srv, tmp_path, *extra)
    finally:
        srv.stop()
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout
