"""``runtime="onnx"`` serves a scikit-learn capsule's ONNX export without loading the Python model:
no scikit-learn, SciPy or pandas in the process until an output the export lacks is asked for (nor the
``onnx`` package, ever: the graph check declares the fields it reads); the capsule's hashes and golden
sample are still checked (the sample through the ONNX session), and the export's bytes are not kept once
onnxruntime has built its session."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import modelcapsule as mc
from modelcapsule.errors import CapsuleError

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

X, Y = make_classification(300, 6, random_state=0)
X32 = X.astype(np.float32)

CHILD = """
import json, sys
import numpy as np
import modelcapsule as mc
loaded = mc.load_capsule(sys.argv[1], runtime="onnx")
name = loaded.predictor.signature.inputs[0].name
rows = np.asarray(json.loads(sys.argv[2]), dtype=np.float32)
first = {k: v.tolist() for k, v in loaded.predictor.predict({name: rows}, ["predict", "predict_proba"]).items()}
before = sorted(m for m in ("sklearn", "scipy", "pandas", "onnx") if m in sys.modules)
later = loaded.predictor.predict({name: rows}, ["decision_function"])["decision_function"].tolist()
print(json.dumps({"first": first, "imported_before": before, "later": later,
                  "sklearn_after": "sklearn" in sys.modules, "model": loaded.model is None}))
"""


def test_an_onnx_served_capsule_starts_without_scikit_learn_and_loads_it_only_when_needed(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    model = LogisticRegression().fit(X32, Y)
    mc.save(model, tmp_path / "lr.capsule", sample=X32[:5], onnx=True)
    rows = X32[:3]
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "lr.capsule"), json.dumps(rows.tolist())],
                          env=subprocess_env, capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["imported_before"] == []
    assert report["model"] is True  # no Python model was loaded to serve
    assert report["first"]["predict"] == model.predict(rows).tolist()
    np.testing.assert_allclose(report["first"]["predict_proba"], model.predict_proba(rows), rtol=1e-5, atol=1e-6)
    # decision_function is not in the export: the Python model is loaded, with every check, and answers
    assert report["sklearn_after"] is True
    assert report["later"] == model.decision_function(rows).tolist()


@pytest.mark.parametrize("where", [0.0, 0.5, 0.999])
def test_an_altered_onnx_export_is_reported_as_altered_whatever_breaks_first(tmp_path: Path, where: float) -> None:
    # the hashes are checked on a second thread while the graph is checked and run: a flipped byte may
    # break the parse, onnxruntime, the golden sample or nothing at all, and the verdict is the same
    model = RandomForestClassifier(5, max_depth=3, random_state=0).fit(X32, Y)
    mc.save(model, tmp_path / "rf.capsule", sample=X32[:5], onnx=True)
    with zipfile.ZipFile(tmp_path / "rf.capsule") as src, zipfile.ZipFile(tmp_path / "bad.capsule", "w") as dst:
        for item in src.infolist():
            data = bytearray(src.read(item.filename))
            if item.filename == "onnx/model.onnx":
                data[int(where * len(data))] ^= 0x5A
            dst.writestr(item, bytes(data))
    with pytest.raises(mc.IntegrityError, match="onnx/model.onnx"):
        mc.load_capsule(tmp_path / "bad.capsule", runtime="onnx", recheck=True)


def test_the_onnx_only_load_still_checks_every_members_hash(tmp_path: Path) -> None:
    model = RandomForestClassifier(5, max_depth=3, random_state=0).fit(X32, Y)
    mc.save(model, tmp_path / "rf.capsule", sample=X32[:5], onnx=True)
    with zipfile.ZipFile(tmp_path / "rf.capsule") as src, zipfile.ZipFile(tmp_path / "bad.capsule", "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.startswith("model/"):  # the Python payload, which this load never parses
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.writestr(item, data)
    with pytest.raises(CapsuleError, match="does not match its recorded SHA-256"):
        mc.load_capsule(tmp_path / "bad.capsule", runtime="onnx", recheck=True)
    loaded = mc.load_capsule(tmp_path / "rf.capsule", runtime="onnx")
    name = loaded.predictor.signature.inputs[0].name
    got = loaded.predictor.predict({name: X32[:20]}, ["predict"])["predict"]
    assert got.tolist() == model.predict(X32[:20]).tolist()


def reachable_buffers(root: Any, at_least: int) -> list[int]:
    """Sizes of the bytes-like objects of ``at_least`` bytes reachable from ``root`` (through every
    reference the garbage collector sees: attributes, closures, containers), not through modules or
    classes (a function's globals would reach every module-level cache of the process)."""
    modules = {id(vars(m)) for m in list(sys.modules.values()) if m is not None}
    seen, todo, found = set(), [root], []
    while todo:
        obj = todo.pop()
        if id(obj) in seen or id(obj) in modules or isinstance(obj, type) or type(obj).__name__ == "module":
            continue
        seen.add(id(obj))
        if isinstance(obj, (bytes, bytearray, memoryview)):
            if len(obj) >= at_least:
                found.append(len(obj))
            continue
        todo.extend(gc.get_referents(obj))
    return found


def test_the_served_export_keeps_no_copy_of_its_bytes(tmp_path: Path) -> None:
    """onnxruntime holds the graph in its own form; the serialized export (here ~50 kB) is dropped."""
    model = RandomForestClassifier(60, max_depth=6, random_state=0).fit(X32, Y)
    mc.save(model, tmp_path / "rf.capsule", sample=X32[:5], onnx=True)
    with zipfile.ZipFile(tmp_path / "rf.capsule") as archive:
        size = archive.getinfo("onnx/model.onnx").file_size
    assert size > 20_000
    loaded = mc.load_capsule(tmp_path / "rf.capsule", runtime="onnx")
    assert reachable_buffers(loaded, size // 2) == []
    # the check sees buffers: a session loaded for the user keeps its bytes (to be saved again)
    plain = tmp_path / "rf.onnx"
    with zipfile.ZipFile(tmp_path / "rf.capsule") as archive:
        plain.write_bytes(archive.read("onnx/model.onnx"))
    assert reachable_buffers(mc.load(plain), size // 2) == [size]
