"""Keras 3 models: .keras archives in safe mode, custom objects only through the trust policy."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import modelcapsule as mc
from modelcapsule.frameworks.keras import KerasFramework, import_keras

keras = import_keras()  # picks an installed backend before anything else imports keras

from mc_test_keras_layers import Scale, half_relu  # noqa: E402 - needs the backend chosen above

CUSTOM = ["mc_test_keras_layers.Scale", "mc_test_keras_layers.half_relu"]


def sample(rows: int = 6) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(rows, 4)).astype(np.float32)


def plain_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="relu"),
                             keras.layers.Dense(2, activation="softmax")])


def custom_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation=half_relu), Scale(3.0),
                             keras.layers.Dense(2)])


def outputs(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return KerasFramework().call(model, "predict", x)


def edit_config(keras_bytes: bytes, edit) -> bytes:
    """A copy of a .keras archive whose config.json went through ``edit``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(keras_bytes)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            dst.writestr(info.filename, data)
    return out.getvalue()


def test_custom_model_round_trips_in_a_fresh_process(tmp_path: Path, fresh_python) -> None:
    model, x = custom_model(), sample()
    manifest = mc.save(model, tmp_path / "k.capsule", sample=x, trusted=CUSTOM)
    assert manifest.format["name"] == "keras"
    assert manifest.types == CUSTOM
    assert {"keras", "torch"} <= set(manifest.environment["packages"])
    np.save(tmp_path / "x.npy", x)
    fresh_python(f"""
        import numpy as np
        from modelcapsule.load import load_capsule
        loaded = load_capsule({str(tmp_path / "k.capsule")!r}, trusted={CUSTOM!r}, on_mismatch="error")
        out = loaded.predictor.predict({{"input": np.load({str(tmp_path / "x.npy")!r})}})["predict"]
        np.save({str(tmp_path / "out.npy")!r}, out)
    """)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), outputs(model, x))


def test_custom_objects_outside_the_policy_are_refused(tmp_path: Path) -> None:
    mc.save(custom_model(), tmp_path / "k.capsule", sample=sample(), trusted=CUSTOM)
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(tmp_path / "k.capsule")
    assert info.value.names == CUSTOM


def test_builtin_layers_need_no_trust(tmp_path: Path) -> None:
    model, x = plain_model(), sample()
    mc.save(model, tmp_path / "plain.capsule", sample=x)
    np.testing.assert_array_equal(outputs(mc.load(tmp_path / "plain.capsule"), x), outputs(model, x))


def test_config_naming_os_system_is_refused_with_no_side_effect(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    model = plain_model()
    model.save(tmp_path / "good.keras")

    def hostile(config: dict) -> None:
        config["config"]["layers"][1]["config"]["activation"] = {
            "module": "os", "class_name": "system", "config": f"touch {marker}", "registered_name": None}

    (tmp_path / "evil.keras").write_bytes(edit_config((tmp_path / "good.keras").read_bytes(), hostile))
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(tmp_path / "evil.keras")
    assert info.value.names == ["os.system"]
    assert not marker.exists()


def test_lambda_layer_is_refused_whatever_the_trust(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2.0)])
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(mc.CapsuleFormatError, match="Python bytecode"):
        mc.load(tmp_path / "lambda.keras", trusted=["keras.layers.Lambda"])


def test_plain_keras_file_loads_in_safe_mode(tmp_path: Path) -> None:
    model, x = plain_model(), sample()
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(outputs(mc.load(tmp_path / "m.keras"), x), outputs(model, x))


def test_legacy_h5_needs_tensorflow(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed here; this checks the error shown without it")
    (tmp_path / "old.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(mc.UnsupportedModelError, match="needs TensorFlow"):
        mc.load(tmp_path / "old.h5")
