"""Models, versions, tags, aliases and events in the database (SQLAlchemy Core).

Every write runs in one transaction that first locks the model's row (``SELECT … FOR UPDATE`` on
PostgreSQL; ``BEGIN IMMEDIATE`` already holds SQLite's single write lock), so version numbers, alias moves
and their events are decided by the database, whichever process or host the writers run on. Events are
handed to listeners (webhooks) only after their transaction committed.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from . import schema as t
from .actors import Actor
from .database import writing
from .errors import AliasNotFoundError, ConflictError, ModelNotFoundError, VersionNotFoundError
from .refs import Ref, check_alias, check_name
from .types import AliasEvent, Model, ModelVersion, SearchPage

__all__ = ["CHANGES_CHANNEL", "NewVersion", "Store", "now"]

CHANGES_CHANNEL = "modelcapsule_registry"
"""The PostgreSQL NOTIFY channel every committed event is announced on (the payload is the model's name),
so that servers following a model hear of an alias move at once instead of at their next poll."""

EventListener = Callable[[AliasEvent], None]


def now() -> str:
    """The current UTC time as the registry stores it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _insert(connection: sa.Connection, table: sa.Table) -> Any:
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def _check_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tags as strings, within the columns' sizes (keys ≤ 255 characters, values ≤ 1024)."""
    out = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not 0 < len(key) <= 255:
            raise ValueError(f"tag key {key!r} must be a string of 1 to 255 characters")
        text = str(value)
        if len(text) > 1024:
            raise ValueError(f"the value of tag {key!r} is {len(text)} characters long; the limit is 1024")
        out[key] = text
    return out


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not kind.replace("_", "").isalpha() or not kind.islower() or len(kind) > 32:
        raise ValueError(f"event kind {kind!r} must be lowercase letters and '_' (at most 32), like 'serving_failed'")
    return kind


def _glob_to_like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _encode_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, value = text.partition(":")
        if prefix != "v1" or not value.isdigit():
            raise ValueError(text)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValueError(f"page_token {token!r} is not one this registry handed out; pass the next_page_token "
                         "of the previous page, or none for the first page") from None


class NewVersion:
    """What registration hands to :meth:`Store.add_version` once every check passed and the blob is stored."""

    def __init__(self, *, digest: str, size: int, description: str, tags: Mapping[str, str], parent: str | None,
                 trusted: Sequence[str], audit: dict[str, Any], manifest: dict[str, Any]) -> None:
        self.digest, self.size, self.description, self.tags = digest, size, description, dict(tags)
        self.parent, self.trusted, self.audit, self.manifest = parent, list(trusted), audit, manifest


class Store:
    """The registry's rows; ``location`` names the database in messages."""

    def __init__(self, engine: sa.Engine, location: str) -> None:
        self.engine, self.location = engine, location
        self.listeners: list[EventListener] = []
        # single-statement reads need no transaction: on PostgreSQL that saves the BEGIN and ROLLBACK round trips
        self.reader = (engine.execution_options(isolation_level="AUTOCOMMIT")
                       if engine.dialect.name == "postgresql" else engine)
        self._extra = self._tags_and_aliases()  # built once: constructing the aliased subqueries costs ~1 ms
        # a summary's JSON columns come back as text and are decoded here: most hold "[]" or nothing, and
        # the drivers' per-value JSON loaders cost more than the rest of the row (psycopg: ~9 µs a value)
        self._summary = [sa.cast(c, sa.Text).label(c.name) if c.name == "trusted" else c
                         for c in t.versions.c if c.name not in ("audit", "manifest")]

    # ----------------------------------------------------------------------------------------- plumbing

    @contextmanager
    def _write(self) -> Iterator[tuple[sa.Connection, list[AliasEvent]]]:
        emitted: list[AliasEvent] = []
        with writing(self.engine) as connection:
            yield connection, emitted
        for event in emitted:  # after the commit: listeners never see an event that was rolled back
            for listener in self.listeners:
                listener(event)

    def _event(self, connection: sa.Connection, emitted: list[AliasEvent], actor: Actor, kind: str, model: str,
               alias: str | None = None, from_version: int | None = None, to_version: int | None = None,
               reason: str = "") -> AliasEvent:
        at = now()
        values = {"at": at, "by": actor.name, "kind": kind, "model": model, "alias": alias,
                  "from_version": from_version, "to_version": to_version, "reason": reason or ""}
        event_id = connection.execute(sa.insert(t.events).values(**values).returning(t.events.c.id)).scalar_one()
        if connection.dialect.name == "postgresql":  # delivered on commit only; servers following the model wake
            connection.execute(sa.select(sa.func.pg_notify(CHANGES_CHANNEL, model)))
        event = AliasEvent(id=event_id, at=at, by=actor.name, kind=kind, name=model, alias=alias,
                           from_version=from_version, to_version=to_version, reason=reason or "")
        emitted.append(event)
        return event

    def _model(self, connection: sa.Connection, name: str, *, lock: bool = False) -> sa.Row[Any]:
        query = sa.select(t.models).where(t.models.c.name == name)
        row = connection.execute(query.with_for_update() if lock else query).first()
        if row is None:
            raise ModelNotFoundError(name, self._close_names(connection, name))
        return row

    def _close_names(self, connection: sa.Connection, name: str) -> list[str]:
        names = connection.execute(sa.select(t.models.c.name)).scalars().all()
        return difflib.get_close_matches(name, names, n=3, cutoff=0.5)

    def _version_row(self, connection: sa.Connection, model: sa.Row[Any], version: int) -> sa.Row[Any]:
        row = connection.execute(sa.select(t.versions).where(t.versions.c.model_id == model.id,
                                                             t.versions.c.version == version)).first()
        if row is None:
            raise VersionNotFoundError(f"model {model.name!r} has no version {version}"
                                       f"{' (it was deleted)' if version < model.next_version else ''}; "
                                       f"`capsule models {model.name}` lists its versions.")
        return row

    def _alias_row(self, connection: sa.Connection, model: sa.Row[Any], alias: str) -> sa.Row[Any]:
        row = connection.execute(sa.select(t.aliases).where(t.aliases.c.model_id == model.id,
                                                            t.aliases.c.alias == alias)).first()
        if row is None:
            raise AliasNotFoundError(f"model {model.name!r} has no alias {alias!r}; set it with "
                                     f"`capsule alias set {model.name} {alias} VERSION`.")
        return row

    def _hydrate(self, connection: sa.Connection, rows: Sequence[sa.Row[Any]], names: Mapping[int, str]) -> list[
            ModelVersion]:
        ids = [r.id for r in rows]
        tags: dict[int, dict[str, str]] = {i: {} for i in ids}
        aliases: dict[int, list[str]] = {i: [] for i in ids}
        if ids:
            for vid, key, value in connection.execute(sa.select(t.version_tags.c.version_id, t.version_tags.c.key,
                                                                t.version_tags.c.value)
                                                      .where(t.version_tags.c.version_id.in_(ids))):
                tags[vid][key] = value
            for vid, alias in connection.execute(sa.select(t.aliases.c.version_id, t.aliases.c.alias)
                                                 .where(t.aliases.c.version_id.in_(ids))
                                                 .order_by(t.aliases.c.alias)):
                aliases[vid].append(alias)
        full = bool(rows) and "manifest" in rows[0]._fields
        return [ModelVersion(name=names[r.model_id], version=r.version, digest=r.digest, size=r.size,
                             created_at=r.created_at, created_by=r.created_by, description=r.description,
                             tags=tags[r.id], aliases=aliases[r.id], parent=r.parent, trusted=list(r.trusted),
                             audit=dict(r.audit) if full else {}, manifest=dict(r.manifest) if full else {})
                for r in rows]

    # ----------------------------------------------------------------------------------------- reads

    def get(self, ref: Ref) -> ModelVersion:
        """The version ``ref`` names: ``name/N``, ``name@alias``, or the latest of ``name``.

        One query finds the row (the common case); only a miss pays for finding out what was missing."""
        query = sa.select(t.versions, *self._extra).join(
            t.models, t.models.c.id == t.versions.c.model_id).where(t.models.c.name == ref.name)
        if ref.alias is not None:
            query = query.join(t.aliases, t.aliases.c.version_id == t.versions.c.id).where(
                t.aliases.c.alias == ref.alias, t.aliases.c.model_id == t.versions.c.model_id)
        elif ref.version is not None:
            query = query.where(t.versions.c.version == ref.version)
        else:
            query = query.order_by(t.versions.c.version.desc()).limit(1)
        with self.reader.connect() as connection:
            row = connection.execute(query).first()
            if row is not None:
                return self._from_row(row, ref.name)
            model = self._model(connection, ref.name)
            if ref.alias is not None:
                self._alias_row(connection, model, ref.alias)
            if ref.version is not None:
                self._version_row(connection, model, ref.version)
            raise VersionNotFoundError(f"model {ref.name!r} has no versions left (all were deleted).")

    def _tags_and_aliases(self) -> list[sa.ColumnElement[Any]]:
        """A version's tags and aliases as two JSON columns, so ``get`` is one round trip."""
        if self.engine.dialect.name == "postgresql":
            as_object, as_array = sa.func.json_object_agg, sa.func.json_agg
        else:
            as_object, as_array = sa.func.json_group_object, sa.func.json_group_array
        tags = (sa.select(sa.cast(as_object(t.version_tags.c.key, t.version_tags.c.value), sa.Text))
                .where(t.version_tags.c.version_id == t.versions.c.id).correlate(t.versions)
                .scalar_subquery().label("tags_json"))
        inner = t.aliases.alias("version_aliases")
        aliases = (sa.select(sa.cast(as_array(inner.c.alias), sa.Text)).where(inner.c.version_id == t.versions.c.id)
                   .correlate(t.versions).scalar_subquery().label("aliases_json"))
        return [tags, aliases]

    @staticmethod
    def _from_row(row: Any, name: str, *, full: bool = True) -> ModelVersion:
        def decoded(value: Any) -> Any:
            if not isinstance(value, str):
                return value  # a full row's JSON columns, decoded by the driver
            return None if value in ("[]", "{}") else json.loads(value)

        return ModelVersion(name=name, version=row.version, digest=row.digest, size=row.size,
                            created_at=row.created_at, created_by=row.created_by, description=row.description,
                            tags=dict(decoded(row.tags_json) or {}), aliases=sorted(decoded(row.aliases_json) or []),
                            parent=row.parent, trusted=list(decoded(row.trusted) or []),
                            audit=dict(row.audit) if full else {}, manifest=dict(row.manifest) if full else {})

    def find_digest(self, name: str, digest: str) -> ModelVersion | None:
        """The version of ``name`` holding exactly these bytes, if any."""
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(t.versions, t.models.c.name).join(t.models)
                                     .where(t.models.c.name == name, t.versions.c.digest == digest)).first()
            return None if row is None else self._hydrate(connection, [row], {row.model_id: row.name})[0]

    def model(self, name: str) -> Model:
        with self.engine.connect() as connection:
            return self._models(connection, [self._model(connection, name)])[0]

    def models(self, pattern: str | None = None) -> list[Model]:
        """Every model (whose name matches the glob ``pattern``), by name."""
        with self.engine.connect() as connection:
            query = sa.select(t.models).order_by(t.models.c.name)
            if pattern:
                query = query.where(self._name_matches(connection, pattern))
            return self._models(connection, connection.execute(query).all())

    def _name_matches(self, connection: sa.Connection, pattern: str) -> sa.ColumnElement[bool]:
        if "*" not in pattern and "?" not in pattern:
            return t.models.c.name == pattern
        like = _glob_to_like(pattern)
        column = t.models.c.name
        return column.like(like, escape="\\") if connection.dialect.name == "sqlite" else column.ilike(
            like, escape="\\")

    def _models(self, connection: sa.Connection, rows: Sequence[sa.Row[Any]]) -> list[Model]:
        ids = [r.id for r in rows]
        tags: dict[int, dict[str, str]] = {i: {} for i in ids}
        aliases: dict[int, dict[str, int]] = {i: {} for i in ids}
        protected: dict[int, list[str]] = {i: [] for i in ids}
        stats: dict[int, tuple[int | None, int]] = {}
        if ids:
            for mid, key, value in connection.execute(sa.select(t.model_tags).where(t.model_tags.c.model_id.in_(ids))):
                tags[mid][key] = value
            query = (sa.select(t.aliases.c.model_id, t.aliases.c.alias, t.versions.c.version, t.aliases.c.protected)
                     .join(t.versions, t.versions.c.id == t.aliases.c.version_id)
                     .where(t.aliases.c.model_id.in_(ids)).order_by(t.aliases.c.alias))
            for mid, alias, version, is_protected in connection.execute(query):
                aliases[mid][alias] = version
                if is_protected:
                    protected[mid].append(alias)
            for mid, latest, count in connection.execute(
                    sa.select(t.versions.c.model_id, sa.func.max(t.versions.c.version), sa.func.count())
                    .where(t.versions.c.model_id.in_(ids)).group_by(t.versions.c.model_id)):
                stats[mid] = (latest, count)
        return [Model(name=r.name, created_at=r.created_at, created_by=r.created_by, description=r.description,
                      tags=tags[r.id], aliases=aliases[r.id], protected=protected[r.id],
                      latest_version=stats.get(r.id, (None, 0))[0], versions=stats.get(r.id, (None, 0))[1])
                for r in rows]

    def search(self, *, name: str | None = None, tags: Mapping[str, str] | None = None, max_results: int = 100,
               page_token: str | None = None) -> SearchPage:
        """Versions, newest first, whose model name matches the glob ``name`` and that carry every tag in
        ``tags`` (on the version or on its model). Results are summaries: everything but ``audit`` and
        ``manifest`` (empty here; ``get`` returns them), so a page of 100 stays cheap."""
        if not 1 <= max_results <= 10_000:
            raise ValueError(f"max_results must be between 1 and 10000, not {max_results}")
        with self.reader.connect() as connection:
            query = sa.select(*self._summary, t.models.c.name, *self._extra).join(t.models)
            if name:
                query = query.where(self._name_matches(connection, name))
            for key, value in (tags or {}).items():  # IN (uncorrelated) lets the database build each set once
                on_version = t.versions.c.id.in_(sa.select(t.version_tags.c.version_id).where(
                    t.version_tags.c.key == key, t.version_tags.c.value == value))
                on_model = t.versions.c.model_id.in_(sa.select(t.model_tags.c.model_id).where(
                    t.model_tags.c.key == key, t.model_tags.c.value == value))
                query = query.where(sa.or_(on_version, on_model))
            if page_token:
                query = query.where(t.versions.c.id < _decode_token(page_token))
            rows: Sequence[Any] = connection.execute(
                query.order_by(t.versions.c.id.desc()).limit(max_results + 1)).all()
            more = len(rows) > max_results
            rows = rows[:max_results]
            found = [self._from_row(r, r.name, full=False) for r in rows]
            return SearchPage(found, _encode_token(rows[-1].id) if more else None)

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, newest first."""
        with self.engine.connect() as connection:
            model = self._model(connection, name)
            rows = connection.execute(sa.select(t.versions).where(t.versions.c.model_id == model.id)
                                      .order_by(t.versions.c.version.desc())).all()
            return self._hydrate(connection, rows, {model.id: model.name})

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """The events of a model (or of one alias), oldest first."""
        with self.engine.connect() as connection:
            self._model(connection, name)
            query = sa.select(t.events).where(t.events.c.model == name)
            if alias is not None:
                query = query.where(t.events.c.alias == alias)
            return [AliasEvent(id=r.id, at=r.at, by=r.by, kind=r.kind, name=r.model, alias=r.alias,
                               from_version=r.from_version, to_version=r.to_version, reason=r.reason)
                    for r in connection.execute(query.order_by(t.events.c.id))]

    def digests(self) -> dict[str, list[str]]:
        """Every digest a row names, with the ``name/version`` references naming it."""
        out: dict[str, list[str]] = {}
        with self.engine.connect() as connection:
            for name, version, digest in connection.execute(
                    sa.select(t.models.c.name, t.versions.c.version, t.versions.c.digest).join(t.models)):
                out.setdefault(digest, []).append(f"{name}/{version}")
        return out

    # ----------------------------------------------------------------------------------------- writes

    def add_version(self, actor: Actor, name: str, new: NewVersion, *, alias: str | None = None,
                    model_tags: Mapping[str, str] | None = None) -> tuple[ModelVersion, bool]:
        """Insert a version (or return the one with the same digest); ``(version, created)``."""
        check_name(name)
        if alias is not None:
            check_alias(alias)
        new.tags, model_tags = _check_tags(new.tags), _check_tags(model_tags or {})
        with self._write() as (connection, emitted):
            connection.execute(_insert(connection, t.models).values(
                name=name, description="", created_at=now(), created_by=actor.name, next_version=1,
            ).on_conflict_do_nothing(index_elements=["name"]))
            model = self._model(connection, name, lock=True)
            existing = connection.execute(sa.select(t.versions).where(t.versions.c.model_id == model.id,
                                                                      t.versions.c.digest == new.digest)).first()
            if existing is not None:
                return self._hydrate(connection, [existing], {model.id: name})[0], False
            number = model.next_version
            connection.execute(sa.update(t.models).where(t.models.c.id == model.id)
                               .values(next_version=number + 1))
            version_id = connection.execute(sa.insert(t.versions).values(
                model_id=model.id, version=number, digest=new.digest, size=new.size, created_at=now(),
                created_by=actor.name, description=new.description, parent=new.parent, trusted=new.trusted,
                audit=new.audit, manifest=new.manifest).returning(t.versions.c.id)).scalar_one()
            if new.tags:
                connection.execute(sa.insert(t.version_tags), [
                    {"version_id": version_id, "key": k, "value": str(v)} for k, v in new.tags.items()])
            for key, value in (model_tags or {}).items():
                self._upsert_tag(connection, t.model_tags, "model_id", model.id, key, str(value))
            self._event(connection, emitted, actor, "registered", name, to_version=number,
                        reason=new.description)
            if alias is not None:
                self._move(connection, emitted, actor, model, alias, version_id, number, "", "alias_set")
            row = connection.execute(sa.select(t.versions).where(t.versions.c.id == version_id)).one()
            return self._hydrate(connection, [row], {model.id: name})[0], True

    def _move(self, connection: sa.Connection, emitted: list[AliasEvent], actor: Actor, model: sa.Row[Any],
              alias: str, version_id: int, number: int, reason: str, kind: str) -> AliasEvent:
        current = connection.execute(sa.select(t.aliases, t.versions.c.version)
                                     .join(t.versions, t.versions.c.id == t.aliases.c.version_id)
                                     .where(t.aliases.c.model_id == model.id, t.aliases.c.alias == alias)).first()
        actor.require("write", f"moving alias {model.name}@{alias}")
        if current is not None and current.protected:
            actor.require("admin", f"moving the protected alias {model.name}@{alias}")
        if current is None:
            connection.execute(sa.insert(t.aliases).values(model_id=model.id, alias=alias, version_id=version_id,
                                                           protected=False, updated_at=now()))
        else:
            connection.execute(sa.update(t.aliases).where(t.aliases.c.model_id == model.id, t.aliases.c.alias == alias)
                               .values(version_id=version_id, updated_at=now()))
        return self._event(connection, emitted, actor, kind, model.name, alias,
                           None if current is None else current.version, number, reason)

    def set_alias(self, actor: Actor, name: str, alias: str, version: int, reason: str = "") -> AliasEvent:
        check_alias(alias)
        with self._write() as (connection, emitted):
            model = self._model(connection, name, lock=True)
            row = self._version_row(connection, model, version)
            return self._move(connection, emitted, actor, model, alias, row.id, version, reason, "alias_set")

    def rollback(self, actor: Actor, name: str, alias: str, reason: str = "") -> AliasEvent:
        """Move ``alias`` back to the target it had before its current one (undoing moves one by one)."""
        with self._write() as (connection, emitted):
            model = self._model(connection, name, lock=True)
            current = self._alias_row(connection, model, alias)
            stack: list[int] = []
            for kind, to_version in connection.execute(
                    sa.select(t.events.c.kind, t.events.c.to_version)
                    .where(t.events.c.model == name, t.events.c.alias == alias).order_by(t.events.c.id)):
                if kind == "alias_set" and to_version is not None:
                    stack.append(to_version)
                elif kind == "alias_rollback" and stack:
                    stack.pop()
                elif kind == "alias_deleted":
                    stack.clear()
            live = {v for (v,) in connection.execute(sa.select(t.versions.c.version)
                                                     .where(t.versions.c.model_id == model.id))}
            if stack:
                stack.pop()  # the current target
            while stack and stack[-1] not in live:
                stack.pop()  # a previous target that was deleted since
            if not stack:
                raise ConflictError(f"alias {name}@{alias} has no previous target to roll back to; move it with "
                                    f"`capsule alias set {name} {alias} VERSION`.")
            target = self._version_row(connection, model, stack[-1])
            del current
            return self._move(connection, emitted, actor, model, alias, target.id, target.version, reason,
                              "alias_rollback")

    def delete_alias(self, actor: Actor, name: str, alias: str, reason: str = "") -> AliasEvent:
        with self._write() as (connection, emitted):
            model = self._model(connection, name, lock=True)
            row = self._alias_row(connection, model, alias)
            actor.require("admin" if row.protected else "write",
                          f"deleting {'the protected ' if row.protected else ''}alias {name}@{alias}")
            version = connection.execute(sa.select(t.versions.c.version).where(t.versions.c.id == row.version_id)
                                         ).scalar()
            connection.execute(sa.delete(t.aliases).where(t.aliases.c.model_id == model.id,
                                                          t.aliases.c.alias == alias))
            return self._event(connection, emitted, actor, "alias_deleted", name, alias, version, None, reason)

    def protect(self, actor: Actor, name: str, alias: str, protected: bool = True, reason: str = "") -> AliasEvent:
        actor.require("admin", f"{'protecting' if protected else 'unprotecting'} alias {name}@{alias}")
        with self._write() as (connection, emitted):
            model = self._model(connection, name, lock=True)
            row = self._alias_row(connection, model, alias)
            connection.execute(sa.update(t.aliases).where(t.aliases.c.model_id == model.id, t.aliases.c.alias == alias)
                               .values(protected=protected, updated_at=now()))
            version = connection.execute(sa.select(t.versions.c.version).where(t.versions.c.id == row.version_id)
                                         ).scalar()
            return self._event(connection, emitted, actor, "alias_protected" if protected else "alias_unprotected",
                               name, alias, version, version, reason)

    def delete_version(self, actor: Actor, name: str, version: int, reason: str = "") -> AliasEvent:
        actor.require("admin", f"deleting {name}/{version}")
        with self._write() as (connection, emitted):
            model = self._model(connection, name, lock=True)
            row = self._version_row(connection, model, version)
            held = connection.execute(sa.select(t.aliases.c.alias).where(t.aliases.c.version_id == row.id)
                                      .order_by(t.aliases.c.alias)).scalars().all()
            if held:
                raise ConflictError(f"{name}/{version} is the target of alias(es) {', '.join(held)}; move them first "
                                    f"(`capsule alias set {name} {held[0]} OTHER_VERSION`), then delete it.")
            connection.execute(sa.delete(t.version_tags).where(t.version_tags.c.version_id == row.id))
            connection.execute(sa.delete(t.versions).where(t.versions.c.id == row.id))
            return self._event(connection, emitted, actor, "version_deleted", name, None, version, None, reason)

    def set_tags(self, actor: Actor, name: str, tags: Mapping[str, str], version: int | None = None) -> None:
        """Set tags on a model (``version=None``) or on one of its versions."""
        actor.require("write", f"tagging {name}")
        tags = _check_tags(tags)
        with self._write() as (connection, _emitted):
            model = self._model(connection, name, lock=True)
            if version is None:
                table, column, owner = t.model_tags, "model_id", model.id
            else:
                table, column, owner = t.version_tags, "version_id", self._version_row(connection, model, version).id
            for key, value in tags.items():
                self._upsert_tag(connection, table, column, owner, key, str(value))

    def delete_tag(self, actor: Actor, name: str, key: str, version: int | None = None) -> None:
        actor.require("write", f"untagging {name}")
        with self._write() as (connection, _emitted):
            model = self._model(connection, name, lock=True)
            if version is None:
                connection.execute(sa.delete(t.model_tags).where(t.model_tags.c.model_id == model.id,
                                                                 t.model_tags.c.key == key))
            else:
                vid = self._version_row(connection, model, version).id
                connection.execute(sa.delete(t.version_tags).where(t.version_tags.c.version_id == vid,
                                                                   t.version_tags.c.key == key))

    @staticmethod
    def _upsert_tag(connection: sa.Connection, table: sa.Table, column: str, owner: int, key: str, value: str) -> None:
        statement = _insert(connection, table).values({column: owner, "key": key, "value": value})
        connection.execute(statement.on_conflict_do_update(index_elements=[column, "key"], set_={"value": value}))

    def record_event(self, actor: Actor, name: str, kind: str, *, alias: str | None = None,
                     from_version: int | None = None, to_version: int | None = None, reason: str = "") -> AliasEvent:
        """Record an event that is not a registry change (a serving failure on an alias, say)."""
        actor.require("write", f"recording an event on {name}")
        _check_kind(kind)
        with self._write() as (connection, emitted):
            self._model(connection, name, lock=True)
            return self._event(connection, emitted, actor, kind, name, alias, from_version, to_version, reason)
