"""PyTorch modules as safetensors + class spec, torch.export programs, raw .pt files and checkpoints."""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from mc_test_nets import ConfiguredNet, HiddenArgs, TinyNet

import modelcapsule as mc
from modelcapsule.core.members import PlainFile
from modelcapsule.formats import LoadOptions, get_format
from modelcapsule.security.policy import DEFAULT_POLICY

TINY = "mc_test_nets.TinyNet"


def sample(rows: int = 6, cols: int = 4) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(rows, cols)).astype(np.float32)


def predict(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return module.eval()(torch.from_numpy(x)).numpy()


class Evil:
    """Pickles into a call of os.system: what a hostile .pt file does."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def test_module_round_trips_in_a_fresh_process(tmp_path: Path, fresh_python) -> None:
    torch.manual_seed(0)
    net = TinyNet(4, hidden=5, n_out=2)
    x = sample()
    manifest = mc.save(net, tmp_path / "net.capsule", sample=x, trusted=[TINY])
    assert net.training  # saving ran the sample in eval mode and left the module as it was
    assert manifest.format["name"] == "safetensors"
    assert manifest.signature is not None and manifest.signature.output_names == ("forward",)
    assert {"torch", "safetensors"} <= set(manifest.environment["packages"])
    np.save(tmp_path / "x.npy", x)
    fresh_python(f"""
        import numpy as np, modelcapsule as mc
        from modelcapsule.load import load_capsule
        loaded = load_capsule({str(tmp_path / "net.capsule")!r}, trusted=[{TINY!r}], on_mismatch="error",
                              device="cpu")
        assert type(loaded.model).__name__ == "TinyNet" and loaded.model.hidden == 5
        assert all(p.device.type == "cpu" for p in loaded.model.parameters())
        out = loaded.predictor.predict({{"input": np.load({str(tmp_path / "x.npy")!r})}})["forward"]
        np.save({str(tmp_path / "out.npy")!r}, out)
    """)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), predict(net, x))


def test_module_class_outside_the_policy_is_refused(tmp_path: Path) -> None:
    mc.save(TinyNet(4), tmp_path / "net.capsule", sample=sample(), trusted=[TINY])
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(tmp_path / "net.capsule")
    assert info.value.names == [TINY]  # (test_audit_first shows nothing is imported before this refusal)


def test_forged_spec_naming_os_system_is_refused(tmp_path: Path, forge) -> None:
    torch.manual_seed(0)
    good = tmp_path / "good.capsule"
    mc.save(torch.nn.Sequential(torch.nn.Linear(3, 2)), good, sample=sample(cols=3))
    with zipfile.ZipFile(good) as archive:
        doc = json.loads(archive.read("model/module.json"))
    doc["spec"]["args"][0]["$module"].update(module="os", qualname="system")
    bad = forge(good, tmp_path / "bad.capsule", {"model/module.json": json.dumps(doc).encode()})
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(bad)
    assert info.value.names == ["os.system"]


def test_builtin_layers_need_no_trust_and_tied_weights_stay_tied(tmp_path: Path) -> None:
    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GELU(), torch.nn.LayerNorm(4), torch.nn.Linear(4, 4))
    seq[3].weight = seq[0].weight  # tied: stored once, shared again after loading
    x = sample()
    mc.save(seq, tmp_path / "seq.capsule", sample=x)  # only torch.nn classes: no trusted=[...] needed
    loaded = mc.load(tmp_path / "seq.capsule")
    assert loaded[3].weight is loaded[0].weight
    np.testing.assert_array_equal(predict(loaded, x), predict(seq, x))


def test_get_config_gives_the_constructor_arguments(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = ConfiguredNet((4, 3))
    x = sample()
    mc.save(net, tmp_path / "cfg.capsule", sample=x, trusted=["mc_test_nets.ConfiguredNet"])
    loaded = mc.load(tmp_path / "cfg.capsule", trusted=["mc_test_nets.ConfiguredNet"])
    assert loaded.get_config() == {"sizes": (4, 3)}
    np.testing.assert_array_equal(predict(loaded, x), predict(net, x))


def test_module_whose_arguments_cannot_be_recovered_is_refused_at_save(tmp_path: Path) -> None:
    with pytest.raises(mc.UnsupportedModelError, match="self.width = width"):
        mc.save(HiddenArgs(3), tmp_path / "h.capsule", format="safetensors", trusted=["mc_test_nets.HiddenArgs"])
    assert not (tmp_path / "h.capsule").exists()


@pytest.fixture(scope="module")
def exported() -> tuple[torch.nn.Module, torch.export.ExportedProgram]:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    program = torch.export.export(module, (torch.from_numpy(sample()),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    return module, program


def test_exported_program_round_trips(tmp_path: Path, exported) -> None:
    module, program = exported
    x = sample()
    manifest = mc.save(program, tmp_path / "prog.capsule", sample=x)
    assert manifest.format["name"] == "torchexport"
    loaded = mc.load_capsule(tmp_path / "prog.capsule", on_mismatch="error")
    np.testing.assert_array_equal(loaded.predictor.predict({"input": x[:2]})["forward"], predict(module, x[:2]))


def test_exported_program_with_a_hostile_pickle_is_refused(tmp_path: Path, forge, exported) -> None:
    x = sample()
    _, program = exported
    good = tmp_path / "prog.capsule"
    mc.save(program, good, sample=x)
    marker = tmp_path / "pwned"
    with zipfile.ZipFile(good) as archive:
        pt2 = archive.read("model/program.pt2")
    evil = io.BytesIO()
    torch.save({"args": Evil(f"touch {marker}")}, evil)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(pt2)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = evil.getvalue() if "sample_inputs" in info.filename else src.read(info)
            dst.writestr(info.filename, data)
    bad = forge(good, tmp_path / "bad.capsule", {"model/program.pt2": out.getvalue()})
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(bad)
    assert "posix.system" in info.value.names
    assert not marker.exists()


def test_raw_state_dict_loads_with_the_safe_loader(tmp_path: Path) -> None:
    net = torch.nn.Linear(3, 2)
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    weights = mc.load(tmp_path / "weights.pt", device="cpu")
    assert set(weights) == {"weight", "bias"}
    assert torch.equal(weights["weight"], net.weight.detach())
    fmt = get_format("pt")
    source = PlainFile(tmp_path / "weights.pt", "model/weights.pt")
    assert fmt.audit(source, {"member": "model/weights.pt"}, LoadOptions(policy=DEFAULT_POLICY)) == []


def test_malicious_pt_is_refused_with_no_side_effect(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({"weight": torch.zeros(2), "payload": Evil(f"touch {marker}")}, tmp_path / "evil.pt")
    source = PlainFile(tmp_path / "evil.pt", "model/evil.pt")
    names = get_format("pt").audit(source, {"member": "model/evil.pt"}, LoadOptions(policy=DEFAULT_POLICY))
    assert names == ["posix.system" if sys.platform != "win32" else "nt.system"]
    with pytest.raises(mc.UntrustedTypesError):
        mc.load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_full_module_pickle_is_refused_and_never_retried(tmp_path: Path) -> None:
    """A whole pickled module names its class; even when trusted, torch's safe loader is the only one used."""
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(tmp_path / "module.pt")
    assert "torch.nn.modules.linear.Linear" in info.value.names


def test_plain_safetensors_file_loads_as_a_state_dict(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.arange(4.0)}, tmp_path / "w.safetensors")
    assert torch.equal(mc.load(tmp_path / "w.safetensors")["w"], torch.arange(4.0))


def test_checkpoint_resumes_training_exactly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(16, 4), torch.randn(16, 3)

    def step(model: torch.nn.Module, opt: torch.optim.Optimizer) -> float:
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return float(loss.detach())

    model = TinyNet(4, n_out=3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        loss = step(model, opt)
        sched.step()
    mc.save_checkpoint(tmp_path / "last.ckpt", model=model, optimizer=opt, scheduler=sched, epoch=1, loss=loss,
                    extra={"best": loss, "note": "two steps"})
    resumed = TinyNet(4, n_out=3)
    resumed_opt = torch.optim.AdamW(resumed.parameters(), lr=0.5)
    resumed_sched = torch.optim.lr_scheduler.StepLR(resumed_opt, step_size=1, gamma=0.5)
    ckpt = mc.load_checkpoint(tmp_path / "last.ckpt", model=resumed, optimizer=resumed_opt, scheduler=resumed_sched)
    assert (ckpt.epoch, ckpt.loss, ckpt.extra["note"]) == (1, loss, "two steps")
    assert resumed_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert step(resumed, resumed_opt) == step(model, opt)
    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_file_is_plain_safetensors(tmp_path: Path) -> None:
    from safetensors import safe_open

    model = torch.nn.Linear(2, 2)
    mc.save_checkpoint(tmp_path / "c.ckpt", model=model, epoch=3)
    with safe_open(str(tmp_path / "c.ckpt"), framework="pt") as fh:
        assert set(fh.keys()) == {"model.weight", "model.bias"}
        assert json.loads(fh.metadata()["modelcapsule.checkpoint"])["tree"]["epoch"] == 3
    (tmp_path / "not.ckpt").write_bytes(b"\x80\x04not a checkpoint")
    with pytest.raises(mc.CapsuleFormatError):
        mc.load_checkpoint(tmp_path / "not.ckpt")
