"""A skops file's object built by modelcapsule's own rules: the schema walked node by node, never by skops.

A ``.skops`` file is a ZIP whose ``schema.json`` is a tree of nodes. Each names the skops loader that
would build it (``__loader__``), the class it names (``__module__``, ``__class__``) and its children;
arrays are ``.npy`` members. skops's ``ObjectNode`` does ``cls.__new__(cls)`` then
``instance.__setstate__(attrs)``: pickle's NEWOBJ and BUILD without any of the checks the safe unpickler
holds them to, so a default-trusted scipy distribution (whose ``__setstate__`` executes a code template
from its state) runs code if skops is told to trust it. So skops's loader is never used. Each node kind
is mapped onto the primitive the safe unpickler uses for the equivalent opcodes, with the same checks:

===========================  ==================================  ===============================================
skops node                   pickle equivalent                   held to
===========================  ==================================  ===============================================
ObjectNode                   NEWOBJ (no arguments), BUILD        the name's role; the reviewed BUILD rules
                                                                 (plain dict state, no ``__x__`` keys, tuple
                                                                 states only for reviewed classes); scipy
                                                                 distributions rebuilt from their parameters
TreeNode, LossNode,          REDUCE, BUILD                       a reviewed constructor (``reviewed.CALLS``) and
ConstructorFromReduceNode                                        its argument rule, then the BUILD rules
FunctionNode, TypeNode       GLOBAL                              a value: imported, never called
Dict/List/Set/TupleNode      the container opcodes               builtin containers only; dict keys converted by
                                                                 a fixed table (str, int, float, bool, numpy
                                                                 numbers), never by calling a named type
NdArrayNode, DTypeNode,      numpy's reconstructors              our ``.npy`` reader (:mod:`.npy`): no object
SparseMatrixNode,                                                dtype, sizes checked against the members and
MaskedArrayNode                                                  :class:`~modelcapsule.core.container.Limits`
RandomState/GeneratorNode    the bit generator constructors      numpy's bit generators only, plain states
Json/Bytes/SliceNode         constants                           plain data
Method/Partial/OperatorFunc  (a call pickle never makes)         only names the user trusted explicitly
===========================  ==================================  ===============================================

The walk runs over one parsed schema and one copy of the bytes, with two backends
(:mod:`.skops_build`): a dry run whose values are the pickle dry run's stand-ins (nothing imported,
nothing constructed, every call, BUILD and allocation checked), which is all an audit does; then, once
the dry run passed and the policy admitted every name, the build, which performs exactly the operations
the dry run accepted, in the same order. Errors name the node (its path from the root, loader and class).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from typing import Any, Protocol

from ..core.container import Limits
from ..errors import CapsuleError, CapsuleFormatError, LimitExceededError
from .reviewed import ITEM_TARGETS

__all__ = ["PROTOCOLS", "Backend", "SchemaWalk", "schema_protocol"]

PROTOCOLS = range(3)
"""skops schema protocols read here (skops 0.16 writes 2)."""
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_OBJECT_DIMS = 32
_BUILD_ERRORS = (TypeError, ValueError, AttributeError, LookupError, ArithmeticError, MemoryError)
_BUILDING = object()
"""Memo entry of a node being built: meeting it again is a cycle (skops itself cannot load one)."""
_REDUCERS = {"TreeNode": "sklearn.tree._tree.Tree", "QuantileForestNode":
             "quantile_forest._quantile_forest_fast.QuantileForest"}
"""Reduce-style loaders whose constructor skops fixes, whatever the node names (it must name the same)."""


class Backend(Protocol):
    """What the walk asks of a backend; :mod:`.skops_build` has the dry run and the build."""

    def at(self, where: str) -> None: ...
    def note(self, name: str) -> None: ...
    def value(self, name: str, module: str) -> Any: ...
    def blank(self, name: str) -> Any: ...
    def call(self, name: str, args: tuple[Any, ...]) -> Any: ...
    def build(self, obj: Any, state: Any) -> None: ...
    def mapping(self, name: str, pairs: list[tuple[Any, Any]]) -> Any: ...
    def sequence(self, name: str, items: list[Any]) -> Any: ...
    def key_kind(self, key_type: Any) -> str: ...
    def json(self, text: str) -> Any: ...
    def raw(self, name: str, member: str) -> Any: ...
    def array(self, name: str, member: str) -> Any: ...
    def object_array(self, shape: tuple[int, ...], leaves: list[Any]) -> Any: ...
    def dtype(self, array: Any) -> Any: ...
    def masked(self, name: str, data: Any, mask: Any) -> Any: ...
    def sparse(self, name: str, member: str) -> Any: ...
    def random_state(self, name: str, state: Any) -> Any: ...
    def generator(self, name: str, bit_generator: Any, seed_seq: Any) -> Any: ...
    def default_dict(self, factory: Any, main: Any) -> Any: ...
    def user_only(self, name: str, why: str) -> None: ...
    def user_call(self, name: str, make: Callable[[], Any]) -> Any: ...


def schema_protocol(schema: Any, what: str) -> int:
    """The protocol a schema declares, checked (skops refuses others too)."""
    protocol = schema.get("protocol") if isinstance(schema, dict) else None
    if type(protocol) is not int or protocol not in PROTOCOLS:
        raise CapsuleFormatError(f"{what} declares the skops protocol {protocol!r}; skops 0.16 reads 0 to "
                                 f"{PROTOCOLS[-1]}. Re-save the model with the installed skops.")
    return protocol


class SchemaWalk:
    """One walk of a schema with one backend. :meth:`run` returns what the root node builds."""

    def __init__(self, schema: dict[str, Any], backend: Backend, *, what: str, limits: Limits) -> None:
        self.schema, self.backend, self.what, self.limits = schema, backend, what, limits
        self.protocol = schema_protocol(schema, what)
        self.memo: dict[int, Any] = {}

    def run(self) -> Any:
        return self.node(self.schema, "model", 0)

    # ---------------------------------------------------------------------------------------- the walk

    def bad(self, path: str, state: Any, problem: str) -> CapsuleFormatError:
        return CapsuleFormatError(f"{self.what}, node {path} ({self.describe(state)}): {problem}. Refusing it.")

    @staticmethod
    def describe(state: Any) -> str:
        if not isinstance(state, dict):
            return type(state).__name__
        return f"{state.get('__loader__')} {state.get('__module__')}.{state.get('__class__')}"

    def node(self, state: Any, path: str, depth: int, attrs: bool = False) -> Any:
        if depth > self.limits.max_nesting_depth:
            raise LimitExceededError(f"the nesting depth of {self.what}'s schema at {path}", depth,
                                     self.limits.max_nesting_depth, "max_nesting_depth")
        if not isinstance(state, dict):
            raise self.bad(path, state, "it is not a node (a JSON object with __loader__)")
        ident = state.get("__id__")
        if ident is not None and type(ident) is not int:
            raise self.bad(path, state, f"its __id__ is {ident!r}, not an integer")
        if ident:
            found = self.memo.get(ident, self)
            if found is _BUILDING:
                raise self.bad(path, state, "it refers to a node that contains it (a cycle, which skops never "
                                            "writes and cannot load)")
            if found is not self:
                return found
        loader = state.get("__loader__")
        handler = _HANDLERS.get(loader) if isinstance(loader, str) else None
        if handler is None:
            raise self.bad(path, state, f"it asks for the skops loader {loader!r}, which modelcapsule does not "
                                        "build (CachedNode must refer to a node met before)")
        if ident:
            self.memo[ident] = _BUILDING
        try:
            value = handler(self, state, path, depth + 1, attrs)
        except CapsuleError:
            raise
        except _BUILD_ERRORS as exc:  # the installed class refused the state (or numpy the data) while building
            raise self.bad(path, state, f"building it failed ({type(exc).__name__}: {str(exc)[:200]}); the "
                                        "state does not fit the installed classes") from exc
        if ident:
            self.memo[ident] = value
        return value

    def name(self, state: dict[str, Any], path: str) -> tuple[str, str]:
        """``(module.class, module)`` of a node, checked to be a plain module path and class name."""
        module, cls = state.get("__module__"), state.get("__class__")
        if not (isinstance(module, str) and _MODULE.match(module) and isinstance(cls, str) and _IDENT.match(cls)):
            raise self.bad(path, state, "it does not name a module and a class")
        return f"{module}.{cls}", module

    def field(self, state: dict[str, Any], key: str, path: str) -> Any:
        value = state.get(key) if isinstance(state, dict) else None
        if value is None:
            raise self.bad(path, state, f"it has no {key!r}")
        return value

    def at(self, path: str, state: dict[str, Any]) -> None:
        self.backend.at(f"{self.what}, node {path} ({self.describe(state)})")

    def child(self, state: dict[str, Any], key: str, path: str, depth: int) -> Any:
        content = state.get("content")
        if not isinstance(content, dict) or key not in content:
            raise self.bad(path, state, f"its content has no {key!r}")
        return self.node(content[key], f"{path}.<{key}>", depth)

    def tuple_of(self, value: Any, state: dict[str, Any], path: str, what: str) -> tuple[Any, ...]:
        if type(value) is not tuple:
            raise self.bad(path, state, f"its {what} are not a tuple")
        return value


# ------------------------------------------------------------------------------------------ node kinds


def _object(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name, _module = walk.name(state, path)
    walk.at(path, state)
    walk.backend.note(name)
    obj = walk.backend.blank(name)
    content = state.get("content")
    if content is not None:
        value = walk.node(content, path, depth, attrs=True)
        if value is not None:
            walk.at(path, state)
            walk.backend.build(obj, value)
    return obj


def _reduce(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name, _module = walk.name(state, path)
    loader = state["__loader__"]
    ctor = _REDUCERS.get(loader, name)
    if ctor != name:
        raise walk.bad(path, state, f"a {loader} builds {ctor}, but the node names {name}")
    reduce = walk.field(state, "__reduce__", path)
    args = walk.tuple_of(walk.node(walk.field(reduce, "args", path), f"{path}.<args>", depth), state, path,
                         "constructor arguments")
    walk.at(path, state)
    walk.backend.note(ctor)
    obj = walk.backend.call(ctor, args)
    value = walk.node(walk.field(state, "content", path), path, depth, attrs=True)
    if type(value) not in (dict, tuple):
        raise walk.bad(path, state, "its state is not a dict or tuple")
    if value:
        walk.at(path, state)
        walk.backend.build(obj, value)
    return obj


def _constructor(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name, _module = walk.name(state, path)
    args = walk.tuple_of(walk.node(walk.field(state, "content", path), f"{path}.<args>", depth), state, path,
                         "constructor arguments")
    walk.at(path, state)
    walk.backend.note(name)
    return walk.backend.call(name, args)


def _function(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    if walk.protocol == 0 and state.get("__loader__") == "FunctionNode":
        content = walk.field(state, "content", path)
        state = {**state, "__module__": content.get("module_path") if isinstance(content, dict) else None,
                 "__class__": content.get("function") if isinstance(content, dict) else None}
    name, module = walk.name(state, path)
    walk.at(path, state)
    walk.backend.note(name)
    return walk.backend.value(name, module)


def _json(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    text = state.get("content")
    if not isinstance(text, str):
        raise walk.bad(path, state, "its content is not JSON text")
    walk.at(path, state)
    try:
        return walk.backend.json(text)
    except (ValueError, RecursionError) as exc:
        raise walk.bad(path, state, f"its content is not valid JSON ({type(exc).__name__}: {exc})") from None


_CONTAINERS = {"DictNode": ("builtins.dict", *sorted(ITEM_TARGETS)), "ListNode": ("builtins.list",),
               "SetNode": ("builtins.set",), "TupleNode": ("builtins.tuple",)}


def _container_name(walk: SchemaWalk, state: dict[str, Any], path: str) -> str:
    name, _module = walk.name(state, path)
    walk.at(path, state)
    walk.backend.note(name)
    if name not in _CONTAINERS[state["__loader__"]]:
        walk.backend.user_only(name, f"a {state['__loader__']} builds {' or '.join(_CONTAINERS[state['__loader__']])}; "
                                     f"building a {name} would call it with the file's items")
    return name


def _items(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int) -> list[Any]:
    content = state.get("content")
    if not isinstance(content, list):
        raise walk.bad(path, state, "its content is not a list of nodes")
    return [walk.node(item, f"{path}[{i}]", depth) for i, item in enumerate(content)]


def _sequence(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name = _container_name(walk, state, path)
    items = _items(walk, state, path, depth)
    walk.at(path, state)
    return walk.backend.sequence(name, items)


def _dict(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name = _container_name(walk, state, path)
    content = state.get("content")
    if not isinstance(content, dict):
        raise walk.bad(path, state, "its content is not a JSON object")
    key_types = walk.node(state.get("key_types"), f"{path}.<key types>", depth)
    if type(key_types) is not list or len(key_types) != len(content):
        raise walk.bad(path, state, f"it lists {len(key_types) if type(key_types) is list else 'no'} key types for "
                                    f"{len(content)} keys")
    pairs = []
    for key_type, (key, value) in zip(key_types, content.items(), strict=True):
        walk.at(path, state)
        kind = walk.backend.key_kind(key_type)
        where = f"{path}.{key}" if attrs and _IDENT.match(key) else f"{path}[{key!r}]"
        made = (walk.backend.user_call("a dict key", functools.partial(key_type, key)) if kind == "user"
                else _key(walk, state, path, kind, key))
        pairs.append((made, walk.node(value, where, depth)))
    walk.at(path, state)
    return walk.backend.mapping(name, pairs)


def _key(walk: SchemaWalk, state: dict[str, Any], path: str, kind: str, text: str) -> Any:
    """A dict key from its JSON text, converted by a fixed table (skops would call the named type with it)."""
    try:
        if kind == "str":
            return text
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            return {"True": True, "False": False, "true": True, "false": False}[text]
        import numpy as np

        dtype = np.dtype(kind)
        if dtype.kind == "b":
            return dtype.type({"True": True, "False": False, "true": True, "false": False}[text])
        return dtype.type(float(text) if dtype.kind in "fc" else int(text))
    except (KeyError, ValueError, OverflowError, TypeError) as exc:
        raise walk.bad(path, state, f"its key {text[:40]!r} is not a {kind} ({exc})") from None


def _default_dict(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name, _module = walk.name(state, path)
    if name != "collections.defaultdict":
        raise walk.bad(path, state, "a DefaultDictNode builds a collections.defaultdict")
    walk.at(path, state)
    walk.backend.note(name)
    main = walk.child(state, "main", path, depth)
    factory = walk.child(state, "default_factory", path, depth)
    if type(main) is not dict:
        raise walk.bad(path, state, "its items are not a dict")
    walk.at(path, state)
    return walk.backend.default_dict(factory, main)


def _bytes(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name, _module = walk.name(state, path)
    expected = "builtins.bytes" if state["__loader__"] == "BytesNode" else "builtins.bytearray"
    if name != expected:
        raise walk.bad(path, state, f"a {state['__loader__']} builds {expected}")
    member = walk.field(state, "file", path)
    walk.at(path, state)
    walk.backend.note(name)
    return walk.backend.raw(name, str(member))


def _slice(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name, _module = walk.name(state, path)
    content = walk.field(state, "content", path)
    bounds = [content.get(k) for k in ("start", "stop", "step")] if isinstance(content, dict) else None
    if name != "builtins.slice" or bounds is None or not all(b is None or type(b) is int for b in bounds):
        raise walk.bad(path, state, "a SliceNode builds a builtins.slice of integers or None")
    walk.backend.note(name)
    return slice(*bounds)


def _ndarray(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name, _module = walk.name(state, path)
    walk.at(path, state)
    walk.backend.note(name)
    kind = state.get("type")
    if kind == "numpy":
        return walk.backend.array(name, str(walk.field(state, "file", path)))
    if kind != "json" or name != "numpy.ndarray":
        raise walk.bad(path, state, f"an NdArrayNode of type {kind!r} naming {name} is not something skops writes")
    shape = walk.tuple_of(walk.node(walk.field(state, "shape", path), f"{path}.<shape>", depth), state, path,
                          "shape items")
    if not (0 < len(shape) <= _MAX_OBJECT_DIMS and all(type(d) is int and d >= 0 for d in shape)):
        raise walk.bad(path, state, f"its shape {shape!r} is not the non-empty tuple of sizes skops writes")
    leaves = _leaves(walk, state, path, _items(walk, state, path, depth), shape)
    walk.at(path, state)
    return walk.backend.object_array(shape, leaves)


def _leaves(walk: SchemaWalk, state: dict[str, Any], path: str, items: list[Any], shape: tuple[int, ...]) -> list[Any]:
    """The elements of an object array, in C order, from the nested lists skops writes (``tolist()``)."""
    level = items
    for size in shape[:-1]:
        if len(level) != size or not all(type(row) is list for row in level):
            raise walk.bad(path, state, f"its items do not have the shape {shape}")
        level = [item for row in level for item in row]
    if len(level) != math.prod(shape):
        raise walk.bad(path, state, f"its items do not have the shape {shape}")
    return level


def _dtype(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name, _module = walk.name(state, path)
    if name != "numpy.dtype":
        raise walk.bad(path, state, "a DTypeNode builds a numpy.dtype")
    walk.backend.note(name)
    array = walk.node(walk.field(state, "content", path), f"{path}.<array>", depth)
    walk.at(path, state)
    return walk.backend.dtype(array)


def _masked(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name, _module = walk.name(state, path)
    walk.at(path, state)
    walk.backend.note(name)
    data = walk.child(state, "data", path, depth)
    mask = walk.child(state, "mask", path, depth)
    walk.at(path, state)
    return walk.backend.masked(name, data, mask)


def _sparse(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name, _module = walk.name(state, path)
    if state.get("type") != "scipy":
        raise walk.bad(path, state, f"a SparseMatrixNode of type {state.get('type')!r} is not something skops writes")
    walk.at(path, state)
    walk.backend.note(name)
    return walk.backend.sparse(name, str(walk.field(state, "file", path)))


def _random_state(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name, _module = walk.name(state, path)
    walk.at(path, state)
    walk.backend.note(name)
    content = walk.node(walk.field(state, "content", path), f"{path}.<state>", depth)
    walk.at(path, state)
    return walk.backend.random_state(name, content)


def _generator(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name, _module = walk.name(state, path)
    walk.at(path, state)
    walk.backend.note(name)
    bit_generator = walk.child(state, "bit_generator", path, depth)
    content = state.get("content")
    seed_seq = (walk.child(state, "seed_seq", path, depth)
                if walk.protocol >= 2 and isinstance(content, dict) and "seed_seq" in content else None)
    walk.at(path, state)
    return walk.backend.generator(name, bit_generator, seed_seq)


def _method(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name, _module = walk.name(state, path)
    content = walk.field(state, "content", path)
    func = content.get("func") if isinstance(content, dict) else None
    if not (isinstance(func, str) and _IDENT.match(func)) or func.startswith("__"):
        raise walk.bad(path, state, "it does not name a plain method")
    method = f"{name}.{func}"
    walk.at(path, state)
    walk.backend.note(method)
    walk.backend.user_only(method, "a bound method is built only when its exact name is trusted")
    owner = walk.child(state, "obj", path, depth)
    walk.at(path, state)
    return walk.backend.user_call(method, lambda: getattr(owner, func))


def _partial(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name, _module = walk.name(state, path)
    if name != "functools.partial":
        raise walk.bad(path, state, "a PartialNode builds a functools.partial")
    walk.at(path, state)
    walk.backend.note(name)
    walk.backend.user_only(name, "a partial is built only when functools.partial is trusted")
    func, args, kwds, namespace = (walk.child(state, k, path, depth) for k in ("func", "args", "kwds", "namespace"))
    if type(args) is not tuple or type(kwds) is not dict or not (namespace is None or type(namespace) is dict):
        raise walk.bad(path, state, "its arguments are not a tuple, a dict and a dict or None")
    walk.at(path, state)

    def make() -> Any:
        import functools

        made = functools.partial(func, *args, **kwds)
        made.__dict__.update(namespace or {})
        return made

    return walk.backend.user_call(name, make)


def _operator(walk: SchemaWalk, state: dict[str, Any], path: str, depth: int, attrs: bool) -> Any:
    name, module = walk.name(state, path)
    if module != "operator" or name not in ("operator.attrgetter", "operator.itemgetter", "operator.methodcaller"):
        raise walk.bad(path, state, "an OperatorFuncNode builds operator.attrgetter, itemgetter or methodcaller")
    walk.at(path, state)
    walk.backend.note(name)
    walk.backend.user_only(name, f"an {name} is built only when that name is trusted")
    args = walk.tuple_of(walk.node(walk.field(state, "attrs", path), f"{path}.<args>", depth), state, path,
                         "arguments")
    walk.at(path, state)

    def make() -> Any:
        import operator

        return getattr(operator, name.rsplit(".", 1)[1])(*args)

    return walk.backend.user_call(name, make)


Handler = Callable[[SchemaWalk, dict[str, Any], str, int, bool], Any]
_HANDLERS: dict[str, Handler] = {
    "ObjectNode": _object, "TreeNode": _reduce, "LossNode": _reduce, "QuantileForestNode": _reduce,
    "ConstructorFromReduceNode": _constructor, "FunctionNode": _function, "TypeNode": _function,
    "JsonNode": _json, "DictNode": _dict, "ListNode": _sequence, "SetNode": _sequence, "TupleNode": _sequence,
    "DefaultDictNode": _default_dict, "BytesNode": _bytes, "BytearrayNode": _bytes, "SliceNode": _slice,
    "NdArrayNode": _ndarray, "DTypeNode": _dtype, "MaskedArrayNode": _masked, "SparseMatrixNode": _sparse,
    "RandomStateNode": _random_state, "RandomGeneratorNode": _generator, "MethodNode": _method,
    "PartialNode": _partial, "OperatorFuncNode": _operator,
}
"""Every skops 0.16 loader modelcapsule builds (CachedNode is the memo, handled by the walk itself)."""
