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
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from ..errors import MALFORMED_PICKLE_ERRORS, CapsuleFormatError, UntrustedTypesError
from .defaults import admitted, default_role
from .distributions import distribution_names, rebuilder
from .tamper import GlobalsSnapshot

__all__ = ["DEFAULT_POLICY", "RestrictedUnpickler", "TrustPolicy", "import_trusted", "restricted_loads"]

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

    def user_trusts(self, name: str) -> bool:
        """Whether the user named ``name`` themselves (``trusted=[...]``, ``--trust``), not merely the defaults.

        The defaults are reviewed for modelcapsule's own parsers; another library's safe mode (torch's
        ``safe_globals``, Keras' ``custom_objects``) would use a name as it likes, so only these widen it."""
        return name in self.extra

    def role(self, name: str) -> str | None:
        """What loading may do with ``name``: ``"trusted"`` (a name the user added: anything a pickler
        writes), ``"call"`` (a reviewed constructor, called with checked arguments), ``"class"`` (created
        blank, then given a plain state), ``"value"`` (referenced only, never called), or None."""
        role = default_role(name) if self.include_defaults else None
        if role is None and name in self.extra:
            return "trusted"
        return role

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


def _check_parts(name: str) -> list[str]:
    parts = name.split(".")
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise UntrustedTypesError([name], "the name")
    if any(p.startswith("__") and p.endswith("__") for p in parts):
        raise CapsuleFormatError(
            f"{name!r} walks through a special attribute (a part named __x__); a trusted name is a plain "
            "module path and the name of something defined in it. Refusing it."
        )
    return parts


def _import_module(name: str) -> ModuleType | None:
    """The module ``name``, or None when no such module exists (any other import error propagates)."""
    target = _MODULE_ALIASES.get(name, name)
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name is not None and target != exc.name and not target.startswith(exc.name + "."):
            raise  # the module exists but one of *its* imports is missing: say so, don't guess another split
        return None


def import_trusted(name: str, policy: TrustPolicy, *, module: str | None = None,
                   vocabulary: Callable[[str], bool] | None = None) -> Any:
    """The one place where a ``module.qualname`` held by a file becomes a live object.

    ``name`` must be admitted by ``policy`` (or belong to ``vocabulary``, a format's own fixed set of
    names, such as ``torch.nn.modules.*`` for module specs). The module is the longest importable prefix
    (or exactly ``module`` when the caller knows it, as pickle does), and the rest is walked attribute by
    attribute; special ``__x__`` parts and walks through another module (``pkg.os.system``) are refused.
    Every format and framework goes through here, so the rules are the same for all of them.
    """
    if not (policy.admits(name) or (vocabulary is not None and vocabulary(name))):
        raise UntrustedTypesError([name], "the file")
    parts = _check_parts(name)
    if module is not None:
        cut = len(module.split("."))
        if parts[:cut] != module.split(".") or cut >= len(parts):
            raise CapsuleFormatError(f"{name!r} does not start with its module {module!r}.")
        found = _import_module(module)
    else:
        found, cut = None, len(parts) - 1
        while cut > 0 and (found := _import_module(".".join(parts[:cut]))) is None:
            cut -= 1
    if found is None:
        raise CapsuleFormatError(f"cannot import {name!r}, which the file needs: no module of that name is "
                                 "installed. Install the package the model was saved with (`capsule env PATH`).")
    obj: Any = found
    for part in parts[cut:]:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CapsuleFormatError(
                f"{name!r} is trusted but does not exist in the installed packages; install the version the "
                "model was saved with (`capsule env PATH`)."
            ) from None
        if isinstance(obj, ModuleType):
            raise CapsuleFormatError(
                f"{name!r} reaches a module through an attribute ({part}); trusted names name classes and "
                "functions where they are defined. Refusing it."
            )
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
            obj = import_trusted(full, self._policy, module=module)
        except ImportError as exc:
            raise CapsuleFormatError(
                f"{self._source} names {full}, which is trusted but not importable here ({exc}); install the "
                "package version the model was saved with (`capsule env PATH`)."
            ) from None
        if full.startswith("scipy.stats.") and full in distribution_names():
            obj = rebuilder(obj)  # never rv_generic.__setstate__, which executes a template from the file
        self.handed_out.record(obj, full)
        return obj

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
