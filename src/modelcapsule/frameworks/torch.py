"""PyTorch: ``torch.nn.Module`` instances and ``torch.export`` programs.

A module is called with one tensor (the signature's single input, ``"input"``) and its ``forward``
output is the one prediction method (output ``"forward"``). Inputs arrive as numpy arrays; they are cast
to the dtype of the module's first floating-point parameter, run under ``torch.inference_mode()`` in
``eval()`` mode on the module's device, and the output comes back as a numpy array on the CPU.

Nothing here imports torch until a model is actually handled: :meth:`TorchFramework.matches` looks only
at the names of the model's classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ..errors import UnsupportedModelError
from ..types import Signature

__all__ = ["FRAMEWORKS", "TorchFramework", "TorchPredictor", "class_path", "is_torch_module"]

_EXPORTED = "torch.export.exported_program.ExportedProgram"


def class_path(cls: type) -> str:
    """``module.qualname`` of a class, the name the trust policy speaks of."""
    return f"{cls.__module__}.{cls.__qualname__}"


def is_torch_module(model: Any) -> bool:
    """Whether ``model`` is a ``torch.nn.Module`` (judged by class names, so torch is never imported)."""
    return any(class_path(c) == "torch.nn.modules.module.Module" for c in type(model).__mro__)


def is_exported_program(model: Any) -> bool:
    return any(class_path(c) == _EXPORTED for c in type(model).__mro__)


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


def run(model: Any, inputs: Any) -> np.ndarray[Any, Any]:
    """Call ``model`` on ``inputs`` without gradients and in eval mode."""
    import torch

    if isinstance(inputs, Mapping):
        if len(inputs) != 1:
            raise TypeError(f"PyTorch modules take one input, got {sorted(inputs)}")
        (inputs,) = inputs.values()
    if is_exported_program(model):
        module = model.module()
        with torch.inference_mode():
            return to_numpy(module(to_tensor(model, inputs)))
    if model.training:
        model.eval()
    with torch.inference_mode():
        return to_numpy(model(to_tensor(model, inputs)))


class TorchPredictor:
    """Serves a module's ``forward`` as the output ``"forward"`` of the signature's single input."""

    def __init__(self, model: Any, signature: Signature) -> None:
        self.model = model
        self._signature = signature

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray[Any, Any]]:
        names = self._signature.output_names or ("forward",)
        wanted = list(outputs) if outputs is not None else [names[0]]
        unknown = [o for o in wanted if o not in names]
        if unknown:
            raise KeyError(f"unknown output(s) {unknown}; this model gives {list(names)}")
        input_name = self._signature.inputs[0].name if self._signature.inputs else "input"
        if input_name not in inputs:
            raise KeyError(f"missing input {input_name!r}")
        result = run(self.model, inputs[input_name])
        return {name: result for name in wanted}


class TorchFramework:
    """PyTorch modules (stored as safetensors + class path) and ``torch.export`` programs."""

    name: ClassVar[str] = "torch"

    def matches(self, model: Any) -> bool:
        return is_torch_module(model) or is_exported_program(model)

    def describe(self, model: Any) -> dict[str, Any]:
        cls = type(model)
        params: dict[str, Any] = {}
        if is_torch_module(model):
            params["n_parameters"] = int(sum(p.numel() for p in model.parameters()))
        return {"class": class_path(cls), "task": "tensor", "methods": self.methods(model), "params": params}

    def methods(self, model: Any) -> list[str]:
        return ["forward"]

    def call(self, model: Any, method: str, inputs: Any) -> np.ndarray[Any, Any]:
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

    def predictor(self, model: Any, signature: Signature) -> TorchPredictor:
        return TorchPredictor(model, signature)


FRAMEWORKS = (TorchFramework(),)
