"""The one registry shape: adapters by name, duplicates refused, and (when asked) one owner per suffix."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import pytest

from modelcapsule.core.extensions import Registry, entry_point_values


@dataclass(frozen=True)
class Adapter:
    name: str
    extensions: tuple[str, ...] = ()


def _registry(*, unique_extensions: bool = False) -> Registry[Adapter]:
    return Registry("adapter", lambda item: isinstance(item, Adapter), "ADAPTERS", (),
                    "modelcapsule.tests.no_such_group", unique_extensions=unique_extensions)


def test_adapters_are_found_by_name_and_listed_in_registration_order() -> None:
    registry = _registry()
    registry.register(Adapter("b"))
    registry.register(Adapter("a"))
    assert registry.get("a") == Adapter("a")
    assert registry.get("missing") is None
    assert registry.names() == ["b", "a"]


def test_a_second_adapter_with_the_same_name_is_refused_unless_replacing() -> None:
    registry = _registry()
    registry.register(Adapter("a", (".x",)))
    with pytest.raises(ValueError, match="named 'a' is already registered"):
        registry.register(Adapter("a"))
    registry.register(Adapter("a", (".y",)), replace=True)
    assert registry.get("a") == Adapter("a", (".y",))


def test_something_not_of_the_kind_is_refused() -> None:
    with pytest.raises(TypeError, match="does not implement the adapter protocol"):
        _registry().register("csv")  # type: ignore[arg-type]


def test_each_suffix_has_one_owner_found_case_insensitively() -> None:
    registry = _registry(unique_extensions=True)
    registry.register(Adapter("csv", (".csv", ".tsv")))
    assert registry.for_extension(".CSV") == Adapter("csv", (".csv", ".tsv"))
    assert registry.for_extension(".xlsx") is None
    with pytest.raises(ValueError, match="extension '.tsv' already belongs to the 'csv' adapter"):
        registry.register(Adapter("tabs", (".tsv",)))
    assert registry.get("tabs") is None
    assert registry.extensions() == [".csv", ".tsv"]


def test_a_replaced_adapter_gives_up_the_suffixes_it_no_longer_claims() -> None:
    registry = _registry(unique_extensions=True)
    registry.register(Adapter("csv", (".csv", ".tsv")))
    registry.register(Adapter("csv", (".csv",)), replace=True)
    registry.register(Adapter("tabs", (".tsv",)))
    assert registry.for_extension(".tsv") == Adapter("tabs", (".tsv",))


def test_a_registry_without_a_suffix_index_says_so() -> None:
    with pytest.raises(TypeError, match="does not index file suffixes"):
        _registry().for_extension(".csv")


def test_first_finds_a_wanted_built_in_without_the_plugin_scan_and_a_plugin_after_it(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plug-ins rank after the built-ins, so a wanted built-in is found without reading every installed
    distribution's entry points; a plug-in is found (after the scan) when no built-in is wanted."""
    (tmp_path / "first_builtin.py").write_text(
        "from dataclasses import dataclass\n"
        "@dataclass(frozen=True)\nclass A:\n    name: str\n    extensions: tuple = ()\n"
        "ADAPTERS = (A('general'),)\n")
    (tmp_path / "first_plugin.py").write_text("from first_builtin import A\nADAPTERS = (A('special'),)\n")
    info = tmp_path / "first_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: first-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[modelcapsule.tests.first]\nspecial = first_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry: Registry[Any] = Registry("adapter", lambda item: hasattr(item, "name"), "ADAPTERS",
                                       ("first_builtin",), "modelcapsule.tests.first")

    assert registry.first(lambda a: a.name == "general").name == "general"
    assert "first_plugin" not in sys.modules  # the scan did not run
    assert registry.first(lambda a: a.name == "special").name == "special"
    assert registry.first(lambda a: True).name == "general"  # order unchanged once plug-ins are in
    assert registry.first(lambda a: False) is None
    assert registry.names() == ["general", "special"]
    for module in ("first_builtin", "first_plugin"):
        sys.modules.pop(module, None)


def test_the_entry_point_scan_lists_what_importlib_metadata_lists_for_every_installed_group() -> None:
    import importlib
    from importlib.metadata import distributions, entry_points

    importlib.invalidate_caches()  # importlib.metadata keeps directory listings from earlier calls
    groups = {ep.group for dist in distributions() for ep in dist.entry_points}
    assert "console_scripts" in groups  # the environment has entry points to compare
    for group in sorted(groups | {"modelcapsule.formats", "no.such.group"}):
        # the same values; their order across distributions of one directory is the file system's
        # listing order, which installing packages can change (the next test checks the order rules)
        assert sorted(entry_point_values(group)) == sorted(ep.value for ep in entry_points(group=group)), group


def test_the_entry_point_scan_reads_only_its_section_and_the_first_distribution_of_a_name(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    first, shadowed, legacy = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for folder, info, text in (
            (first, "my_plugin-2.0.dist-info", "# a comment\n[other]\nx = no\n[mc.tests.scan]\n one = first.mod \n"),
            (shadowed, "My.Plugin-1.0.dist-info", "[mc.tests.scan]\none = shadowed.mod\n"),
            (legacy, "old_plugin.egg-info", "[mc.tests.scan]\ntwo = legacy.mod\n")):
        (folder / info).mkdir(parents=True)
        (folder / info / "entry_points.txt").write_text(text)
    for folder in (legacy, shadowed, first):
        monkeypatch.syspath_prepend(str(folder))
    assert entry_point_values("mc.tests.scan") == ["first.mod", "legacy.mod"]
    from importlib.metadata import entry_points

    assert [ep.value for ep in entry_points(group="mc.tests.scan")] == ["first.mod", "legacy.mod"]
