"""The schema: a new database is created at head, an older one is refused with the exact command that
upgrades it, and upgrading from the first revision gives exactly the tables the code expects, on SQLite
and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from modelcapsule.registry import Registry, RegistryError, SchemaOutdatedError
from modelcapsule.registry.database import HEAD, create_engine, current_revision, head_revision, upgrade
from modelcapsule.registry.schema import metadata

from .conftest import Capsules
from .postgres import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        yield server.create_database()


def schema_differences(url: str) -> list[object]:
    engine = create_engine(url)
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    return [d for d in diffs
            if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version")]


def test_the_release_head_is_the_newest_migration() -> None:
    assert head_revision() == HEAD


def test_a_new_database_is_created_at_head_with_exactly_the_expected_tables(database_url: str, tmp_path: Path) -> None:
    Registry(database_url, store=tmp_path / "blobs").close()
    engine = create_engine(database_url)
    assert current_revision(engine) == HEAD
    engine.dispose()
    assert schema_differences(database_url) == []


def test_an_older_database_is_refused_with_the_upgrade_command_then_upgraded_from_the_first_revision(
        database_url: str, tmp_path: Path, capsules: Capsules) -> None:
    engine = create_engine(database_url)
    upgrade(engine, "0001")
    with engine.begin() as connection:  # a registry in use at revision 0001
        connection.execute(sa.text("INSERT INTO models (name, description, created_at, created_by, next_version) "
                                   "VALUES ('kept', '', '2026-01-01T00:00:00.000000Z', 'ana', 1)"))
    with pytest.raises(SchemaOutdatedError, match=r"revision 0001.*needs 0002.*capsule registry upgrade --registry"):
        Registry(database_url, store=tmp_path / "blobs")
    assert current_revision(engine) == "0001"  # never migrated silently
    upgrade(engine)
    assert current_revision(engine) == HEAD
    assert schema_differences(database_url) == []
    with Registry(database_url, store=tmp_path / "blobs") as reg:
        assert [m.name for m in reg.models()] == ["kept"]
        assert reg.register("kept", capsules.a).version == 1
        assert reg.create_token("after-upgrade", "read").startswith("mcr_")
    engine.dispose()


def test_a_database_that_is_not_a_registry_is_left_alone(database_url: str, tmp_path: Path) -> None:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE payroll (id INTEGER PRIMARY KEY)"))
    with pytest.raises(RegistryError, match="not a modelcapsule registry"):
        Registry(database_url, store=tmp_path / "blobs")
    engine.dispose()


def test_a_missing_embedded_registry_is_not_created_by_a_reader(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="capsule registry init"):
        Registry(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()


def test_psql_sees_the_registry_tables(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.create_database()
    Registry(url, store=tmp_path / "blobs").close()
    tables = sorted(postgres.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
                           database=url.rsplit("/", 1)[1]).split())
    assert tables == ["alembic_version", "aliases", "deliveries", "events", "model_tags", "models", "tokens",
                      "version_tags", "versions", "webhooks"]
