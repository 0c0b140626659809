"""``skops``: skops.io files (``.skops``) and payloads, audited against *our* trust policy.

A ``.skops`` file is a ZIP holding ``schema.json`` (a tree of nodes, each naming the ``__module__`` and
``__class__`` it would build) and ``.npy`` members. The audit parses the schema as plain JSON and lists
every name in it, plus what ``skops.io.get_untrusted_types`` reports; nothing is imported from the file.
Our policy then decides, name by name *and by how skops would use it*: each schema node names a skops
loader, and a name the policy admits only as a value (a function) may only be imported (``FunctionNode``),
a class only created blank (``ObjectNode``), and only reviewed constructors called with arguments from the
file (``ReduceNode``, ``TreeNode``); anything else is refused unless the user trusted the name. skops is
then passed, as ``trusted=``, only the names it flags itself that passed that check; its own
untrusted-type error becomes :class:`~modelcapsule.errors.UntrustedTypesError`.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any, ClassVar

from ..core.container import Limits
from ..errors import CapsuleFormatError, LimitExceededError, UntrustedTypesError
from ..security.policy import TrustPolicy
from .base import LoadOptions, MemberSink, MemberSource, SaveResult
from .pickle import member_of

__all__ = ["SkopsFormat", "schema_names"]

STREAM = "model/model.skops"
SCHEMA = "schema.json"


_VALUE_LOADERS = frozenset({"FunctionNode", "TypeNode"})
"""skops loaders that only import a name (a function kept as a parameter, a type): never call it."""
_CLASS_LOADERS = frozenset({"ObjectNode", "TypeNode", "NdArrayNode", "DTypeNode", "MaskedArrayNode",
                            "SparseMatrixNode", "RandomStateNode", "RandomGeneratorNode", "DictNode", "ListNode",
                            "TupleNode", "SetNode", "JsonNode", "BytesNode", "BytearrayNode", "SliceNode",
                            "DefaultDictNode", "_DictWithDeprecatedKeysNode"})
"""skops loaders that create a blank object (or a container, an array) and give it its state."""
_CALL_LOADERS = frozenset({"ReduceNode", "TreeNode", "LossNode", "ConstructorFromReduceNode"})
"""skops loaders that *call* the named class with arguments from the file: only reviewed constructors."""
_MAX_DEPTH = 200


def _walk(node: Any, found: dict[str, None], uses: dict[str, set[str]] | None = None, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise CapsuleFormatError(f"the skops schema is nested more than {_MAX_DEPTH} levels deep; refusing it.")
    if isinstance(node, dict):
        module, cls = node.get("__module__"), node.get("__class__")
        if isinstance(module, str) and isinstance(cls, str):
            found.setdefault(f"{module}.{cls}", None)
            if uses is not None:
                uses.setdefault(f"{module}.{cls}", set()).add(str(node.get("__loader__")))
        for value in node.values():
            _walk(value, found, uses, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found, uses, depth + 1)


def check_loaders(uses: dict[str, set[str]], policy: TrustPolicy, what: str) -> None:
    """Hold each default-trusted name to its role in how skops would use it: values only imported,
    classes only created blank, and only reviewed constructors called with arguments from the file.
    Names the user trusted explicitly are theirs to vouch for; names outside the policy are refused by name."""
    for name, loaders in sorted(uses.items()):
        role = policy.role(name)
        allowed = {"value": _VALUE_LOADERS, "class": _CLASS_LOADERS,
                   "call": _CLASS_LOADERS | _CALL_LOADERS}.get(role or "")
        if allowed is None:
            continue
        if bad := loaders - allowed:
            raise CapsuleFormatError(
                f"{what} asks skops to load {name} with {', '.join(sorted(bad))}, which would "
                f"{'call it' if bad & _CALL_LOADERS else 'use it in a way'} the trust policy does not allow for "
                f"a {role} name. Refusing it; if you trust this file, pass trusted=[{name!r}]."
            )


def _check_sizes(archive: zipfile.ZipFile, what: str, limits: Limits) -> None:
    """Refuse zip bombs before skops inflates anything: per-member, total and ratio caps."""
    total = 0
    for info in archive.infolist():
        total += info.file_size
        if info.file_size > limits.max_member_size:
            raise LimitExceededError(f"member {info.filename!r} of {what}", info.file_size, limits.max_member_size,
                                     "max_member_size")
        ratio = info.file_size // max(info.compress_size, 1)
        if info.compress_type != zipfile.ZIP_STORED and ratio > limits.max_compression_ratio:
            raise LimitExceededError(f"the compression ratio of {info.filename!r} in {what}", ratio,
                                     limits.max_compression_ratio, "max_compression_ratio")
    if total > limits.max_total_size:
        raise LimitExceededError(f"the uncompressed size of {what}", total, limits.max_total_size, "max_total_size")


def schema_names(data: bytes | memoryview, *, what: str, max_schema: int, limits: Limits | None = None,
                 uses: dict[str, set[str]] | None = None) -> tuple[list[str], Any]:
    """Every ``module.qualname`` a skops file's schema names, and its protocol; parsed as JSON only."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if limits is not None:
                _check_sizes(archive, what, limits)
            try:
                info = archive.getinfo(SCHEMA)
            except KeyError:
                raise CapsuleFormatError(f"{what} is not a skops file: it has no {SCHEMA}.") from None
            if info.file_size > max_schema:
                raise LimitExceededError(f"the size of {what}'s {SCHEMA}", info.file_size, max_schema,
                                         "max_manifest_size")
            with archive.open(info) as fh:
                raw = fh.read(max_schema + 1)
            if len(raw) > max_schema:
                raise LimitExceededError(f"the size of {what}'s {SCHEMA}", len(raw), max_schema,
                                         "max_manifest_size")
            schema = json.loads(raw)
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise CapsuleFormatError(f"{what} is not a valid skops file: {exc}") from None
    found: dict[str, None] = {}
    _walk(schema, found, uses)
    return list(found), schema.get("protocol") if isinstance(schema, dict) else None


def _untrusted_by_skops(data: bytes, what: str) -> list[str]:
    import skops.io

    try:
        return list(skops.io.get_untrusted_types(data=data))
    except (ValueError, TypeError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise CapsuleFormatError(f"skops could not audit {what}: {type(exc).__name__}: {exc}") from None


class SkopsFormat:
    """skops.io's format, with the names it imports held to the exact trust policy."""

    name: ClassVar[str] = "skops"
    runs_code: ClassVar[bool] = False
    safety: ClassVar[int] = 10
    extensions: ClassVar[tuple[str, ...]] = (".skops",)

    def supports(self, model: Any) -> bool:
        return True

    def save(self, model: Any, sink: MemberSink) -> SaveResult:
        import skops.io

        try:
            data = skops.io.dumps(model)
        except (TypeError, ValueError, AttributeError, NotImplementedError) as exc:
            raise TypeError(f"skops cannot store this model: {type(exc).__name__}: {exc}") from exc
        sink.add(STREAM, data)
        names, protocol = schema_names(data, what=STREAM, max_schema=1 << 30)
        return SaveResult({"member": STREAM, "skops_protocol": protocol}, names)

    def audit(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> list[str]:
        member = member_of(details, STREAM)
        view = source.view(member)
        uses: dict[str, set[str]] = {}
        names, _protocol = schema_names(view, what=member, max_schema=options.limits.max_manifest_size,
                                        limits=options.limits, uses=uses)
        check_loaders(uses, options.policy, member)
        extra = _untrusted_by_skops(bytes(view), member)
        return names + [n for n in extra if n not in names]

    def load(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> Any:
        import skops.io
        from skops.io.exceptions import UntrustedTypesFoundException as SkopsUntrusted

        member = member_of(details, STREAM)
        data = bytes(source.view(member))
        names = self.audit(source, details, options)  # every name checked for how skops would use it
        options.policy.check(names, member)
        # skops is told to trust only what it flags itself, and only names our audit held to their role
        flagged = [n for n in _untrusted_by_skops(data, member) if n in names]
        try:
            return skops.io.load(io.BytesIO(data), trusted=flagged)
        except SkopsUntrusted as exc:
            raise UntrustedTypesError(_names_in(str(exc)), member) from None


def _names_in(message: str) -> list[str]:
    """The type names in skops' untrusted-types message (its first line lists them as a Python list)."""
    first = message.splitlines()[0] if message else message
    start, end = first.find("["), first.rfind("]")
    inner = first[start + 1:end] if 0 <= start < end else first
    return [part.strip().strip("'\"") for part in inner.split(",") if part.strip()] or [message]


FORMATS = (SkopsFormat(),)
