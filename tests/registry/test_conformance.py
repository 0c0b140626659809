"""One behaviour, three backends: every test here runs against the embedded SQLite registry, a real
PostgreSQL server, and ``capsule registry serve`` over HTTP (see the ``registry`` fixture)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from sklearn.datasets import load_iris

import modelcapsule as mc
from modelcapsule.errors import UntrustedTypesError, VerificationError
from modelcapsule.registry import (
    AliasNotFoundError,
    ConflictError,
    ModelNotFoundError,
    PermissionDeniedError,
    Registry,
    VersionNotFoundError,
)

from .conftest import UNTRUSTED, Capsules, use_registry, with_role


def test_registering_returns_a_numbered_content_addressed_version(registry: Registry, capsules: Capsules) -> None:
    v = registry.register("fraud", capsules.a, tags={"team": "risk"}, description="first", alias="staging")
    assert (v.name, v.version, v.created_by, v.tags, v.aliases) == ("fraud", 1, "tester", {"team": "risk"}, ["staging"])
    assert v.digest.startswith("sha256:") and len(v.digest) == 71 and v.size == capsules.a.stat().st_size
    assert v.audit["checks"][:4] == ["structure", "hashes", "audit", "construct"]
    assert v.manifest["model"]["class"].endswith("LogisticRegression")
    assert registry.get("fraud/1") == registry.get("fraud@staging") == registry.get("fraud") == v


def test_the_same_bytes_under_the_same_name_are_the_same_version(registry: Registry, capsules: Capsules) -> None:
    first = registry.register("fraud", capsules.a)
    assert registry.register("fraud", capsules.a) == first
    assert registry.register("other", capsules.a).version == 1  # another name: its own version 1
    assert [v.version for v in registry.versions("fraud")] == [1]


def test_version_numbers_are_gap_free_and_a_deleted_number_is_never_reused(registry: Registry,
                                                                           capsules: Capsules) -> None:
    registry.register("fraud", capsules.a)
    registry.register("fraud", capsules.b)
    registry.delete("fraud", 2, reason="bad data")
    third = registry.register("fraud", capsules.c)
    assert third.version == 3
    assert [v.version for v in registry.versions("fraud")] == [3, 1]
    with pytest.raises(VersionNotFoundError, match="no version 2 .it was deleted"):
        registry.get("fraud/2")
    assert registry.register("fraud", capsules.b).version == 4  # the same bytes again: a new version now
    deleted = [e for e in registry.history("fraud") if e.kind == "version_deleted"]
    assert [(e.from_version, e.reason, e.by) for e in deleted] == [(2, "bad data", "tester")]


def test_a_capsule_with_untrusted_names_is_refused_until_the_registrant_trusts_them(registry: Registry,
                                                                                      capsules: Capsules) -> None:
    with pytest.raises(UntrustedTypesError, match=UNTRUSTED):
        registry.register("scaled", capsules.needs_trust)
    with pytest.raises(ModelNotFoundError):
        registry.get("scaled")  # nothing was written
    v = registry.register("scaled", capsules.needs_trust, trusted=[UNTRUSTED])
    assert v.trusted == [UNTRUSTED]
    assert v.audit["needed_beyond_registry"] == [UNTRUSTED]
    path = registry.fetch("scaled/1")
    with pytest.raises(UntrustedTypesError):  # the name trusted at registration does not widen the loader's policy
        mc.load(path)
    assert mc.load(path, trusted=[UNTRUSTED]) is not None


def test_a_capsule_whose_golden_sample_fails_is_refused_and_nothing_is_stored(registry: Registry,
                                                                                capsules: Capsules) -> None:
    with pytest.raises(VerificationError):
        registry.register("fraud", capsules.tampered)
    assert registry.models() == []
    assert registry.search().versions == []


def test_aliases_move_roll_back_and_keep_every_event(registry: Registry, capsules: Capsules) -> None:
    for path in (capsules.a, capsules.b, capsules.c):
        registry.register("fraud", path)
    registry.set_alias("fraud", "champion", 1)
    registry.set_alias("fraud", "champion", 2, reason="AUC +0.02")
    registry.set_alias("fraud", "champion", 3, reason="AUC +0.01")
    back = registry.rollback("fraud", "champion", reason="latency")
    assert (back.kind, back.from_version, back.to_version, back.by) == ("alias_rollback", 3, 2, "tester")
    assert registry.get("fraud@champion").version == 2
    assert registry.rollback("fraud", "champion").to_version == 1
    with pytest.raises(ConflictError, match="no previous target"):
        registry.rollback("fraud", "champion")
    history = registry.history("fraud", "champion")
    assert [(e.kind, e.from_version, e.to_version, e.reason) for e in history] == [
        ("alias_set", None, 1, ""), ("alias_set", 1, 2, "AUC +0.02"), ("alias_set", 2, 3, "AUC +0.01"),
        ("alias_rollback", 3, 2, "latency"), ("alias_rollback", 2, 1, "")]
    assert all(e.at.endswith("Z") and e.by == "tester" for e in history)
    assert registry.model("fraud").aliases == {"champion": 1}


def test_deleting_an_alias_is_recorded_and_it_no_longer_resolves(registry: Registry, capsules: Capsules) -> None:
    registry.register("fraud", capsules.a, alias="staging")
    event = registry.delete_alias("fraud", "staging", reason="retired")
    assert (event.kind, event.from_version, event.to_version) == ("alias_deleted", 1, None)
    with pytest.raises(AliasNotFoundError, match="capsule alias set fraud staging"):
        registry.get("fraud@staging")


def test_a_protected_alias_moves_only_for_admins(registry: Registry, capsules: Capsules) -> None:
    registry.register("fraud", capsules.a, alias="champion")
    registry.register("fraud", capsules.b)
    writer = with_role(registry, "write", "ci-bot")
    writer.set_alias("fraud", "staging", 2)  # an unprotected alias: write is enough
    with pytest.raises(PermissionDeniedError, match="admin"):
        writer.protect("fraud", "champion")
    registry.protect("fraud", "champion", reason="production")
    with pytest.raises(PermissionDeniedError, match="needs the 'admin' role"):
        writer.set_alias("fraud", "champion", 2)
    with pytest.raises(PermissionDeniedError):
        writer.delete_alias("fraud", "champion")
    registry.set_alias("fraud", "champion", 2, reason="approved")
    assert registry.model("fraud").protected == ["champion"]
    kinds = [(e.kind, e.by) for e in registry.history("fraud", "champion")]
    assert kinds == [("alias_set", "tester"), ("alias_protected", "tester"), ("alias_set", "tester")]
    assert [(e.kind, e.by) for e in registry.history("fraud", "staging")] == [("alias_set", "ci-bot")]
    reader = with_role(registry, "read", "viewer")
    assert reader.get("fraud@champion").version == 2
    with pytest.raises(PermissionDeniedError, match="'write' role"):
        reader.register("fraud", capsules.c)
    writer.close()
    reader.close()


def test_a_version_an_alias_points_to_cannot_be_deleted(registry: Registry, capsules: Capsules) -> None:
    registry.register("fraud", capsules.a, alias="champion")
    registry.register("fraud", capsules.b)
    with pytest.raises(ConflictError, match="alias.*champion.*move them first"):
        registry.delete("fraud", 1)
    registry.set_alias("fraud", "champion", 2)
    registry.delete("fraud", 1)
    assert [v.version for v in registry.versions("fraud")] == [2]
    writer = with_role(registry, "write", "ci-bot")
    with pytest.raises(PermissionDeniedError, match="admin"):
        writer.delete("fraud", 2)
    writer.close()


def test_tags_on_models_and_versions_are_searched_newest_first_page_by_page(registry: Registry,
                                                                            capsules: Capsules) -> None:
    registry.register("fraud", capsules.a, tags={"stage": "dev"})
    registry.register("fraud", capsules.b, tags={"stage": "prod"})
    registry.register("churn", capsules.a, tags={"stage": "prod"})
    registry.register("fragile", capsules.c, tags={"stage": "prod"})
    registry.set_tags("fraud", {"team": "risk"})
    registry.set_tags("churn", {"owner": "ana"}, version=1)
    assert [v.ref for v in registry.search(tags={"stage": "prod"})] == ["fragile/1", "churn/1", "fraud/2"]
    assert [v.ref for v in registry.search(name="fr*", tags={"team": "risk", "stage": "prod"})] == ["fraud/2"]
    assert [v.ref for v in registry.search(name="FRA*")] == ["fragile/1", "fraud/2", "fraud/1"]
    assert registry.get("churn/1").tags == {"stage": "prod", "owner": "ana"}
    assert registry.model("fraud").tags == {"team": "risk"}
    seen, token = [], None
    while True:
        page = registry.search(max_results=3, page_token=token)
        seen += [v.ref for v in page]
        token = page.next_page_token
        if token is None:
            break
    assert seen == ["fragile/1", "churn/1", "fraud/2", "fraud/1"]
    with pytest.raises(ValueError, match="page_token"):
        registry.search(page_token="not-a-token")
    registry.delete_tag("fraud", "team")
    assert registry.search(tags={"team": "risk"}).versions == []


def test_lineage_names_the_parent_version(registry: Registry, capsules: Capsules) -> None:
    registry.register("fraud", capsules.a, alias="champion")
    child = registry.register("fraud-small", capsules.b, parent="fraud@champion")
    assert child.parent == "fraud/1" and registry.get("fraud-small").parent == "fraud/1"
    with pytest.raises(ModelNotFoundError):
        registry.register("orphan", capsules.c, parent="nothing/1")


def test_models_uris_load_inspect_and_verify_the_fetched_hash_checked_capsule(
        registry: Registry, capsules: Capsules, monkeypatch: pytest.MonkeyPatch) -> None:
    registry.register("fraud", capsules.a, alias="champion")
    registry.register("fraud", capsules.b)
    use_registry(monkeypatch, registry)
    fetched = registry.fetch("fraud@champion")
    assert fetched.read_bytes() == capsules.a.read_bytes()
    model = mc.load("models:/fraud@champion")
    assert model.C == 1.0
    assert mc.load("models:/fraud/2").C == 0.5
    assert mc.inspect("models:/fraud/1").name == "a"
    assert mc.verify("models:/fraud@champion").ok
    assert mc.load_capsule("models:/fraud").model.C == 0.5


def test_unknown_names_are_answered_with_the_closest_ones(registry: Registry, capsules: Capsules) -> None:
    registry.register("fraud-detector", capsules.a)
    with pytest.raises(ModelNotFoundError, match="Did you mean 'fraud-detector'"):
        registry.get("fraud-detecter")
    with pytest.raises(ValueError, match="positive integer"):
        registry.get("fraud-detector/zero")


def test_models_list_their_versions_aliases_and_history(registry: Registry, capsules: Capsules) -> None:
    registry.register("b-model", capsules.b)
    registry.register("a-model", capsules.a, alias="champion")
    registry.register("a-model", capsules.c)
    models = registry.models()
    assert [(m.name, m.latest_version, m.versions, m.aliases) for m in models] == [
        ("a-model", 2, 2, {"champion": 1}), ("b-model", 1, 1, {})]
    assert [m.name for m in registry.models("b*")] == ["b-model"]
    assert [e.kind for e in registry.history("a-model")] == ["registered", "alias_set", "registered"]
    failure = registry.record_event("a-model", "serving_failed", alias="champion", to_version=2, reason="sample")
    assert registry.history("a-model", "champion")[-1] == failure


def test_a_directory_capsule_is_stored_as_the_equivalent_zip(registry: Registry, capsules: Capsules,
                                                             tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    unpacked = tmp_path / "unpacked"
    mc.save(LogisticRegression(C=2.0, max_iter=500).fit(x, y), unpacked, sample=x[:5], layout="dir")
    v = registry.register("fraud", unpacked)
    fetched = registry.fetch(v.ref)
    assert fetched.is_file() and zipfile.is_zipfile(fetched)
    assert mc.load(fetched).C == 2.0
    assert registry.register("fraud", unpacked).version == v.version  # packed the same way: the same bytes


def test_oversized_tags_and_malformed_event_kinds_are_refused_with_the_limit(registry: Registry,
                                                                             capsules: Capsules) -> None:
    with pytest.raises(ValueError, match="limit is 1024"):
        registry.register("fraud", capsules.a, tags={"notes": "x" * 2000})
    registry.register("fraud", capsules.a)
    with pytest.raises(ValueError, match="1 to 255"):
        registry.set_tags("fraud", {"k" * 300: "v"})
    with pytest.raises(ValueError, match="serving_failed"):
        registry.record_event("fraud", "Serving Failed!")
    assert [e.kind for e in registry.history("fraud")] == ["registered"]
