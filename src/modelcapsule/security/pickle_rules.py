"""The argument rule of every reviewed call (:data:`~modelcapsule.security.reviewed.CALLS`).

Each rule receives the dry run, the name and the arguments as the stream built them (stand-ins for
objects, real values for plain data) and returns what the call would make, or refuses: an integer size
to an allocator, a callable where data is expected, a class from another module, an object dtype where
numpy would hand back its argument, a shape that is not empty where numpy writes an empty array.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .pickle_dryrun import (
    ARRAY_CLASSES,
    BIT_GENERATORS,
    BUILTIN_CALLS,
    DEFAULT_FACTORIES,
    RECONSTRUCTOR_BASES,
    DryRun,
    Obj,
    byte_size,
    check_plain,
    describe,
)
from .reviewed import ITEM_TARGETS

__all__ = ["RULES"]


def _rule_plain(run: DryRun, name: str, args: tuple[Any, ...]) -> Any:
    check_plain(run, name, args)
    if name != "builtins.range" and any(isinstance(a, range) for a in args):
        raise run.bad_args(name, "a range to expand (list(range(2**40)) asks for terabytes)")
    if name == "builtins.str":
        return Obj(name, frozen=True)  # text computed by a call never names a global (STACK_GLOBAL refuses it)
    if name in BUILTIN_CALLS:
        try:
            result = BUILTIN_CALLS[name](*args)
        except (TypeError, ValueError, OverflowError) as exc:
            raise run.bad_args(name, f"arguments it refuses ({exc})") from None
        if isinstance(result, (bytes, bytearray, str, list, tuple, dict, set, frozenset)):
            run.allocate(len(result) * (1 if isinstance(result, (bytes, bytearray, str)) else 8), name)
        return result
    return Obj(name, frozen=name not in ITEM_TARGETS)


def _rule_no_size(run: DryRun, name: str, args: tuple[Any, ...]) -> Any:
    if args and isinstance(args[0], int):
        raise run.bad_args(name, f"an integer size ({args[0]:,})")
    return _rule_plain(run, name, args)


def _rule_no_args(run: DryRun, name: str, args: tuple[Any, ...]) -> Any:
    if args:
        raise run.bad_args(name, "arguments")
    return Obj(name, frozen=True)


def _rule_latin1(run: DryRun, name: str, args: tuple[Any, ...]) -> Any:
    if len(args) != 2 or not isinstance(args[0], str) or args[1] not in ("latin1", "latin-1"):
        raise run.bad_args(name, "anything but (text, 'latin1'), which is how protocol 2 writes bytes")
    run.allocate(len(args[0]), name)
    return args[0].encode("latin-1")


def _rule_defaultdict(run: DryRun, name: str, args: tuple[Any, ...]) -> Any:
    if args and args[0] is not None:
        run.class_arg(name, args[0], lambda n: n in DEFAULT_FACTORIES)
    check_plain(run, name, args[1:])
    return Obj(name)


def _rule_reconstructor(run: DryRun, name: str, args: tuple[Any, ...]) -> Any:
    if len(args) != 3:
        raise run.bad_args(name, f"{len(args)} arguments instead of (class, base, state)")
    cls = run.class_arg(name, args[0], lambda n: True)
    run.class_arg(name, args[1], lambda n: n in RECONSTRUCTOR_BASES)
    check_plain(run, name, args[2])
    return run.blank(cls) if run._role(cls) != "trusted" else Obj(cls, trusted=True)


def _rule_ndarray_new(run: DryRun, name: str, args: tuple[Any, ...]) -> Any:
    if len(args) < 3:
        raise run.bad_args(name, "fewer than (subtype, shape, dtype)")
    cls = run.class_arg(name, args[0], lambda n: n in ARRAY_CLASSES)
    if name.endswith("_mareconstruct"):
        run.class_arg(name, args[1], lambda n: n in ARRAY_CLASSES)
        shape = args[2]
    else:
        shape = args[1]
    if not (isinstance(shape, tuple) and all(type(d) is int and 0 <= d <= 1 for d in shape) and len(shape) <= 1):
        raise run.bad_args(name, f"the shape {shape!r}; numpy writes an empty array whose data comes with BUILD")
    return run.blank(cls)


def _rule_scalar(run: DryRun, name: str, args: tuple[Any, ...]) -> Any:
    if len(args) != 2:
        raise run.bad_args(name, "anything but (dtype, bytes)")
    itemsize, _ = run.dtype_of(name, args[0], allow_object=False)
    if not isinstance(args[1], bytes) or len(args[1]) != itemsize:
        raise run.bad_args(name, f"{describe(args[1])} instead of exactly {itemsize} bytes")
    return Obj("numpy.generic", frozen=True)


def _rule_frombuffer(run: DryRun, name: str, args: tuple[Any, ...]) -> Any:
    if len(args) != 4 or not isinstance(args[2], tuple) or not all(type(d) is int and d >= 0 for d in args[2]):
        raise run.bad_args(name, "anything but (buffer, dtype, shape, order)")
    itemsize, _ = run.dtype_of(name, args[1], allow_object=False)
    count = math.prod(args[2])
    run.elements(count, f"an array of shape {args[2]}")
    size = byte_size(args[0]) if isinstance(args[0], (bytes, bytearray, memoryview)) else -1
    if size == -1 or (size is not None and size != count * itemsize):
        raise run.bad_args(name, f"a buffer that does not hold shape {args[2]} of {itemsize}-byte items")
    obj = Obj("numpy.ndarray", built=True)
    obj.shape, obj.count = args[2], count
    return obj


def _rule_dtype(run: DryRun, name: str, args: tuple[Any, ...]) -> Any:
    if len(args) != 3 or not isinstance(args[0], str) or len(args[0]) > 32 or args[2] is not True:
        raise run.bad_args(name, "anything but (type string, align, copy=True); without copy numpy returns "
                                 "its shared dtype, which BUILD would then change for everyone")
    return run.dtypes.make(args[0])


def _rule_bitgen_ctor(run: DryRun, name: str, args: tuple[Any, ...]) -> Any:
    if len(args) > 1:
        raise run.bad_args(name, "a second argument (a callable it would call)")
    if args and not (args[0] in BIT_GENERATORS or (isinstance(args[0], Obj) and
                                                    args[0].name in BIT_GENERATORS.values())):
        raise run.bad_args(name, f"{describe(args[0])} instead of a numpy bit generator")
    made = "numpy.random.mtrand.RandomState" if "randomstate" in name else "numpy.random._generator.Generator"
    return Obj(made)


def _rule_bitgen_class(run: DryRun, name: str, args: tuple[Any, ...]) -> Any:
    if not args:
        return Obj(BIT_GENERATORS["MT19937"])
    if len(args) == 1 and isinstance(args[0], str) and args[0] in BIT_GENERATORS:
        return Obj(BIT_GENERATORS[args[0]])
    if len(args) == 1:
        return Obj(run.class_arg(name, args[0], lambda n: n in BIT_GENERATORS.values()))
    raise run.bad_args(name, "more than one argument")


def _rule_pyx_unpickle(run: DryRun, name: str, args: tuple[Any, ...]) -> Any:
    module = name.rsplit(".", 1)[0]
    if len(args) != 3 or type(args[1]) is not int:
        raise run.bad_args(name, "anything but (class, checksum, state)")
    cls = run.class_arg(name, args[0], lambda n: n.rsplit(".", 1)[0] == module)
    _plain_or_arrays(run, name, args[2])
    return Obj(cls, built=args[2] is not None)


def _plain_or_arrays(run: DryRun, name: str, value: Any) -> None:
    """A Cython state: plain data and arrays the stream built (Cython type-checks each field)."""
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if not (isinstance(item, Obj) and item.name in ARRAY_CLASSES):
            check_plain(run, name, item)


def _rule_new_obj(run: DryRun, name: str, args: tuple[Any, ...]) -> Any:
    module = name.rsplit(".", 1)[0]
    if len(args) != 1:
        raise run.bad_args(name, "anything but one class")
    return run.blank(run.class_arg(name, args[0], lambda n: n.rsplit(".", 1)[0] == module))


def _rule_sklearn_tree(run: DryRun, name: str, args: tuple[Any, ...]) -> Any:
    if len(args) != 3 or type(args[0]) is not int or type(args[2]) is not int:
        raise run.bad_args(name, "anything but (n_features, n_classes array, n_outputs)")
    n_features, n_classes, n_outputs = args
    if not 0 <= n_features < 2**31 or not 0 < n_outputs < 2**31:
        raise run.bad_args(name, f"n_features={n_features:,}, n_outputs={n_outputs:,}")
    if not (isinstance(n_classes, Obj) and n_classes.name in ARRAY_CLASSES and n_classes.shape == (n_outputs,)):
        raise run.bad_args(name, f"{describe(n_classes)} as n_classes instead of an array of {n_outputs} "
                                 "counts the stream built (the constructor loops over n_outputs)")
    return Obj(name)


def _rule_numbers(run: DryRun, name: str, args: tuple[Any, ...]) -> Any:
    if len(args) > 2 or not all(type(a) in (int, float) for a in args):
        raise run.bad_args(name, "anything but at most two numbers")
    return Obj(name, frozen=True)


RULES: dict[str, Callable[[DryRun, str, tuple[Any, ...]], Any]] = {
    "plain": _rule_plain, "no_size": _rule_no_size, "no_args": _rule_no_args, "latin1": _rule_latin1,
    "defaultdict": _rule_defaultdict, "reconstructor": _rule_reconstructor, "ndarray_new": _rule_ndarray_new,
    "scalar": _rule_scalar, "frombuffer": _rule_frombuffer, "dtype": _rule_dtype,
    "bitgen_ctor": _rule_bitgen_ctor, "bitgen_class": _rule_bitgen_class, "pyx_unpickle": _rule_pyx_unpickle,
    "new_obj": _rule_new_obj, "sklearn_tree": _rule_sklearn_tree, "numbers": _rule_numbers,
    "timezone": _rule_plain,
}
"""The argument rule of each reviewed call (the names are those of :data:`~.reviewed.CALLS`)."""
