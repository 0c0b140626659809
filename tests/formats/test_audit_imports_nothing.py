"""Parse → audit → construct: for every format, auditing (and a refused load) imports nothing the file names.

Each file below names ``smtplib.SMTP``, a module nothing else in the process imports. A fresh process
audits every file, then tries to load it, and reports whether ``smtplib`` was imported at any point.
"""

from __future__ import annotations

import json
import pickle
import smtplib
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer

import modelcapsule as mc

CHILD = """
import json, sys
import modelcapsule as mc
results = {}
for path in sys.argv[1:]:
    report = mc.audit(path)
    audited = "smtplib" in sys.modules
    try:
        mc.load(path)
        refused = None
    except mc.UntrustedTypesError as exc:
        refused = type(exc).__name__
    results[path] = {"untrusted": report.untrusted, "runs_code": report.runs_code, "after_audit": audited,
                     "after_load": "smtplib" in sys.modules, "refused": refused}
print(json.dumps(results))
"""


def _files(tmp_path: Path, data: tuple) -> list[Path]:
    files = []
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"weights": np.arange(3.0), "hook": smtplib.SMTP}))
    files.append(plain)
    nested = np.empty(2, dtype=object)
    nested[:] = ["fine", smtplib.SMTP]
    for name, compress in (("nested.joblib", 0), ("nested.joblib.gz", ("gzip", 3))):
        joblib.dump({"weights": np.arange(10.0), "labels": nested}, tmp_path / name, compress=compress)
        files.append(tmp_path / name)
    model = FunctionTransformer(func=smtplib.SMTP).fit(data[0])
    sio.dump(model, tmp_path / "hostile.skops")
    files.append(tmp_path / "hostile.skops")
    for fmt in ("safepickle", "skops", "pickle", "joblib", "cloudpickle"):
        path = tmp_path / f"{fmt}.capsule"
        mc.save(model, path, format=fmt, source=False)
        files.append(path)
    return files


def test_audit_and_refused_load_import_nothing_named_by_the_file(tmp_path: Path, data: tuple,
                                                                 subprocess_env: dict[str, str]) -> None:
    files = _files(tmp_path, data)
    out = subprocess.run([sys.executable, "-c", CHILD, *map(str, files)], env=subprocess_env,
                         capture_output=True, text=True, check=True, timeout=240).stdout
    results = json.loads(out)
    for path in files:
        result = results[str(path)]
        assert not result["after_audit"], f"auditing {path.name} imported smtplib"
        assert not result["after_load"], f"loading {path.name} imported smtplib"
        assert result["refused"] is not None, f"{path.name} was loaded"
        if result["runs_code"]:
            assert path.name == "cloudpickle.capsule"
        else:
            assert "smtplib.SMTP" in result["untrusted"], path.name
