"""The trust policy admits exact names only, and a file naming anything else runs nothing."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import modelcapsule as mc
from modelcapsule.security.pickle_scan import scan_pickle
from modelcapsule.security.policy import DEFAULT_POLICY, TrustPolicy, restricted_loads

from helpers import iris_forest, rewrite_capsule


class _Canary:
    """Pickles to a call of os.system that would create a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.path}",))


def test_defaults_admit_what_fitted_models_need_and_nothing_that_runs_code() -> None:
    for name in ("sklearn.tree._tree.Tree", "numpy._core.multiarray._reconstruct", "numpy.dtype",
                 "scipy.sparse._csr.csr_matrix", "sklearn.pipeline.Pipeline",
                 "numpy.random._pickle.__randomstate_ctor"):
        assert DEFAULT_POLICY.admits(name), name
    for name in ("os.system", "posix.system", "builtins.eval", "builtins.exec", "builtins.getattr",
                 "builtins.__import__", "subprocess.Popen", "functools.partial", "importlib.import_module",
                 "numpy.load", "numpy.fromfile", "numpy.lib.npyio.load", "joblib.load", "pickle.loads",
                 "sklearn.utils._testing.TempMemmap", "sklearn.datasets.fetch_openml",
                 "sklearn.utils.parallel.Parallel", "sklearn.externals.array_api_compat.numpy.asarray",
                 "pathlib.os.system", "numpy.testing.assert_equal"):
        assert not DEFAULT_POLICY.admits(name), name


@pytest.mark.parametrize("bad", ["sklearn", "sklearn.*", "os", "", "sklearn.", "a..b", "my pkg.X"])
def test_only_exact_qualified_names_can_be_trusted(bad: str) -> None:
    with pytest.raises(ValueError, match="exact 'module.qualname'"):
        TrustPolicy([bad])


def test_user_additions_are_exact() -> None:
    policy = TrustPolicy(["mypkg.models.MyTransformer"])
    assert policy.admits("mypkg.models.MyTransformer")
    assert not policy.admits("mypkg.models.MyTransformer2")
    assert not policy.admits("mypkg.models")
    assert policy.untrusted(["os.system", "numpy.dtype"]) == ["os.system"]


def test_scan_lists_globals_without_importing() -> None:
    stream = pickle.dumps(_Canary(Path("/nonexistent")), protocol=2)
    assert scan_pickle(stream).globals == ("posix.system",)


def test_restricted_unpickler_refuses_and_runs_nothing(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    with pytest.raises(mc.UntrustedTypesError, match="posix.system"):
        restricted_loads(pickle.dumps(_Canary(canary)), DEFAULT_POLICY)
    assert not canary.exists()


def test_a_capsule_naming_an_untrusted_global_runs_nothing(tmp_path: Path) -> None:
    model, x, _ = iris_forest()
    mc.save(model, tmp_path / "m.capsule", sample=x[:5])
    canary = tmp_path / "canary"
    evil = pickle.dumps([model, _Canary(canary)], protocol=5)

    def poison(name: str, data: bytes) -> bytes | None:
        if name.startswith("model/buffers/"):
            return None
        return evil if name == "model/model.pkl" else data

    def no_buffers(manifest: dict) -> None:
        manifest["format"]["buffers"] = 0

    rewrite_capsule(tmp_path / "m.capsule", tmp_path / "evil.capsule", poison, no_buffers)
    with pytest.raises(mc.UntrustedTypesError) as info:
        mc.load(tmp_path / "evil.capsule")
    assert info.value.names == ["posix.system"]
    assert "trusted=['posix.system']" in str(info.value) and "--trust posix.system" in str(info.value)
    assert not canary.exists()
    report = mc.verify(tmp_path / "evil.capsule")
    assert not report.ok and "posix.system" in report.problems[0]
    assert not canary.exists()


def test_nothing_the_file_names_is_imported_before_the_audit(tmp_path: Path, subprocess_env: dict) -> None:
    """A capsule naming a module nobody imported: the audit refuses it and the module stays unimported."""
    model, _x, _ = iris_forest()
    mc.save(model, tmp_path / "m.capsule")
    stream = b"\x80\x05\x8c\x0fxml.dom.pulldom\x94\x8c\x05parse\x94\x93\x94."  # STACK_GLOBAL, operands memoized
    rewrite_capsule(tmp_path / "m.capsule", tmp_path / "x.capsule",
                    lambda n, d: None if n.startswith("model/buffers/") else (stream if n == "model/model.pkl" else d),
                    lambda m: m["format"].update(buffers=0))
    code = (
        "import sys, modelcapsule as mc\n"
        "try:\n    mc.load(sys.argv[1])\nexcept mc.UntrustedTypesError as e:\n    print(e.names)\n"
        "print('xml.dom.pulldom' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.capsule")], env=subprocess_env,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["['xml.dom.pulldom.parse']", "False"]


def test_trusting_a_custom_type_is_explicit(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    _model, x, y = iris_forest()
    wrapped = _Wrapper(LogisticRegression(max_iter=500).fit(x, y))
    name = f"{_Wrapper.__module__}._Wrapper"
    with pytest.raises(mc.UnsupportedModelError, match=f"outside the trust policy: {name}"):
        mc.save(wrapped, tmp_path / "w.capsule", sample=x[:5])
    mc.save(wrapped, tmp_path / "w.capsule", sample=x[:5], trusted=[name])
    with pytest.raises(mc.UntrustedTypesError, match=name):
        mc.load(tmp_path / "w.capsule")
    assert mc.load(tmp_path / "w.capsule", trusted=[name]).predict(x[:3]).tolist() == wrapped.predict(x[:3]).tolist()


class _Wrapper:
    """A user-defined estimator type: not in the default policy."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def get_params(self, deep: bool = True) -> dict:
        return {"inner": self.inner}

    def fit(self, x: object, y: object) -> _Wrapper:
        return self

    def predict(self, x: object) -> object:
        return self.inner.predict(x)  # type: ignore[attr-defined]


def test_the_shipped_scikit_learn_list_is_what_the_installed_release_computes() -> None:
    """The list shipped for the pinned release is regenerated, not edited: `compute_sklearn_names()`."""
    from importlib import resources

    import sklearn

    from modelcapsule.security.defaults import compute_sklearn_names, parse_names

    shipped = resources.files("modelcapsule.security") / "trusted_names" / f"sklearn-{sklearn.__version__}.txt"
    assert shipped.is_file(), "ship the computed list for the pinned scikit-learn release"
    assert parse_names(shipped.read_text()) == compute_sklearn_names()
