"""The registry's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

The migrations in ``migrations/versions`` create exactly these tables; a test compares the two so they
never drift. Times are ISO-8601 UTC strings (``2026-12-01T21:50:00.123456Z``): portable, sortable, exact.
Version rows are never updated; a model's ``next_version`` counter is bumped in the same transaction that
inserts a version, so numbers are gap-free among committed versions and a deleted number is never reused.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["aliases", "deliveries", "events", "metadata", "model_tags", "models", "tokens", "version_tags",
           "versions", "webhooks"]

metadata = sa.MetaData()

_TIME = sa.String(32)

models = sa.Table(
    "models", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("next_version", sa.Integer, nullable=False, server_default="1"),
)

model_tags = sa.Table(
    "model_tags", metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.String(1024), nullable=False),
)

versions = sa.Table(
    "versions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(71), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("parent", sa.String(300), nullable=True),
    sa.Column("trusted", sa.JSON, nullable=False),
    sa.Column("audit", sa.JSON, nullable=False),
    sa.Column("manifest", sa.JSON, nullable=False),
    sa.UniqueConstraint("model_id", "version", name="uq_versions_model_version"),
    sa.UniqueConstraint("model_id", "digest", name="uq_versions_model_digest"),
)
sa.Index("ix_versions_digest", versions.c.digest)

version_tags = sa.Table(
    "version_tags", metadata,
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.String(1024), nullable=False),
)
sa.Index("ix_version_tags_key_value", version_tags.c.key, version_tags.c.value)

aliases = sa.Table(
    "aliases", metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("alias", sa.String(255), primary_key=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=True),
    sa.Column("protected", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("updated_at", _TIME, nullable=False),
)

events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", _TIME, nullable=False),
    sa.Column("by", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("alias", sa.String(255), nullable=True),
    sa.Column("from_version", sa.Integer, nullable=True),
    sa.Column("to_version", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
)
sa.Index("ix_events_model_alias", events.c.model, events.c.alias)

tokens = sa.Table(
    "tokens", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("revoked_at", _TIME, nullable=True),
)

webhooks = sa.Table(
    "webhooks", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("secret", sa.String(1024), nullable=False),
    sa.Column("events", sa.JSON, nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
)

deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("webhook_id", sa.Integer, sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("events.id"), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", _TIME, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
)
sa.Index("ix_deliveries_webhook", deliveries.c.webhook_id)
