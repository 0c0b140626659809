"""The default trusted names, each with the one thing loading may do with it.

Every default name has a *role* (see :meth:`~modelcapsule.security.policy.TrustPolicy.role`):

* ``call``: a reviewed constructor or reconstructor (:data:`~modelcapsule.security.reviewed.CALLS`), the
  only names a stream may call with arguments, each with an argument rule;
* ``class``: a class that may be created blank and given a plain state; it is in the defaults only if
  every pickling or attribute hook it has was reviewed
  (:data:`~modelcapsule.security.reviewed.HOOKS`);
* ``value``: a function kept as a parameter (a score function, ``numpy.log1p``), never called by the stream.

Sources, all by exact ``module.qualname``: a short list of builtins and numpy reconstruction helpers;
numpy and scipy types computed from the installed libraries (scalar types, ufuncs as values, sparse
matrix classes); scikit-learn's classes and score functions, computed by walking its modules once per
installed version (skipping test, dataset-fetching, parallel and vendored modules and any class with an
unreviewed hook), shipped for the pinned release (``trusted_names/sklearn-<version>.txt``) and cached
per user for others.

scipy.stats distributions (search spaces keep them) are trusted only as constructor parameters: their
``__setstate__`` executes a code template taken from the pickled state (``rv_generic._attach_methods``),
so they are rebuilt from their name and parameters instead (:mod:`modelcapsule.security.distributions`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import pkgutil
import sys
import warnings
from importlib import resources
from pathlib import Path

from ..core.atomic import PLAIN_MODE, write_atomic
from ..core.cachedir import user_cache_dir
from .distributions import FROZEN, distribution_names
from .reviewed import CALLS, unreviewed_hooks

__all__ = ["SKLEARN_EXCLUDED_MODULES", "compute_sklearn_names", "default_names", "default_role", "default_roles"]

BUILTIN_NAMES = frozenset({
    "builtins.slice", "builtins.set", "builtins.frozenset", "builtins.complex", "builtins.bytearray",
    "builtins.range", "builtins.bool", "builtins.int", "builtins.float", "builtins.str", "builtins.bytes",
    "builtins.list", "builtins.dict", "builtins.tuple", "builtins.object",
    "copyreg._reconstructor", "collections.OrderedDict", "collections.defaultdict", "collections.Counter",
    "collections.deque", "_codecs.encode", "datetime.datetime", "datetime.date", "datetime.timedelta",
    "datetime.timezone", "decimal.Decimal", "fractions.Fraction", "uuid.UUID",
})

NUMPY_NAMES = frozenset({
    "numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar",
    "numpy._core.numeric._frombuffer", "numpy.core.numeric._frombuffer",
    "numpy.dtype", "numpy.ndarray", "numpy.ma.core.MaskedArray", "numpy.ma.MaskedArray",
    "numpy.ma.core._mareconstruct", "numpy.ma.core.MaskedConstant",
    "numpy.random._pickle.__randomstate_ctor", "numpy.random._pickle.__generator_ctor",
    "numpy.random._pickle.__bit_generator_ctor", "numpy.random.mtrand.RandomState",
    "numpy.random._generator.Generator", "numpy.random.bit_generator.SeedSequence",
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence", "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64", "numpy.random._pcg64.PCG64DXSM", "numpy.random._philox.Philox",
    "numpy.random._sfc64.SFC64",
})
"""Classes and reconstructors of numpy's own pickles (roles from :data:`~.reviewed.CALLS`, else ``class``)."""

VALUE_NAMES = frozenset({
    # pure reductions that estimators keep as parameters (e.g. SimpleImputer, FunctionTransformer)
    "numpy.mean", "numpy.median", "numpy.nanmean", "numpy.nanmedian", "numpy.sum", "numpy.max",
    "numpy.min", "numpy.std", "numpy.var", "numpy.nanstd",
})
"""Functions estimators keep as parameters: referenced, never called while loading."""

SKLEARN_EXCLUDED_MODULES = (
    "sklearn.externals", "sklearn.utils._testing", "sklearn.utils.estimator_checks", "sklearn.utils._test_common",
    "sklearn.datasets", "sklearn.conftest", "sklearn._build_utils", "sklearn.utils.parallel",
    "sklearn.utils._show_versions", "sklearn.experimental", "sklearn._min_dependencies",
    "sklearn.utils._optional_dependencies", "sklearn.utils._joblib", "sklearn.callback",
)
"""Modules whose classes are never trusted: test helpers, fetchers (network, files), parallel helpers
(callable objects that call other objects), fit-time callbacks (progress monitors that open local
sockets), and vendored third-party code."""

SKLEARN_FUNCTION_MODULES = (
    "sklearn.feature_selection._univariate_selection", "sklearn.feature_selection._mutual_info",
    "sklearn.metrics.pairwise", "sklearn.metrics._regression", "sklearn.metrics._classification",
    "sklearn.metrics._ranking", "sklearn.metrics.cluster._supervised", "sklearn.metrics.cluster._unsupervised",
    "sklearn.cluster._kmeans",
)
"""Modules of pure numeric functions (score functions, kernels, metrics) that estimators store as
parameters; their module-level functions taking arguments are admitted one by one, as values."""


def _is_excluded(module: str) -> bool:
    return module.startswith(SKLEARN_EXCLUDED_MODULES) or ".tests" in module


def _is_pickle_helper(attr: str, obj: object) -> bool:
    """Cython's unpickle helpers: they rebuild an instance of a class the pickle must also name."""
    return callable(obj) and (attr.startswith("__pyx_unpickle_") or attr == "newObj")


def _is_pure_function(module: str, obj: object) -> bool:
    """A score or kernel function of one of :data:`SKLEARN_FUNCTION_MODULES`; functions without parameters
    (``kernel_metrics()`` returns a live module dict) are not values anyone keeps as a parameter."""
    if not (module in SKLEARN_FUNCTION_MODULES and inspect.isfunction(obj) and obj.__module__ == module):
        return False
    return bool(inspect.signature(obj).parameters)


def compute_sklearn_names() -> dict[str, str]:
    """Walk the installed scikit-learn and list what a fitted estimator may need, with each name's role.
    Classes with an unreviewed hook and pickle helpers without an argument rule are left out. Takes a
    few seconds (it imports every scikit-learn module)."""
    import sklearn

    names: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for info in pkgutil.walk_packages(sklearn.__path__, "sklearn."):
            if _is_excluded(info.name):
                continue
            try:
                module = importlib.import_module(info.name)  # walking sklearn itself, not a file's names
            except ImportError:
                continue
            for attr, obj in vars(module).items():
                full = f"{info.name}.{attr}"
                if inspect.isclass(obj) and obj.__module__ == info.name and not unreviewed_hooks(obj):
                    names[f"{info.name}.{obj.__qualname__}"] = "class"
                elif _is_pickle_helper(attr, obj) and full in CALLS:
                    names[full] = "call"
                elif _is_pure_function(info.name, obj):
                    names[full] = "value"
    return names


def _numpy_names() -> dict[str, str]:
    """numpy scalar and dtype classes, and ufuncs as values only (a ufunc called by a stream on object
    arrays of Python integers burns seconds of CPU per byte); classes with an unreviewed hook left out."""
    import numpy as np

    classes: list[type] = list(set(np.sctypeDict.values()))
    classes += [t for t in vars(np.dtypes).values() if inspect.isclass(t)]
    names = {f"{t.__module__}.{t.__qualname__}": "class" for t in classes if not unreviewed_hooks(t)}
    # vars(), not dir()+getattr(): numpy's module __getattr__ would import its lazy submodules (f2py...)
    names.update({f"numpy.{attr}": "value" for attr, obj in vars(np).items() if isinstance(obj, np.ufunc)})
    return names


@functools.cache
def scipy_names() -> dict[str, str]:
    """scipy sparse matrix classes and the spline classes SplineTransformer keeps. Importing scipy takes
    a while, so this family is computed only when a file names something in ``scipy``."""
    try:
        import scipy.interpolate
        import scipy.sparse
    except ImportError:
        return {}
    classes = [obj for attr in scipy.sparse.__all__ if inspect.isclass(obj := getattr(scipy.sparse, attr))]
    classes += [scipy.interpolate.BSpline, scipy.interpolate.PPoly]
    names = {f"{t.__module__}.{t.__qualname__}": "class" for t in classes if not unreviewed_hooks(t)}
    names["scipy._lib.array_api_compat.numpy._aliases.asarray"] = "value"
    return names


def _cache_dir() -> Path:
    return user_cache_dir("trust")


def parse_names(text: str) -> dict[str, str]:
    """Read a names file: one ``role module.qualname`` per line (``#`` starts a comment)."""
    names: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) == 2 and fields[0] in ("class", "value", "call"):
            names[fields[1]] = fields[0]
    return names


def format_names(names: dict[str, str]) -> str:
    return "".join(f"{role} {name}\n" for name, role in sorted(names.items()))


def _sklearn_version() -> str | None:
    """The installed scikit-learn's version, read from its install record when it is not imported yet:
    importing it takes a second and 140 MiB, and an audit must not import what it audits."""
    module = sys.modules.get("sklearn")
    if module is not None:
        return str(module.__version__)
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    site = Path(next(iter(spec.submodule_search_locations))).parent
    records = list(site.glob("scikit_learn-*.dist-info"))
    if len(records) == 1:
        return records[0].name[len("scikit_learn-"):-len(".dist-info")]
    import sklearn  # several or no install records: ask the package itself

    return str(sklearn.__version__)


@functools.cache
def sklearn_names() -> dict[str, str]:
    """scikit-learn's trusted names and roles for the installed version: shipped, cached, or computed once."""
    version = _sklearn_version()
    if version is None:
        return {}
    filename = f"sklearn-{version}.txt"
    shipped = resources.files("modelcapsule.security") / "trusted_names" / filename
    if shipped.is_file():
        return parse_names(shipped.read_text())
    cached = _cache_dir() / f"roles-{filename}"
    if cached.is_file():
        return parse_names(cached.read_text())
    names = compute_sklearn_names()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cached, format_names(names).encode(), mode=PLAIN_MODE)
    except OSError:
        pass
    return names


@functools.cache
def default_roles() -> dict[str, str]:
    """Every name the default policy admits, with its role (see the module docstring)."""
    roles: dict[str, str] = {name: "class" for name in BUILTIN_NAMES | NUMPY_NAMES}
    roles.update({name: "value" for name in VALUE_NAMES})
    roles.update(_numpy_names())
    roles.update(sklearn_names())
    for name in roles:
        if name in CALLS:
            roles[name] = "call"
    return roles


def default_names() -> frozenset[str]:
    """Every name the default policy admits."""
    return frozenset(default_roles()) | frozenset(scipy_names())


def default_role(name: str) -> str | None:
    """The role of ``name`` in the default policy, or None when it is not a default name."""
    role = default_roles().get(name)
    if role is None and name.startswith("scipy."):
        role = scipy_names().get(name)
    if role is None and name.startswith("scipy.stats.") and (name in FROZEN or name in distribution_names()):
        role = "class"  # rebuilt from constructor parameters only (security.distributions)
    return role


def admitted(name: str) -> bool:
    """Whether the default policy admits ``name``."""
    return default_role(name) is not None
