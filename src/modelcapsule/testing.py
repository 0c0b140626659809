"""Conformance checks for formats and frameworks, public so plug-ins can run them on their own adapters.

``sklearn_cases()`` fits every estimator in ``sklearn.utils.all_estimators()`` that can be fitted on a
small standard dataset (``SKLEARN_UNFITTABLE`` lists the rest, with the reason);
``check_round_trip(model, sample, path, format=...)`` saves, reloads and requires identical outputs of
every prediction method (or an identical fitted state, for estimators without one);
``check_format(fmt)`` and ``check_framework(fw)`` check a registered adapter's declared shape.
"""

from __future__ import annotations

import functools
import inspect as _inspect
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .core.sample import compare_sample, normalize_inputs, record_outputs
from .formats.base import Format
from .frameworks.base import Framework
from .load import load_capsule
from .save import save

__all__ = ["SKLEARN_UNFITTABLE", "EstimatorCase", "check_format", "check_framework", "check_round_trip",
           "same_state", "sklearn_case", "sklearn_case_names", "sklearn_cases"]

SKLEARN_UNFITTABLE: dict[str, str] = {}
"""Estimators of ``all_estimators()`` that no small standard dataset fits, with the reason. Empty
with scikit-learn 1.9: every estimator has a case below."""


@dataclass
class EstimatorCase:
    """One fitted estimator and the sample its outputs are checked on."""

    name: str
    model: Any
    sample: Any


@functools.cache
def _data() -> dict[str, Any]:
    from sklearn.datasets import load_diabetes, load_iris

    x, y = load_iris(return_X_y=True)
    xr, yr = load_diabetes(return_X_y=True)
    xr, yr = xr[:120], yr[:120]
    texts = ["the cat sat on the mat", "dogs and cats", "a model in a capsule", "safe loading of models",
             "the dog ate the cat food", "capsules keep models honest"] * 3
    return {"x": x, "y": y, "xr": xr, "yr": yr, "xpos": np.abs(x) + 0.1, "ybin": (y > 0).astype(int),
            "texts": texts, "ytext": np.arange(len(texts)) % 2}


def _sub(name: str) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge

    classifier = any(k in name for k in ("Classifier", "Classif", "OneVs", "OutputCode", "Calibrated", "Threshold",
                                         "SelfTraining"))
    return LogisticRegression(max_iter=1000) if classifier else Ridge()


def _build(name: str, cls: type, d: dict[str, Any]) -> tuple[Any, Callable[[Any], Any], Any]:
    """(estimator, fit function, sample) for one estimator class."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    params = _inspect.signature(cls).parameters
    kw: dict[str, Any] = {}
    x, y, xr, yr = d["x"], d["y"], d["xr"], d["yr"]
    fit_x, fit_y, sample = x, y, x[:10]
    regressor = False
    try:
        from sklearn.base import is_regressor

        regressor = is_regressor(cls())  # type: ignore[call-arg]
    except Exception:
        regressor = "Regress" in name
    if regressor:
        fit_x, fit_y, sample = xr, yr, xr[:10]
    if "estimator" in params and params["estimator"].default is _inspect.Parameter.empty:
        kw["estimator"] = _sub(name)
    if "estimators" in params and params["estimators"].default is _inspect.Parameter.empty:
        kw["estimators"] = ([("lr", LogisticRegression(max_iter=1000)), ("dt", DecisionTreeClassifier())]
                            if "Classif" in name else [("r1", Ridge()), ("r2", Ridge(alpha=10.0))])
    if "steps" in params:
        kw["steps"] = [("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))]
    if "transformer_list" in params:
        kw["transformer_list"] = [("pca", PCA(2)), ("scale", StandardScaler())]
    if "transformers" in params:
        kw["transformers"] = [("scale", StandardScaler(), [0, 1]), ("pca", PCA(1), [2, 3])]
    if "param_grid" in params:
        kw.update(estimator=Ridge(), param_grid={"alpha": [0.1, 1.0]})
        fit_x, fit_y, sample = xr, yr, xr[:10]
    if "param_distributions" in params:
        kw.update(estimator=Ridge(), param_distributions={"alpha": [0.1, 1.0]}, random_state=0)
        fit_x, fit_y, sample = xr, yr, xr[:10]
    special: dict[str, Callable[[], None]] = {
        "CCA": lambda: kw.update(n_components=1), "PLSCanonical": lambda: kw.update(n_components=1),
        "PLSSVD": lambda: kw.update(n_components=1), "GaussianRandomProjection": lambda: kw.update(n_components=2),
        "SparseRandomProjection": lambda: kw.update(n_components=2),
        "SparseCoder": lambda: kw.update(dictionary=np.linalg.qr(np.random.RandomState(0).rand(4, 4))[0]),
        "SequentialFeatureSelector": lambda: kw.update(n_features_to_select=2),
        "FrozenEstimator": lambda: kw.update(estimator=LogisticRegression(max_iter=1000).fit(x, y)),
        "SelfTrainingClassifier": lambda: kw.update(estimator=LogisticRegression(max_iter=1000)),
        "SpectralBiclustering": lambda: kw.update(n_clusters=2),
        "SpectralCoclustering": lambda: kw.update(n_clusters=2),
        "HistGradientBoostingClassifier": lambda: kw.update(max_iter=10),
        "HistGradientBoostingRegressor": lambda: kw.update(max_iter=10),
        "LogisticRegressionCV": lambda: kw.update(Cs=2, cv=3),
        "GaussianProcessClassifier": lambda: kw.update(max_iter_predict=20),
        "TSNE": lambda: kw.update(max_iter=250, perplexity=5.0),
    }
    special.get(name, lambda: None)()
    if any(k in name for k in ("Gamma", "Poisson", "Tweedie")):
        fit_x, fit_y, sample = xr, yr, xr[:10]
    if name in ("FixedThresholdClassifier", "TunedThresholdClassifierCV"):
        fit_y = d["ybin"]
    if name in ("MultiOutputClassifier", "ClassifierChain"):
        fit_y = np.c_[y, d["ybin"]]
    if name in ("MultiOutputRegressor", "RegressorChain") or name.startswith("MultiTask"):
        fit_x, fit_y, sample = xr, np.c_[yr, yr * 0.5], xr[:10]
    if name in ("IsotonicRegression",):
        fit_x, fit_y, sample = xr[:, 2], yr, xr[:10, 2]
    if name == "KernelCenterer":
        gram = x[:20] @ x[:20].T
        fit_x, sample = gram, gram[:5]
    if name in ("CountVectorizer", "TfidfVectorizer", "HashingVectorizer"):
        fit_x, fit_y, sample = d["texts"], None, d["texts"][:4]
    if name == "TfidfTransformer":
        fit_x, sample = np.abs(np.round(x)).astype(int), np.abs(np.round(x[:5])).astype(int)
    if name in ("DictVectorizer", "FeatureHasher"):
        records = [{"a": float(r[0]), "b": float(r[1]), f"c{int(t)}": 1.0} for r, t in zip(x, y, strict=True)]
        fit_x, fit_y, sample = records, None, records[:5]
    if name in ("LabelBinarizer", "LabelEncoder"):
        est = cls(**kw)
        return est, lambda e: e.fit(y), y[:10]
    if name == "MultiLabelBinarizer":
        labels = [{int(a), int(b)} for a, b in zip(y, d["ybin"], strict=True)]
        return cls(**kw), lambda e: e.fit(labels), labels[:5]
    if name in ("MultinomialNB", "ComplementNB", "CategoricalNB", "chi2", "AdditiveChi2Sampler",
                "NMF", "MiniBatchNMF", "LatentDirichletAllocation", "SkewedChi2Sampler"):
        fit_x, sample = d["xpos"], d["xpos"][:10]
    if name == "SkewedChi2Sampler":
        kw["skewedness"] = 1.0
    if name == "CategoricalNB":
        fit_x, sample = np.round(x).astype(int), np.round(x[:10]).astype(int)
    est = cls(**kw)
    if "random_state" in est.get_params(deep=False) and est.get_params(deep=False)["random_state"] is None:
        est.set_params(random_state=0)
    target = fit_y

    def fit(e: Any) -> Any:
        return e.fit(fit_x) if target is None else e.fit(fit_x, target)

    return est, fit, sample


def sklearn_case_names() -> list[str]:
    """Names of the estimators :func:`sklearn_case` can build (``all_estimators()`` minus the unfittable)."""
    from sklearn.utils import all_estimators

    return [name for name, _ in all_estimators() if name not in SKLEARN_UNFITTABLE]


def sklearn_case(name: str) -> EstimatorCase:
    """The estimator called ``name``, fitted on a small standard dataset, with its sample."""
    from sklearn.utils import all_estimators

    cls = dict(all_estimators())[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est, fit, sample = _build(name, cls, _data())
        fit(est)
    return EstimatorCase(name, est, sample)


def sklearn_cases() -> Iterator[EstimatorCase]:
    """Every estimator of ``all_estimators()``, fitted on a small standard dataset, with its sample."""
    for name in sklearn_case_names():
        yield sklearn_case(name)


def _is_sparse(value: Any) -> bool:
    try:
        import scipy.sparse
    except ImportError:
        return False
    return bool(scipy.sparse.issparse(value))


def same_state(a: Any, b: Any, _depth: int = 0) -> bool:
    """Deep equality of fitted state: arrays by value (NaN equal to NaN), objects by their attributes."""
    if _depth > 50:
        return True
    if _is_sparse(a) or _is_sparse(b):  # by value: cached flags such as _has_canonical_format may differ
        return (_is_sparse(a) and _is_sparse(b) and a.shape == b.shape and a.dtype == b.dtype
                and a.format == b.format and (a != b).nnz == 0)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        if a_arr.shape != b_arr.shape or a_arr.dtype != b_arr.dtype:
            return False
        if a_arr.dtype.kind in "fc":
            return bool(np.array_equal(a_arr, b_arr, equal_nan=True))
        if a_arr.dtype.kind == "O":
            return all(same_state(x, y, _depth + 1) for x, y in zip(a_arr.ravel(), b_arr.ravel(), strict=True))
        return bool(np.array_equal(a_arr, b_arr))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k], _depth + 1) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_state(x, y, _depth + 1) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return bool(a == b or (np.isnan(a) and np.isnan(b)))
    if not isinstance(a, type) and hasattr(a, "__getstate__"):
        state_a, state_b = a.__getstate__(), b.__getstate__()
        if isinstance(state_a, (dict, tuple)) and state_a is not a:
            return same_state(state_a, state_b, _depth + 1)
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return repr(a) == repr(b)


def check_round_trip(model: Any, sample: Any, path: str | Path, *, format: str = "auto",
                     **load_kwargs: Any) -> None:
    """Save ``model`` with ``sample`` as its golden sample, reload it with every check on, and require
    identical outputs of every prediction method (or identical fitted state if it has none)."""
    from .frameworks import framework_for

    save(model, path, format=format, sample=sample, overwrite=True, source=False)
    loaded = load_capsule(path, on_mismatch="error", verify=True, **load_kwargs)
    framework = framework_for(model)
    expected, _skipped = record_outputs(framework, model, normalize_inputs(sample))  # a method the original
    compared = 0                                                                    # cannot run is not compared
    for check in compare_sample(framework, loaded.model, normalize_inputs(sample), expected, exact=True):
        if check.difference is not None:
            raise AssertionError(f"{type(model).__name__}.{check.method}() differs after the round trip: "
                                 f"{check.difference}")
        compared += 1
    if compared == 0 and not same_state(vars(model), vars(loaded.model)):
        raise AssertionError(f"{type(model).__name__}: fitted state differs after the round trip")


def check_format(fmt: Format) -> None:
    """A format declares its name, safety and suffixes, and refuses nothing it claims to support."""
    assert isinstance(fmt, Format), f"{fmt!r} does not implement Format"
    assert isinstance(fmt.name, str) and fmt.name, "a format needs a name"
    assert isinstance(fmt.runs_code, bool)
    assert isinstance(fmt.safety, int)
    assert all(e.startswith(".") and e == e.lower() for e in fmt.extensions), "suffixes are lower-case, with a dot"
    assert not fmt.runs_code or fmt.safety >= 100, "formats that run code sort after every safe format"


def check_framework(fw: Framework) -> None:
    """A framework declares a name and never claims an unrelated object."""
    assert isinstance(fw, Framework), f"{fw!r} does not implement Framework"
    assert isinstance(fw.name, str) and fw.name
    assert not fw.matches(object()), f"{fw.name} claims a plain object"
    assert not fw.matches(np.zeros(3)), f"{fw.name} claims a numpy array"
