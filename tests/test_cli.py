"""The ``capsule`` command line: every subcommand has help, exit codes follow the contract."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import modelcapsule as mc
from modelcapsule.cli import COMMANDS, cli

from helpers import iris_forest


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_help(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_top_level_help_imports_no_heavy_library(capsule_cmd: list[str], subprocess_env: dict) -> None:
    code = ("import sys; from modelcapsule.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = ('torch', 'keras', 'tensorflow', 'sklearn', 'onnxruntime', 'uvicorn')\n"
            "heavy = [m for m in heavy if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    start = time.perf_counter()
    out = subprocess.run([capsule_cmd[0], "-c", code], env=subprocess_env, capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout
    assert time.perf_counter() - start < 20  # generous: the point is what is imported, not the clock


def test_inspect_prints_the_manifest_as_json(tmp_path: Path) -> None:
    model, x, _ = iris_forest()
    mc.save(model, tmp_path / "m.capsule", sample=x[:5], name="iris")
    result = CliRunner().invoke(cli, ["inspect", str(tmp_path / "m.capsule"), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["name"] == "iris" and data["format"]["name"] == "safepickle"
    human = CliRunner().invoke(cli, ["inspect", str(tmp_path / "m.capsule")])
    assert "RandomForestClassifier" in human.output and "signature" in human.output


def test_verify_exits_1_when_a_check_fails(tmp_path: Path) -> None:
    model, x, _ = iris_forest()
    mc.save(model, tmp_path / "m.capsule", sample=x[:5])
    ok = CliRunner().invoke(cli, ["verify", str(tmp_path / "m.capsule"), "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["ok"] is True
    data = bytearray((tmp_path / "m.capsule").read_bytes())
    at = data.find(b"\x80\x05")
    data[at + 30] ^= 0xFF
    (tmp_path / "m.capsule").write_bytes(bytes(data))
    bad = CliRunner().invoke(cli, ["verify", str(tmp_path / "m.capsule")])
    assert bad.exit_code == 1 and "FAILED" in bad.output
    report = json.loads(CliRunner().invoke(cli, ["verify", str(tmp_path / "m.capsule"), "--json"]).output)
    assert report["hashes"] == "mismatch"
    assert "does not match its recorded SHA-256" in report["problems"][0]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["inspect", str(tmp_path / "absent.capsule")])
    assert result.exit_code == 2


def test_demo_trains_saves_loads_and_verifies(tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict) -> None:
    out = subprocess.run([*capsule_cmd, "demo", "--no-serve", "--dir", str(tmp_path / "repo")], env=subprocess_env,
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert "all checks pass" in out
    capsule = tmp_path / "repo" / "breast-cancer" / "1" / "model.capsule"
    manifest = mc.inspect(capsule)
    assert manifest.provenance["metrics"]["cv_accuracy"]
    assert manifest.provenance["source"]["path"].endswith("demo.py")


def test_names_and_text_from_a_file_are_printed_as_written_never_as_terminal_markup(tmp_path: Path) -> None:
    """A hostile file's class names, metadata and problems are its own text: rich markup in them (colours,
    links, a ``[/]`` that closes ours) is shown literally, so nothing in a report can be hidden or faked."""
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"\x80\x02cos\n[link=https://example.invalid]system[/link]\n)R.")
    audited = CliRunner().invoke(cli, ["audit", str(evil)])
    assert "[link=https://example.invalid]system[/link]" in audited.output
    capsule = tmp_path / "m.capsule"
    model, x, _y = iris_forest()
    mc.save(model, capsule, sample=x[:5], metadata={"owner": "[red]team[/red] [/]"})
    shown = CliRunner().invoke(cli, ["inspect", str(capsule)])
    assert shown.exit_code == 0 and "[red]team[/red] [/]" in shown.output
