"""Keras archives that name objects the default trust policy admits, and the one way to load custom objects.

The defaults are reviewed for modelcapsule's own parsers: ``numpy.power`` may be *kept as a value*,
``builtins.bytearray`` may be *called with checked arguments*. Keras does neither: it calls whatever
``custom_objects`` hands it (an activation runs on every batch, a class's ``from_config`` at load). So a
``.keras`` file gets from Keras only objects the user trusted by name, the defaults never widen Keras'
safe mode, and ``mc.audit`` reports exactly the names the load refuses.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelcapsule as mc
from modelcapsule.core.container import CapsuleWriter, open_capsule
from modelcapsule.frameworks.keras import import_keras
from modelcapsule.security import policy as policy_module
from modelcapsule.security.policy import DEFAULT_POLICY

keras = import_keras()  # picks an installed backend (torch here) before anything else imports keras

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frameworks"))
from mc_test_keras_layers import Scale, half_relu  # noqa: E402 - needs the backend chosen above

LEGIT = ["mc_test_keras_layers.Scale", "mc_test_keras_layers.half_relu"]
CANARY: list[Path] = []


def write_canary(x: Any) -> Any:
    """Stands for a dangerous callable: every call leaves a file behind."""
    for path in CANARY:
        path.write_text("keras called a name the user never trusted")
    return x


CANARY_FN = f"{write_canary.__module__}.write_canary"


@keras.saving.register_keras_serializable(package="mc_hostile")
class Impostor(keras.layers.Layer):
    """A layer registered in this process: a config can reach it through Keras' registry by its key."""

    def call(self, x: Any) -> Any:
        return write_canary(x)


def plain_model() -> Any:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)])


def edit_config(keras_bytes: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """A copy of a ``.keras`` archive whose config.json went through ``edit``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(keras_bytes)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "config.json":
                config = json.loads(body)
                edit(config)
                body = json.dumps(config).encode()
            dst.writestr(info, body)
    return out.getvalue()


def with_activation(reference: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        config["config"]["layers"][1]["config"]["activation"] = reference  # layers[0] is the Input
    return edit


def function_ref(module: str, name: str, registered: str | None = None) -> dict[str, Any]:
    return {"module": module, "class_name": "function", "config": name, "registered_name": registered}


def hostile_file(tmp_path: Path, edit: Callable[[dict[str, Any]], None], name: str = "evil.keras") -> Path:
    good = tmp_path / "good.keras"
    if not good.exists():
        plain_model().save(good)
    path = tmp_path / name
    path.write_bytes(edit_config(good.read_bytes(), edit))
    return path


def forge_capsule(src: Path, dst: Path, replace: Mapping[str, bytes]) -> Path:
    """A capsule with members replaced and re-hashed, as an attacker without a signing key can write."""
    manifest = mc.inspect(src)
    with open_capsule(src) as reader, CapsuleWriter(dst, overwrite=True) as writer:
        for member in reader.names():
            if member != "capsule.json":
                writer.add(member, replace.get(member, reader.read(member)))
        writer.finish(manifest)
    return dst


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "canary.txt"
    CANARY.append(path)
    yield path
    CANARY.remove(path)


@pytest.fixture
def keras_never_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every call of Keras' loader: a refused file must never reach it."""
    calls: list[str] = []
    real = keras.saving.load_model

    def spy(path: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(keras.saving, "load_model", spy)
    return calls


@pytest.fixture
def canary_in_defaults(monkeypatch: pytest.MonkeyPatch) -> str:
    """Make :func:`write_canary` a default-trusted value, as ``numpy.power`` is: the class of name at stake."""
    role, admitted = policy_module.default_role, policy_module.admitted
    monkeypatch.setattr(policy_module, "default_role", lambda n: "value" if n == CANARY_FN else role(n))
    monkeypatch.setattr(policy_module, "admitted", lambda n: n == CANARY_FN or admitted(n))
    assert DEFAULT_POLICY.admits(CANARY_FN)
    return CANARY_FN


DEFAULT_TRUSTED_REFERENCES = {
    "numpy.power": function_ref("numpy", "power"),  # a ufunc, a value only: Keras would call it per batch
    "numpy.log1p": function_ref("numpy", "log1p"),
    "builtins.bytearray": function_ref("builtins", "builtins>bytearray"),  # an allocator sized by its input
    "collections.OrderedDict": {"module": "collections", "class_name": "OrderedDict", "config": {},
                                "registered_name": None},
}


@pytest.mark.parametrize("name", sorted(DEFAULT_TRUSTED_REFERENCES))
def test_a_default_trusted_name_never_reaches_keras(tmp_path: Path, name: str, keras_never_loads: list[str]) -> None:
    assert DEFAULT_POLICY.admits(name)  # the point: the defaults admit it, yet Keras must not get it
    evil = hostile_file(tmp_path, with_activation(DEFAULT_TRUSTED_REFERENCES[name]))
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(evil)
    assert info.value.names == [name]
    assert keras_never_loads == []
    report = mc.audit(evil)
    assert (report.ok, report.untrusted, report.trusted_arg) == (False, [name], f"trusted=[{name!r}]")


def test_a_dangerous_default_name_is_refused_and_only_the_user_can_vouch_for_it(
        tmp_path: Path, canary: Path, canary_in_defaults: str) -> None:
    evil = hostile_file(tmp_path, with_activation(function_ref(write_canary.__module__, "write_canary")))
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(evil)
    assert info.value.names == [canary_in_defaults]
    assert not canary.exists()
    report = mc.audit(evil)
    assert (report.ok, report.untrusted) == (False, [canary_in_defaults])
    assert not canary.exists()

    # the refusal is what stood between the file and the call: trusted by name, Keras runs it
    model = mc.load(evil, trusted=[canary_in_defaults])
    model.predict(np.ones((1, 4), dtype="float32"), verbose=0)
    assert canary.exists()


def test_a_capsule_naming_a_default_trusted_function_is_refused_by_load_and_flagged_by_audit(
        tmp_path: Path, keras_never_loads: list[str]) -> None:
    good = tmp_path / "good.capsule"
    mc.save(plain_model(), good, sample=np.ones((2, 4), dtype="float32"))
    with open_capsule(good) as reader:
        member = reader.read("model/model.keras")
    evil = forge_capsule(good, tmp_path / "evil.capsule",
                         {"model/model.keras": edit_config(member, with_activation(function_ref("numpy", "power")))})
    keras_never_loads.clear()  # saving loaded the good capsule back to check its sample
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(evil)
    assert info.value.names == ["numpy.power"]
    assert keras_never_loads == []
    report = mc.audit(evil)
    assert report.hashes.startswith("ok") and (report.ok, report.untrusted) == (False, ["numpy.power"])


def test_a_registered_key_is_checked_as_the_object_keras_would_use(tmp_path: Path, canary: Path) -> None:
    """Keras prefers its own registry to ``custom_objects``: a trusted name with another object's key is
    judged by the object the key reaches."""
    def edit(config: dict[str, Any]) -> None:
        config["config"]["layers"].append({"module": "mc_test_keras_layers", "class_name": "Scale",
                                           "registered_name": "mc_hostile>Impostor", "config": {"name": "s"}})

    evil = hostile_file(tmp_path, edit)
    impostor = f"{Impostor.__module__}.Impostor"
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(evil, trusted=LEGIT)
    assert info.value.names == [impostor]
    assert mc.audit(evil, trusted=LEGIT).untrusted == [impostor]
    assert not canary.exists()


def legit_model() -> Any:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation=half_relu), Scale(3.0),
                             keras.layers.Dense(2)])


def test_a_custom_layer_loads_only_when_the_user_trusts_it(tmp_path: Path) -> None:
    model, x = legit_model(), np.linspace(-1, 1, 24, dtype="float32").reshape(6, 4)
    model.save(tmp_path / "custom.keras")
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(tmp_path / "custom.keras")
    assert info.value.names == LEGIT
    assert mc.audit(tmp_path / "custom.keras").untrusted == LEGIT

    assert mc.audit(tmp_path / "custom.keras", trusted=LEGIT).ok
    loaded = mc.load(tmp_path / "custom.keras", trusted=LEGIT)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_trusting_a_default_name_by_hand_is_the_users_call(tmp_path: Path) -> None:
    """Named explicitly, even a default name reaches Keras: the user, not the defaults, vouched for it."""
    evil = hostile_file(tmp_path, with_activation(function_ref("numpy", "log1p")))
    assert mc.audit(evil, trusted=["numpy.log1p"]).ok
    loaded = mc.load(evil, trusted=["numpy.log1p"])
    assert loaded.layers[0].activation is np.log1p


def test_the_command_line_audit_names_the_flag_the_load_would_need(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from modelcapsule.cli import cli

    evil = hostile_file(tmp_path, with_activation(function_ref("numpy", "power")))
    refused = CliRunner().invoke(cli, ["audit", str(evil)])
    assert refused.exit_code == 1 and "--trust numpy.power" in refused.output
    trusted = CliRunner().invoke(cli, ["audit", str(evil), "--json", "--trust", "numpy.power"])
    assert trusted.exit_code == 0 and json.loads(trusted.output)["untrusted"] == []


LATE_MODULE = '''
import keras

class Harmless(keras.layers.Layer):
    def call(self, x):
        return x

@keras.saving.register_keras_serializable(package="mc_late")
class Danger(keras.layers.Layer):
    def call(self, x):
        with open(CANARY, "w") as fh:
            fh.write("registered on import, used instead of the trusted layer")
        return x
'''


def test_a_key_registered_by_importing_a_trusted_module_must_reach_the_trusted_object(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit cannot see a registry entry that importing the trusted module creates; the load checks
    every key again after the imports, before Keras resolves anything."""
    canary = tmp_path / "late-canary.txt"
    (tmp_path / "mc_late_module.py").write_text(f"CANARY = {str(canary)!r}\n{LATE_MODULE}")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mc_late_module", raising=False)

    def edit(config: dict[str, Any]) -> None:
        config["config"]["layers"].append({"module": "mc_late_module", "class_name": "Harmless",
                                           "registered_name": "mc_late>Danger", "config": {"name": "h"}})

    evil = hostile_file(tmp_path, edit)
    assert mc.audit(evil, trusted=["mc_late_module.Harmless"]).ok  # what a static read can know
    with pytest.raises(mc.UntrustedTypesError) as info:
        model = mc.load(evil, trusted=["mc_late_module.Harmless"])
        model.predict(np.ones((1, 4), dtype="float32"), verbose=0)
    assert info.value.names == ["mc_late_module.Danger"]
    assert not canary.exists()
