"""The model card: built from the manifest and plain-data members, as JSON, Markdown and `capsule card`."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from modelcapsule.cli import cli
from modelcapsule.errors import IntegrityError
from modelcapsule.ui.card import card_from_path, metric_summary
from modelcapsule.ui.markdown import card_markdown


def test_card_of_a_classifier_holds_every_section(capsules):
    card = card_from_path(capsules["iris2"])
    assert card["model"]["class"].endswith("LogisticRegression") and card["model"]["task"] == "classification"
    assert card["model"]["params"]["C"] == 1.0
    assert card["owners"] == "plants-team" and card["intended_use"].startswith("Sorting")
    (cv,) = card["metrics"]
    assert cv["kind"] == "folds" and cv["n"] == 5 and cv["min"] <= cv["mean"] <= cv["max"] and cv["std"] >= 0
    assert [c["id"] for c in card["charts"]] == ["confusion-matrix", "roc", "pr", "calibration"]
    assert all(c["spec"]["$schema"].endswith("v6.json") and c["table"]["rows"] for c in card["charts"])
    assert card["signature"]["inputs"][0]["columns"][0]["name"] == "sepal length (cm)"
    assert card["training_data"]["fingerprint"].startswith("sha256:")
    assert {p["name"] for p in card["environment"]["packages"]} >= {"numpy", "scikit-learn"}
    assert not any(p["drift"] for p in card["environment"]["packages"])  # same interpreter here
    assert any(a["name"].endswith("LogisticRegression") and a["trusted_by_default"] for a in card["audit"])
    golden = card["golden_sample"]
    assert golden["rows"] == 4 and len(golden["inputs"]["input"]["rows"]) == 4
    assert golden["outputs"]["predict"] == [0, 0, 0, 0]
    assert card["missing"] == [] and card["problems"] == {}
    json.dumps(card, allow_nan=False)  # the JSON twin is plain JSON


def test_an_old_capsule_still_gets_a_card_that_says_what_is_missing(capsules):
    card = card_from_path(capsules["old"])
    assert card["evaluation"] is None and card["charts"] == []
    text = " ".join(card["missing"])
    assert "evaluation=(X_val, y_val)" in text and "training_data=" in text and "metrics=" in text
    assert "No evaluation was stored" in card_markdown(card)


def test_environment_drift_against_this_process_is_marked(capsules):
    from modelcapsule.core.container import open_capsule
    from modelcapsule.ui.card import build_card

    with open_capsule(capsules["old"]) as reader:
        manifest = reader.manifest
    manifest.environment["packages"]["numpy"] = "1.0.0"
    card = build_card(manifest)
    numpy = next(p for p in card["environment"]["packages"] if p["name"] == "numpy")
    assert numpy["drift"] and numpy["saved"] == "1.0.0" and numpy["here"] != "1.0.0"
    assert card["environment"]["drifted"] == ["numpy"]
    assert "| numpy | 1.0.0 |" in card_markdown(card) and "Differs here: numpy." in card_markdown(card)


def test_a_tampered_evaluation_is_reported_not_shown(capsules, tmp_path):
    src = capsules["iris1"]
    bad = tmp_path / "bad.capsule"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "evaluation/evaluation.json":
                data = data.replace(b'"accuracy":', b'"accuracX":')
            zout.writestr(info, data)
    card = card_from_path(bad)
    assert card["evaluation"] is None
    assert "does not match its recorded SHA-256" in card["problems"]["evaluation"]
    assert isinstance(IntegrityError("x"), ValueError)


def test_metric_summary_gives_the_spread_of_folds():
    m = metric_summary("cv_accuracy", [0.9, 1.0, 0.95])
    assert m["mean"] == pytest.approx(0.95) and m["std"] == pytest.approx(0.05) and (m["min"], m["max"]) == (0.9, 1.0)
    assert metric_summary("auc", 0.8) == {"name": "auc", "kind": "value", "value": 0.8}


def test_capsule_card_writes_markdown_with_hugging_face_front_matter(capsules, tmp_path):
    out = tmp_path / "README.md"
    result = CliRunner().invoke(cli, ["card", str(capsules["iris2"]), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "sklearn" and meta["license"] == "apache-2.0"
    assert {"modelcapsule", "classification", "demo"} <= set(meta["tags"])
    (entry,) = meta["model-index"]
    validation, training = entry["results"]
    assert validation["task"]["type"] == "tabular-classification"
    assert validation["dataset"]["revision"].startswith("sha256:")
    assert {m["type"] for m in validation["metrics"]} >= {"accuracy", "roc_auc_ovr_macro"}
    assert training["metrics"][0]["type"] == "cv_accuracy" and "5 folds" in training["metrics"][0]["name"]
    for section in ("## Intended use", "## Metrics", "## Evaluation", "### Confusion matrix", "## Signature",
                    "## Training data", "## Environment", "## Provenance", "## Audit", "## Golden sample"):
        assert section in body


def test_card_without_license_leaves_it_out_and_regressors_get_residuals(capsules):
    result = CliRunner().invoke(cli, ["card", str(capsules["diabetes"]), "--json"])
    card = json.loads(result.output)
    assert [c["id"] for c in card["charts"]] == ["residuals", "predicted-vs-actual"]
    md = card_markdown(card)
    meta = yaml.safe_load(md.split("---\n", 2)[1])
    assert "license" not in meta and meta["model-index"][0]["results"][0]["task"]["type"] == "tabular-regression"


def test_capsule_card_imports_nothing_the_payload_names(capsules, capsule_cmd, subprocess_env):
    # (the default trust list may import scikit-learn's top level to learn its version; never the model's class)
    code = ("import sys; from modelcapsule.cli import main\n"
            "try:\n    main(['card', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
            "assert 'sklearn.linear_model' not in sys.modules, 'the card imported the model class'\n"
            "assert 'jinja2' not in sys.modules\n")
    result = subprocess.run([capsule_cmd[0], "-c", code, str(capsules["iris2"])], env=subprocess_env,
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "# iris" in result.stdout


def test_capsule_card_of_a_missing_file_is_a_usage_error(tmp_path: Path):
    result = CliRunner().invoke(cli, ["card", str(tmp_path / "nope.capsule")])
    assert result.exit_code == 2 and "no capsule at" in result.output


def _rewrite_evaluation(src, dst, change):
    """A copy of ``src`` whose evaluation member is ``change(report)``, re-hashed so it passes the hash
    check: what a hostile capsule made from scratch looks like."""
    import hashlib

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        report = change(json.loads(zin.read("evaluation/evaluation.json")))
        raw = json.dumps(report).encode()
        manifest = json.loads(zin.read("capsule.json"))
        manifest["files"]["evaluation/evaluation.json"] = {"sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw)}
        for info in zin.infolist():
            data = {"evaluation/evaluation.json": raw, "capsule.json": json.dumps(manifest).encode()}.get(
                info.filename, zin.read(info))
            zout.writestr(info.filename, data)


@pytest.mark.parametrize("change", [
    lambda r: {**r, "confusion_matrix": {"labels": [0, 1, 2], "matrix": [["1; alert(1)", 0, 0], [0, 1, 0], [0, 0, 1]]}},
    lambda r: {**r, "roc": [{"class": "<b>", "auc": "0.9", "fpr": [0, 1], "tpr": [0, 1]}]},
    lambda r: {**r, "data": {"fingerprint": 7}},
    lambda r: {**r, "metrics": {"accuracy": "high"}},
])
def test_a_malformed_evaluation_is_reported_and_never_charted(capsules, tmp_path, change):
    bad = tmp_path / "hostile.capsule"
    _rewrite_evaluation(capsules["iris1"], bad, change)
    card = card_from_path(bad)
    assert card["evaluation"] is None and card["charts"] == []
    assert "evaluation field" in card["problems"]["evaluation"]
