"""The ``skops`` format: .skops files written by skops, read by our own schema walk against our policy."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression

import modelcapsule as mc
from modelcapsule.formats import format_for_file


def rename_class(data: bytes, old: tuple[str, str], new: tuple[str, str]) -> bytes:
    """A copy of a .skops file whose schema names ``new`` wherever it named ``old``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            raw = src.read(item)
            if item.filename == "schema.json":
                text = json.dumps(json.loads(raw))
                text = text.replace(f'"__class__": "{old[1]}", "__module__": "{old[0]}"',
                                    f'"__class__": "{new[1]}", "__module__": "{new[0]}"')
                raw = text.encode()
            dst.writestr(item, raw)
    return out.getvalue()


def test_plain_skops_file_loads(tmp_path: Path, pipeline: object, data: tuple) -> None:
    path = tmp_path / "model.skops"
    sio.dump(pipeline, path)
    assert format_for_file(path).name == "skops"
    loaded = mc.load(path)
    np.testing.assert_array_equal(loaded.predict(data[0]), pipeline.predict(data[0]))  # type: ignore[attr-defined]


def test_our_policy_decides_not_skops_defaults(tmp_path: Path, forest: object, data: tuple) -> None:
    path = tmp_path / "forest.skops"
    sio.dump(forest, path)
    assert "sklearn.tree._tree.Tree" in sio.get_untrusted_types(file=path)  # skops would refuse by default
    loaded = mc.load(path)  # our default policy admits it (an exact name); its indices are checked after loading
    np.testing.assert_array_equal(loaded.predict(data[0]), forest.predict(data[0]))  # type: ignore[attr-defined]


def test_a_name_outside_our_policy_is_refused_with_our_error(tmp_path: Path, data: tuple) -> None:
    model = LogisticRegression().fit(*data)
    hostile = rename_class(sio.dumps(model), ("sklearn.linear_model._logistic", "LogisticRegression"),
                           ("smtplib", "SMTP"))
    path = tmp_path / "hostile.skops"
    path.write_bytes(hostile)
    report = mc.audit(path)
    assert report.format == "skops" and report.untrusted == ["smtplib.SMTP"]
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(path)
    assert info.value.names == ["smtplib.SMTP"]


def test_skops_capsule_round_trip(tmp_path: Path, pipeline: object, data: tuple) -> None:
    path = tmp_path / "m.capsule"
    manifest = mc.save(pipeline, path, format="skops", sample=data[0][:5], source=False)
    assert manifest.format_name == "skops" and manifest.format["member"] == "model/model.skops"
    loaded = mc.load(path)
    np.testing.assert_array_equal(loaded.predict(data[0]), pipeline.predict(data[0]))  # type: ignore[attr-defined]


def test_not_a_skops_file_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.skops"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(mc.CapsuleFormatError):
        mc.load(path)


def test_a_zip_bomb_inside_a_skops_file_is_refused_before_skops_inflates_it(tmp_path: Path, data: tuple) -> None:
    model = LogisticRegression().fit(*data)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(sio.dumps(model))) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        dst.writestr("padding.npy", bytes(8 << 20), compress_type=zipfile.ZIP_DEFLATED)
    path = tmp_path / "bomb.skops"
    path.write_bytes(out.getvalue())
    with pytest.raises(mc.LimitExceededError, match="max_compression_ratio"):
        mc.load(path)


def test_reading_a_skops_file_never_imports_skops(tmp_path: Path, forest: object, data: tuple,
                                                  subprocess_env: dict[str, str]) -> None:
    """skops writes .skops files; reading one is our own schema walk. The audit imports neither skops nor
    scikit-learn; the load imports scikit-learn (the model's classes) but still not skops."""
    path = tmp_path / "forest.skops"
    sio.dump(forest, path)
    child = ("import sys, modelcapsule as mc\n"
             f"report = mc.audit({str(path)!r})\n"
             "audited = sorted(m for m in ('skops', 'sklearn') if m in sys.modules)\n"
             f"mc.load({str(path)!r})\n"
             "print(report.ok, audited, 'skops' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", child], env=subprocess_env, capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out == ["True", "[]", "False"]
