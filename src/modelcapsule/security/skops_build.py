"""The two backends of the skops schema walk (:mod:`.skops_schema`), and the audit and load built on them.

* :class:`DryBuild` answers every node with the pickle dry run's stand-ins
  (:class:`~modelcapsule.security.pickle_dryrun.DryRun`): roles, reviewed constructors and their argument
  rules, the BUILD rules, scipy distributions' constructor parameters, array sizes and the allocation
  budget are checked by the very code that checks pickle streams. Nothing is imported or constructed;
  ``.npy`` headers are parsed (as data) to know what each array would cost.
* :class:`RealBuild` performs the same operations on real objects, only after the dry run passed and
  the policy admitted every name: names are imported through
  :func:`~modelcapsule.security.policy.import_trusted` (and recorded, so a change to a trusted global is
  undone and refused, as for pickle), distributions are rebuilt from their parameters
  (:mod:`.distributions`), BUILD follows pickle's own semantics, arrays come from :mod:`.npy`.

The loader then runs :func:`~modelcapsule.security.state_checks.validate_model` on the result, as for
every format.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.container import Limits
from ..errors import CapsuleFormatError
from .distributions import distribution_names, rebuilder
from .pickle_dryrun import BIT_GENERATORS, DEFAULT_FACTORIES, DryRun, Obj, Refused, check_plain, global_name
from .policy import TrustPolicy, import_trusted, refuse_tampering
from .reviewed import HOOKS, ITEM_TARGETS
from .skops_members import (
    SPARSE_KEYS,
    Members,
    check_seed_seq,
    check_sparse_indices,
    read_schema,
    sparse_facts,
)
from .skops_schema import SchemaWalk
from .tamper import GlobalsSnapshot

__all__ = ["DryBuild", "RealBuild", "audit_skops", "load_skops"]

_KEY_KINDS = {"builtins.str": "str", "builtins.int": "int", "builtins.float": "float", "builtins.bool": "bool"}
_NUMPY_SCALARS: dict[str, type] = {f"{t.__module__}.{t.__qualname__}": t for t in set(np.sctypeDict.values())}
_NUMPY_KEYS = {name: np.dtype(t).str for name, t in _NUMPY_SCALARS.items() if np.dtype(t).kind in "biuf"}
_MASKED = ("numpy.ma.core.MaskedArray", "numpy.ma.MaskedArray")
_RANDOM_STATE = "numpy.random.mtrand.RandomState"
_GENERATOR = "numpy.random._generator.Generator"
ADVICE = ("skops.io.dump never writes this for a model it supports, so the file is corrupt or was crafted: do not "
          "load it. If it is your own model, re-save it (modelcapsule.save) with the installed versions.")


# ------------------------------------------------------------------------------------------ dry run


def _is_dtype(obj: Any) -> bool:
    return bool(getattr(type(obj), "_mc_is_dtype", False))


def _array(value: Any) -> bool:
    return isinstance(value, Obj) and value.name == "numpy.ndarray" and value.shape is not None


class DryBuild:
    """Stand-ins for every node, checked by the pickle dry run's rules; nothing imported or built."""

    def __init__(self, run: DryRun, members: Members) -> None:
        self.run, self.members = run, members

    def at(self, where: str) -> None:
        self.run.what = where

    def refuse(self, problem: str) -> Refused:
        return Refused(f"{self.run.what}: {problem}. Refusing it.")

    def note(self, name: str) -> None:
        self.run.stub(name)

    def value(self, name: str, module: str) -> Any:
        return self.run.stub(name)

    def blank(self, name: str) -> Any:
        if self.run.role(name) == "call" and name not in HOOKS:
            raise self.refuse(f"{name} is a reviewed function, not a class: an ObjectNode creates an instance")
        return self.run.new(name, (), {})

    def call(self, name: str, args: tuple[Any, ...]) -> Any:
        return self.run.call(name, args, {})

    def build(self, obj: Any, state: Any) -> None:
        if isinstance(obj, Obj):
            self.run.build(obj, state)
        elif _is_dtype(obj):
            obj.__setstate__(state)  # the dtype stand-in checks numpy's state field by field
        else:
            raise self.refuse(f"it gives a {type(obj).__name__} made by a constructor a state; only objects created "
                              "blank or by a reviewed constructor take one")

    def user_only(self, name: str, why: str) -> None:
        role = self.run.role(name)
        if role != "trusted":
            raise self.refuse(f"{why}; {name} is in the default policy only as a {role}, and only names you trust "
                              f"explicitly (beyond the defaults) may be used this way")

    def user_call(self, name: str, make: Callable[[], Any]) -> Any:
        return Obj(name, trusted=True)

    def mapping(self, name: str, pairs: list[tuple[Any, Any]]) -> Any:
        if name == "builtins.dict":
            return dict(pairs)
        if name in ITEM_TARGETS:
            obj = self.run.new(name, (), {})
            for _ in pairs:
                self.run.set_item(obj)
            return obj
        return Obj(name, trusted=True)

    def sequence(self, name: str, items: list[Any]) -> Any:
        kinds: dict[str, Callable[[list[Any]], Any]] = {"builtins.list": list, "builtins.set": set,
                                                        "builtins.tuple": tuple}
        make = kinds.get(name)
        return Obj(name, trusted=True) if make is None else make(items)

    def key_kind(self, key_type: Any) -> str:
        name = global_name(key_type)
        kind = _KEY_KINDS.get(name or "") or _NUMPY_KEYS.get(name or "")
        if kind is None and name is not None and self.run.role(name) == "trusted":
            return "user"  # a name outside the defaults: refused by name, or called as skops would if you trust it
        if kind is None:
            raise self.refuse(f"a dict key type is {name or type(key_type).__name__}; skops would call it with the "
                              "key's text, so only str, int, float, bool and numpy numbers are accepted")
        return kind

    def json(self, text: str) -> Any:
        self.run.allocate(len(text), "a JSON value")
        return json.loads(text)

    def raw(self, name: str, member: str) -> Any:
        self.run.allocate(self.members.info(member).file_size, f"member {member}")
        return self.members.read(member)

    def array(self, name: str, member: str) -> Any:
        header = self.members.header(member)
        if name == "numpy.ndarray":
            self.run.allocate(header.nbytes, f"an array of shape {header.shape}")
            obj = self.run.made_array(header.shape)
        elif name in _NUMPY_SCALARS:
            own = f"{header.dtype.type.__module__}.{header.dtype.type.__qualname__}"
            if header.shape != () or own != name:
                raise self.refuse(f"a numpy scalar of type {name} is stored as an array of shape {header.shape} and "
                                  f"type {own}")
            obj = Obj("numpy.generic", frozen=True, built=True)
        else:
            self.user_only(name, f"an NdArrayNode naming {name} would call it with the array")
            return Obj(name, trusted=True)
        obj.dtype = header.dtype
        return obj

    def object_array(self, shape: tuple[int, ...], leaves: list[Any]) -> Any:
        count = math.prod(shape)
        self.run.elements(count, f"an object array of shape {shape}")
        self.run.allocate(count * 8, f"an object array of shape {shape}")
        return self.run.made_array(shape)

    def dtype(self, array: Any) -> Any:
        if not _array(array) or array.dtype is None:
            raise self.refuse("a DTypeNode holds something other than an array")
        return self.run.dtypes.known(array.dtype)

    def masked(self, name: str, data: Any, mask: Any) -> Any:
        if name not in _MASKED:
            self.user_only(name, f"a MaskedArrayNode naming {name} would call it with the file's arrays")
            return Obj(name, trusted=True)
        scalar_mask = isinstance(mask, Obj) and mask.name == "numpy.generic"
        if not _array(data) or not (_array(mask) or scalar_mask):
            raise self.refuse("a masked array's data or mask is not an array")
        obj = self.run.made_array(data.shape)
        obj.name = "numpy.ma.core.MaskedArray"
        return obj

    def sparse(self, name: str, member: str) -> Any:
        npz = self.members.npz(member)
        fmt, is_array, _shape = sparse_facts(npz, self.refuse)
        expected = f"scipy.sparse._{fmt}.{fmt}_{'array' if is_array else 'matrix'}"
        if name != expected:
            raise self.refuse(f"it holds a {fmt} sparse {'array' if is_array else 'matrix'} but names {name}")
        for key in SPARSE_KEYS[fmt]:
            header = npz.header(f"{key}.npy")
            if header.dtype.kind not in ("biufc" if key == "data" else "iu"):
                raise self.refuse(f"its sparse {key} array has dtype {header.dtype}")
            self.run.allocate(header.nbytes, f"the sparse {key} array")
        check_sparse_indices(fmt, npz, _shape, self.refuse)
        return Obj(name, built=True)

    def random_state(self, name: str, state: Any) -> Any:
        if name != _RANDOM_STATE:
            self.user_only(name, f"a RandomStateNode naming {name} would call it")
            return Obj(name, trusted=True)
        self._data(name, state, dict)
        return Obj(name, built=True)

    def generator(self, name: str, bit_generator: Any, seed_seq: Any) -> Any:
        if name != _GENERATOR:
            self.user_only(name, f"a RandomGeneratorNode naming {name} would call it")
            return Obj(name, trusted=True)
        self._data(name, bit_generator, dict)
        kind = bit_generator.get("bit_generator")
        if kind not in BIT_GENERATORS:
            raise self.refuse(f"its bit generator is {str(kind)[:40]!r}, not one of numpy's {sorted(BIT_GENERATORS)}")
        self.note(BIT_GENERATORS[kind])
        if seed_seq is not None:
            self.note("numpy.random.bit_generator.SeedSequence")
            self._data(name, seed_seq, dict)
            check_seed_seq(seed_seq, self.refuse)
        return Obj(name, built=True)

    def default_dict(self, factory: Any, main: Any) -> Any:
        if factory is not None:
            self.run.class_arg("collections.defaultdict", factory, lambda n: n in DEFAULT_FACTORIES)
        return Obj("collections.defaultdict", built=True)

    def _data(self, name: str, value: Any, kind: type) -> None:
        """Plain data, numpy numbers and arrays the file holds (a random state), nothing else."""
        if type(value) is not kind:
            raise self.refuse(f"its state is a {type(value).__name__}, not a {kind.__name__}")
        todo = [value]
        while todo:
            item = todo.pop()
            if isinstance(item, dict | list | tuple):
                todo.extend([*item.keys(), *item.values()] if isinstance(item, dict) else item)
            elif not (_array(item) or (isinstance(item, Obj) and item.name == "numpy.generic")):
                check_plain(self.run, name, item)



# ------------------------------------------------------------------------------------------ the build


def _apply_build(inst: Any, state: Any) -> None:
    """pickle's BUILD, exactly: ``__setstate__`` if the object has one, else the instance dict (and slots)."""
    setstate = getattr(inst, "__setstate__", None)
    if setstate is not None:
        setstate(state)
        return
    slotstate = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slotstate = state
    if state:
        inst_dict = inst.__dict__
        for key, value in state.items():
            inst_dict[sys.intern(key) if type(key) is str else key] = value
    if slotstate:
        for key, value in slotstate.items():
            setattr(inst, key, value)


class RealBuild:
    """The objects themselves, for a schema whose dry run passed and whose names the policy admitted."""

    def __init__(self, policy: TrustPolicy, members: Members) -> None:
        self.policy, self.members = policy, members
        self.handed_out = GlobalsSnapshot()

    def _import(self, name: str, module: str | None = None) -> Any:
        obj = import_trusted(name, self.policy, module=module)
        self.handed_out.record(obj, name)
        return obj

    @staticmethod
    def _distribution(name: str) -> bool:
        return name.startswith("scipy.stats.") and name in distribution_names()

    def at(self, where: str) -> None:
        pass

    def note(self, name: str) -> None:
        pass

    def value(self, name: str, module: str) -> Any:
        return self._import(name, module)

    def blank(self, name: str) -> Any:
        cls = self._import(name)
        if self._distribution(name):
            return rebuilder(cls)()  # BUILD then rebuilds it from its constructor parameters
        if not isinstance(cls, type):
            raise CapsuleFormatError(f"{name} is not a class; an ObjectNode creates an instance of one.")
        new: Any = cls.__new__  # pickle's NEWOBJ: the class's own __new__, no arguments
        return new(cls)

    def call(self, name: str, args: tuple[Any, ...]) -> Any:
        func = self._import(name)
        return (rebuilder(func) if self._distribution(name) else func)(*args)

    def build(self, obj: Any, state: Any) -> None:
        _apply_build(obj, state)

    def user_only(self, name: str, why: str) -> None:
        pass

    def user_call(self, name: str, make: Callable[[], Any]) -> Any:
        return make()

    def mapping(self, name: str, pairs: list[tuple[Any, Any]]) -> Any:
        if name == "builtins.dict":
            return dict(pairs)
        container = self._import(name)()
        for key, value in pairs:
            container[key] = value
        return container

    def sequence(self, name: str, items: list[Any]) -> Any:
        if name in ("builtins.list", "builtins.set", "builtins.tuple"):
            return {"builtins.list": list, "builtins.set": set, "builtins.tuple": tuple}[name](items)
        cls = self._import(name)
        return cls(*items) if issubclass(cls, tuple) and hasattr(cls, "_fields") else cls(items)

    def key_kind(self, key_type: Any) -> str:
        for name, kind in (*_KEY_KINDS.items(), *_NUMPY_KEYS.items()):
            if key_type is ({"str": str, "int": int, "float": float, "bool": bool}.get(kind) or _NUMPY_SCALARS[name]):
                return kind
        return "user"  # the dry run accepted it: a name the user trusted

    def json(self, text: str) -> Any:
        return json.loads(text)

    def raw(self, name: str, member: str) -> Any:
        data = self.members.read(member)
        return data if name == "builtins.bytes" else bytearray(data)

    def array(self, name: str, member: str) -> Any:
        array = self.members.array(member)
        if name == "numpy.ndarray":
            return array
        if name in _NUMPY_SCALARS:
            return array[()]
        return self._import(name)(array)

    def object_array(self, shape: tuple[int, ...], leaves: list[Any]) -> Any:
        flat = np.empty(len(leaves), dtype=object)
        for i, leaf in enumerate(leaves):
            flat[i] = leaf
        return flat.reshape(shape)

    def dtype(self, array: Any) -> Any:
        if not isinstance(array, np.ndarray):
            raise CapsuleFormatError("a DTypeNode holds something other than an array.")
        return array.dtype

    def masked(self, name: str, data: Any, mask: Any) -> Any:
        return self._import(name)(data, mask)

    def sparse(self, name: str, member: str) -> Any:
        npz = self.members.npz(member)
        fmt, _is_array, shape = sparse_facts(npz, CapsuleFormatError)
        arrays = [npz.array(f"{key}.npy") for key in SPARSE_KEYS[fmt]]
        cls = self._import(name)
        if fmt == "coo":
            return cls((arrays[0], (arrays[1], arrays[2])), shape=shape)
        return cls(tuple(arrays), shape=shape)

    def random_state(self, name: str, state: Any) -> Any:
        made = self._import(name)()
        made.set_state(state)
        return made

    def generator(self, name: str, bit_generator: Any, seed_seq: Any) -> Any:
        cls = self._import(BIT_GENERATORS[bit_generator["bit_generator"]])
        if seed_seq is not None:
            made = cls(self._import("numpy.random.bit_generator.SeedSequence")(**seed_seq))
        else:
            made = cls()
        made.state = bit_generator
        return self._import(name)(made)

    def default_dict(self, factory: Any, main: Any) -> Any:
        made: collections.defaultdict[Any, Any] = collections.defaultdict(factory)
        made.update(main)
        return made


# ------------------------------------------------------------------------------------------ entry points


_ACCEPTED: collections.OrderedDict[tuple[Any, ...], list[str]] = collections.OrderedDict()
"""Dry runs that passed, by (content digest, policy, limits): a load right after the audit of the same bytes
(as every loader does) builds without walking them a second time. Never holds a refusal."""
_ACCEPTED_MAX = 16
_ACCEPTED_LOCK = threading.Lock()


def _verdict_key(data: bytes, policy: TrustPolicy | None, limits: Limits) -> tuple[Any, ...] | None:
    if policy is None:
        return None
    digest = hashlib.blake2b(data, digest_size=32).digest()
    return digest, type(policy), policy.extra, policy.include_defaults, limits


def audit_skops(data: bytes, *, what: str, policy: TrustPolicy | None, limits: Limits) -> list[str]:
    """Every name a skops file would import, after the dry run accepted everything it would do.

    ``policy=None`` lists the names of a file the caller wrote itself, checking nothing but the format."""
    schema, members = read_schema(data, what, limits)
    names = _dry_run(schema, members, what, policy, limits, members.size)
    key = _verdict_key(data, policy, limits)
    if key is not None:
        with _ACCEPTED_LOCK:
            _ACCEPTED[key] = names
            while len(_ACCEPTED) > _ACCEPTED_MAX:
                _ACCEPTED.popitem(last=False)
    return names


def _dry_run(schema: dict[str, Any], members: Members, what: str, policy: TrustPolicy | None, limits: Limits,
             size: int) -> list[str]:
    run = DryRun(policy, what, size=size, limits=limits)
    walk = SchemaWalk(schema, DryBuild(run, members), what=what, limits=limits)  # a newer protocol: re-save
    try:
        with run:
            walk.run()
        run.dtypes.finish()
    except CapsuleFormatError as exc:
        if type(exc) is not CapsuleFormatError:  # budgets and untrusted names say what to do themselves
            raise
        raise CapsuleFormatError(f"{exc} {ADVICE}") from None
    return list(run.found)


def load_skops(data: bytes, *, what: str, policy: TrustPolicy, limits: Limits) -> Any:
    """The object a skops file describes, built by our rules: the dry run, the policy, then the build."""
    schema, members = read_schema(data, what, limits)
    key = _verdict_key(data, policy, limits)
    with _ACCEPTED_LOCK:
        names = _ACCEPTED.get(key) if key is not None else None
    if names is None:  # not audited just before (the loaders always audit first): the same dry run now
        names = _dry_run(schema, members, what, policy, limits, members.size)
    policy.check(names, what)
    backend = RealBuild(policy, members)
    try:
        return SchemaWalk(schema, backend, what=what, limits=limits).run()
    finally:
        refuse_tampering(backend.handed_out, what)
