"""The trust policy and the restricted unpickler that enforces it.

A policy is an exact set of ``module.qualname`` names that loading may import. The defaults cover what
fitted scikit-learn estimators, numpy and scipy need (see :mod:`modelcapsule.security.defaults`); users add
names explicitly. There are no modules, prefixes or wildcards, and the policy never comes from the
file being loaded: nothing in a file can widen its own trust.
"""

from __future__ import annotations

import importlib
import io
import pickle
import re
import warnings
from collections.abc import Iterable
from typing import Any

from ..errors import MALFORMED_PICKLE_ERRORS, CapsuleFormatError, UntrustedTypesError
from .defaults import admitted
from .tamper import GlobalsSnapshot

__all__ = ["DEFAULT_POLICY", "RestrictedUnpickler", "TrustPolicy", "resolve_name", "restricted_loads"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")

# numpy 2 moved numpy.core to numpy._core; pickles written by numpy 1.x name the old path. The alias is
# resolved to the new module without importing the deprecated shim (which would warn).
_MODULE_ALIASES = {"numpy.core.multiarray": "numpy._core.multiarray", "numpy.core.numeric": "numpy._core.numeric",
                   "numpy.core._multiarray_umath": "numpy._core._multiarray_umath"}


class TrustPolicy:
    """The exact names a loader may import: the defaults (unless ``include_defaults=False``) plus ``names``.

    >>> TrustPolicy(["mypkg.transformers.MyScaler"]).admits("mypkg.transformers.MyScaler")
    True
    """

    def __init__(self, names: Iterable[str] = (), *, include_defaults: bool = True) -> None:
        extra = set()
        for name in names:
            if not isinstance(name, str) or not _NAME.match(name):
                raise ValueError(
                    f"trusted name {name!r} is not an exact 'module.qualname' (for example "
                    "'mypkg.models.MyTransformer'); modules, prefixes and wildcards are never trusted."
                )
            extra.add(name)
        self.extra = frozenset(extra)
        self.include_defaults = include_defaults

    def admits(self, name: str) -> bool:
        """Whether ``name`` (``module.qualname``) may be imported."""
        return name in self.extra or (self.include_defaults and admitted(name))

    def untrusted(self, names: Iterable[str]) -> list[str]:
        """The names in ``names`` that this policy does not admit, sorted."""
        return sorted({n for n in names if not self.admits(n)})

    def check(self, names: Iterable[str], source: str = "the file") -> None:
        """Raise :class:`UntrustedTypesError` listing every name the policy does not admit."""
        bad = self.untrusted(names)
        if bad:
            raise UntrustedTypesError(bad, source)

    def with_names(self, names: Iterable[str]) -> TrustPolicy:
        return TrustPolicy([*self.extra, *names], include_defaults=self.include_defaults)

    def __repr__(self) -> str:
        return f"TrustPolicy(extra={sorted(self.extra)!r}, include_defaults={self.include_defaults})"


DEFAULT_POLICY = TrustPolicy()


def resolve_name(module: str, qualname: str) -> Any:
    """Import ``module`` and walk ``qualname``. Call only for names a policy admitted."""
    mod = importlib.import_module(_MODULE_ALIASES.get(module, module))
    obj: Any = mod
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` admits exactly the policy's names and nothing else.

    Persistent ids are refused. Extension codes resolve through ``find_class`` too, so they are held
    to the same policy. Out-of-band buffers (pickle protocol 5) are passed in by the caller.
    """

    def __init__(self, file: io.BufferedIOBase | io.BytesIO, policy: TrustPolicy, *,
                 buffers: Iterable[Any] | None = None, source: str = "the file") -> None:
        super().__init__(file, fix_imports=False, buffers=buffers)
        self._policy = policy
        self._source = source
        self.handed_out = GlobalsSnapshot()

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if not self._policy.admits(full):
            raise UntrustedTypesError([full], self._source)
        try:
            obj = resolve_name(module, name)
            self.handed_out.record(obj, full)
            return obj
        except (ImportError, AttributeError) as exc:
            raise CapsuleFormatError(
                f"{self._source} names {full}, which is trusted but not importable here ({exc}); install the "
                "package version the model was saved with (`capsule env PATH`)."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise CapsuleFormatError(f"{self._source} uses persistent ids; refusing it.")


def refuse_tampering(handed_out: GlobalsSnapshot, source: str) -> None:
    """Restore any trusted global the stream modified (a BUILD on a class, say) and refuse the file."""
    if changed := handed_out.undo_changes():
        raise CapsuleFormatError(
            f"{source} modified trusted globals while loading ({', '.join(changed)}); they were "
            "restored. A pickler never writes this; refusing it."
        )


def restricted_loads(data: bytes | memoryview, policy: TrustPolicy, *, buffers: Iterable[Any] | None = None,
                     source: str = "the file") -> Any:
    """Unpickle ``data`` through :class:`RestrictedUnpickler`, turning pickle's own errors into
    :class:`CapsuleFormatError` (the typed errors of modelcapsule pass through unchanged)."""
    stream = io.BytesIO(data)
    unpickler = RestrictedUnpickler(stream, policy, buffers=buffers, source=source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            obj = unpickler.load()
    except (UntrustedTypesError, CapsuleFormatError):
        raise
    except MALFORMED_PICKLE_ERRORS as exc:
        raise CapsuleFormatError(f"{source} could not be unpickled: {type(exc).__name__}: {exc}") from None
    finally:
        refuse_tampering(unpickler.handed_out, source)
    if stream.tell() != len(memoryview(data)):
        raise CapsuleFormatError(f"{source} has trailing bytes after its pickle stream; refusing it.")
    return obj
