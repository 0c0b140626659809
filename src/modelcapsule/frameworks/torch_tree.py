"""Nested PyTorch state (state dicts, optimizer state, checkpoints) as safetensors tensors plus JSON.

A training checkpoint or a ``state_dict`` is a tree of dicts, lists and tuples whose leaves are tensors
or plain values (ints, floats, strings, booleans, ``None``). :func:`flatten` splits such a tree into a
flat ``{key: tensor}`` mapping (written with safetensors) and a JSON document that records the tree's
shape and its plain leaves; :func:`unflatten` puts them back together. Nothing is pickled, so reading
the result can never run code: the JSON is parsed into plain data and the tensors are raw buffers.

Tensors that are the same view of the same storage (tied weights) are written once and referenced twice;
other tensors that share storage are copied, because safetensors refuses overlapping tensors.

Encoding of the JSON tree (each special node is a one-key object):
``{"$t": key}`` a tensor, ``{"$tuple": [...]}`` a tuple, ``{"$items": [[k, v], ...]}`` a dict whose keys are
not all strings (optimizer state is keyed by int), ``{"$float": "nan"|"inf"|"-inf"}`` a non-finite float.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import CapsuleFormatError

if TYPE_CHECKING:
    import torch

__all__ = ["flatten", "unflatten"]

_SPECIAL = ("$t", "$tuple", "$items", "$float")


def flatten(tree: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Split ``tree`` into ``({key: contiguous CPU tensor}, json_tree)``."""
    import torch

    tensors: dict[str, torch.Tensor] = {}
    seen: dict[tuple[Any, ...], str] = {}
    storages: dict[int, int] = {}

    def visit(node: Any, path: str) -> Any:
        if isinstance(node, torch.Tensor):
            t = node.detach()
            ident = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape),
                     t.stride(), t.dtype)
            if t.numel() > 0 and ident in seen:
                return {"$t": seen[ident]}
            key = path or "tensor"
            while key in tensors:
                key += "_"
            t = t.to("cpu")
            ptr = t.untyped_storage().data_ptr()
            shares = t.numel() > 0 and storages.get(ptr, 0) > 0
            if shares or not t.is_contiguous() or t.untyped_storage().nbytes() != t.numel() * t.element_size():
                t = t.contiguous().clone()
            storages[ptr] = storages.get(ptr, 0) + 1
            tensors[key] = t
            seen[ident] = key
            return {"$t": key}
        if isinstance(node, bool) or node is None or isinstance(node, (int, str)):
            return node
        if isinstance(node, float):
            return node if math.isfinite(node) else {"$float": repr(node)}
        if isinstance(node, tuple):
            return {"$tuple": [visit(v, f"{path}.{i}") for i, v in enumerate(node)]}
        if isinstance(node, list):
            return [visit(v, f"{path}.{i}") for i, v in enumerate(node)]
        if isinstance(node, Mapping):
            if all(isinstance(k, str) and k not in _SPECIAL for k in node):
                return {k: visit(v, f"{path}.{k}" if path else k) for k, v in node.items()}
            items = []
            for k, v in node.items():
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise TypeError(f"cannot store a key of type {type(k).__name__} at {path!r}; use str or int keys")
                items.append([k, visit(v, f"{path}.{k}" if path else str(k))])
            return {"$items": items}
        raise TypeError(
            f"cannot store a value of type {type(node).__name__} at {path or 'the top level'!r}: only tensors, "
            "dicts, lists, tuples, numbers, strings, booleans and None are stored (no pickle)."
        )

    return tensors, visit(tree, "")


def unflatten(doc: Any, tensors: Mapping[str, Any]) -> Any:
    """Rebuild the tree written by :func:`flatten` from its JSON document and the loaded tensors."""

    def visit(node: Any) -> Any:
        if isinstance(node, list):
            return [visit(v) for v in node]
        if isinstance(node, dict):
            if len(node) == 1:
                (key, value), = node.items()
                if key == "$t":
                    if not isinstance(value, str) or value not in tensors:
                        raise CapsuleFormatError(f"the state refers to a tensor {value!r} that the file does not hold")
                    return tensors[value]
                if key == "$tuple" and isinstance(value, list):
                    return tuple(visit(v) for v in value)
                if key == "$items" and isinstance(value, list):
                    return {_key(pair): visit(pair[1]) for pair in value}
                if key == "$float" and value in ("nan", "inf", "-inf"):
                    return float(value)
            return {str(k): visit(v) for k, v in node.items()}
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise CapsuleFormatError(f"unexpected value of type {type(node).__name__} in the state's JSON")

    try:
        return visit(doc)
    except RecursionError as exc:
        raise CapsuleFormatError("the state's JSON is nested too deeply; the file is corrupt or hostile") from exc


def _key(pair: Any) -> str | int:
    if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], (str, int)):
        raise CapsuleFormatError("malformed key/value pair in the state's JSON")
    return pair[0]
