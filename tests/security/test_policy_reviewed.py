"""The default trust policy is minimal and reviewed, and every name in it has exactly one role.

* every default class whose pickling or attribute hooks (``__setstate__``, ``__reduce__``, ``__getattr__``,
  ``__setattr__``, ``__setitem__``, ``__new__``...) come from a class not in ``reviewed.HOOKS`` fails here;
* every name a stream may call has an argument rule and a reason;
* functions and ufuncs are values, never callable; scipy distributions (whose ``__setstate__`` executes
  a template from the file) are rebuilt from their constructor parameters and their hooks never run;
* every estimator of the conformance suite still loads under the defaults (checked by
  tests/test_conformance.py), so the smaller policy dropped no supported model.
"""

from __future__ import annotations

import inspect
import warnings

import pytest

from modelcapsule.security.defaults import default_names, default_role
from modelcapsule.security.pickle_rules import RULES
from modelcapsule.security.policy import DEFAULT_POLICY, import_trusted
from modelcapsule.security.reviewed import CALLS, HOOKS, ITEM_TARGETS, TUPLE_STATE, unreviewed_hooks


def _objects() -> dict[str, object]:
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in sorted(default_names()):
            try:
                out[name] = import_trusted(name, DEFAULT_POLICY)
            except Exception as exc:
                out[name] = exc
    return out


def test_every_default_class_has_only_reviewed_hooks() -> None:
    missing = {}
    for name, obj in _objects().items():
        if isinstance(obj, type) and (hooks := unreviewed_hooks(obj)):
            missing[name] = hooks
    assert not missing, f"default classes with unreviewed hooks (review them in reviewed.HOOKS or drop them): {missing}"


def test_every_default_name_exists_and_has_one_role() -> None:
    objects = _objects()
    broken = {n: repr(o) for n, o in objects.items() if isinstance(o, Exception)}
    assert not broken
    for name, obj in objects.items():
        role = default_role(name)
        assert role in ("class", "value", "call"), name
        if role == "class":
            assert isinstance(obj, type), f"{name} is not a class but has role 'class'"
        if role == "value":
            assert not isinstance(obj, type), f"{name} is a class but has role 'value'"


def test_every_callable_name_has_a_rule_and_a_reason() -> None:
    for name, (rule, reason) in CALLS.items():
        assert rule in RULES, name
        assert len(reason) > 10, name
    assert set(ITEM_TARGETS) <= set(HOOKS) | {"collections.defaultdict"}
    assert all(reason.strip() for reason in HOOKS.values())
    assert "numpy.ndarray" in TUPLE_STATE


@pytest.mark.parametrize("name", ["numpy.power", "numpy.log1p", "numpy.mean",
                                  "sklearn.metrics.pairwise.rbf_kernel"])
def test_functions_are_values_never_calls(name: str) -> None:
    assert default_role(name) == "value"


@pytest.mark.parametrize("name", ["sklearn.metrics.pairwise.kernel_metrics",
                                  "sklearn.utils._cyutility.__pyx_unpickle_Enum",
                                  "sklearn.tree._splitter.BestSplitter"])
def test_dangerous_or_unneeded_names_are_not_defaults(name: str) -> None:
    assert not DEFAULT_POLICY.admits(name)


def test_a_users_own_name_is_fully_trusted_but_never_overrides_a_default_role() -> None:
    from modelcapsule.security.policy import TrustPolicy

    policy = TrustPolicy(["mypkg.models.Net", "numpy.power"])
    assert policy.role("mypkg.models.Net") == "trusted"
    assert policy.role("numpy.power") == "value"


def test_reviewed_hooks_name_real_classes() -> None:
    """A reviewed entry that no longer exists is stale (the hook moved): review the new definer."""
    stale = []
    for name in HOOKS:
        try:
            obj = import_trusted(name, DEFAULT_POLICY.with_names([name]))
        except Exception:
            stale.append(name)
            continue
        assert inspect.isclass(obj), name
    assert len(stale) < len(HOOKS) // 4, f"many reviewed classes do not exist here: {stale}"


def test_scipy_distributions_are_reviewed_as_rebuilt() -> None:
    from modelcapsule.security.distributions import distribution_names

    names = distribution_names()
    assert "scipy.stats._continuous_distns.norm_gen" in names
    for name in sorted(names)[:40]:
        assert default_role(name) == "class"
        assert not unreviewed_hooks(import_trusted(name, DEFAULT_POLICY)), name
