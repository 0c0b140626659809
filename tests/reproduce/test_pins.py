"""The pins read from a manifest are exact `name==version` lines, and nothing else gets through."""

from __future__ import annotations

import pytest

from modelcapsule.errors import CapsuleFormatError
from modelcapsule.reproduce.pins import environment_info, parse_pin, pins_from_environment

ENV = {
    "python": "3.11.7",
    "implementation": "CPython",
    "platform": "Linux",
    "machine": "x86_64",
    "packages": {"scikit-learn": "1.9.1", "numpy": "2.4.6"},
    "requirements": [
        "scikit-learn==1.9.1",
        "numpy==2.4.6",
        "Threadpoolctl==3.8.0",
        "torch==2.13.0+cpu",
        "modelcapsule==0.1.0",
    ],
}


def test_requirements_are_read_sorted_by_normalized_name_without_the_tool_itself() -> None:
    pins = pins_from_environment(ENV)
    assert [str(p) for p in pins] == [
        "numpy==2.4.6",
        "scikit-learn==1.9.1",
        "Threadpoolctl==3.8.0",
        "torch==2.13.0+cpu",
    ]


def test_the_tool_is_kept_when_asked() -> None:
    assert "modelcapsule==0.1.0" in [str(p) for p in pins_from_environment(ENV, include_tool=True)]


def test_capsules_without_requirements_fall_back_to_their_packages() -> None:
    env = {k: v for k, v in ENV.items() if k != "requirements"}
    assert [str(p) for p in pins_from_environment(env)] == ["numpy==2.4.6", "scikit-learn==1.9.1"]


def test_a_capsule_with_no_versions_at_all_is_refused_with_a_way_forward() -> None:
    with pytest.raises(CapsuleFormatError, match=r"no package versions.*save"):
        pins_from_environment({"python": "3.11.7"})


@pytest.mark.parametrize(
    "line",
    [
        "--index-url http://example.invalid/simple",
        "-e git+https://example.invalid/x.git#egg=x",
        "numpy>=2",
        "numpy==2.4.6; python_version<'3'",
        "numpy @ https://example.invalid/numpy.whl",
        "numpy==2.4.6\n--extra-index-url http://example.invalid",
        "numpy==not a version",
        "../../etc==1.0",
        "numpy[extra]==2.4.6",
    ],
)
def test_anything_but_an_exact_pin_is_refused_before_it_reaches_pip(line: str) -> None:
    with pytest.raises(CapsuleFormatError, match=r"refusing|pin"):
        pins_from_environment({"requirements": [line]})


def test_hostile_package_names_and_versions_in_packages_are_refused_too() -> None:
    with pytest.raises(CapsuleFormatError, match="not a valid distribution name"):
        pins_from_environment({"packages": {"numpy\n--index-url x": "1.0"}})
    with pytest.raises(CapsuleFormatError, match="not a valid version"):
        pins_from_environment({"packages": {"numpy": "1.0\n--index-url x"}})


def test_the_same_package_pinned_twice_to_different_versions_is_corrupt() -> None:
    with pytest.raises(CapsuleFormatError, match="twice"):
        pins_from_environment({"requirements": ["numpy==2.4.6", "NumPy==2.0.0"]})


def test_parse_pin_normalizes_the_name_for_comparison_but_keeps_its_spelling() -> None:
    pin = parse_pin("Scikit_Learn==1.9.1")
    assert (pin.key, pin.name, pin.version) == ("scikit-learn", "Scikit_Learn", "1.9.1")


def test_environment_info_reads_the_interpreter_and_drops_odd_strings() -> None:
    info = environment_info(ENV)
    assert (info.python, info.python_minor, info.sys_platform, info.modelcapsule) == (
        "3.11.7",
        "3.11",
        "linux",
        "0.1.0",
    )
    assert info.describe() == "CPython 3.11.7 on Linux x86_64"
    odd = environment_info({"python": "3.11\nRUN rm -rf /", "platform": "Linux\n"})
    assert (odd.python, odd.platform, odd.python_minor) == (None, None, None)
