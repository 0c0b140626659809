"""The reviewed behaviour of trusted names: what loading may *call*, and which class hooks were read.

A trusted name says nothing about what its code does when a pickle drives it. This module holds the
reviewed facts the loader relies on, each with the reason it is safe:

* :data:`CALLS`: the only names a stream may call with arguments (REDUCE, NEWOBJ with arguments, OBJ,
  INST). Each maps to an argument rule of :mod:`modelcapsule.security.pickle_dryrun`, checked before
  anything is built. Every other trusted name is a *value* (a function kept as a parameter, such as
  ``FunctionTransformer(func=numpy.log1p)``) or a *class* that may only be created blank (NEWOBJ
  without arguments, as a pickler writes for plain objects) and then given a state.
* :data:`HOOKS`: every class whose own ``__setstate__``, ``__reduce__``, ``__getattr__``, ``__setattr__``,
  ``__setitem__``, ``__new__`` (or the container methods a stream can drive) was read, with what it does
  with a hostile state. A default-trusted class inheriting such a hook from a class not listed here is
  not trusted by default (tests/security/test_policy_reviewed.py enforces this; the sklearn list is
  generated with the same rule).
* :data:`TUPLE_STATE`: classes whose reviewed ``__setstate__`` takes a non-dict state; any other BUILD
  must give a plain dict (or nothing), so the slot-state form, which runs ``setattr`` and thus property
  setters and ``__setattr__``, never reaches an unreviewed class.
* :data:`ITEM_TARGETS`: the classes SETITEM(S) may fill (dict-like containers); APPEND(S) and ADDITEMS may
  only fill the lists and sets the stream itself made.
"""

from __future__ import annotations

__all__ = ["CALLS", "HOOKED_ATTRS", "HOOKS", "ITEM_TARGETS", "TUPLE_STATE", "unreviewed_hooks"]

HOOKED_ATTRS = ("__setstate__", "__setstate_cython__", "__set_state__", "__reduce__", "__reduce_ex__",
                "__getattr__", "__setattr__", "__setitem__", "__new__", "__getinitargs__", "extend", "append",
                "add")
"""Class attributes through which a pickle stream, or the unpickler acting on it, runs class code."""

_CYTHON_PICKLE = ("Cython's generated pickling: __reduce_cython__ names the class and a tuple of typed "
                  "fields; __setstate_cython__ assigns them with Cython's type checks (no imports, no calls)")
_CY_LOSS = ("a Cython loss: __cinit__ stores at most two float parameters and allocates nothing sized by "
            "them; __reduce__ returns (class, (parameters,))")
_DIST = ("a Cython distance metric: created blank by newObj(cls), then __setstate__ copies the (p, vec, mat) "
         "arrays it is given; sizes come from those arrays, which are in the file")
_NUMPY_SCALAR = "a numpy scalar type: __new__ converts one number; numpy writes it through scalar(dtype, bytes)"

CALLS: dict[str, tuple[str, str]] = {
    # name: (argument rule in pickle_dryrun, reason)
    "builtins.slice": ("plain", "builds a slice of plain numbers"),
    "builtins.set": ("plain", "copies a plain iterable the stream built"),
    "builtins.frozenset": ("plain", "copies a plain iterable the stream built"),
    "builtins.complex": ("plain", "parses numbers or a short string"),
    "builtins.bytearray": ("no_size", "copies bytes the stream holds; an integer size is refused (bytearray(2**31))"),
    "builtins.bytes": ("no_size", "copies bytes the stream holds; an integer size is refused"),
    "builtins.range": ("plain", "a lazy range; it is never iterated while loading"),
    "builtins.bool": ("plain", "truth of a plain value"),
    "builtins.int": ("plain", "parses a plain value (CPython caps digits at 4300)"),
    "builtins.float": ("plain", "parses a plain value"),
    "builtins.str": ("plain", "decodes plain bytes or formats a plain value (no object's __str__ runs)"),
    "builtins.list": ("plain", "copies a plain iterable the stream built"),
    "builtins.dict": ("plain", "copies plain pairs the stream built"),
    "builtins.tuple": ("plain", "copies a plain iterable the stream built"),
    "builtins.object": ("no_args", "an empty object"),
    "copyreg._reconstructor": ("reconstructor", "base.__new__(cls): base must be object or a builtin "
                                                "container, cls a trusted class"),
    "collections.OrderedDict": ("plain", "copies plain pairs"),
    "collections.defaultdict": ("defaultdict", "the default factory must be a builtin container type, "
                                               "the only callable it will ever call"),
    "collections.Counter": ("plain", "counts a plain iterable"),
    "collections.deque": ("plain", "copies a plain iterable"),
    "_codecs.encode": ("latin1", "protocol-2 bytes: str.encode('latin-1'); any other codec (which may import "
                                 "a module by name or decompress) is refused"),
    "datetime.datetime": ("plain", "parses the packed bytes datetime pickles as"),
    "datetime.date": ("plain", "parses the packed bytes date pickles as"),
    "datetime.timedelta": ("plain", "three integers"),
    "datetime.timezone": ("timezone", "an offset and a name"),
    "decimal.Decimal": ("plain", "parses a string"),
    "fractions.Fraction": ("plain", "parses a string"),
    "numpy._core.multiarray._reconstruct": ("ndarray_new", "an empty array of a trusted ndarray subclass; the "
                                                           "shape must be empty, the data comes with BUILD"),
    "numpy.core.multiarray._reconstruct": ("ndarray_new", "numpy 1.x name of the same"),
    "numpy.ma.core._mareconstruct": ("ndarray_new", "an empty masked array; data comes with BUILD"),
    "numpy._core.multiarray.scalar": ("scalar", "a scalar from a non-object dtype and exactly itemsize bytes "
                                                "(with an object dtype it would return its argument itself)"),
    "numpy.core.multiarray.scalar": ("scalar", "numpy 1.x name of the same"),
    "numpy._core.numeric._frombuffer": ("frombuffer", "an array over bytes the stream holds, sized by them"),
    "numpy.core.numeric._frombuffer": ("frombuffer", "numpy 1.x name of the same"),
    "numpy.dtype": ("dtype", "a fresh dtype from a type string (copy=True); its BUILD state is checked field "
                             "by field before numpy sees it"),
    "numpy.random._pickle.__randomstate_ctor": ("bitgen_ctor", "RandomState(bit generator named by string); "
                                                               "the second argument, a callable, is refused"),
    "numpy.random._pickle.__generator_ctor": ("bitgen_ctor", "Generator(bit generator); no callable argument"),
    "numpy.random._pickle.__bit_generator_ctor": ("bitgen_class", "a numpy bit generator class, called with no "
                                                                  "argument"),
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence": ("pyx_unpickle", _CYTHON_PICKLE),
    "sklearn.tree._tree.Tree": ("sklearn_tree", "Tree(n_features, n_classes, n_outputs): n_classes must be an "
                                                "array of n_outputs entries built by the stream; __cinit__ "
                                                "copies it, the nodes come with BUILD"),
    "sklearn.metrics._dist_metrics.newObj": ("new_obj", "cls.__new__(cls) for a trusted distance metric class"),
    "sklearn.neighbors._kd_tree.newObj": ("new_obj", "cls.__new__(cls) for a trusted KD-tree class"),
    "sklearn.neighbors._ball_tree.newObj": ("new_obj", "cls.__new__(cls) for a trusted ball-tree class"),
    "sklearn._loss._loss.__pyx_unpickle_CyHalfMultinomialLoss": ("pyx_unpickle", _CYTHON_PICKLE),
    "sklearn.linear_model._sgd_fast.__pyx_unpickle_Classification": ("pyx_unpickle", _CYTHON_PICKLE),
    "sklearn.linear_model._sgd_fast.__pyx_unpickle_Regression": ("pyx_unpickle", _CYTHON_PICKLE),
    "sklearn.metrics._dist_metrics.__pyx_unpickle_DistanceMetric": ("pyx_unpickle", _CYTHON_PICKLE),
    **{f"sklearn._loss._loss.Cy{n}": ("numbers", _CY_LOSS) for n in (
        "AbsoluteError", "ExponentialLoss", "HalfBinomialLoss", "HalfGammaLoss", "HalfPoissonLoss",
        "HalfMultinomialLoss",
        "HalfSquaredError", "HalfTweedieLoss", "HalfTweedieLossIdentity", "HuberLoss", "PinballLoss")},
    **{f"sklearn.linear_model._sgd_fast.{n}": ("numbers", _CY_LOSS) for n in (
        "Hinge", "ModifiedHuber", "SquaredHinge", "EpsilonInsensitive", "SquaredEpsilonInsensitive",
        "Huber", "SquaredLoss", "Log")},
}
"""Every name a stream may call with arguments, its argument rule, and why that call is harmless."""

_DIST_NAMES = ("Euclidean", "SEuclidean", "Manhattan", "Chebyshev", "Minkowski", "Mahalanobis", "Hamming",
               "Canberra", "BrayCurtis", "Jaccard", "Matching", "Dice", "Kulsinski", "RogersTanimoto",
               "RussellRao", "SokalMichener", "SokalSneath", "Haversine")

HOOKS: dict[str, str] = {
    "builtins.dict": "C dict: __setitem__ stores a key; __new__ makes an empty dict",
    "builtins.list": "C list: append/extend store items",
    "builtins.set": "C set: add stores an item",
    "builtins.frozenset": "C frozenset, immutable",
    "builtins.tuple": "C tuple, immutable",
    "builtins.slice": "C slice of plain numbers",
    "builtins.range": "C range, lazy",
    "builtins.bytearray": "C bytearray; an integer size is refused at the call",
    "builtins.object": "the base of every class; its __setattr__ is plain attribute storage",
    **{f"builtins.{t}": "C immutable value: __new__ parses or copies plain data (checked at the call)"
       for t in ("bool", "bytes", "complex", "float", "int", "str")},
    "datetime.tzinfo": "the timezone base: __reduce__ returns (class, arguments), both checked at the call",
    "collections.OrderedDict": "C ordered dict: __setitem__ stores a key",
    "collections.Counter": "a dict subclass; __reduce__ is (Counter, (dict(self),))",
    "collections.defaultdict": "C defaultdict; the factory is checked at the call",
    "collections.deque": "C deque: append/extend store items",
    "datetime.datetime": "C datetime, parsed from packed bytes",
    "datetime.date": "C date, parsed from packed bytes",
    "datetime.timedelta": "C timedelta of three integers",
    "datetime.timezone": "C timezone of an offset and a name",
    "decimal.Decimal": "C Decimal parsed from a string",
    "fractions.Fraction": "Fraction parsed from a string or two integers",
    "uuid.UUID": "__setstate__ stores the int and is_safe fields through object.__setattr__",
    "numpy.dtype": "__setstate__ takes numpy's 8/9-tuple, checked field by field by pickle_values first",
    "numpy.ndarray": "__setstate__ copies raw bytes whose size must match the shape; the dry run checks the "
                     "size, the object-array length and the total allocation first",
    "numpy.generic": "scalar __setstate__ is only reached through scalar(), checked at the call",
    "numpy.ma.MaskedArray": "__setstate__ rebuilds data and mask through ndarray.__setstate__",
    "numpy.ma.core.MaskedArray": "the same class under its defining module",
    "numpy.ma.core.MaskedConstant": "the masked singleton; __reduce__ names MaskedConstant, never built here",
    "numpy.random.bit_generator.BitGenerator": "__setstate__ sets .state, validated by numpy; the position is "
                                               "checked again after loading (state_checks)",
    "numpy.random.bit_generator.SeedSequence": _CYTHON_PICKLE,
    "numpy.random.mtrand.RandomState": "__setstate__ sets the legacy state, validated by numpy",
    "numpy.random._generator.Generator": "__setstate__ sets the bit generator state, validated by numpy",
    "scipy.stats._distn_infrastructure.rv_generic": "never reached: distributions are rebuilt from their "
        "constructor parameters (security.distributions), so this __setstate__, which executes a template from "
        "the state, never runs",
    "scipy.stats._distn_infrastructure.rv_continuous": "as rv_generic",
    "scipy.stats._distn_infrastructure.rv_discrete": "as rv_generic; __new__ picks rv_sample only for values=, "
        "which the parameter check refuses",
    "scipy.stats._distn_infrastructure.rv_frozen": "a plain holder of (dist, args, kwds); its dist is rebuilt",
    "scipy.sparse._index.IndexMixin": "__setitem__ of sparse matrices; never a SETITEM target here",
    "scipy.sparse._coo.coo_matrix": "__setstate__ restores the coords attribute name; checked after loading",
    "scipy.sparse._coo.coo_array": "as coo_matrix",
    "scipy.sparse._coo._coo_base": "as coo_matrix",
    "sklearn.base.BaseEstimator": "__setstate__ pops _sklearn_version (a string, checked), warns on a "
                                  "mismatch, then updates __dict__ with the plain dict state",
    "sklearn.tree._tree.Tree": "__setstate__ checks the node and value arrays' dtypes and shapes against "
                               "n_outputs/max_n_classes and copies them; indices are checked after loading",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor":
        "__setstate__ updates __dict__ and casts the node array to its record dtype (dtype states are checked "
        "before they are built); indices are checked after loading",
    "sklearn.isotonic.IsotonicRegression": "__setstate__ rebuilds an interpolation function from its own "
                                           "threshold arrays (scipy interp1d, linear in their size)",
    "sklearn.utils._bunch.Bunch": "a dict subclass; __setstate__ ignores its argument, __setattr__/__getattr__ "
                                  "map attributes to keys",
    "sklearn.utils._metadata_requests.MetadataRequest": "__getattr__ composes method requests by name from "
                                                        "its own attributes; no import, no call of state",
    "sklearn.frozen._frozen.FrozenEstimator": "__getattr__ forwards attribute reads to the wrapped estimator",
    "sklearn.linear_model._passive_aggressive.PassiveAggressiveClassifier":
        "deprecated class: its __new__ only emits a FutureWarning",
    "sklearn.linear_model._passive_aggressive.PassiveAggressiveRegressor":
        "deprecated class: its __new__ only emits a FutureWarning",
    "sklearn._loss._loss.CyLossFunction": _CY_LOSS,
    "sklearn._loss._loss.CyHalfMultinomialLoss": _CYTHON_PICKLE,
    "sklearn.linear_model._sgd_fast.Classification": _CYTHON_PICKLE,
    "sklearn.linear_model._sgd_fast.Regression": _CYTHON_PICKLE,
    "sklearn.linear_model._sgd_fast.LossFunction": _CY_LOSS,
    "sklearn.metrics._dist_metrics.DistanceMetric": _CYTHON_PICKLE,
    "sklearn.metrics._dist_metrics.DistanceMetric32": _DIST,
    "sklearn.metrics._dist_metrics.DistanceMetric64": _DIST,
    "sklearn.neighbors._kd_tree.BinaryTree32": "__setstate__ takes the 13 arrays and counters of the tree; "
                                               "indices are checked after loading (state_checks)",
    "sklearn.neighbors._kd_tree.BinaryTree64": "as BinaryTree32",
    "sklearn.neighbors._ball_tree.BinaryTree32": "as the KD-tree's BinaryTree32",
    "sklearn.neighbors._ball_tree.BinaryTree64": "as the KD-tree's BinaryTree32",
    **{f"sklearn.neighbors._{m}.{c}{b}": "Cython tree type: __cinit__ takes no argument"
       for m, c in (("kd_tree", "KDTree"), ("ball_tree", "BallTree")) for b in ("32", "64")},
    **{f"sklearn.metrics._dist_metrics.{n}Distance{b}": _DIST for n in _DIST_NAMES for b in ("32", "64")},
    **{name: _CY_LOSS for name, (rule, _why) in CALLS.items() if rule == "numbers"},
}
"""Every class whose own pickling or attribute hooks were read, and what they do with a hostile state."""

HOOKS.update({f"numpy.{t}": _NUMPY_SCALAR for t in (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "longlong", "ulonglong",
    "float16", "float32", "float64", "longdouble", "complex64", "complex128", "clongdouble", "datetime64",
    "timedelta64", "str_", "bytes_", "void", "object_")})
HOOKS.update({f"numpy.random._{m}.{c}": _CYTHON_PICKLE for m, c in (
    ("mt19937", "MT19937"), ("pcg64", "PCG64"), ("pcg64", "PCG64DXSM"), ("philox", "Philox"), ("sfc64", "SFC64"))})

TUPLE_STATE = frozenset({
    "numpy.ndarray", "numpy.ma.core.MaskedArray", "numpy.ma.MaskedArray", "numpy.dtype",
    "numpy.random.bit_generator.SeedSequence", "numpy.random.mtrand.RandomState",
    "numpy.random._generator.Generator",
    *(f"numpy.random._{m}.{c}" for m, c in (("mt19937", "MT19937"), ("pcg64", "PCG64"), ("pcg64", "PCG64DXSM"),
                                             ("philox", "Philox"), ("sfc64", "SFC64"))),
    *(f"sklearn.neighbors._{m}.{c}{b}" for m, c in (("kd_tree", "KDTree"), ("ball_tree", "BallTree"))
      for b in ("", "32", "64")),
    *(f"sklearn.metrics._dist_metrics.{n}Distance{b}" for n in _DIST_NAMES for b in ("", "32", "64")),
    "sklearn._loss._loss.CyHalfMultinomialLoss", "sklearn.linear_model._sgd_fast.Classification",
    "sklearn.linear_model._sgd_fast.Regression", "sklearn.metrics._dist_metrics.DistanceMetric",
})
"""Classes whose reviewed ``__setstate__`` takes a tuple (numpy's array and dtype states, Cython states)."""

ITEM_TARGETS = frozenset({
    "collections.OrderedDict", "collections.defaultdict", "collections.Counter", "sklearn.utils._bunch.Bunch",
})
"""Classes SETITEM(S) may fill: dict subclasses whose ``__setitem__`` is dict's."""


def unreviewed_hooks(cls: type) -> list[str]:
    """``definer.attribute`` for every hooked attribute ``cls`` has from a class not in :data:`HOOKS`."""
    out = []
    for attr in HOOKED_ATTRS:
        for klass in cls.__mro__:
            if klass is object:
                break
            if attr in vars(klass):
                definer = f"{klass.__module__}.{klass.__qualname__}"
                if definer not in HOOKS:
                    out.append(f"{definer}.{attr}")
                break
    return out
