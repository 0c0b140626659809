"""PyTorch: ``torch.nn.Module`` instances and ``torch.export`` programs.

A module is called with one tensor (the signature's single input, ``"input"``) and its ``forward``
output is the one prediction method (output ``"forward"``). A plain ``state_dict`` (what a raw ``.pt``
or ``.safetensors`` file holds) is recognised too, for ``audit`` and ``load``, but has nothing to call.
Inputs arrive as numpy arrays; they are cast to the dtype of the module's first floating-point parameter,
run under ``torch.inference_mode()`` in ``eval()`` mode on the module's device, and the output comes back
as a numpy array on the CPU.

Nothing here imports torch until a model is actually handled: :meth:`TorchFramework.matches` looks only
at the names of the model's classes.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..errors import UnsupportedModelError
from ..types import Signature
from .predictor import MethodPredictor

__all__ = ["FRAMEWORKS", "TorchFramework", "class_path", "is_state_dict", "is_torch_module"]

_EXPORTED = "torch.export.exported_program.ExportedProgram"


def class_path(cls: type) -> str:
    """``module.qualname`` of a class, the name the trust policy speaks of."""
    return f"{cls.__module__}.{cls.__qualname__}"


def is_torch_module(model: Any) -> bool:
    """Whether ``model`` is a ``torch.nn.Module`` (judged by class names, so torch is never imported).

    Keras models on the PyTorch backend are torch modules too; they belong to the Keras adapter."""
    names = {class_path(c) for c in type(model).__mro__}
    return "torch.nn.modules.module.Module" in names and "keras.src.models.model.Model" not in names


def is_exported_program(model: Any) -> bool:
    return any(class_path(c) == _EXPORTED for c in type(model).__mro__)


def is_state_dict(model: Any) -> bool:
    """Whether ``model`` is a plain ``state_dict`` (what a raw ``.pt`` or ``.safetensors`` file holds)."""
    return (isinstance(model, Mapping) and len(model) > 0
            and all(type(v).__module__.startswith("torch") and type(v).__name__ in ("Tensor", "Parameter")
                    for v in model.values()))


def to_tensor(model: Any, value: Any) -> Any:
    """A numpy array (or anything array-like) as a tensor of the model's floating dtype and device."""
    import torch

    if isinstance(value, torch.Tensor):
        tensor = value
    else:
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError("PyTorch models take numeric arrays, not object arrays")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    floating = next((p for p in params if p.is_floating_point()), None)
    if floating is not None:
        if tensor.is_floating_point():
            tensor = tensor.to(dtype=floating.dtype)
        tensor = tensor.to(device=floating.device)
    return tensor


def to_numpy(value: Any) -> np.ndarray[Any, Any]:
    import torch

    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if not isinstance(value, torch.Tensor):
        raise UnsupportedModelError(
            f"the model returned {type(value).__name__}; modelcapsule serves modules whose forward returns "
            "one tensor. Wrap the module in one that returns the tensor you want served."
        )
    return np.asarray(value.detach().to("cpu").numpy())


_PROGRAM_MODULES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _program_module(program: Any) -> Any:
    """The callable module of an exported program, built once per program (``module()`` rebuilds it)."""
    try:
        module = _PROGRAM_MODULES.get(program)
        if module is None:
            module = _PROGRAM_MODULES[program] = program.module()
        return module
    except TypeError:  # not weak-referenceable: build it each time
        return program.module()


def run(model: Any, inputs: Any) -> np.ndarray[Any, Any]:
    """Call ``model`` on ``inputs`` without gradients, in eval mode (the model's own mode is restored)."""
    import torch

    if isinstance(inputs, Mapping):
        if len(inputs) != 1:
            raise TypeError(f"PyTorch modules take one input, got {sorted(inputs)}")
        (inputs,) = inputs.values()
    if is_exported_program(model):
        with torch.inference_mode():
            return to_numpy(_program_module(model)(to_tensor(model, inputs)))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return to_numpy(model(to_tensor(model, inputs)))
    finally:
        if was_training:
            model.train()


class TorchFramework:
    """PyTorch modules (stored as safetensors + class path) and ``torch.export`` programs."""

    name: ClassVar[str] = "torch"

    def matches(self, model: Any) -> bool:
        return is_torch_module(model) or is_exported_program(model) or is_state_dict(model)

    def describe(self, model: Any) -> dict[str, Any]:
        if is_state_dict(model):
            n = int(sum(v.numel() for v in model.values()))
            return {"framework": self.name, "class": "state_dict", "task": "weights", "methods": [],
                    "params": {"n_tensors": len(model), "n_values": n}}
        params: dict[str, Any] = {}
        if is_torch_module(model):
            params["n_parameters"] = int(sum(p.numel() for p in model.parameters()))
        return {"framework": self.name, "class": class_path(type(model)), "task": "tensor",
                "methods": self.methods(model), "params": params}

    def methods(self, model: Any) -> list[str]:
        return [] if is_state_dict(model) else ["forward"]

    def call(self, model: Any, method: str, inputs: Any) -> np.ndarray[Any, Any]:
        if is_state_dict(model):
            raise UnsupportedModelError(
                "this file holds weights only (a state_dict), not a module: build your module, call "
                "module.load_state_dict(weights), then save the module with modelcapsule.save."
            )
        if method != "forward":
            raise ValueError(f"PyTorch models have one method, forward, not {method!r}")
        return run(model, inputs)

    def packages(self, model: Any) -> list[str]:
        found = ["torch", "safetensors", "numpy"]
        top = type(model).__module__.split(".")[0]
        if top not in found and top not in ("__main__", "builtins"):
            found.append(top)
        return found

    def formats(self, model: Any) -> list[str]:
        return ["torchexport"] if is_exported_program(model) else ["safetensors"]

    def predictor(self, model: Any, signature: Signature) -> MethodPredictor:
        return MethodPredictor(model, signature, self.call)


FRAMEWORKS = (TorchFramework(),)
