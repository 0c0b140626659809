"""``capsule register``, ``models``, ``alias`` and ``registry``: human tables by default, ``--json`` for
machines, exit codes 0/1/2, and errors that say what to do."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from modelcapsule.cli import cli
from modelcapsule.registry.database import create_engine, upgrade

from .conftest import Capsules, Served


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MODELCAPSULE_REGISTRY", str(tmp_path / "reg"))
    monkeypatch.setenv("MODELCAPSULE_USER", "ana")
    monkeypatch.delenv("MODELCAPSULE_STORE", raising=False)
    monkeypatch.delenv("MODELCAPSULE_TOKEN", raising=False)

    def invoke(*args: object, code: int = 0) -> Result:
        result = CliRunner().invoke(cli, [str(a) for a in args])
        assert result.exit_code == code, (result.output, result.exception)
        return result

    return invoke


def test_register_list_move_and_read_the_history(run, capsules: Capsules) -> None:  # type: ignore[no-untyped-def]
    out = run("register", capsules.a, "fraud", "--tag", "team=risk", "--alias", "staging").output
    assert "registered fraud/1" in out and 'mc.load("models:/fraud/1")' in out
    assert json.loads(run("register", capsules.b, "fraud", "--json").output)["version"] == 2
    assert "fraud" in run("models").output and "staging→1" in run("models").output
    listed = json.loads(run("models", "fraud", "--json").output)
    assert [v["version"] for v in listed["versions"]] == [2, 1]
    assert "fraud/1" in run("models", "--tag", "team=risk").output
    assert "fraud@champion: (none) → 1" in run("alias", "set", "fraud", "champion", "1").output
    moved = run("alias", "set", "fraud", "champion", "2", "--reason", "AUC +0.02 [red]on holdout[/red]").output
    assert "[alias_set] by" in moved and "[red]on holdout[/red]" in moved  # user text is printed as written
    assert "fraud@champion: 2 → 1" in run("alias", "rollback", "fraud", "champion").output
    history = json.loads(run("alias", "history", "fraud", "champion", "--json").output)["events"]
    assert [(e["kind"], e["by"], e["from_version"], e["to_version"], e["reason"]) for e in history] == [
        ("alias_set", "ana", None, 1, ""), ("alias_set", "ana", 1, 2, "AUC +0.02 [red]on holdout[/red]"),
        ("alias_rollback", "ana", 2, 1, "")]
    assert "[red]on" in run("alias", "history", "fraud", "champion").output


def test_every_capsule_command_takes_a_models_uri(run, capsules: Capsules, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("register", capsules.a, "fraud", "--alias", "champion")
    assert json.loads(run("inspect", "models:/fraud@champion", "--json").output)["name"] == "a"
    assert json.loads(run("verify", "models:/fraud/1", "--json").output)["ok"] is True
    rows = tmp_path / "rows.npy"
    np.save(rows, np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]))
    run("predict", "models:/fraud@champion", rows, "-o", tmp_path / "out.jsonl", "-q")
    assert (tmp_path / "out.jsonl").read_text().count("\n") == 2
    missing = run("inspect", "models:/fraud@prod", code=2).output
    assert "no alias 'prod'" in missing and "capsule alias set fraud prod" in missing


def test_errors_name_what_to_do_with_the_contract_exit_codes(run, capsules: Capsules) -> None:  # type: ignore[no-untyped-def]
    run("register", capsules.a, "fraud-detector")
    assert "Did you mean 'fraud-detector'" in run("models", "fraud-detecter", code=2).output
    refused = run("register", capsules.needs_trust, "scaled", code=1).output
    assert "--trust registry.registry_models.doubled" in refused
    assert "models:/" not in run("register", capsules.tampered, "bad", code=1).output
    run("alias", "set", "fraud-detector", "champion", "1")
    assert "move them first" in run("registry", "delete", "fraud-detector", "1", code=1).output
    assert "KEY=VALUE" in run("register", capsules.a, "x", "--tag", "oops", code=2).output


def test_a_protected_alias_says_which_role_moves_it(served: Served, capsules: Capsules,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    admin = served.client(served.admin_token)
    admin.register("fraud", capsules.a, alias="champion")
    admin.register("fraud", capsules.b)
    admin.protect("fraud", "champion")
    writer = admin.create_token("ci-bot", "write")
    monkeypatch.setenv("MODELCAPSULE_REGISTRY", served.server.url)
    result = CliRunner().invoke(cli, ["alias", "set", "fraud", "champion", "2", "--token", writer])
    assert result.exit_code == 1
    assert "needs the 'admin' role" in result.output and "--role admin" in result.output
    moved = CliRunner().invoke(cli, ["alias", "set", "fraud", "staging", "2", "--token", writer, "--json"])
    assert moved.exit_code == 0 and json.loads(moved.output)["by"] == "ci-bot"


def test_check_fails_on_an_altered_blob_and_gc_removes_orphans(run, capsules: Capsules, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    version = json.loads(run("register", capsules.a, "fraud", "--json").output)
    assert "OK" in run("registry", "check").output
    orphan = json.loads(run("register", capsules.b, "other", "--json").output)
    run("alias", "set", "fraud", "keep", "1")
    run("registry", "delete", "other", "1")
    report = json.loads(run("registry", "check", "--json").output)
    assert report["ok"] and report["orphans"] == [orphan["digest"]]
    assert json.loads(run("registry", "gc", "--grace-seconds", "0", "--json").output)["removed"] == [orphan["digest"]]
    blob = tmp_path / "reg" / "blobs" / "sha256" / version["digest"][7:9] / version["digest"][7:]
    os.chmod(blob, 0o644)
    blob.write_bytes(b"not the capsule")
    assert "altered" in run("registry", "check", code=1).output


def test_an_old_registry_is_upgraded_only_by_the_upgrade_command(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "reg").mkdir()
    engine = create_engine(f"sqlite:///{tmp_path / 'reg' / 'registry.db'}")
    upgrade(engine, "0001")
    engine.dispose()
    refused = run("models", code=1).output
    assert "capsule registry upgrade --registry" in refused
    assert "0001 → 0002" in run("registry", "upgrade").output
    assert "models" in run("models").output


def test_tokens_are_shown_once_and_listed_without_their_secret(run) -> None:  # type: ignore[no-untyped-def]
    run("registry", "init")
    secret = run("registry", "token", "create", "deployer", "--role", "write").output.splitlines()[0]
    assert secret.startswith("mcr_")
    listed = run("registry", "token", "list", "--json").output
    assert "deployer" in listed and secret not in listed
    run("registry", "token", "revoke", "deployer")
    assert json.loads(run("registry", "token", "list", "--json").output)["tokens"][0]["revoked_at"]


@pytest.mark.slow
def test_capsule_serve_serves_a_registry_alias_under_the_model_name(tmp_path: Path, capsules: Capsules,
                                                                    capsule_cmd: list[str],
                                                                    subprocess_env: dict[str, str]) -> None:
    import subprocess
    import time

    import httpx

    from modelcapsule.registry import Registry

    from .conftest import free_port

    with Registry(tmp_path / "reg") as reg:
        reg.register("fraud", capsules.a, alias="champion")
    env = {**subprocess_env, "MODELCAPSULE_REGISTRY": str(tmp_path / "reg")}
    port = free_port()
    server = subprocess.Popen([*capsule_cmd, "serve", "models:/fraud@champion", "--port", str(port), "--no-grpc"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, answer = time.monotonic() + 90, None
        while answer is None:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/v2/models/fraud/infer", timeout=5, json={"inputs": [
                    {"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]})
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.3)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_name"] == "fraud"
    finally:
        server.terminate()
        server.communicate(timeout=30)
