"""scipy.stats distributions, rebuilt from their name and constructor parameters, never from their state.

A distribution's pickled state holds ``_parse_arg_template``, a code template that
``rv_generic.__setstate__`` executes (``_attach_methods``): any state accepted as is runs code. But a
distribution is fully described by its class and ``_ctor_param`` (``name``, ``a``, ``b``, ``shapes``...),
which is how scipy itself copies one (``rv_frozen.__init__`` calls ``dist.__class__(**ctor_param)``). So
loading hands the unpickler, for each distribution class, a stand-in whose objects take their state
through :func:`rebuild`: the constructor parameters are checked (plain values, known keys) and the class's
own ``__init__`` builds the distribution; every other key of the state is ignored, and
``rv_generic.__setstate__`` never runs. The dry run applies the same check (:func:`ctor_params`), so the
audit refuses what the load would refuse.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any

from ..errors import CapsuleFormatError

__all__ = ["ctor_params", "distribution_names", "rebuilder"]

_KEYS = frozenset({"momtype", "a", "b", "xtol", "badvalue", "name", "longname", "shapes", "seed", "moment_tol",
                   "inc", "values"})


@functools.cache
def distribution_names() -> frozenset[str]:
    """The ``*_gen`` classes of scipy.stats and the frozen wrappers (search spaces keep them). Importing
    scipy.stats takes a second, so this is computed only when a file names something in scipy.stats."""
    try:
        from scipy.stats import _continuous_distns, _discrete_distns
    except ImportError:
        return frozenset()
    out = set()
    for mod in (_continuous_distns, _discrete_distns):
        for obj in vars(mod).values():
            if inspect.isclass(obj) and obj.__name__.endswith("_gen") and obj.__module__ == mod.__name__:
                out.add(f"{mod.__name__}.{obj.__qualname__}")
    return frozenset(out)


FROZEN = frozenset({"scipy.stats._distn_infrastructure.rv_continuous_frozen",
                    "scipy.stats._distn_infrastructure.rv_discrete_frozen"})


def ctor_params(state: Any, what: str) -> dict[str, Any]:
    """The constructor parameters in a distribution's state, checked: known keys, plain values only."""
    params = state.get("_ctor_param") if isinstance(state, dict) else None
    if not isinstance(params, dict) or not set(params) <= _KEYS:
        raise CapsuleFormatError(
            f"{what}: a scipy.stats distribution's state has no plain constructor parameters (_ctor_param with "
            f"the keys {sorted(_KEYS)}); it is only ever rebuilt from them. Refusing it."
        )
    for key, value in params.items():
        plain = value is None or type(value) in (bool, int, float) or (type(value) is str and len(value) <= 200)
        if not plain or (key == "values" and value is not None) or (key == "seed" and type(value) is not int
                                                                    and value is not None):
            raise CapsuleFormatError(f"{what}: a scipy.stats distribution's parameter {key!r} is "
                                     f"{type(value).__name__}, not a plain number or short string. Refusing it.")
        if type(value) is float and math.isnan(value) and key != "badvalue":
            raise CapsuleFormatError(f"{what}: a scipy.stats distribution's parameter {key!r} is NaN. Refusing it.")
    return dict(params)


class _Rebuild:
    """Stands in for one BUILD of a distribution: checks the parameters, then calls the class's __init__."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __call__(self, state: Any) -> None:
        obj = self.obj
        del obj.__dict__["__setstate__"]
        type(obj).__init__(obj, **ctor_params(state, f"the {type(obj).__name__} distribution"))


@functools.cache
def rebuilder(cls: type) -> type:
    """What the unpickler gets for distribution class ``cls``: creating one makes a blank ``cls`` whose
    BUILD goes to :class:`_Rebuild` (an instance attribute shadows the class's ``__setstate__``)."""

    def new(stand_in: type, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            raise CapsuleFormatError(f"a {cls.__name__} distribution is created with arguments; refusing it.")
        obj: Any = object.__new__(cls)
        obj.__dict__["__setstate__"] = _Rebuild(obj)
        return obj

    return type(cls.__name__, (), {"__new__": new, "__module__": cls.__module__, "__qualname__": cls.__qualname__,
                                   "__doc__": f"Rebuilds {cls.__qualname__} from its constructor parameters."})
