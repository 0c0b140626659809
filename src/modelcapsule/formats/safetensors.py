"""``safetensors``: a PyTorch module as its ``state_dict`` in safetensors plus a JSON spec of its class.

Members: ``model/model.safetensors`` (every tensor of the state dict, tied weights stored once) and
``model/module.json`` (``{"spec", "state", "ties"}``: the class path and constructor arguments, see
:mod:`modelcapsule.formats.torch_modules`; the state dict's structure, see :mod:`modelcapsule.frameworks.torch_tree`;
which parameters are shared, so tied weights are tied again after loading).

Load is parse → audit → construct: the JSON is read and every class it names is checked against the trust
policy (classes of ``torch.nn`` itself excepted) before any import; then the class is imported, built
with the recorded arguments, given the weights with ``load_state_dict(strict=True)`` and moved to
``device`` (``load(..., device="cuda:0")``; the default is the CPU).

A plain ``*.safetensors`` file (no spec) loads as a ``dict`` of tensors, the usual ``state_dict``.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, ClassVar

from ..errors import CapsuleFormatError, UnsupportedModelError
from ..frameworks.torch import class_path, is_torch_module
from . import torch_modules
from ._members import main_member, read_json
from .base import LoadOptions, MemberSink, MemberSource, SaveResult

__all__ = ["FORMATS", "SafetensorsFormat"]

WEIGHTS = "model/model.safetensors"
SPEC = "model/module.json"


MAX_HEADER = 100 << 20
"""Largest safetensors JSON header (safetensors' own limit)."""

_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
             "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def check_header(data: bytes | memoryview) -> dict[str, Any]:
    """Parse and check a safetensors header before any tensor is built: every entry names a known dtype,
    a shape of non-negative integers and data offsets that lie inside the file, do not overlap, and hold
    exactly ``prod(shape) * itemsize`` bytes; ``__metadata__`` maps strings to strings."""
    view = memoryview(data).cast("B")
    if len(view) < 8:
        raise CapsuleFormatError("the safetensors payload is shorter than its 8-byte header length.")
    size = int.from_bytes(view[:8], "little")
    if size > min(MAX_HEADER, len(view) - 8):
        raise CapsuleFormatError(f"the safetensors header claims {size:,} bytes; the file holds {len(view) - 8:,}.")
    try:
        header = json.loads(bytes(view[8 : 8 + size]))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CapsuleFormatError(f"the safetensors header is not valid JSON ({type(exc).__name__}).") from exc
    if not isinstance(header, dict):
        raise CapsuleFormatError("the safetensors header is not a JSON object.")
    body = len(view) - 8 - size
    spans: list[tuple[int, int]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise CapsuleFormatError("safetensors __metadata__ should map strings to strings.")
            continue
        where = f"safetensors tensor {name[:80]!r}"
        if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str) or entry["dtype"] not in _ITEMSIZE:
            raise CapsuleFormatError(f"{where} has no known dtype.")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not isinstance(shape, list) or len(shape) > 32 or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise CapsuleFormatError(f"{where} has a malformed shape.")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(
                isinstance(o, int) and not isinstance(o, bool) for o in offsets) or not (
                0 <= offsets[0] <= offsets[1] <= body):
            raise CapsuleFormatError(f"{where} has data offsets outside the file.")
        count = 1
        for d in shape:
            count *= d
        if count * _ITEMSIZE[entry["dtype"]] != offsets[1] - offsets[0]:
            raise CapsuleFormatError(f"{where}: its shape and dtype need {count * _ITEMSIZE[entry['dtype']]:,} bytes, "
                                     f"its offsets hold {offsets[1] - offsets[0]:,}.")
        spans.append((offsets[0], offsets[1]))
    spans.sort()
    for (_a, end), (start, _b) in itertools.pairwise(spans):
        if start < end:
            raise CapsuleFormatError("two safetensors tensors share bytes; refusing an ambiguous file.")
    return header


def _load_tensors(data: bytes, device: str | None) -> dict[str, Any]:
    import safetensors.torch
    from safetensors import SafetensorError

    check_header(data)
    try:
        tensors = safetensors.torch.load(data)
    except (SafetensorError, ValueError) as exc:
        raise CapsuleFormatError(f"the safetensors payload is corrupt: {exc}") from exc
    if device not in (None, "cpu"):
        tensors = {k: v.to(device) for k, v in tensors.items()}
    return tensors


def _ties(model: Any) -> dict[str, str]:
    """``{alias: first name}`` for parameters shared between submodules (tied embeddings and heads)."""
    first: dict[int, str] = {}
    ties: dict[str, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in first:
            ties[name] = first[id(param)]
        else:
            first[id(param)] = name
    return ties


def _retie(module: Any, ties: Any) -> None:
    """Share again the parameters that were shared when the module was saved."""
    if not isinstance(ties, dict):
        raise CapsuleFormatError("malformed module.json: 'ties' must be an object")
    for alias, target in ties.items():
        try:
            owner_name, _, attr = str(alias).rpartition(".")
            owner = module.get_submodule(owner_name) if owner_name else module
            setattr(owner, attr, module.get_parameter(str(target)))
        except (AttributeError, TypeError) as exc:
            raise CapsuleFormatError(f"cannot tie parameter {alias!r} to {target!r}: {exc}") from exc


class SafetensorsFormat:
    """PyTorch modules: weights in safetensors, class and constructor arguments in JSON."""

    name: ClassVar[str] = "safetensors"
    runs_code: ClassVar[bool] = False
    safety: ClassVar[int] = 10
    extensions: ClassVar[tuple[str, ...]] = (".safetensors",)

    def supports(self, model: Any) -> bool:
        return is_torch_module(model)

    def save(self, model: Any, sink: MemberSink) -> SaveResult:
        import safetensors.torch

        from ..frameworks.torch_tree import flatten

        if not is_torch_module(model):
            raise UnsupportedModelError(f"the safetensors format stores torch.nn.Module objects, not {type(model)}")
        spec = torch_modules.module_spec(model)
        torch_modules.check_spec(model, spec)
        try:
            tensors, state = flatten(model.state_dict())
        except TypeError as exc:
            raise UnsupportedModelError(f"the module's state_dict cannot be stored without pickle: {exc}") from exc
        sink.add(WEIGHTS, safetensors.torch.save(tensors))
        doc = {"spec": spec, "state": state, "ties": _ties(model)}
        sink.add(SPEC, json.dumps(doc, allow_nan=False).encode())
        return SaveResult(
            details={"member": WEIGHTS, "spec": SPEC, "class": class_path(type(model))},
            types=torch_modules.spec_classes(spec),
        )

    def audit(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> list[str]:
        spec_name = str(details.get("spec", SPEC))
        if spec_name not in source:
            return []  # a plain safetensors file: tensors only, nothing to import
        doc = read_json(source, spec_name)
        if not isinstance(doc, dict) or not isinstance(doc.get("spec"), dict):
            raise CapsuleFormatError(f"{spec_name} has no module spec; the capsule is corrupt.")
        return torch_modules.untrusted_classes(doc["spec"])

    def load(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> Any:
        from ..frameworks.torch_tree import unflatten

        member = main_member(source, details, WEIGHTS)
        spec_name = str(details.get("spec", SPEC))
        if spec_name not in source:
            return _load_tensors(source.read(member), options.device)
        doc = read_json(source, spec_name)
        if not isinstance(doc, dict) or not isinstance(doc.get("spec"), dict):
            raise CapsuleFormatError(f"{spec_name} has no module spec; the capsule is corrupt.")
        module = torch_modules.build(doc["spec"], options.policy)
        state = unflatten(doc.get("state", {}), _load_tensors(source.read(member), None))
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CapsuleFormatError(f"the stored weights do not fit {doc['spec']['qualname']}: {exc}") from exc
        _retie(module, doc.get("ties", {}))
        if options.device is not None:
            module.to(options.device)
        return module.eval()


FORMATS = (SafetensorsFormat(),)
