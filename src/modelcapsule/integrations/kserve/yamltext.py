"""A small YAML writer for Kubernetes manifests (plain mappings, lists, strings, numbers, booleans).

Every string is written double-quoted with JSON escapes, which YAML reads back unchanged, so no value
can turn into another type (``"8080"``, ``"yes"``, ``"1.0"``...) or break the document. Written here so
that generating manifests needs nothing beyond the core.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["dump_documents", "to_yaml"]


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} values in a manifest")


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        if not value:
            return [pad + "{}"]
        out: list[str] = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"manifest keys are strings, not {key!r}")
            head = f"{pad}{_key(key)}:"
            if isinstance(item, Mapping | list | tuple) and item:
                out.append(head)
                out.extend(_lines(item, indent + 2))
            else:
                out.append(f"{head} {_scalar(item) if not isinstance(item, Mapping | list | tuple) else _empty(item)}")
        return out
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            return [pad + "[]"]
        out = []
        for item in value:
            if isinstance(item, Mapping | list | tuple) and item:
                nested = _lines(item, indent + 2)
                out.append(f"{pad}- {nested[0].lstrip()}")
                out.extend(nested[1:])
            else:
                out.append(f"{pad}- {_scalar(item) if not isinstance(item, Mapping | list | tuple) else _empty(item)}")
        return out
    return [pad + _scalar(value)]


def _key(key: str) -> str:
    """Plain when made of letters, digits, ``.``, ``/``, ``-`` and ``_`` (Kubernetes keys), else quoted."""
    plain = key and key[0].isalpha() and all(c.isalnum() or c in "./-_" for c in key)
    return key if plain else json.dumps(key)


def _empty(value: Any) -> str:
    return "{}" if isinstance(value, Mapping) else "[]"


def to_yaml(document: Mapping[str, Any]) -> str:
    """One YAML document for ``document``."""
    return "\n".join(_lines(document, 0)) + "\n"


def dump_documents(documents: Sequence[Mapping[str, Any]]) -> str:
    """Several documents, separated by ``---`` (what ``kubectl apply -f`` takes)."""
    return "---\n".join(to_yaml(d) for d in documents)
