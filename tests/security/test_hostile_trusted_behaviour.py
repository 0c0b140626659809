"""Attacks built only from names the default trust policy admits (or admitted before this release).

Each case is a pickle an attacker could write: a trusted scipy distribution that executes a template from
its state, a trusted function returning live module state, a decorator class rewriting a mixin, allocators
sized by the stream, ufuncs on object arrays, BUILD/SETITEM/APPEND on objects the stream did not create.
Every case must be refused by ``mc.load`` (as ``.pkl``, ``.joblib`` and inside a capsule), reported by
``mc.audit`` (``ok`` False, exactly as load refuses), refused by ``mc.convert``; no canary file may appear
and no trusted global may change. A subprocess shows that plain ``pickle.loads`` really is harmed by the
cases marked live, so each is a real attack, not a malformed file.
"""

from __future__ import annotations

import json
import pickle
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hostile_corpus import (
    APPEND,
    BUILD,
    EMPTY_DICT,
    EMPTY_LIST,
    MARK,
    MEMOIZE,
    NEWOBJ,
    NONE,
    OBJ,
    SETITEM,
    build_capsule,
    call,
    canary_path,
    data,
    glob,
    integer,
    stream,
    text,
    tup,
)

import modelcapsule as mc
from modelcapsule.errors import CapsuleError

STREAM = "model/model.pkl"
FALSE, TRUE = b"\x89", b"\x88"
EMPTY_TUPLE = b")"


def _py(d: Path) -> str:
    return f"open({str(canary_path(d))!r}, 'w').close()\n"


def _dtype(spec: str, state: bytes | None = None, copy: bytes = TRUE) -> bytes:
    made = call(glob("numpy", "dtype"), text(spec), FALSE, copy)
    return made + (state + BUILD if state is not None else b"")


_F8_STATE = tup(integer(3), text("<"), NONE, NONE, NONE, b"J\xff\xff\xff\xff", b"J\xff\xff\xff\xff", integer(0))
_O_STATE = tup(integer(3), text("|"), NONE, NONE, NONE, b"J\xff\xff\xff\xff", b"J\xff\xff\xff\xff", integer(63))


def _blank(module: str, name: str) -> bytes:
    """A blank instance, as a pickler writes plain objects: NEWOBJ(cls, ())."""
    return glob(module, name) + EMPTY_TUPLE + NEWOBJ


def _object_array(shape: int, items: bytes) -> bytes:
    """numpy's own array pickle: _reconstruct(ndarray, (0,), b'b') + BUILD (1, shape, dtype('O'), False, list)."""
    empty = call(glob("numpy._core.multiarray", "_reconstruct"), glob("numpy", "ndarray"), tup(integer(0)),
                 data(b"b"))
    return empty + tup(integer(1), tup(integer(shape)), _dtype("O8", _O_STATE), FALSE, items) + BUILD


Case = Callable[[Path], bytes]

CASES: dict[str, tuple[Case, str]] = {
    # --- code execution -------------------------------------------------------------------------------
    "scipy-distribution-executes-its-template": (lambda d: stream(
        _blank("scipy.stats._continuous_distns", "norm_gen") + EMPTY_DICT + text("_parse_arg_template")
        + text(_py(d)) + SETITEM + BUILD), "live"),
    "frozen-scipy-distribution-around-it": (lambda d: stream(
        _blank("scipy.stats._distn_infrastructure", "rv_continuous_frozen") + EMPTY_DICT + text("dist")
        + _blank("scipy.stats._continuous_distns", "norm_gen") + EMPTY_DICT + text("_parse_arg_template")
        + text(_py(d)) + SETITEM + BUILD + SETITEM + BUILD), "live"),
    "decorator-class-rewrites-a-mixin": (lambda d: stream(
        call(call(glob("sklearn.utils.deprecation", "deprecated"), text("x")),
             glob("sklearn.base", "TransformerMixin"))), "live"),
    "bases-of-a-trusted-class-rebuilt": (lambda d: stream(
        glob("sklearn.base", "TransformerMixin") + tup(NONE, EMPTY_DICT + text("__bases__")
                                                       + tup(glob("sklearn.base", "ClassifierMixin")) + SETITEM)
        + BUILD), ""),
    "value-function-called-by-the-stream": (lambda d: stream(
        call(glob("sklearn.metrics.pairwise", "pairwise_kernels"), EMPTY_LIST)), ""),
    "ufunc-on-object-integers-burns-cpu": (lambda d: stream(
        call(glob("numpy", "power"), _object_array(2, MARK + integer(7) + integer(7) + b"l"),
             integer(10**6))), "live"),
    "random-state-ctor-calls-a-held-callable": (lambda d: stream(
        call(glob("numpy.random._pickle", "__randomstate_ctor"), glob("sklearn.base", "TransformerMixin"),
             call(glob("sklearn.utils.deprecation", "deprecated"), text("x")))), "live"),
    "bit-generator-ctor-calls-any-class": (lambda d: stream(
        call(glob("numpy.random._pickle", "__bit_generator_ctor"), glob("sklearn.pipeline", "Pipeline"))), ""),
    "reconstructor-runs-an-estimator-init": (lambda d: stream(
        call(glob("copyreg", "_reconstructor"), glob("sklearn.pipeline", "Pipeline"),
             glob("sklearn.pipeline", "Pipeline"), EMPTY_LIST)), ""),
    "obj-opcode-calls-a-value-function": (lambda d: stream(
        MARK + glob("sklearn.metrics.pairwise", "pairwise_kernels") + OBJ), ""),
    "codec-that-imports-by-name": (lambda d: stream(
        call(glob("_codecs", "encode"), text("x"), text("idna"))), ""),
    "defaultdict-with-a-function-factory": (lambda d: stream(
        call(glob("collections", "defaultdict"), glob("numpy", "power"))), ""),
    "numpy-scalar-returns-its-argument": (lambda d: stream(
        call(glob("numpy._core.multiarray", "scalar"), _dtype("O8", _O_STATE), glob("sklearn.base", "BaseEstimator"))
        + EMPTY_DICT + text("fit") + NONE + SETITEM + BUILD), ""),
    # --- changing what the stream did not create -------------------------------------------------------
    "setitem-on-a-trusted-class": (lambda d: stream(
        glob("sklearn.base", "BaseEstimator") + text("get_params") + NONE + SETITEM), ""),
    "append-to-a-trusted-function": (lambda d: stream(glob("numpy", "mean") + NONE + APPEND), ""),
    "shared-numpy-dtype-rebuilt": (lambda d: stream(
        _dtype("f8", tup(integer(3), text(">"), NONE, NONE, NONE, b"J\xff\xff\xff\xff", b"J\xff\xff\xff\xff",
                         integer(0)), copy=FALSE)), ""),
    "method-shadowed-by-a-dunder-key": (lambda d: stream(
        _blank("sklearn.dummy", "DummyClassifier") + EMPTY_DICT + text("__setstate__") + glob("numpy", "power")
        + SETITEM + BUILD), ""),
    "second-build-of-one-object": (lambda d: stream(
        _blank("sklearn.dummy", "DummyClassifier") + EMPTY_DICT + BUILD + EMPTY_DICT + BUILD), ""),
    "slot-state-sets-the-class": (lambda d: stream(
        _blank("sklearn.dummy", "DummyClassifier")
        + tup(NONE, EMPTY_DICT + text("__class__") + glob("sklearn.pipeline", "Pipeline") + SETITEM) + BUILD), ""),
    "setitem-on-an-estimator": (lambda d: stream(
        _blank("sklearn.dummy", "DummyClassifier") + text("k") + NONE + SETITEM), ""),
    "version-tag-that-is-not-text": (lambda d: stream(
        _blank("sklearn.dummy", "DummyClassifier") + EMPTY_DICT + text("_sklearn_version")
        + _blank("sklearn.dummy", "DummyRegressor") + SETITEM + BUILD), ""),
    "blank-class-given-constructor-arguments": (lambda d: stream(
        glob("numpy.random.mtrand", "RandomState") + tup(integer(1)) + NEWOBJ), ""),
    "cython-helper-for-another-class": (lambda d: stream(
        call(glob("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"), glob("sklearn.pipeline", "Pipeline"),
             integer(0), NONE)), ""),
    "tree-constructor-looping-over-a-range": (lambda d: stream(
        call(glob("sklearn.tree._tree", "Tree"), integer(1), call(glob("builtins", "range"), integer(2**31 - 1)),
             integer(2**31 - 1))), ""),
    # --- memory, CPU and native crashes -----------------------------------------------------------------
    "bytearray-of-two-gigabytes": (lambda d: stream(call(glob("builtins", "bytearray"), integer(2**31))), "live"),
    "bytes-of-two-gigabytes": (lambda d: stream(call(glob("builtins", "bytes"), integer(2**31))), ""),
    "list-of-a-huge-range": (lambda d: stream(
        call(glob("builtins", "list"), call(glob("builtins", "range"), integer(2**40)))), ""),
    "empty-array-of-absurd-shape": (lambda d: stream(
        call(glob("numpy._core.multiarray", "_reconstruct"), glob("numpy", "ndarray"), tup(integer(2**40)),
             data(b"b"))), ""),
    "object-array-shorter-than-its-shape": (lambda d: stream(_object_array(1 << 20, EMPTY_LIST)), ""),
    "object-dtype-through-frombuffer": (lambda d: stream(
        call(glob("numpy._core.numeric", "_frombuffer"), data(b"\0" * 8), _dtype("O8", _O_STATE), tup(integer(1)),
             text("C"))), ""),
}


def _files(tmp: Path, case: str) -> dict[str, Path]:
    raw = CASES[case][0](tmp)
    pkl = tmp / f"{case}.pkl"
    pkl.write_bytes(raw)
    jl = tmp / f"{case}.joblib"
    jl.write_bytes(raw)
    capsule = build_capsule(tmp / f"{case}.capsule", {STREAM: raw},
                            details={"member": STREAM, "protocol": 5, "buffers": 0})
    return {"pkl": pkl, "joblib": jl, "capsule": capsule}


def _class_fingerprint() -> dict[str, object]:
    import numpy as np
    from sklearn import base
    from sklearn.metrics import pairwise

    return {"mixin": (dict(vars(base.TransformerMixin)), base.TransformerMixin.__bases__),
            "estimator": dict(vars(base.BaseEstimator)), "kernels": dict(pairwise.kernel_metrics()),
            "f8": (np.dtype("f8").byteorder, np.dtype("f8").str), "power": dict(vars(type(np.power)))}


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("case", sorted(CASES))
def test_trusted_names_cannot_misbehave(tmp_path: Path, case: str) -> None:
    before = _class_fingerprint()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    for kind, path in _files(tmp_path, case).items():
        with pytest.raises(CapsuleError):
            mc.load(path)
        report = mc.audit(path)
        assert not report.ok, f"{case} ({kind}): the audit calls a file clean that load refuses"
        with pytest.raises(CapsuleError):
            mc.convert(path, tmp_path / f"{case}-{kind}.out.capsule", format="safepickle")
        assert not canary_path(tmp_path).exists(), f"{case} ({kind}) ran code"
    assert _class_fingerprint() == before, f"{case} changed a trusted global"
    assert time.perf_counter() - started < 30, f"{case} took {time.perf_counter() - started:.1f} s"
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    assert grown < 256, f"{case} grew the peak RSS by {grown:.0f} MiB"


_LIVE = """
import json, pickle, sys, resource, time
from pathlib import Path
results = {}
for path in sorted(Path(sys.argv[1]).glob("*.pkl")):
    start = time.perf_counter()
    try:
        pickle.loads(path.read_bytes())
        outcome = "loaded"
    except BaseException as exc:
        outcome = type(exc).__name__
    results[path.stem] = {"outcome": outcome, "seconds": time.perf_counter() - start,
                          "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if path.stem == "decorator-class-rewrites-a-mixin":
        import sklearn.base
        results[path.stem]["mixin_new_replaced"] = "__new__" in vars(sklearn.base.TransformerMixin)
print(json.dumps(results))
"""


def test_the_live_cases_really_harm_plain_pickle(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """Proof the corpus is real: plain ``pickle.loads`` (in a throwaway process) writes the canary, rewrites
    a trusted mixin, or allocates gigabytes for the cases marked live."""
    for case, (build, live) in CASES.items():
        if live and case != "ufunc-on-object-integers-burns-cpu":  # that one is measured below, shorter
            (tmp_path / f"{case}.pkl").write_bytes(build(tmp_path))
    done = subprocess.run([sys.executable, "-c", _LIVE, str(tmp_path)], env=subprocess_env, capture_output=True,
                          text=True, timeout=120, check=True)
    results = json.loads(done.stdout)
    assert canary_path(tmp_path).exists(), results
    assert results["decorator-class-rewrites-a-mixin"]["mixin_new_replaced"] is True
    assert results["bytearray-of-two-gigabytes"]["outcome"] in ("loaded", "MemoryError")


def test_a_ufunc_called_by_plain_pickle_burns_cpu_per_byte() -> None:
    """numpy.power on object arrays of Python ints: a 100-byte stream, a measurable second of CPU."""
    raw = stream(call(glob("numpy", "power"), _object_array(2, MARK + integer(7) + integer(7) + b"l"),
                      integer(300_000)))
    assert len(raw) < 200
    started = time.process_time()
    pickle.loads(raw)
    plain = time.process_time() - started
    started = time.process_time()
    with pytest.raises(CapsuleError, match="numpy.power"):
        from modelcapsule.security.pickle_scan import scan_pickle
        from modelcapsule.security.policy import DEFAULT_POLICY

        scan_pickle(raw, policy=DEFAULT_POLICY)
    assert time.process_time() - started < plain / 5 + 0.05


def _joblib_wrapper(dtype: bytes, shape: int, payload: bytes) -> bytes:
    """A joblib array wrapper as joblib writes it, followed by its raw bytes."""
    state = (EMPTY_DICT + MARK + text("subclass") + glob("numpy", "ndarray") + text("shape") + tup(integer(shape))
             + text("order") + text("C") + text("dtype") + dtype + text("allow_mmap") + FALSE + b"u")
    return b"\x80\x04" + glob("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ + state + BUILD \
        + payload + b"."


def test_a_lying_dtype_in_a_joblib_array_is_refused_not_read(tmp_path: Path) -> None:
    """The joblib reader used to fall back to a walker without dtype checks when the fast scan refused a
    stream: a structured dtype whose field lies past its item size then read out of bounds."""
    lying = _dtype("V8", tup(integer(3), text("|"), NONE, tup(text("a")),
                             EMPTY_DICT + text("a") + tup(_dtype("f8", _F8_STATE) + MEMOIZE, integer(4096)) + SETITEM,
                             integer(8), integer(1), integer(16)))
    path = tmp_path / "lying.joblib"
    path.write_bytes(_joblib_wrapper(lying, 4, b"\0" * 32))
    with pytest.raises(CapsuleError, match="puts field 'a' at bytes 4096"):
        mc.load(path)
    assert not mc.audit(path).ok


def test_joblib_decompression_is_held_to_the_compression_ratio(tmp_path: Path) -> None:
    import zlib

    body = b"\x80\x04" + text("x" * 4_000_000) + b"."
    path = tmp_path / "bomb.joblib"
    path.write_bytes(zlib.compress(body, 9))
    assert path.stat().st_size < 20_000
    with pytest.raises(mc.LimitExceededError, match="max_compression_ratio"):
        mc.load(path)  # 1000x: over the default cap of 200x
    assert not mc.audit(path).ok
    assert mc.load(path, limits=mc.Limits(max_compression_ratio=2000)) == "x" * 4_000_000  # a knob, not a ban


def test_allocation_is_budgeted_against_the_stream_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Object arrays cost 8 bytes a slot for 2 bytes of stream (a memo reference): the budget counts what
    loading would allocate, per byte of stream, and names the knob (the 64 MiB floor is lifted here)."""
    from modelcapsule.security import pickle_dryrun
    from modelcapsule.security.pickle_scan import scan_pickle
    from modelcapsule.security.policy import DEFAULT_POLICY

    items = EMPTY_LIST + MEMOIZE + MARK + b"h\x00" * 5000 + b"e"  # a list holding itself 5000 times (APPENDS)
    raw = stream(_object_array(5000, items))
    monkeypatch.setattr(pickle_dryrun, "_ALLOCATION_FLOOR", 0)
    with pytest.raises(mc.LimitExceededError, match="max_load_expansion"):
        scan_pickle(raw, policy=DEFAULT_POLICY, limits=mc.Limits(max_load_expansion=2))
    scan_pickle(raw, policy=DEFAULT_POLICY, limits=mc.Limits(max_load_expansion=8))


def test_torch_safe_loader_is_widened_only_by_the_users_names(tmp_path: Path) -> None:
    """A default-trusted name (reviewed for our dry run, not for torch's unpickler) is not handed to
    ``torch.load(weights_only=True)`` as a safe global; the user's own explicit trust is."""
    torch = pytest.importorskip("torch")
    from sklearn.base import BaseEstimator

    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2), "kind": BaseEstimator}, path)
    with pytest.raises(mc.UntrustedTypesError, match="sklearn.base.BaseEstimator"):
        mc.load(path)
    assert not mc.audit(path).ok
    loaded = mc.load(path, trusted=["sklearn.base.BaseEstimator"])
    assert loaded["kind"] is BaseEstimator


def test_scipy_distributions_are_rebuilt_from_their_parameters_never_their_state(tmp_path: Path) -> None:
    """A distribution whose state carries a template to execute next to valid constructor parameters loads,
    rebuilt from the parameters alone: the template never runs. Continuous search spaces round-trip."""
    import numpy as np
    import scipy.stats

    evil = stream(_blank("scipy.stats._continuous_distns", "norm_gen") + EMPTY_DICT
                  + text("_ctor_param") + EMPTY_DICT + text("name") + text("norm") + SETITEM + SETITEM
                  + text("_parse_arg_template") + text(_py(tmp_path)) + SETITEM + BUILD)
    path = tmp_path / "evil-but-parametrised.pkl"
    path.write_bytes(evil)
    assert mc.audit(path).ok
    dist = mc.load(path)
    assert not canary_path(tmp_path).exists()
    assert dist.cdf(0.0) == 0.5 and dist.name == "norm"

    space = {"C": scipy.stats.loguniform(1e-3, 10), "alpha": scipy.stats.norm(1, 3)}
    path = tmp_path / "space.pkl"
    path.write_bytes(pickle.dumps(space, protocol=5))
    loaded = mc.load(path)
    for key, original in space.items():
        assert np.allclose(loaded[key].rvs(4, random_state=0), original.rvs(4, random_state=0))
    bad_param = stream(_blank("scipy.stats._continuous_distns", "norm_gen") + EMPTY_DICT + text("_ctor_param")
                       + EMPTY_DICT + text("shapes") + _blank("sklearn.dummy", "DummyClassifier") + SETITEM
                       + SETITEM + BUILD)
    path.write_bytes(bad_param)
    with pytest.raises(CapsuleError, match="not a plain number"):
        mc.load(path)
    assert not mc.audit(path).ok
