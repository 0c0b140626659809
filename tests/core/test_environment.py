"""The environment a model was saved in: which packages its types come from, at which versions, the pins
to re-create it, and the drift a later load reports."""

from __future__ import annotations

import platform
from importlib import metadata

import numpy as np
import pytest
import sklearn

from modelcapsule.core import environment
from modelcapsule.core.environment import (
    capture_environment,
    compare_environment,
    distributions_for_modules,
    installed_distribution,
    installed_version,
)
from modelcapsule.errors import PackageDrift


def test_modules_map_to_their_distributions_and_the_standard_library_is_skipped() -> None:
    dists = distributions_for_modules(["sklearn.linear_model._logistic.LogisticRegression", "collections.OrderedDict",
                                       "builtins.dict", "numpy.dtype"])
    assert dists == ["scikit-learn", "numpy"]


def test_installed_versions_are_found_by_any_spelling_of_the_name() -> None:
    assert installed_version("scikit-learn") == sklearn.__version__
    assert installed_version("Scikit_Learn") == sklearn.__version__
    assert installed_version("no-such-package-here") is None
    found = installed_distribution("numpy")
    assert found is not None
    version, folder = found
    assert version == np.__version__ and folder.name.endswith(".dist-info")


def test_the_capture_records_the_model_packages_numpy_scipy_and_joblib_with_pins() -> None:
    env = capture_environment(["sklearn.linear_model._logistic"])
    assert env["python"] == platform.python_version()
    assert env["implementation"] == platform.python_implementation()
    assert env["packages"]["scikit-learn"] == sklearn.__version__
    assert {"numpy", "scipy", "joblib"} <= set(env["packages"])
    assert list(env["packages"]) == sorted(env["packages"])
    # the pins close over what the recorded packages require (scikit-learn requires threadpoolctl)
    assert f"threadpoolctl=={metadata.version('threadpoolctl')}" in env["requirements"]
    assert f"numpy=={np.__version__}" in env["requirements"]


def test_the_same_environment_has_no_drift() -> None:
    assert compare_environment(capture_environment(["sklearn"])) == []


def test_each_changed_or_missing_package_is_a_drift() -> None:
    saved = {"python": platform.python_version(), "packages": {"scikit-learn": "0.0.1", "no-such-package": "1.0",
                                                               "numpy": np.__version__}}
    assert compare_environment(saved) == [
        PackageDrift("scikit-learn", "0.0.1", sklearn.__version__),
        PackageDrift("no-such-package", "1.0", None),
    ]


def test_python_drifts_by_minor_version_only() -> None:
    major, minor, _ = platform.python_version_tuple()
    assert compare_environment({"python": f"{major}.{minor}.999"}) == []
    other = f"{major}.{int(minor) + 1}.0"
    assert compare_environment({"python": other}) == [PackageDrift("python", other, platform.python_version())]


def test_a_package_absent_from_the_path_is_looked_up_in_the_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "_dist_infos", lambda: {})
    assert installed_version("scikit-learn") == sklearn.__version__
    assert installed_distribution("scikit-learn") is None
