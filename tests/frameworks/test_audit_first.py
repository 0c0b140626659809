"""Every framework format audits before it constructs: a file naming a module nobody imported is refused,
and that module is still unimported afterwards (checked in a fresh process)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import lightgbm as lgb
import torch
import xgboost as xgb
from sklearn.datasets import load_iris

import modelcapsule as mc
from modelcapsule.frameworks.keras import import_keras

NOBODY = "xml.dom.pulldom"  # a standard-library module no test and no framework imports
STREAM = b"\x80\x05\x8c\x0fxml.dom.pulldom\x94\x8c\x05parse\x94\x93\x94."  # a pickle naming xml.dom.pulldom.parse


def edited_json(capsule: Path, member: str, edit) -> bytes:
    with zipfile.ZipFile(capsule) as archive:
        doc = json.loads(archive.read(member))
    edit(doc)
    return json.dumps(doc).encode()


def test_no_framework_format_imports_what_the_file_names_before_the_audit(tmp_path: Path, forge,
                                                                          fresh_python) -> None:
    x, y = load_iris(return_X_y=True)
    files = []

    mc.save(torch.nn.Sequential(torch.nn.Linear(4, 2)), tmp_path / "t.capsule", sample=x[:3])
    spec = edited_json(tmp_path / "t.capsule", "model/module.json",
                       lambda d: d["spec"]["args"][0]["$module"].update(module=NOBODY, qualname="PullDOM"))
    files.append(forge(tmp_path / "t.capsule", tmp_path / "torch.capsule", {"model/module.json": spec}))

    for name, model in (("xgboost", xgb.XGBClassifier(n_estimators=2)),
                        ("lightgbm", lgb.LGBMRegressor(n_estimators=2, verbose=-1))):
        mc.save(model.fit(x, y), tmp_path / f"{name}0.capsule", sample=x[:3])
        params = edited_json(tmp_path / f"{name}0.capsule", "model/params.json",
                             lambda d: d.update({"class": f"{NOBODY}.PullDOM"}))
        files.append(forge(tmp_path / f"{name}0.capsule", tmp_path / f"{name}.capsule", {"model/params.json": params}))

    keras = import_keras()
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(tmp_path / "k0.keras")
    out = io.BytesIO()
    with zipfile.ZipFile(tmp_path / "k0.keras") as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "config.json":
                config = json.loads(data)
                config["config"]["layers"][1]["config"]["kernel_initializer"] = {
                    "module": NOBODY, "class_name": "PullDOM", "config": {}, "registered_name": None}
                data = json.dumps(config).encode()
            dst.writestr(info.filename, data)
    (tmp_path / "keras.keras").write_bytes(out.getvalue())
    files.append(tmp_path / "keras.keras")

    (tmp_path / "weights.pt").write_bytes(STREAM)
    files.append(tmp_path / "weights.pt")

    printed = fresh_python(f"""
        import sys
        import modelcapsule as mc
        for path in {[str(f) for f in files]!r}:
            try:
                mc.load(path)
            except mc.UntrustedTypesError as exc:
                print(path.rsplit("/", 1)[1], exc.names, {NOBODY!r} in sys.modules)
            else:
                print(path, "loaded")
    """)
    assert printed.splitlines() == [
        f"torch.capsule ['{NOBODY}.PullDOM'] False",
        f"xgboost.capsule ['{NOBODY}.PullDOM'] False",
        f"lightgbm.capsule ['{NOBODY}.PullDOM'] False",
        f"keras.keras ['{NOBODY}.PullDOM'] False",
        f"weights.pt ['{NOBODY}.parse'] False",
    ]


def test_audit_lists_what_framework_files_would_import(tmp_path: Path) -> None:
    (tmp_path / "weights.pt").write_bytes(STREAM)
    report = mc.audit(tmp_path / "weights.pt")
    assert (report.format, report.untrusted) == ("pt", [f"{NOBODY}.parse"])
    assert report.trusted_arg == f"trusted=['{NOBODY}.parse']"

    torch.save(torch.nn.Linear(2, 1).state_dict(), tmp_path / "clean.pt")
    assert mc.audit(tmp_path / "clean.pt").ok

    keras = import_keras()
    from mc_test_keras_layers import Scale

    keras.Sequential([keras.Input((2,)), Scale(2.0)]).save(tmp_path / "custom.keras")
    report = mc.audit(tmp_path / "custom.keras")
    assert (report.format, report.untrusted) == ("keras", ["mc_test_keras_layers.Scale"])

    x, y = load_iris(return_X_y=True)
    mc.save(xgb.XGBRegressor(n_estimators=2).fit(x, y), tmp_path / "x.capsule", sample=x[:3])
    report = mc.audit(tmp_path / "x.capsule")
    assert report.ok and report.format == "xgboost" and report.manifest["framework"] == "xgboost"
