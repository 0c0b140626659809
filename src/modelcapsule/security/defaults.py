"""The default trusted names: what fitted scikit-learn estimators, numpy and scipy need, exactly.

Three sources, all by exact ``module.qualname``:

* a short hand-checked list of builtins and numpy/scipy reconstruction helpers, each of which only
  builds data (no argument makes them run code, touch files or reach the network);
* numpy and scipy types computed from the installed libraries (scalar types, bit generators, sparse
  matrix classes, frozen distributions);
* scikit-learn's classes, computed by walking its modules once per installed version (every class it
  defines, plus Cython's pickle helpers), skipping its testing, dataset-fetching, parallel and vendored
  modules, plus a list of pure functions that estimators keep as parameters (score and kernel functions).
  The walk takes a few seconds, so its result is shipped for the pinned release
  (``trusted_names/sklearn-<version>.txt``) and cached per user for others.

Classes are safe to admit because building one only runs its constructor or ``__setstate__`` on data;
functions are admitted one by one, never by module.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import pkgutil
import warnings
from importlib import resources
from pathlib import Path

from ..core.cachedir import user_cache_dir

__all__ = ["SKLEARN_EXCLUDED_MODULES", "compute_sklearn_names", "default_names"]

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
    # pure reductions that estimators keep as parameters (e.g. SimpleImputer, FunctionTransformer)
    "numpy.mean", "numpy.median", "numpy.nanmean", "numpy.nanmedian", "numpy.sum", "numpy.max",
    "numpy.min", "numpy.std", "numpy.var", "numpy.nanstd",
    "scipy._lib.array_api_compat.numpy._aliases.asarray",
})

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
parameters; their public and private module-level functions are admitted one by one."""


def _is_excluded(module: str) -> bool:
    return module.startswith(SKLEARN_EXCLUDED_MODULES) or ".tests" in module


def _is_pickle_helper(attr: str, obj: object) -> bool:
    """Cython's unpickle helpers: they rebuild an instance of a class the pickle must also name."""
    return callable(obj) and (attr.startswith("__pyx_unpickle_") or attr == "newObj")


def _is_pure_function(module: str, obj: object) -> bool:
    return module in SKLEARN_FUNCTION_MODULES and inspect.isfunction(obj) and obj.__module__ == module


def compute_sklearn_names() -> frozenset[str]:
    """Walk the installed scikit-learn and list what a fitted estimator may need. Takes a few seconds."""
    import sklearn

    names: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for info in pkgutil.walk_packages(sklearn.__path__, "sklearn."):
            if _is_excluded(info.name):
                continue
            try:
                module = importlib.import_module(info.name)
            except ImportError:
                continue
            for attr, obj in vars(module).items():
                if inspect.isclass(obj) and obj.__module__ == info.name:
                    names.add(f"{info.name}.{obj.__qualname__}")
                elif _is_pickle_helper(attr, obj) or _is_pure_function(info.name, obj):
                    names.add(f"{info.name}.{attr}")
    return frozenset(names)


def _numpy_scipy_names() -> frozenset[str]:
    import numpy as np
    import scipy.sparse

    names: set[str] = set()
    for t in set(np.sctypeDict.values()):
        names.add(f"{t.__module__}.{t.__qualname__}")
    for attr in dir(np.dtypes):
        t = getattr(np.dtypes, attr)
        if inspect.isclass(t):
            names.add(f"{t.__module__}.{t.__qualname__}")
    for attr in dir(np):
        if isinstance(getattr(np, attr, None), np.ufunc):
            names.add(f"numpy.{attr}")
    for attr in scipy.sparse.__all__:
        obj = getattr(scipy.sparse, attr)
        if inspect.isclass(obj):
            names.add(f"{obj.__module__}.{obj.__qualname__}")
    names.update({"scipy.interpolate._bsplines.BSpline", "scipy.interpolate._interpolate.PPoly"})
    return frozenset(names)


@functools.cache
def scipy_distribution_names() -> frozenset[str]:
    """Frozen scipy.stats distributions (search spaces of RandomizedSearchCV keep them). Importing
    scipy.stats takes a second, so this family is computed only when a name from it is audited."""
    try:
        from scipy.stats import _continuous_distns, _discrete_distns
    except ImportError:
        return frozenset()
    out = {"scipy.stats._distn_infrastructure.rv_continuous_frozen",
           "scipy.stats._distn_infrastructure.rv_discrete_frozen"}
    for mod in (_continuous_distns, _discrete_distns):
        for obj in vars(mod).values():
            if inspect.isclass(obj) and obj.__name__.endswith("_gen") and obj.__module__ == mod.__name__:
                out.add(f"{mod.__name__}.{obj.__qualname__}")
    return frozenset(out)


def _cache_dir() -> Path:
    return user_cache_dir("trust")


@functools.cache
def sklearn_names() -> frozenset[str]:
    """scikit-learn's trusted names for the installed version: shipped, cached, or computed once."""
    import sklearn

    filename = f"sklearn-{sklearn.__version__}.txt"
    shipped = resources.files("modelcapsule.security") / "trusted_names" / filename
    if shipped.is_file():
        return frozenset(shipped.read_text().split())
    cached = _cache_dir() / filename
    if cached.is_file():
        return frozenset(cached.read_text().split())
    names = compute_sklearn_names()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text("\n".join(sorted(names)) + "\n")
        os.replace(tmp, cached)
    except OSError:
        pass
    return names


@functools.cache
def default_names() -> frozenset[str]:
    """Every name the default policy admits, except the lazily computed families (see :func:`admitted`)."""
    return BUILTIN_NAMES | NUMPY_NAMES | _numpy_scipy_names() | sklearn_names()


def admitted(name: str) -> bool:
    """Whether the default policy admits ``name``."""
    if name in default_names():
        return True
    return name.startswith("scipy.stats.") and name in scipy_distribution_names()
