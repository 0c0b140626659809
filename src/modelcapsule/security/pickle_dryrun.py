"""The dry run: a pickle stream walked with stand-ins that hold it to the *behaviour* the policy allows.

Names alone are not enough: a trusted scipy distribution executes code from its state, a trusted
function can return live module state for the stream to poison, a trusted allocator takes its size from
the stream. So before anything is imported, the stream is run once by an unpickler whose globals are
stand-ins (:class:`DryRun.stub`), and every operation is checked against the name's role
(:meth:`~modelcapsule.security.policy.TrustPolicy.role`):

* calling a name (REDUCE, NEWOBJ or OBJ with arguments, INST) needs role ``call``, and the arguments must
  pass that name's rule (:data:`RULES`); ``value`` names are never called, ``class`` names only created
  blank;
* BUILD, SETITEM(S), APPEND(S) and ADDITEMS may only change objects the stream itself created: never a
  global, never twice, never with the slot-state form unless the class's reviewed ``__setstate__`` takes
  a tuple (:data:`~modelcapsule.security.reviewed.TUPLE_STATE`), never with ``__dunder__`` keys;
* each reviewed call's arguments pass its rule (:mod:`modelcapsule.security.pickle_rules`);
* numpy array and dtype states are checked before numpy sees them (sizes, object counts, fields), and the
  bytes every array, buffer and copy would allocate are added up against
  ``Limits.max_load_expansion`` times the stream's size.

The same stand-ins drive the C unpickler (plain pickles, at C speed) and the joblib walker (arrays
inline), so load and audit apply exactly the same checks. Names the policy does not admit are only
recorded here (the policy check refuses them right after); names the user trusted explicitly are held to
nothing but the tamper checks.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from ..core.container import DEFAULT_LIMITS, Limits
from ..errors import CapsuleFormatError, LimitExceededError
from .distributions import ctor_params, distribution_names
from .pickle_values import DryRunDtypes, dtype_facts
from .policy import TrustPolicy
from .reviewed import CALLS, ITEM_TARGETS, TUPLE_STATE

__all__ = ["DryRun", "Obj", "Refused", "global_name"]

ARRAY_CLASSES = frozenset({"numpy.ndarray", "numpy.ma.core.MaskedArray", "numpy.ma.MaskedArray"})
BIT_GENERATORS = {"MT19937": "numpy.random._mt19937.MT19937", "PCG64": "numpy.random._pcg64.PCG64",
                   "PCG64DXSM": "numpy.random._pcg64.PCG64DXSM", "Philox": "numpy.random._philox.Philox",
                   "SFC64": "numpy.random._sfc64.SFC64"}
DEFAULT_FACTORIES = frozenset({"builtins.list", "builtins.dict", "builtins.set", "builtins.int", "builtins.float",
                        "builtins.str", "builtins.tuple", "collections.OrderedDict"})
RECONSTRUCTOR_BASES = frozenset({"builtins.object", "builtins.dict", "builtins.list", "builtins.set", "builtins.tuple",
                    "builtins.int", "builtins.float", "builtins.str", "builtins.bytes", "builtins.frozenset"})
_PLAIN_OBJECTS = frozenset({"datetime.timezone", "datetime.timedelta"})
_PLAIN_ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None), slice, range)
BUILTIN_CALLS = {"builtins.slice": slice, "builtins.set": set, "builtins.frozenset": frozenset,
                  "builtins.complex": complex, "builtins.bytearray": bytearray, "builtins.bytes": bytes,
                  "builtins.range": range, "builtins.bool": bool, "builtins.int": int, "builtins.float": float,
                  "builtins.str": str, "builtins.list": list, "builtins.dict": dict, "builtins.tuple": tuple}
_ALLOCATION_FLOOR = 64 << 20


Refused = CapsuleFormatError
"""What the dry run raises when the stream asks a name for something its role does not allow."""


class Obj:
    """What the dry run builds for an object: which class it is, and what has been done to it."""

    __slots__ = ("built", "count", "dtype", "frozen", "name", "shape", "trusted")

    def __init__(self, name: str, *, trusted: bool = False, frozen: bool = False, built: bool = False) -> None:
        self.name, self.trusted, self.frozen, self.built = name, trusted, frozen, built
        self.shape: tuple[int, ...] | None = None
        self.count = 0
        self.dtype: Any = None

    def __setstate__(self, state: Any) -> None:
        _LOCAL.run.build(self, state)

    def __setitem__(self, key: Any, value: Any) -> None:
        _LOCAL.run.set_item(self)

    def append(self, value: Any) -> None:
        _LOCAL.run.fill(self, "APPEND")

    def extend(self, values: Any) -> None:
        _LOCAL.run.fill(self, "APPENDS")

    def add(self, value: Any) -> None:
        _LOCAL.run.fill(self, "ADDITEMS")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.trusted:  # made by a name outside the defaults: refused by name, or trusted by the user
            return Obj(self.name, trusted=True)
        raise Refused(f"{_LOCAL.run.what}: the stream calls an object it built (a {self.name}); only reviewed "
                      "constructors may be called while loading. Refusing it.")


_LOCAL = threading.local()
"""The dry run in progress in this thread (the stand-in types are shared; their calls reach it here)."""
_LOCAL.run = None


class _GlobalMeta(type):
    """Metaclass of the stand-ins for globals: calling one is a REDUCE; changing one is refused."""

    _mc_name: str

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return _LOCAL.run.call(cls._mc_name, args, kwargs)

    def __setstate__(cls, state: Any) -> None:
        _LOCAL.run.refuse_global(cls._mc_name, "BUILD")

    def __setitem__(cls, key: Any, value: Any) -> None:
        _LOCAL.run.refuse_global(cls._mc_name, "SETITEM")

    def append(cls, value: Any) -> None:
        _LOCAL.run.refuse_global(cls._mc_name, "APPEND")

    def extend(cls, values: Any) -> None:
        _LOCAL.run.refuse_global(cls._mc_name, "APPENDS")

    def add(cls, value: Any) -> None:
        _LOCAL.run.refuse_global(cls._mc_name, "ADDITEMS")


class _GlobalBase:
    """Base of the stand-ins: ``cls.__new__(cls, *args)`` (NEWOBJ, OBJ without arguments) creates blank."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return _LOCAL.run.new(cls._mc_name, args, kwargs)  # type: ignore[attr-defined]


def global_name(obj: Any) -> str | None:
    """The ``module.qualname`` of a stand-in global, else None."""
    return obj._mc_name if isinstance(obj, _GlobalMeta) else None


class DryRun:
    """One dry run of one stream: stand-ins, role and argument checks, and the allocation budget."""

    def __init__(self, policy: TrustPolicy | None, what: str, *, size: int, limits: Limits = DEFAULT_LIMITS) -> None:
        self.policy, self.what, self.limits = policy, what, limits
        self.dtypes = DryRunDtypes(what)
        self.found: dict[str, None] = {}
        self._stubs: dict[str, type] = {}
        self.allocated = 0
        self.budget = max(size, 1) * limits.max_load_expansion + _ALLOCATION_FLOOR

    def __enter__(self) -> DryRun:
        self._previous = getattr(_LOCAL, "run", None)
        _LOCAL.run = self
        return self

    def __exit__(self, *exc: object) -> None:
        _LOCAL.run = self._previous

    # -------------------------------------------------------------------------------- globals

    def stub(self, name: str) -> type:
        """The stand-in ``find_class`` hands out for ``name`` (recorded in :attr:`found`)."""
        self.found.setdefault(name, None)
        stub = self._stubs.get(name)
        if stub is None:
            stub = self._stubs[name] = _GlobalMeta("Global", (_GlobalBase,), {"_mc_name": name})
        return stub

    def role(self, name: str) -> str | None:
        """What the dry run lets ``name`` do: its policy role, or ``"trusted"`` (see :meth:`_role`)."""
        return self._role(name)

    def _role(self, name: str) -> str | None:
        if self.policy is None:
            return "trusted"
        role = self.policy.role(name)
        if role is None and not self.policy.admits(name):
            return "trusted"  # not admitted at all: the policy check names it; nothing here runs
        return role

    def refuse_global(self, name: str, op: str) -> None:
        raise Refused(
            f"{self.what}: {op} modifies {name} itself (the class or function, not an object the stream built); "
            "that would change it for every model in this process. A pickler never writes this; refusing it."
        )

    # -------------------------------------------------------------------------------- creation

    def new(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """NEWOBJ / NEWOBJ_EX / OBJ without arguments: ``cls.__new__(cls, *args)``."""
        role = self._role(name)
        if role == "trusted":
            return self.dtypes.make(None) if self.dtypes.stand_in(name) else Obj(name, trusted=True)
        if role == "value":
            raise Refused(f"{self.what}: the stream instantiates {name}, which is trusted only as a value "
                          "(a function kept as a parameter); it is never called while loading. Refusing it.")
        if args or kwargs:
            if role == "call":
                return self.call(name, args, kwargs)
            raise Refused(f"{self.what}: the stream creates {name} with arguments to its __new__; only "
                          "reviewed constructors take arguments while loading. Refusing it.")
        return self.blank(name)

    def blank(self, name: str) -> Any:
        if self.dtypes.stand_in(name) is not None:
            return self.dtypes.make(None)
        obj = Obj(name)
        if name in ARRAY_CLASSES:
            obj.shape = (0,)
        return obj

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """REDUCE (and OBJ/INST with arguments): ``name(*args)``."""
        role = self._role(name)
        if role == "trusted":
            if self.dtypes.stand_in(name) or (name == "copyreg._reconstructor" and args and
                                              self.dtypes.stand_in(global_name(args[0]) or "")):
                # numpy trusts any dtype state it is given; those states are checked whoever trusts the name
                return self.dtypes.make(args[0] if args and isinstance(args[0], str) else None)
            return Obj(name, trusted=True)
        if role != "call":
            what = "a value (a function kept as a parameter)" if role == "value" else "a class created blank"
            raise Refused(
                f"{self.what}: the stream calls {name}, which the trust policy admits only as {what}; only "
                "reviewed constructors (modelcapsule.security.reviewed.CALLS) are called while loading. "
                "Refusing it. If this file is yours and you trust it, pass trusted=[...] with this name."
            )
        if kwargs:
            raise Refused(f"{self.what}: the stream calls {name} with keyword arguments; refusing it.")
        from .pickle_rules import RULES  # the rules use this module's stand-ins: imported once, on first call

        return RULES[CALLS[name][0]](self, name, args)

    def bad_args(self, name: str, problem: str) -> Refused:
        return Refused(f"{self.what}: the stream calls {name} with {problem}; a pickler never writes this, "
                       "and the call could run code, allocate without limit or return shared state. Refusing it.")

    def class_arg(self, name: str, value: Any, allowed: Callable[[str], bool]) -> str:
        """The name of ``value`` when it is a stand-in class that ``allowed`` accepts and may be created."""
        arg = global_name(value)
        if arg is None or not allowed(arg) or self._role(arg) == "value":
            raise self.bad_args(name, f"{describe(value)} where a trusted class is expected")
        return arg

    # -------------------------------------------------------------------------------- changes

    def build(self, obj: Obj, state: Any) -> None:
        if obj.trusted:
            return
        if obj.frozen or obj.built:
            again = "a second time" if obj.built else "after it was created complete"
            raise Refused(f"{self.what}: BUILD gives a {obj.name} its state {again}; a pickler builds each object "
                          "once. Refusing it.")
        obj.built = True
        if obj.name.startswith("scipy.stats.") and obj.name in distribution_names():
            ctor_params(state, self.what)  # the load rebuilds it from these and ignores the rest
            return
        if state is None:
            return
        if type(state) is dict:
            for key, value in state.items():
                if not isinstance(key, str) or (key.startswith("__") and key.endswith("__")):
                    raise Refused(f"{self.what}: the state of a {obj.name} sets {key!r}; attribute names must be "
                                  "plain strings, never special __x__ names. Refusing it.")
                if key == "_sklearn_version" and not isinstance(value, str):
                    raise Refused(f"{self.what}: a {obj.name} records a scikit-learn version that is not a "
                                  "string. Refusing it.")
            return
        if obj.name not in TUPLE_STATE:
            raise Refused(
                f"{self.what}: BUILD gives a {obj.name} a {type(state).__name__} state; only a plain dict may be "
                "given to this class (the (dict, slots) form sets attributes through setattr, which runs "
                "property setters and __setattr__). Refusing it."
            )
        if obj.name in ARRAY_CLASSES:
            self.array_state(obj, state)

    def set_item(self, obj: Obj) -> None:
        if obj.trusted or (obj.name in ITEM_TARGETS and not obj.frozen):
            return
        raise Refused(f"{self.what}: SETITEM changes a {obj.name}, which is not a dict the stream built. Refusing "
                      "it.")

    def fill(self, obj: Obj, op: str) -> None:
        if not obj.trusted:
            raise Refused(f"{self.what}: {op} changes a {obj.name}, which is not a list or set the stream built. "
                          "Refusing it.")

    # -------------------------------------------------------------------------------- budgets

    def allocate(self, nbytes: int, what: str) -> None:
        self.allocated += nbytes
        if self.allocated > self.budget:
            raise LimitExceededError(
                f"the memory {self.what} would allocate while loading ({what}, and everything before it)",
                self.allocated, self.budget, "max_load_expansion")

    def elements(self, count: int, what: str) -> None:
        if count > self.limits.max_array_elements:
            raise LimitExceededError(f"the number of elements of {what} in {self.what}", count,
                                     self.limits.max_array_elements, "max_array_elements")

    def dtype_of(self, name: str, value: Any, *, allow_object: bool) -> tuple[int, bool]:
        """``(itemsize, has_object)`` of a checked dtype stand-in, or refuse."""
        facts = dtype_facts(value)
        if facts is None:
            raise self.bad_args(name, f"{describe(value)} where a checked numpy dtype is expected")
        itemsize, flags = facts
        has_object = bool(flags & 0x01)
        if has_object and not allow_object:
            raise self.bad_args(name, "an object dtype")
        return itemsize, has_object

    def made_array(self, shape: tuple[int, ...]) -> Obj:
        """The stand-in for an array a joblib wrapper holds (already checked and budgeted)."""
        obj = Obj("numpy.ndarray", built=True)
        obj.shape, obj.count = shape, math.prod(shape)
        return obj

    def array_state(self, obj: Obj, state: Any) -> None:
        """ndarray/MaskedArray ``__setstate__``: shape, dtype and the raw data numpy would copy."""
        if not isinstance(state, tuple) or len(state) not in (4, 5, 7):
            raise Refused(f"{self.what}: an array state is not the tuple numpy writes. Refusing it.")
        body = state[1:] if len(state) in (5, 7) else state
        shape, dtype, _fortran, raw = body[:4]
        if not (isinstance(shape, tuple) and all(type(d) is int and d >= 0 for d in shape)):
            raise Refused(f"{self.what}: an array state has shape {shape!r}. Refusing it.")
        itemsize, has_object = self.dtype_of("numpy.ndarray.__setstate__", dtype, allow_object=True)
        count = math.prod(shape)
        self.elements(count, f"an array of shape {shape}")
        if has_object:
            if type(raw) is not list or len(raw) != count:
                raise Refused(f"{self.what}: an object array of {count} elements comes with "
                              f"{describe(raw)}; numpy would read past it (a crash). Refusing it.")
            self.allocate(count * 8, f"an object array of shape {shape}")
        else:
            size = byte_size(raw)
            if size is not None and size != count * itemsize:
                raise Refused(f"{self.what}: an array of shape {shape} and itemsize {itemsize} comes with {size} "
                              "bytes. Refusing it.")
            self.allocate(count * itemsize, f"an array of shape {shape}")
        obj.shape, obj.count = shape, count


def describe(value: Any) -> str:
    name = global_name(value)
    if name is not None:
        return name
    if isinstance(value, Obj):
        return f"a {value.name} object"
    return f"a {type(value).__name__}"


def byte_size(raw: Any) -> int | None:
    if isinstance(raw, Obj) and raw.trusted:
        return None  # made by a name outside the defaults: refused by name, or trusted by the user
    if isinstance(raw, (bytes, bytearray)):
        return len(raw)
    if isinstance(raw, memoryview):
        return None if raw.nbytes == 0 else raw.nbytes  # out-of-band buffers counted only, not given
    raise CapsuleFormatError(f"an array's data is a {type(raw).__name__}, not bytes. Refusing it.")


def check_plain(run: DryRun, name: str, value: Any, depth: int = 0, seen: set[int] | None = None) -> None:
    """Refuse anything but data the stream itself spelled out (so no object's methods run in the call)."""
    if isinstance(value, _PLAIN_ATOMS) or (isinstance(value, Obj) and value.name in _PLAIN_OBJECTS):
        return
    if depth > 100:
        raise run.bad_args(name, "data nested more than 100 levels deep")
    if isinstance(value, (tuple, list, set, frozenset, dict)):
        seen = set() if seen is None else seen
        if id(value) in seen:
            return
        seen.add(id(value))
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        for item in items:
            check_plain(run, name, item, depth + 1, seen)
        return
    raise run.bad_args(name, describe(value))
